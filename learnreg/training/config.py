"""Training recipes as typed configs that round-trip to YAML and JSON.

A recipe is a YAML (or JSON) file whose sections map onto the dataclasses
below; ``recipes/README.md`` documents the format with an example. Every field
is checked on construction: an unknown key, a wrong type or a value out of
range raises :class:`ConfigError` naming the key and the fix.

Examples
--------
>>> config = TrainConfig.from_dict({
...     "model": {"architecture": "dncnn", "options": {"channels": 1, "depth": 5}},
...     "data": {"source": "deadleaves", "channels": 1, "patch_size": 40, "batch_size": 8},
...     "optim": {"lr": 1e-3},
...     "task": {"name": "denoise", "options": {"sigma_max": "50/255"}},
...     "steps": 100,
... })
>>> round(config.task.options["sigma_max"], 4)
0.1961
>>> TrainConfig.from_dict(config.to_dict()) == config
True
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union

import yaml

from learnreg.training import registry
from learnreg.training._schema import ConfigError, Section, to_plain

__all__ = [
    "ConfigError", "Section", "ModelConfig", "DataConfig", "OptimConfig", "TaskConfig", "TrainConfig",
    "load_config", "save_config", "config_to_yaml",
]

PathLike = Union[str, "os.PathLike[str]"]


@dataclass(frozen=True)
class ModelConfig(Section):
    """The network to train.

    Attributes
    ----------
    architecture : str
        A name registered with :func:`~learnreg.training.register_model` or an
        architecture of :mod:`learnreg.learned.nets` (``drunet``, ``dncnn``).
    options : dict
        Keyword arguments of the architecture (for the networks of
        :mod:`learnreg.learned.nets`, the fields of their config dataclass).
    """

    section = "model"
    architecture: str
    options: dict[str, Any] = field(default_factory=dict)

    def check(self) -> None:
        try:
            registry.check_model_options(self.architecture, self.options)
        except ValueError as error:
            self.fail("architecture" if "unknown architecture" in str(error) else "options", str(error))


@dataclass(frozen=True)
class DataConfig(Section):
    """Where the training patches come from.

    Attributes
    ----------
    source : str
        ``"deadleaves"`` (procedural, no files), ``"folder"`` (random crops of
        the images under ``path``), ``"mixed"`` (both, ``folder_fraction`` of the
        patches from the folder), or a source registered with
        :func:`~learnreg.training.register_source`.
    path : str, optional
        Image folder of ``"folder"`` and ``"mixed"``.
    patch_size : int
        Side of the square training patches.
    channels : int
        1 (grey) or 3 (RGB) for images.
    batch_size : int
        Patches per step, in total over all processes (each of ``W`` processes
        of a distributed run draws ``batch_size / W``).
    validation_size : int
        Patches in the fixed validation set (drawn from the same source with
        ``validation_seed``, independent of the training stream); 0: none.
    validation_seed : int
        Seed of the validation set.
    validation_path : str, optional
        A folder of held-out images to validate on instead.
    folder_fraction : float
        For ``"mixed"``: the probability that a patch comes from the folder.
    deadleaves : dict
        Extra :class:`~learnreg.data.deadleaves.DeadLeavesConfig` fields
        (``r_min``, ``textures``...); ``size`` and ``channels`` come from above.
    scenes : dict
        ``"depthscenes"`` only: extra :class:`~learnreg.data.depthscenes.DepthSceneConfig`
        fields (``family``, ...); ``size`` comes from ``pool_image_size``, and
        ``pool_images`` scenes (default 64) are rendered once.
    cache : bool
        Keep decoded folder images in memory.
    pool_images : int
        ``"deadleaves"``: 0 draws every patch as a new dead-leaves image
        (slow on CPU: tens of ms each); ``N > 0`` generates ``N`` images of
        ``pool_image_size`` once, from ``seed`` (so a resumed run rebuilds the same pool),
        and draws random crops with flips and 90-degree rotations from them.
    pool_image_size : int
        Side of the pool images (at least ``patch_size``).
    workers : int
        Background processes that draw batches ahead of the training step
        (0: draw them in the training process). The batches are the same
        either way (each step has its own seeded generator), so this only
        changes speed; it may change when resuming.
    """

    section = "data"
    source: str = "deadleaves"
    path: str | None = None
    patch_size: int = 64
    channels: int = 3
    batch_size: int = 16
    validation_size: int = 16
    validation_seed: int = 20240101
    validation_path: str | None = None
    folder_fraction: float = 0.5
    deadleaves: dict[str, Any] = field(default_factory=dict)
    scenes: dict[str, Any] = field(default_factory=dict)
    cache: bool = False
    pool_images: int = 0
    pool_image_size: int = 256
    workers: int = 0

    def check(self) -> None:
        try:
            registry.source_builder(self.source)
        except ValueError as error:
            self.fail("source", str(error))
        if self.source in ("folder", "mixed") and not self.path:
            self.fail("path", f"source {self.source!r} needs the image folder: set data.path")
        for name in ("patch_size", "channels", "batch_size"):
            if getattr(self, name) < 1:
                self.fail(name, f"must be >= 1, got {getattr(self, name)}")
        if self.pool_images < 0 or (self.pool_images and self.pool_image_size < self.patch_size):
            self.fail("pool_images", "pool_images must be >= 0 and pool_image_size >= patch_size")
        if self.workers < 0:
            self.fail("workers", f"must be >= 0 (0: draw batches in the training process), got {self.workers}")
        if self.validation_size < 0 or self.validation_seed < 0:
            self.fail("validation_size", "validation_size and validation_seed must be >= 0")
        if not 0.0 <= self.folder_fraction <= 1.0:
            self.fail("folder_fraction", f"is a probability in [0, 1], got {self.folder_fraction}")
        if self.deadleaves:
            clash = sorted({"size", "channels"} & set(self.deadleaves))
            if clash:
                self.fail("deadleaves", f"{clash} come from data.patch_size and data.channels; remove them")
            from learnreg.data.deadleaves import DeadLeavesConfig

            try:
                DeadLeavesConfig.from_dict({"size": self.patch_size, "channels": self.channels,
                                            **self.deadleaves})
            except (TypeError, ValueError) as error:
                self.fail("deadleaves", str(error))


@dataclass(frozen=True)
class OptimConfig(Section):
    """Optimizer and learning-rate schedule.

    Attributes
    ----------
    optimizer : {'adam', 'adamw'}
    lr : float
        Peak learning rate, > 0.
    betas : (float, float)
        Adam's moment decay rates, each in [0, 1).
    weight_decay : float
        >= 0 (decoupled for ``adamw``, L2 for ``adam``).
    grad_clip : float, optional
        Clip the global gradient norm to this value.
    schedule : {'cosine', 'step', 'constant'}
        After warm-up: cosine decay to ``min_lr`` at the last step, a factor
        ``gamma`` every ``step_size`` steps, or constant.
    step_size : int, optional
        Steps between decays of the ``step`` schedule (required there).
    gamma : float
        Decay factor of the ``step`` schedule, in (0, 1].
    warmup_steps : int
        Linear warm-up from ``lr / warmup_steps`` to ``lr``.
    min_lr : float
        Final learning rate of the cosine schedule.
    """

    section = "optim"
    optimizer: Literal["adam", "adamw"] = "adam"
    lr: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.0
    grad_clip: float | None = None
    schedule: Literal["cosine", "step", "constant"] = "cosine"
    step_size: int | None = None
    gamma: float = 0.5
    warmup_steps: int = 0
    min_lr: float = 0.0

    def check(self) -> None:
        if not self.lr > 0:
            self.fail("lr", f"must be > 0, got {self.lr}")
        if not all(0.0 <= beta < 1.0 for beta in self.betas):
            self.fail("betas", f"each must be in [0, 1), got {list(self.betas)}")
        if self.weight_decay < 0:
            self.fail("weight_decay", f"must be >= 0, got {self.weight_decay}")
        if self.grad_clip is not None and not self.grad_clip > 0:
            self.fail("grad_clip", f"must be > 0 (or null for no clipping), got {self.grad_clip}")
        if self.schedule == "step" and (self.step_size is None or self.step_size < 1):
            self.fail("step_size", f"the 'step' schedule needs step_size >= 1, got {self.step_size}")
        if not 0.0 < self.gamma <= 1.0:
            self.fail("gamma", f"must be in (0, 1], got {self.gamma}")
        if self.warmup_steps < 0:
            self.fail("warmup_steps", f"must be >= 0, got {self.warmup_steps}")
        if not 0.0 <= self.min_lr <= self.lr:
            self.fail("min_lr", f"must be in [0, lr = {self.lr}], got {self.min_lr}")


@dataclass(frozen=True)
class TaskConfig(Section):
    """What the network learns: a task registered by name, and its options.

    Attributes
    ----------
    name : str
        ``"denoise"`` or a task registered with :func:`~learnreg.training.register_task`.
    options : dict
        The task's options, checked by its options dataclass and completed with
        its defaults (for ``denoise``: :class:`~learnreg.training.tasks.DenoiseOptions`).
    """

    section = "task"
    name: str = "denoise"
    options: dict[str, Any] = field(default_factory=dict)

    def check(self) -> None:
        try:
            spec = registry.task_spec(self.name)
        except ValueError as error:
            self.fail("name", str(error))
        if spec.options is None:
            if self.options:
                self.fail("options", f"task {self.name!r} takes no options, got {sorted(self.options)}")
            return
        parsed = self.parsed_options()
        # store the completed options so that the saved recipe states every value
        if isinstance(parsed, Section):
            object.__setattr__(self, "options", parsed.to_dict())
        elif dataclasses.is_dataclass(parsed):
            object.__setattr__(self, "options", to_plain(dataclasses.asdict(parsed)))

    def parsed_options(self) -> Any:
        """The options as the task's options dataclass (``None`` for a task without options)."""
        spec = registry.task_spec(self.name)
        if spec.options is None:
            return None
        if issubclass(spec.options, Section):
            return spec.options.from_dict(self.options)
        try:
            return spec.options(**self.options)
        except (TypeError, ValueError) as error:
            self.fail("options", f"{error} (task {self.name!r})")


