"""Shipped network weights: safetensors plus a JSON record, verified by sha256.

A model ``NAME`` is two files side by side (see ``learnreg/weights/README.md``):

* ``NAME.safetensors`` — the state dict (never pickle);
* ``NAME.json`` — the record: ``config`` (the architecture, for
  :func:`~learnreg.learned.nets.build_network`), ``parameters``, ``file_size``,
  ``sha256`` of the safetensors file, and the free metadata given at saving,
  by convention ``recipe`` (the training recipe, retrained by
  ``learnreg train RECIPE``), ``training_data`` and ``quality``
  (e.g. ``{"psnr": {"set5_sigma25": 31.2}}``).

:func:`load` looks names up in the package's ``learnreg/weights/`` directory
(or in ``directory=``), checks the hash, builds the network and loads the
state; :func:`list_models` lists what is there.

Examples
--------
>>> from learnreg import hub
>>> [model["name"] for model in hub.list_models()]  # doctest: +SKIP
['drunet_small_deadleaves']
>>> denoiser = hub.load("drunet_small_deadleaves")  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from pathlib import Path
from typing import Any, Union

import torch
from torch import nn

import learnreg
from learnreg.data.io import atomic_write_bytes, atomic_write_text, check_output_path
from learnreg.learned.nets import build_network

logger = logging.getLogger(__name__)

__all__ = ["WEIGHTS_DIRECTORY", "WeightsError", "save_weights", "load", "list_models", "read_record"]

PathLike = Union[str, "os.PathLike[str]"]
WEIGHTS_DIRECTORY = Path(__file__).resolve().parents[1] / "weights"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_COMPUTED = ("format", "name", "config", "parameters", "file", "file_size", "sha256",
             "learnreg_version")
_FORMAT = 1


class WeightsError(ValueError):
    """A weights file or its record is corrupt or does not match its network."""


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def save_weights(model: nn.Module, directory: PathLike, name: str, *, config: dict[str, Any],
                 metadata: dict[str, Any], force: bool = False) -> Path:
    """Write ``NAME.safetensors`` and ``NAME.json`` into ``directory``, atomically.

    Parameters
    ----------
    model : nn.Module
        The trained network; its state dict must match ``build_network(config)``.
    directory : str or PathLike
        An existing directory (``learnreg/weights`` for shipped models).
    name : str
        File stem: letters, digits, ``_``, ``.``, ``-``.
    config : dict
        Architecture config, as :func:`~learnreg.learned.nets.network_config` gives it.
    metadata : dict
        JSON-serialisable facts about the model, by convention ``recipe``,
        ``training_data`` and ``quality``; it may not use the computed keys
        (``name``, ``config``, ``parameters``, ``file_size``, ``sha256``...).
    force : bool
        Overwrite existing files.

    Returns
    -------
    Path
        The JSON record.

    Raises
    ------
    ValueError, WeightsError, OverwriteError
        A bad name, reserved or non-JSON metadata, a state dict that does not
        match ``config``, or existing files without ``force``.
    """
    if not _NAME.match(name):
        raise ValueError(f"save_weights: name {name!r} must be letters, digits, '_', '.', '-' "
                         "and start with a letter or digit")
    clash = sorted(set(metadata) & set(_COMPUTED))
    if clash:
        raise ValueError(f"save_weights: metadata keys {clash} are computed; remove them")
    folder = Path(directory)
    weights_path = check_output_path(folder / f"{name}.safetensors", force=force)
    record_path = check_output_path(folder / f"{name}.json", force=force)

    state = {key: value.detach().to("cpu").contiguous() for key, value in model.state_dict().items()}
    with torch.device("meta"):  # the shapes only, no memory
        expected = {key: tuple(value.shape) for key, value in build_network(config).state_dict().items()}
    if expected != {key: tuple(value.shape) for key, value in state.items()}:
        raise WeightsError(f"save_weights: the model's state dict does not match config {config}; "
                           "pass config=network_config(model)")

    from safetensors.torch import save

    data = save(state, metadata={"name": name})
    record = {
        "format": _FORMAT,
        "name": name,
        "config": config,
        "parameters": sum(value.numel() for key, value in state.items()
                          if not key.endswith("num_batches_tracked")),
        "file": weights_path.name,
        "file_size": len(data),
        "sha256": _sha256(data),
        "learnreg_version": learnreg.__version__,
        **metadata,
    }
    try:
        text = json.dumps(record, indent=2, sort_keys=False) + "\n"
    except TypeError as error:
        raise ValueError(f"save_weights: config and metadata must be JSON-serialisable: {error}") from None
    atomic_write_bytes(weights_path, data)
    atomic_write_text(record_path, text)
    logger.info("saved %s (%d parameters, %d bytes)", record_path, record["parameters"], len(data))
    return record_path


def _records(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.json")) if directory.is_dir() else []


def _resolve(name_or_path: PathLike, directory: Path) -> Path:
    """The JSON record of a model given by name (looked up in ``directory``) or path."""
    text = os.fspath(name_or_path)
    if _NAME.match(text) and not text.endswith((".json", ".safetensors")):
        record = directory / f"{text}.json"
        if record.is_file():
            return record
    path = Path(text)
    if path.suffix in (".json", ".safetensors"):
        path = path.with_suffix(".json")
        if not path.is_file():
            raise FileNotFoundError(f"no weights record {path}; check the path")
        return path
    if path.with_name(path.name + ".json").is_file():
        return path.with_name(path.name + ".json")
    available = [record.stem for record in _records(directory)]
    listing = ", ".join(available) if available else "none yet"
    raise ValueError(f"unknown model {text!r}; available in {directory}: {listing}")


def _read_record(path: Path) -> dict[str, Any]:
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise WeightsError(f"cannot read weights record {path}: {error}") from None
    missing = [key for key in ("config", "sha256", "file")
               if not isinstance(record, dict) or key not in record]
    if missing:
        raise WeightsError(f"weights record {path} lacks {missing}; it was not written by save_weights")
    return record


def read_record(name_or_path: PathLike, *, directory: PathLike | None = None) -> dict[str, Any]:
    """The JSON record of a saved model (config, sha256, recipe, training facts, quality), by name or path.

    Raises
    ------
    ValueError
        An unknown name (the message lists the available ones).
    WeightsError
        An unreadable record.
    """
    folder = WEIGHTS_DIRECTORY if directory is None else Path(directory)
    return _read_record(_resolve(name_or_path, folder))


def load(name_or_path: PathLike, *, device: str | torch.device = "cpu",
         directory: PathLike | None = None) -> nn.Module:
    """Load a saved network, verified, in eval mode.

    Parameters
    ----------
    name_or_path : str or PathLike
        A model name (looked up in ``directory``) or the path of its ``.json``
        or ``.safetensors`` file (or of both without the suffix).
    device : str or torch.device
        Where the network goes.
    directory : str or PathLike, optional
        Where names are looked up; the package's ``learnreg/weights/`` by default.

    Returns
    -------
    nn.Module
        The network (:func:`~learnreg.learned.nets.build_network`), in eval mode; on CPU its
        convolution weights are channels-last (faster with oneDNN; any input layout works).

    Raises
    ------
    ValueError
        An unknown name (the message lists the available ones).
    FileNotFoundError
        A path that does not exist, or a record without its weights file.
    WeightsError
        A hash mismatch (corrupt file) or weights that do not fit the config.
    """
    folder = WEIGHTS_DIRECTORY if directory is None else Path(directory)
    record_path = _resolve(name_or_path, folder)
    record = _read_record(record_path)
    weights_path = record_path.parent / record["file"]
    if not weights_path.is_file():
        raise FileNotFoundError(f"weights file {weights_path} (listed in {record_path}) is missing; "
                                "reinstall learnreg or retrain the model")
    data = weights_path.read_bytes()
    digest = _sha256(data)
    if digest != record["sha256"]:
        recipe = record.get("recipe", "RECIPE")
        raise WeightsError(
            f"weights file {weights_path} is corrupt (sha256 {digest}, expected "
            f"{record['sha256']}); reinstall or retrain with `learnreg train {recipe}`"
        )
    from safetensors.torch import load as load_state

    network = build_network(record["config"])
    try:
        network.load_state_dict(load_state(data), strict=True)
    except RuntimeError as error:
        raise WeightsError(f"weights {weights_path} do not fit config {record['config']}: {error}") from None
    if torch.device(device).type == "cpu":
        # oneDNN's preferred layout: inference 1.2x (DRUNet-small) to 2.1x (drunet-gray-wide) faster on 2 cores;
        # inputs may keep any layout, and outputs agree with the default layout to float rounding
        network = network.to(memory_format=torch.channels_last)
    return network.to(device).eval()


def list_models(*, directory: PathLike | None = None) -> list[dict[str, Any]]:
    """The saved models, sorted by name.

    Parameters
    ----------
    directory : str or PathLike, optional
        Where to look; the package's ``learnreg/weights/`` by default.

    Returns
    -------
    list of dict
        One per model: ``name``, ``architecture``, ``parameters``, ``size``
        (bytes of the safetensors file), ``training_data``, ``quality``,
        ``regression`` (the fixed case a test checks the weights on), ``training`` (steps, wall time, patches per
        second, processes, device), ``recipe`` (``None`` where the record has none) and ``path`` (the record).
    """
    folder = WEIGHTS_DIRECTORY if directory is None else Path(directory)
    models = []
    for path in _records(folder):
        record = _read_record(path)
        models.append({
            "name": path.stem,
            "architecture": record["config"].get("architecture"),
            "parameters": record.get("parameters"),
            "size": record.get("file_size"),
            "training_data": record.get("training_data"),
            "quality": record.get("quality"),
            "regression": record.get("regression"),
            "training": record.get("training"),
            "recipe": record.get("recipe"),
            "path": str(path),
        })
    return models
