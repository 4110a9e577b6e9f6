"""Exporting the weights of a finished run to the hub (``ship:`` in a recipe)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from torch import nn

from learnreg.training.config import ConfigError, TrainConfig

logger = logging.getLogger(__name__)

__all__ = ["export_config", "ship_weights"]


def export_config(model: nn.Module) -> dict[str, Any]:
    """The hub config of ``model``; :class:`ConfigError` unless it is a network of :mod:`learnreg.learned.nets`.

    The training loop calls it before the first step, so that a recipe that
    cannot be exported fails at once rather than after training.
    """
    from learnreg.learned.nets import network_config

    try:
        return network_config(model)
    except TypeError as error:
        raise ConfigError(f"ship: only networks of learnreg.learned.nets can be exported ({error}); "
                          "remove ship from the recipe") from None


def ship_weights(model: nn.Module, config: TrainConfig, *, recipe: str | None, training_data: str,
                 metrics: dict[str, float], training: dict[str, Any]) -> Path:
    """Save ``model`` as ``config.ship`` with :func:`learnreg.hub.save_weights`; return the JSON record.

    Parameters
    ----------
    model : nn.Module
        The trained network.
    config : TrainConfig
        The run; ``ship`` names the weights, ``ship_dir`` (default: the
        package's ``learnreg/weights/``) says where they go. Existing weights
        of that name are replaced (with a warning): retraining is what a recipe is for.
    recipe : str or None
        Path of the recipe file, so that ``learnreg train RECIPE`` retrains the weights.
    training_data : str
        The task's description of its training data.
    metrics : dict
        Final validation scores, stored as ``quality.validation``.
    training : dict
        Facts about the run (steps, patches, wall time, throughput, processes, device, seed).
    """
    from learnreg.learned.hub import WEIGHTS_DIRECTORY, save_weights

    directory = Path(config.ship_dir) if config.ship_dir else WEIGHTS_DIRECTORY
    directory.mkdir(parents=True, exist_ok=True)
    if (directory / f"{config.ship}.json").exists():
        logger.warning("replacing the weights %s in %s", config.ship, directory)
    metadata = {
        "recipe": recipe,
        "description": config.description,
        "training_data": training_data,
        "quality": {"validation": metrics},
        "training": training,
        "training_config": config.to_dict(),
    }
    return save_weights(model, directory, config.ship, config=export_config(model),
                        metadata=metadata, force=True)
