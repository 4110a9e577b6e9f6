"""Shared pieces of the regularizing-gradient tasks (:mod:`~learnreg.training.pnpreg`, :mod:`~learnreg.training.rg`).

Degraded batches and the operators rebuilt from them, the fixed validation problems, the
running statistics of the forward solves, and the loading of pretrained starts.

One degradation per batch
-------------------------
Willingham et al. (VISAPP 2024, §5) draw a degradation per *sample*. Here each batch
draws one task (deblurring, SR or completion, with its parameter, from
:class:`~learnreg.data.degradations.MultiTaskDegradation`) and a noise level per sample,
so that one operator serves the whole batch and the forward fixed-point solve runs
batched. Over many steps the task distribution is the paper's; what changes is that a
batch's gradient comes from one task family at a time (a noisier gradient per step, the
same in expectation).

Everything random is drawn in :func:`draw_degraded_batch` from the step's generator; the
completion mask travels in the batch, and :func:`batch_operator` rebuilds the operator from
the batch alone (operators are not tensors and do not cross worker processes).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import torch
from torch import Tensor

from learnreg.data.degradations import MultiTaskDegradation, Task
from learnreg.learned.deq import DEQStats
from learnreg.learned.nets import DRUNet, RegularizerPair
from learnreg.physics.operator import Operator
from learnreg.restore.rg import rg_initial_estimate
from learnreg.solvers.fixed_point import FixedPointSampleInfo

if TYPE_CHECKING:  # pragma: no cover
    from learnreg.training.config import TrainConfig
    from learnreg.training.sources import PatchSource
    from learnreg.training.tasks import TaskContext

logger = logging.getLogger(__name__)

__all__ = ["DegradedBatch", "ValidationProblem", "DEQMeter", "VALIDATION_TASKS", "batch_operator", "chunks",
           "describe_training_data", "draw_degraded_batch", "load_pretrained", "require_model",
           "require_single_process", "validation_problems"]

#: The fixed validation problems: name -> degradation (REFERENCE §2, Table 1 and 2 settings).
VALIDATION_TASKS: dict[str, Task] = {
    "inpaint90": Task("completion", 0.9, 0.0),
    "blur2": Task("deblur", 2.0, 0.01),
    "sr2": Task("super_resolution", 2.0, 0.0, "bicubic"),
}


@dataclass(frozen=True)
class DegradedBatch:
    """One step's problems ``y = A(clean) + sigma n``, one operator for the batch.

    Attributes
    ----------
    clean : Tensor, shape (B, C, P, P)
        ``x_hat``, values in [0, 1].
    y : Tensor, shape (B, *A.out_shape)
        Measurements.
    x0 : Tensor, shape (B, C, P, P)
        pnpReG's start (:func:`~learnreg.restore.rg.rg_initial_estimate`).
    sigma : Tensor, shape (B,)
        Noise std per sample, [0, 1] scale.
    kind : str
        ``"deblur"``, ``"super_resolution"`` or ``"completion"``.
    parameter : float
        Blur std (pixels), SR factor, or fraction of missing pixels.
    kernel : str
        SR kernel (``"bicubic"`` or ``"gaussian"``), ``""`` otherwise.
    mask : Tensor, bool, shape (P, P)
        Observed pixels of a completion (all true for the other tasks).
    """

    clean: Tensor
    y: Tensor
    x0: Tensor
    sigma: Tensor
    kind: str
    parameter: float
    kernel: str
    mask: Tensor

    @property
    def task(self) -> Task:
        """The degradation, as :class:`~learnreg.data.degradations.Task` (noise level 0: it is per sample)."""
        return Task(self.kind, self.parameter, 0.0, self.kernel or None)


def _operator(degradation: MultiTaskDegradation, task: Task, mask: Tensor, shape: tuple[int, int, int]) -> Operator:
    from learnreg.physics.simple import Inpaint

    if task.kind == "completion":
        return Inpaint(mask, shape)
    # no randomness is drawn for the other tasks
    return degradation.operator(task, shape, generator=torch.Generator())


def batch_operator(batch: DegradedBatch, degradation: MultiTaskDegradation) -> Operator:
    """The operator ``A`` of ``batch``, rebuilt from its task parameters and mask."""
    return _operator(degradation, batch.task, batch.mask, tuple(batch.clean.shape[1:]))


def _measure(operator: Operator, task: Task, clean: Tensor, sigma: Tensor, generator: torch.Generator) -> Tensor:
    """``A(clean) + sigma n`` with ``sigma`` (B,); the noise is masked for completion (holes stay 0)."""
    measured = operator(clean)
    noise = sigma.view(-1, 1, 1, 1) * torch.randn(measured.shape, generator=generator, dtype=measured.dtype)
    return measured + (operator(noise) if task.kind == "completion" else noise)


def draw_degraded_batch(clean: Tensor, degradation: MultiTaskDegradation, *, generator: torch.Generator,
                        sigma_power: float = 1.0, start=rg_initial_estimate) -> DegradedBatch:
    """Degrade ``clean`` (B, C, P, P) with one task drawn from ``degradation`` and a noise level per sample.

    Draws, in order: the task, its operator (the completion mask), ``sigma = noise_max u^sigma_power``
    with ``u ~ U[0, 1]`` per sample, the noise. ``x0 = start(y, operator)`` (pnpReG's start by default).
    """
    drawn = degradation.sample_task(generator=generator)
    task = Task(drawn.kind, drawn.parameter, 0.0, drawn.kernel)
    shape = tuple(clean.shape[1:])
    operator = degradation.operator(task, shape, generator=generator)
    mask = getattr(operator, "mask", None)
    mask = torch.ones(shape[1:], dtype=torch.bool) if mask is None else mask.to(torch.bool)
    sigma = degradation.config.noise_max * torch.rand(clean.shape[0], generator=generator) ** sigma_power
    y = _measure(operator, task, clean, sigma, generator)
    return DegradedBatch(clean=clean, y=y, x0=start(y, operator), sigma=sigma, kind=task.kind,
                         parameter=float(task.parameter), kernel=task.kernel or "", mask=mask)


@dataclass(frozen=True)
class ValidationProblem:
    """A fixed validation problem: ``clean``, ``y``, ``x0`` (N, ...), its operator and noise level."""

    name: str
    clean: Tensor
    y: Tensor
    x0: Tensor
    operator: Operator
    sigma: float


def validation_problems(clean: Tensor, degradation: MultiTaskDegradation, *,
                        generator: torch.Generator) -> list[ValidationProblem]:
    """The :data:`VALIDATION_TASKS` applied to ``clean`` (N, C, P, P), masks and noise from ``generator``."""
    problems = []
    shape = tuple(clean.shape[1:])
    for name, task in VALIDATION_TASKS.items():
        operator = degradation.operator(Task(task.kind, task.parameter, 0.0, task.kernel), shape, generator=generator)
        sigma = torch.full((clean.shape[0],), task.sigma)
        y = _measure(operator, task, clean, sigma, generator)
        problems.append(ValidationProblem(name, clean, y, rg_initial_estimate(y, operator), operator, task.sigma))
    return problems


@dataclass
class DEQMeter:
    """Running statistics of the training forward solves, per map (``"fb"``, ``"gd"``).

    Per map, sums over the samples solved since the last :meth:`reset` (the *window*) and
    since the start of the run: ``[samples, converged, diverged, iterations]``. The
    task checkpoints them (:meth:`state_dict`), so a resumed run reports what an
    uninterrupted one would.
    """

    maps: tuple[str, ...]
    window: dict[str, list[float]] = field(default_factory=dict)
    total: dict[str, list[float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in self.maps:
            self.window.setdefault(name, [0.0] * 4)
            self.total.setdefault(name, [0.0] * 4)

    @property
    def metric_names(self) -> tuple[str, ...]:
        return tuple(f"train_{what}_{name}" for name in self.maps for what in ("converged", "diverged", "iterations"))

    def add(self, name: str, info: FixedPointSampleInfo) -> DEQStats:
        """Record one batch's forward solve of map ``name``; return its summary."""
        stats = DEQStats.from_info(info)
        values = [stats.batch_size, stats.fraction_converged * stats.batch_size,
                  stats.fraction_diverged * stats.batch_size, stats.mean_iterations * stats.batch_size]
        for sums in (self.window[name], self.total[name]):
            for i, value in enumerate(values):
                sums[i] += float(value)
        return stats

    def summary(self) -> dict[str, float]:
        """Fractions converged / diverged and mean iterations per map over the window (the whole run if empty)."""
        scores = {}
        for name in self.maps:
            sums = self.window[name] if self.window[name][0] > 0 else self.total[name]
            count = sums[0]
            for i, what in enumerate(("converged", "diverged", "iterations"), start=1):
                scores[f"train_{what}_{name}"] = sums[i] / count if count > 0 else math.nan
        return scores

    def reset(self) -> None:
        """Start a new window."""
        for name in self.maps:
            self.window[name] = [0.0] * 4

    def state_dict(self) -> dict[str, dict[str, list[float]]]:
        return {"window": {k: list(v) for k, v in self.window.items()},
                "total": {k: list(v) for k, v in self.total.items()}}

    def load_state_dict(self, state: dict[str, dict[str, list[float]]]) -> None:
        for name in self.maps:
            self.window[name] = [float(v) for v in state["window"][name]]
            self.total[name] = [float(v) for v in state["total"][name]]


def require_model(config: "TrainConfig", task: str, *, drunet_denoiser: bool = False) -> None:
    """Raise unless the recipe's model is an ``rg_pair`` (or, with ``drunet_denoiser``, a DRUNet with noise map)."""
    architecture = config.model.architecture
    if architecture == "rg_pair" or (drunet_denoiser and architecture == "drunet"
                                     and config.model.options.get("noise_map", True)):
        return
    what = "rg_pair, or drunet with noise_map: true" if drunet_denoiser else "rg_pair"
    raise ValueError(f"task {task} trains a regularizer pair or denoiser; set model.architecture: {what} "
                     f"(got {architecture!r})")


def require_single_process(context: "TaskContext", task: str) -> None:
    """Raise under data parallelism: the tasks call a pair's halves directly, which DDP does not see."""
    if context.world_size > 1:
        raise ValueError(f"task {task} runs in one process (it calls the networks of a pair directly, past DDP); "
                         "start it without torchrun")


def load_pretrained(target: DRUNet, name: str, *, part: Literal["denoiser", "gradient"], task: str) -> None:
    """Copy the weights of shipped model ``name`` (or its ``part`` if it is a pair) into ``target``.

    Raises
    ------
    ValueError
        The model holds no network of that kind, or its shape differs from ``target``'s.
    """
    from learnreg.learned.hub import load

    source = load(name)
    if isinstance(source, RegularizerPair):
        source = getattr(source, part)
    wanted = part == "denoiser"
    kind = "denoiser (a DRUNet with noise map)" if wanted else "regularizing gradient (a DRUNet without noise map)"
    if not isinstance(source, DRUNet) or source.config.noise_map != wanted:
        raise ValueError(f"task {task}: init_{part}: {name!r} holds no {kind}; name an rg_pair or such a DRUNet")
    if source.config != target.config:
        raise ValueError(f"task {task}: init_{part}: {name!r} is a DRUNet {source.config.to_dict()}, the model's "
                         f"{part} is {target.config.to_dict()}; make model.options match it (or drop init_{part})")
    with torch.no_grad():
        target.load_state_dict(source.state_dict())
    logger.info("task %s: %s initialised from %s", task, part, name)


def describe_training_data(source: "PatchSource", degradation: MultiTaskDegradation | None = None, *,
                           sigma_power: float = 1.0) -> str:
    """One line on the training data: the patches and, for the DEQ tasks, the degradations."""
    if degradation is None:
        return source.description
    c = degradation.config
    noise = (f"U[0, {c.noise_max * 255:.0f}/255]" if sigma_power == 1 else
             f"{c.noise_max * 255:.0f}/255 u^{sigma_power:g}, u ~ U[0, 1]")
    return (f"{source.description}; degraded per batch: blur sigma_b ~ U[0, {c.blur_sigma_max:g}], SR x"
            f"{'/'.join(map(str, c.sr_factors))} ({'/'.join(c.sr_kernels)}), completion p ~ U[0, {c.drop_max:g}] "
            f"(probabilities {', '.join(f'{p:.2f}' for p in c.probabilities)}); noise sigma ~ {noise} per sample")


def chunks(count: int, size: int) -> list[slice]:
    """Slices covering ``range(count)`` in pieces of ``size``."""
    return [slice(start, start + size) for start in range(0, count, size)]
