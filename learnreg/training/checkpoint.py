"""Training checkpoints: atomic, loadable with ``weights_only=True``, last K kept.

A checkpoint is ``DIRECTORY/step_00001000.pt``, a ``torch.save`` of a dict of
tensors and plain Python values only (so :func:`load_checkpoint` can use
``torch.load(..., weights_only=True)`` and never unpickles code). The training
loop stores in it::

    format, step, model, optimizer, scheduler, config,
    rng: one entry per process -- {"torch": ByteTensor, "cuda": ByteTensor | None,
         "task": dict} (the data stream needs no state: it is seeded per step),
    log: {"bytes": size of log.csv after the step's row}, wall_s, patches

Writing goes to a temporary file in the same directory, flushed to disk and
moved onto the target with :func:`os.replace`, so a crash leaves either the old
checkpoints or the new one, never half a file.
"""

from __future__ import annotations

import collections
import logging
import os
import re
from pathlib import Path
from typing import Any, Union

import torch

from learnreg.data.io import atomic_path
from learnreg.training.config import ConfigError

logger = logging.getLogger(__name__)

__all__ = [
    "CHECKPOINT_FORMAT", "CheckpointError", "checkpoint_path", "list_checkpoints",
    "latest_checkpoint", "save_checkpoint", "load_checkpoint", "prune_checkpoints",
    "remove_stale_temporaries", "check_resumable", "RESUMABLE_KEYS",
]

PathLike = Union[str, "os.PathLike[str]"]
CHECKPOINT_FORMAT = 1
_NAME = re.compile(r"^step_([0-9]{8,})\.pt$")
# recipe keys that may change between a checkpoint and its resumption: they do not touch the trajectory
RESUMABLE_KEYS = ("steps", "checkpoint_every", "keep_checkpoints", "validate_every", "log_every",
                  "output_dir", "threads", "device", "ship", "ship_dir", "tensorboard",
                  "plugins", "description", "data.workers")
# recipe keys added after the checkpoint format was fixed, with the value older runs had
ADDED_KEYS = {"precision": "fp32", "channels_last": False}
_PLAIN = (torch.Tensor, str, int, float, bool, type(None), torch.Size, torch.dtype)


class CheckpointError(ValueError):
    """A checkpoint cannot be written or read back."""


def checkpoint_path(directory: PathLike, step: int) -> Path:
    """``DIRECTORY/step_{step:08d}.pt``."""
    if step < 0:
        raise ValueError(f"checkpoint_path: step must be >= 0, got {step}")
    return Path(directory) / f"step_{step:08d}.pt"


def list_checkpoints(directory: PathLike) -> list[Path]:
    """The checkpoints in ``directory``, oldest (lowest step) first; ``[]`` if none or no directory."""
    folder = Path(directory)
    if not folder.is_dir():
        return []
    found = [(int(match.group(1)), path) for path in folder.iterdir()
             if (match := _NAME.match(path.name)) and path.is_file()]
    return [path for _, path in sorted(found)]


def latest_checkpoint(directory: PathLike) -> Path | None:
    """The checkpoint with the highest step in ``directory``, or ``None``."""
    checkpoints = list_checkpoints(directory)
    return checkpoints[-1] if checkpoints else None


def _check_plain(value: Any, where: str) -> None:
    """Raise ``TypeError`` unless ``value`` is made of tensors and plain types (weights_only-safe)."""
    if isinstance(value, _PLAIN):
        return
    if isinstance(value, (dict, collections.OrderedDict)):
        for key, item in value.items():
            if not isinstance(key, (str, int)):
                raise TypeError(f"checkpoint entry {where} has a key of type {type(key).__name__}")
            _check_plain(item, f"{where}[{key!r}]")
        return
    if isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            _check_plain(item, f"{where}[{index}]")
        return
    raise TypeError(f"checkpoint entry {where} is a {type(value).__name__}; store tensors and "
                    "plain types only (torch.load(weights_only=True) must read it back)")