@dataclass(frozen=True)
class TrainConfig(Section):
    """A complete training run.

    Attributes
    ----------
    model, data, optim, task : sections
        See :class:`ModelConfig`, :class:`DataConfig`, :class:`OptimConfig`, :class:`TaskConfig`.
    steps : int
        Optimizer steps in total.
    checkpoint_every : int
        Steps between checkpoints (one is always written at the end).
    keep_checkpoints : int
        How many of the latest checkpoints to keep.
    validate_every : int
        Steps between validations; 0: only at the end.
    log_every : int
        Steps between rows of ``log.csv`` (rows are also written at validation
        and checkpoint steps).
    seed : int
        Seeds the model initialisation and every training generator.
    output_dir : str
        Where ``log.csv``, ``config.yaml``, ``checkpoints/`` (and ``tensorboard/``) go.
    threads : int, optional
        CPU threads per process during the run (PyTorch's default when null).
    device : str
        ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"auto"`` (CUDA when available).
    precision : {'fp32', 'bf16'}
        ``bf16``: the loss (forward pass) runs under :func:`torch.autocast` in
        bfloat16 — about 1.5-2x faster convolutions on CPUs with AVX-512 BF16
        or AMX and on recent GPUs; weights, optimizer state, gradients and
        validation stay float32.
    channels_last : bool
        Keep the network's 4-D weights (hence its activations) in channels-last
        memory order: about 1.4x faster convolutions on CPU with oneDNN, same values.
    ship : str, optional
        Export the final weights under this name with :func:`learnreg.hub.save_weights`.
    ship_dir : str, optional
        Where to export them; the package's ``learnreg/weights/`` when null.
    tensorboard : bool
        Also log to TensorBoard when it is installed (silently skipped otherwise).
    plugins : list of str
        Modules imported before the rest of the recipe is checked, to register
        models, tasks or sources defined outside learnreg.
    description : str
        Free text, kept with the run and the exported weights.
    """

    model: ModelConfig
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    task: TaskConfig = field(default_factory=TaskConfig)
    steps: int = 1000
    checkpoint_every: int = 500
    keep_checkpoints: int = 3
    validate_every: int = 500
    log_every: int = 50
    seed: int = 0
    output_dir: str = "runs/train"
    threads: int | None = None
    device: str = "cpu"
    precision: Literal["fp32", "bf16"] = "fp32"
    channels_last: bool = False
    ship: str | None = None
    ship_dir: str | None = None
    tensorboard: bool = True
    plugins: tuple[str, ...] = ()
    description: str = ""

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainConfig":
        """Build from a mapping, importing its ``plugins`` first (see the class docstring)."""
        if isinstance(data, dict):
            _import_plugins(data.get("plugins", ()))
        return super().from_dict(data)

    def __post_init__(self) -> None:
        _import_plugins(self.plugins)
        super().__post_init__()

    def check(self) -> None:
        for name in ("steps", "checkpoint_every", "keep_checkpoints", "log_every"):
            if getattr(self, name) < 1:
                self.fail(name, f"must be >= 1, got {getattr(self, name)}")
        if self.validate_every < 0:
            self.fail("validate_every", f"must be >= 0 (0: validate at the end only), got {self.validate_every}")
        if self.seed < 0:
            self.fail("seed", f"must be >= 0, got {self.seed}")
        if self.threads is not None and self.threads < 1:
            self.fail("threads", f"must be >= 1 (or null for PyTorch's default), got {self.threads}")
        if not re.fullmatch(r"cpu|auto|cuda(:[0-9]+)?", self.device):
            self.fail("device", f"must be 'cpu', 'cuda', 'cuda:N' or 'auto', got {self.device!r}")
        if self.optim.warmup_steps > self.steps:
            self.fail("optim", f"warmup_steps = {self.optim.warmup_steps} exceeds steps = {self.steps}")
        if self.ship is not None and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", self.ship):
            self.fail("ship", f"must be letters, digits, '_', '.', '-', got {self.ship!r}")
        if not self.output_dir:
            self.fail("output_dir", "must not be empty")


