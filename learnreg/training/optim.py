"""Optimizers and learning-rate schedules from an :class:`~learnreg.training.config.OptimConfig`.

The schedule is a pure function of the step (:func:`lr_factor`), wrapped in a
:class:`torch.optim.lr_scheduler.LambdaLR` whose state is a few numbers, so it
checkpoints and resumes exactly.
"""

from __future__ import annotations

import math
from typing import Iterable

import torch
from torch import nn

from learnreg.training.config import OptimConfig

__all__ = ["lr_factor", "build_optimizer", "build_scheduler"]


def lr_factor(step: int, config: OptimConfig, *, steps: int) -> float:
    """The multiple of ``config.lr`` used by optimizer step ``step`` (0-based) of ``steps``.

    Linear warm-up over ``warmup_steps`` (from ``1 / warmup_steps`` to 1), then
    ``cosine``: ``m + (1 - m) (1 + cos(pi t)) / 2`` with ``t`` going from 0 to 1
    over the remaining steps and ``m = min_lr / lr``; ``step``:
    ``gamma ** floor((step - warmup_steps) / step_size)``; ``constant``: 1.
    """
    warmup = config.warmup_steps
    if step < warmup:
        return (step + 1) / warmup
    after = step - warmup
    if config.schedule == "constant":
        return 1.0
    if config.schedule == "step":
        return config.gamma ** (after // config.step_size)
    floor = config.min_lr / config.lr
    progress = min(1.0, after / max(1, steps - warmup - 1))
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def build_optimizer(parameters: Iterable[nn.Parameter], config: OptimConfig) -> torch.optim.Optimizer:
    """Adam (L2 weight decay) or AdamW (decoupled weight decay) as ``config`` says."""
    kind = torch.optim.AdamW if config.optimizer == "adamw" else torch.optim.Adam
    return kind(list(parameters), lr=config.lr, betas=tuple(config.betas),
                weight_decay=config.weight_decay)


def build_scheduler(optimizer: torch.optim.Optimizer, config: OptimConfig, *,
                    steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    """The schedule of :func:`lr_factor`; call ``scheduler.step()`` after each ``optimizer.step()``."""

    def factor(step: int) -> float:
        return lr_factor(step, config, steps=steps)

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