def save_checkpoint(state: dict[str, Any], directory: PathLike, *, step: int,
                    keep: int | None = None) -> Path:
    """Write ``state`` as the checkpoint of ``step``, atomically; keep the newest ``keep``.

    Parameters
    ----------
    state : dict
        Tensors and plain Python values only (checked before writing).
    directory : str or PathLike
        Created if missing.
    step : int
        Names the file ``step_{step:08d}.pt``.
    keep : int, optional
        After a successful write, delete all but the newest ``keep`` checkpoints.

    Returns
    -------
    Path
        The checkpoint written.

    Raises
    ------
    TypeError
        ``state`` holds something ``weights_only`` loading would refuse.
    OSError
        Writing failed; the previous checkpoints are untouched and no
        temporary file is left behind.
    """
    _check_plain(state, "state")
    target = checkpoint_path(directory, step)
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(target) as temporary:
        torch.save(state, temporary)
    logger.debug("checkpoint written: %s", target)
    if keep is not None:
        prune_checkpoints(directory, keep=keep)
    return target


def prune_checkpoints(directory: PathLike, *, keep: int) -> list[Path]:
    """Delete all but the newest ``keep`` (>= 1) checkpoints; return the deleted paths."""
    if keep < 1:
        raise ValueError(f"prune_checkpoints: keep must be >= 1, got {keep}")
    removed = list_checkpoints(directory)[:-keep]
    for path in removed:
        path.unlink(missing_ok=True)
    return removed


def remove_stale_temporaries(directory: PathLike) -> list[Path]:
    """Delete temporary files left in ``directory`` by a writer that was killed mid-write."""
    folder = Path(directory)
    if not folder.is_dir():
        return []
    stale = [path for path in folder.glob(".step_*.tmp*") if path.is_file()]
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


def load_checkpoint(path: PathLike, *, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint with ``torch.load(..., weights_only=True)``.

    Raises
    ------
    FileNotFoundError
        No such file.
    CheckpointError
        Not a readable checkpoint of this format (truncated, corrupt, foreign).
    """
    source = Path(path)
    if not source.is_file():
        raise FileNotFoundError(f"checkpoint {source} does not exist")
    try:
        state = torch.load(source, map_location=map_location, weights_only=True)
    except Exception as error:  # any unpickling or zip failure means a bad file
        raise CheckpointError(f"cannot read checkpoint {source}: {error}; the file is corrupt or "
                              "not a learnreg checkpoint (delete it to resume from an older one)") from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        found = state.get("format") if isinstance(state, dict) else type(state).__name__
        raise CheckpointError(f"checkpoint {source} has format {found!r}, expected "
                              f"{CHECKPOINT_FORMAT}; it was not written by this version of learnreg")
    return state


def _flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, dict):
        flat: dict[str, Any] = {}
        for key, value in data.items():
            flat.update(_flatten(value, f"{prefix}{key}."))
        return flat
    return {prefix[:-1]: data}


def check_resumable(saved: dict[str, Any], current: dict[str, Any], *, path: PathLike) -> None:
    """Refuse to resume a checkpoint written under another recipe.

    Parameters
    ----------
    saved, current : dict
        ``TrainConfig.to_dict()`` of the checkpoint and of the resuming run.
    path : str or PathLike
        The checkpoint, for the message.

    Raises
    ------
    ConfigError
        A key outside :data:`RESUMABLE_KEYS` differs; the message lists each
        change as ``key: old -> new``.
    """
    old = {key: value for key, value in {**ADDED_KEYS, **_flatten(saved)}.items()
           if key not in RESUMABLE_KEYS and key.split(".")[0] not in RESUMABLE_KEYS}
    new = {key: value for key, value in _flatten(current).items()
           if key not in RESUMABLE_KEYS and key.split(".")[0] not in RESUMABLE_KEYS}
    changed = [f"{key}: {old.get(key)!r} -> {new.get(key)!r}" for key in sorted(set(old) | set(new))
               if old.get(key) != new.get(key)]
    if changed:
        raise ConfigError(f"cannot resume from {path}: the recipe changed since ({'; '.join(changed)}); "
                          "restore it, or train into a new output_dir")
    schedule = current.get("optim", {}).get("schedule")
    if saved.get("steps") != current.get("steps") and schedule == "cosine":
        logger.warning("resuming with steps %s instead of %s: the cosine schedule changes from here on",
                       current.get("steps"), saved.get("steps"))