def _import_plugins(plugins: Any) -> None:
    if not isinstance(plugins, (list, tuple)) or not all(isinstance(name, str) for name in plugins):
        raise ConfigError(f"plugins: expected a list of module names, got {plugins!r}")
    for name in plugins:
        try:
            importlib.import_module(name)
        except ImportError as error:
            raise ConfigError(f"plugins: cannot import {name!r}: {error}; is it installed or on "
                              "PYTHONPATH?") from None


class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads ``1e-3`` (no dot) as a float, as people write it."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def load_config(path: PathLike) -> TrainConfig:
    """Read a recipe (``.yaml``, ``.yml`` or ``.json``) into a checked :class:`TrainConfig`.

    Raises
    ------
    FileNotFoundError
        No such file.
    ConfigError
        Unparsable file, or an invalid recipe; the message starts with the path.
    """
    source = Path(path)
    if not source.is_file():
        raise FileNotFoundError(f"recipe {source} does not exist; check the path")
    text = source.read_text(encoding="utf-8")
    try:
        data = json.loads(text) if source.suffix.lower() == ".json" else yaml.load(text, Loader=_Loader)
    except (json.JSONDecodeError, yaml.YAMLError) as error:
        raise ConfigError(f"{source}: not valid {'JSON' if source.suffix == '.json' else 'YAML'}: {error}") from None
    try:
        return TrainConfig.from_dict(data if data is not None else {})
    except ConfigError as error:
        raise ConfigError(f"{source}: {error}") from None


def config_to_yaml(config: TrainConfig) -> str:
    """The recipe text of ``config`` (YAML, keys in field order)."""
    return yaml.safe_dump(config.to_dict(), sort_keys=False, default_flow_style=None)


def save_config(config: TrainConfig, path: PathLike) -> Path:
    """Write ``config`` atomically as YAML, or JSON for a ``.json`` path; return the path."""
    from learnreg.data.io import atomic_write_text

    target = Path(path)
    text = (json.dumps(config.to_dict(), indent=2) + "\n" if target.suffix.lower() == ".json"
            else config_to_yaml(config))
    atomic_write_text(target, text)
    return target
