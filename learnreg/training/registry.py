"""Registries that turn the names in a recipe into models, tasks and data sources.

A recipe names three pluggable parts; each name is looked up here:

* ``model.architecture`` -- :func:`register_model` (``builder(**options) -> nn.Module``);
  names not registered here fall back to :mod:`learnreg.learned.nets`
  (``build_network({"architecture": name, **options})``);
* ``task.name`` -- :func:`register_task` (``builder(config, context) -> Task``, with an
  options dataclass that validates ``task.options``);
* ``data.source`` -- :func:`register_source` (``builder(data_config) -> PatchSource``).

Built-in tasks (``denoise``) and sources (``deadleaves``, ``folder``, ``mixed``)
register themselves when :mod:`learnreg.training.tasks` and
:mod:`learnreg.training.sources` are imported, which every lookup does first.
Code outside the package registers its own parts in a module that a recipe
lists under ``plugins:`` (imported before the recipe is validated, in every
process of a distributed run).

Examples
--------
>>> from torch import nn
>>> class Tiny(nn.Module):
...     def __init__(self, *, channels=1):
...         super().__init__()
...         self.conv = nn.Conv2d(channels, channels, 3, padding=1)
...     def forward(self, x, sigma=None):
...         return x - self.conv(x)
>>> register_model("tiny_doc_example", Tiny, replace=True)
>>> build_model("tiny_doc_example", {"channels": 3}).conv.in_channels
3
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from torch import nn

if TYPE_CHECKING:  # pragma: no cover
    from learnreg.training.config import DataConfig, TrainConfig
    from learnreg.training.sources import PatchSource
    from learnreg.training.tasks import Task, TaskContext

__all__ = [
    "TaskSpec", "register_model", "register_task", "register_source", "build_model",
    "model_names", "task_spec", "task_names", "source_builder", "source_names",
    "check_model_options",
]

_BUILTIN_MODULES = ("learnreg.training.sources", "learnreg.training.tasks", "learnreg.training.nett",
                    "learnreg.training.pnpreg", "learnreg.training.rg",
                    "learnreg.training.unrolled")


@dataclass(frozen=True)
class TaskSpec:
    """A registered task: how to build it and which options it takes.

    Attributes
    ----------
    builder : callable
        ``builder(config: TrainConfig, context: TaskContext) -> Task``.
    options : type or None
        A dataclass whose fields are the task's options (``task.options`` in a
        recipe); its ``__post_init__`` checks their ranges. ``None``: no options.
    """

    builder: Callable[["TrainConfig", "TaskContext"], "Task"]
    options: type | None = None


_MODELS: dict[str, Callable[..., nn.Module]] = {}
_TASKS: dict[str, TaskSpec] = {}
_SOURCES: dict[str, Callable[["DataConfig"], "PatchSource"]] = {}


def _load_builtins() -> None:
    for module in _BUILTIN_MODULES:
        importlib.import_module(module)


def _register(table: dict, kind: str, name: str, value: Any, replace: bool) -> None:
    if not isinstance(name, str) or not name:
        raise ValueError(f"register_{kind}: the name must be a non-empty string, got {name!r}")
    if name in table and not replace and table[name] is not value:
        raise ValueError(f"register_{kind}: {name!r} is already registered; pass replace=True "
                         "to override it")
    table[name] = value


def register_model(name: str, builder: Callable[..., nn.Module], *, replace: bool = False) -> None:
    """Make ``model.architecture: NAME`` build ``builder(**model.options)``.

    Parameters
    ----------
    name : str
        The architecture name used in recipes; it shadows a network of the same
        name in :mod:`learnreg.learned.nets`.
    builder : callable
        Called with the recipe's ``model.options`` as keyword arguments; an
        ``nn.Module`` class works as is.
    replace : bool
        Allow overriding an existing registration.
    """
    _register(_MODELS, "model", name, builder, replace)


def register_task(name: str, builder: Callable[["TrainConfig", "TaskContext"], "Task"], *,
                  options: type | None = None, replace: bool = False) -> None:
    """Make ``task.name: NAME`` build ``builder(config, context)``.

    Parameters
    ----------
    name : str
        The task name used in recipes.
    builder : callable
        ``builder(config: TrainConfig, context: TaskContext) -> Task``.
    options : dataclass type, optional
        Validates ``task.options``. A frozen dataclass deriving from
        :class:`learnreg.training.config.Section` (as
        :class:`~learnreg.training.tasks.DenoiseOptions`) gets checked types,
        unknown-key errors naming the valid keys and range checks in its
        ``check()``; a plain dataclass is called with the options as keywords.
        The built task reads them back with ``config.task.parsed_options()``.
    replace : bool
        Allow overriding an existing registration.
    """
    _register(_TASKS, "task", name, TaskSpec(builder, options), replace)


def register_source(name: str, builder: Callable[["DataConfig"], "PatchSource"], *,
                    replace: bool = False) -> None:
    """Make ``data.source: NAME`` build ``builder(data_config)``, a :class:`PatchSource`."""
    _register(_SOURCES, "source", name, builder, replace)


def _network_architectures() -> dict[str, tuple[type, type]]:
    from learnreg.learned.nets import ARCHITECTURES

    return ARCHITECTURES


def model_names() -> list[str]:
    """Registered model names, then the architectures of :mod:`learnreg.learned.nets`."""
    return list(dict.fromkeys([*_MODELS, *_network_architectures()]))


def check_model_options(name: str, options: dict[str, Any]) -> None:
    """Raise ``ValueError`` if ``name`` is unknown or ``options`` do not fit a built-in network.

    Options of models registered with :func:`register_model` are checked when
    the model is built.
    """
    if name in _MODELS:
        return
    architectures = _network_architectures()
    if name not in architectures:
        raise ValueError(f"unknown architecture {name!r}; valid: {', '.join(model_names())} "
                         "(or register one with learnreg.training.register_model)")
    config_class, _ = architectures[name]
    config_class.from_dict(dict(options))


def build_model(name: str, options: dict[str, Any]) -> nn.Module:
    """Build the model ``name`` with ``options`` (see :func:`register_model`)."""
    if name in _MODELS:
        try:
            return _MODELS[name](**options)
        except TypeError as error:
            raise ValueError(f"model {name!r}: bad options {sorted(options)}: {error}") from None
    from learnreg.learned.nets import build_network

    check_model_options(name, options)
    return build_network({"architecture": name, **options})


def task_spec(name: str) -> TaskSpec:
    """The :class:`TaskSpec` registered as ``name``; ``ValueError`` lists the valid names."""
    _load_builtins()
    if name not in _TASKS:
        raise ValueError(f"unknown task {name!r}; valid: {', '.join(task_names())} "
                         "(or register one with learnreg.training.register_task)")
    return _TASKS[name]


def task_names() -> list[str]:
    """The registered task names."""
    _load_builtins()
    return list(_TASKS)


def source_builder(name: str) -> Callable[["DataConfig"], "PatchSource"]:
    """The source builder registered as ``name``; ``ValueError`` lists the valid names."""
    _load_builtins()
    if name not in _SOURCES:
        raise ValueError(f"unknown data source {name!r}; valid: {', '.join(source_names())} "
                         "(or register one with learnreg.training.register_source)")
    return _SOURCES[name]


def source_names() -> list[str]:
    """The registered data source names."""
    _load_builtins()
    return list(_SOURCES)
