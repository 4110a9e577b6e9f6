"""Training machinery shared by every learned method: configs, tasks, loop, checkpoints, DDP.

A run is described by a recipe (:class:`TrainConfig`, usually a YAML file; see
``recipes/README.md``) and started with :func:`train` (or
``python -m learnreg.training RECIPE.yaml``, ``torchrun ... -m learnreg.training``
for data-parallel runs). What is trained, on what data and with which loss
are pluggable: :func:`register_model`, :func:`register_task` (a :class:`Task`)
and :func:`register_source` (a :class:`PatchSource`), named in the recipe.

Examples
--------
>>> from learnreg.training import TrainConfig, train  # doctest: +SKIP
>>> config = TrainConfig.from_dict({"model": {"architecture": "dncnn"}, "steps": 1000})  # doctest: +SKIP
>>> result = train(config)  # doctest: +SKIP
"""

from learnreg.training.checkpoint import (
    CheckpointError,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    save_checkpoint,
)
from learnreg.training.config import (
    ConfigError,
    DataConfig,
    ModelConfig,
    OptimConfig,
    Section,
    TaskConfig,
    TrainConfig,
    config_to_yaml,
    load_config,
    save_config,
)
from learnreg.training.loop import TrainResult, train
from learnreg.training.registry import register_model, register_source, register_task
from learnreg.training.runlog import read_log
from learnreg.training.sources import PatchSource
from learnreg.training.tasks import DenoiseOptions, DenoiseTask, Task, TaskContext

__all__ = [
    "CheckpointError", "ConfigError", "DataConfig", "DenoiseOptions", "DenoiseTask", "ModelConfig",
    "OptimConfig", "PatchSource", "Section", "Task", "TaskConfig", "TaskContext", "TrainConfig", "TrainResult",
    "config_to_yaml", "latest_checkpoint", "list_checkpoints", "load_checkpoint", "load_config",
    "read_log", "register_model", "register_source", "register_task", "save_checkpoint",
    "save_config", "train",
]
