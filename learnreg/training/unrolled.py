"""Train a denoiser inside the plug-and-play iteration it will serve: task ``unrolled_hqs``.

A Gaussian denoiser is trained for i.i.d. Gaussian noise, but inside DPIR's HQS
(:func:`learnreg.restore.pnp.run_hqs`) it meets something else: the output of a data
step, whose error is shaped by the operator (aliasing after super-resolution, ringing
after deblurring, holes after completion). This task fine-tunes a denoiser ``D(x, sigma)``
end to end through ``K`` unrolled HQS iterations with DPIR's decreasing levels,

    x_k = prox_data(z_{k-1}, y, tau_k = sigma_k^2 / (lambda sigma_n^2)),   z_k = D(x_k, sigma_k),

``sigma_k`` geometric from ``sigma_start`` to ``max(sigma_n, sigma_end)``, and minimises
``||z_K - x||_1`` on random problems from
:class:`~learnreg.data.degradations.MultiTaskDegradation` (deblurring, super-resolution,
completion; one task per batch, a noise level per sample). The network stays a denoiser:
same inputs, same calls, so ``pnp-hqs`` runs it as it runs any prior; the schedule it was
trained with is recorded in its weights and becomes ``pnp-hqs``'s default for it
(:func:`learnreg.restore.pnp_defaults.hqs_defaults`). This is the "unrolled" or
"deep-unfolded" fine-tuning of a plug-and-play prior (as in USRNet, Zhang et al. 2020,
and the DEQ priors of Gilton et al. 2021); the operators are general, not the benchmark's.

The data step is the operator's closed-form ``prox_data`` (differentiable); call ``k`` sees
the image under the ``(k + offset) mod 8``-th rotation / reflection (DPIR's periodic
self-ensemble, ``offset`` drawn per step), as inference does with ``self_ensemble``. A gray
network trained on RGB patches (``data.channels: 3``) goes through the opponent transform,
as :class:`~learnreg.regularizers.denoiser.DenoiserPrior` applies it at inference.

Validation: the PSNR of ``z_K`` on the fixed problems of
:data:`~learnreg.training.rg_common.VALIDATION_TASKS` (completion 90 %, blur 2 with noise 0.01,
SR x2 bicubic), on ``data.validation_size`` patches drawn once from ``data.validation_seed``;
``psnr`` is their mean.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import torch
from torch import Tensor, nn

from learnreg.data.degradations import MultiTaskConfig, MultiTaskDegradation
from learnreg.physics.operator import Operator
from learnreg.training._schema import Section
from learnreg.training.registry import register_task
from learnreg.training.rg_common import (DegradedBatch, batch_operator, describe_training_data,
                                         draw_degraded_batch, load_pretrained, validation_problems)
from learnreg.training.sources import PatchSource, build_source

if TYPE_CHECKING:  # pragma: no cover
    from learnreg.training.config import TrainConfig
    from learnreg.training.tasks import TaskContext

logger = logging.getLogger(__name__)

__all__ = ["UnrolledOptions", "UnrolledHQSTask", "unrolled_hqs", "hqs_levels"]


@dataclass(frozen=True)
class UnrolledOptions(Section):
    """Options of the ``unrolled_hqs`` task (``task.options`` in a recipe).

    Attributes
    ----------
    init_denoiser : str
        The shipped denoiser (name or weights ``.json``) to start from; the model must match it.
    iterations : int
        ``K``, HQS iterations unrolled (one denoiser call each).
    lam : float
        DPIR's ``lambda``: the data step's ``tau_k = sigma_k^2 / (lambda sigma_n^2)``.
    sigma_start, sigma_end : float
        First denoiser level and floor of the last one (the last is ``max(sigma_n, sigma_end)``).
    sigma_floor : float
        ``sigma_n = max(sigma, sigma_floor)``, as ``pnp-hqs`` floors noise-free problems.
    finish_denoiser : str
        A shipped denoiser (name or ``.json``), kept frozen, that runs the last ``finish_iterations``
        iterations (at the lowest levels), as ``pnp-hqs``'s ``finish_prior`` does at inference. The
        trained network then learns the early iterations (structure, de-aliasing) for a finisher
        that handles the noise level. Empty: every iteration runs the trained network.
    finish_iterations : int
        How many of the last iterations the finisher runs (``< iterations``).
    noise_max, noise_power : float
        Noise std per sample ``noise_max u^noise_power``, ``u ~ U[0, 1]`` (2: half below a quarter).
    probabilities, sr_factors, blur_sigma_max, drop_max : see :class:`~learnreg.data.degradations.MultiTaskConfig`.
    """

    section: ClassVar[str] = "task.options"
    init_denoiser: str = ""
    iterations: int = 5
    lam: float = 0.1
    sigma_start: float = 49 / 255
    sigma_end: float = 0.0
    sigma_floor: float = 0.004
    noise_max: float = 50 / 255
    noise_power: float = 2.0
    finish_denoiser: str = ""
    finish_iterations: int = 1
    probabilities: tuple[float, float, float] = (1 / 3, 1 / 3, 1 / 3)
    sr_factors: tuple[int, ...] = (1, 2, 4)
    blur_sigma_max: float = 4.0
    drop_max: float = 0.99

    def check(self) -> None:
        if not 1 <= self.iterations <= 40:
            self.fail("iterations", f"must lie in [1, 40] (each is a denoiser call to backpropagate), "
                                    f"got {self.iterations}")
        if self.finish_denoiser and not 1 <= self.finish_iterations < self.iterations:
            self.fail("finish_iterations", f"must lie in [1, iterations - 1 = {self.iterations - 1}] so that the "
                                           f"trained network runs at least one iteration, got {self.finish_iterations}")
        if not self.lam > 0:
            self.fail("lam", f"must be > 0, got {self.lam:g}")
        for name in ("sigma_start", "sigma_end", "sigma_floor", "noise_max"):
            value = getattr(self, name)
            if not 0 <= value <= 1:
                self.fail(name, f"noise levels are on the [0, 1] scale, got {value:g} (write 50/255, not 50)")
        if not self.sigma_floor > 0:
            self.fail("sigma_floor", "must be > 0 (it keeps the data step finite for noise-free problems)")
        if self.sigma_start < max(self.sigma_end, self.sigma_floor):
            self.fail("sigma_start", f"{self.sigma_start:g} lies below the last level's floor")
        if not 0 < self.noise_power <= 10:
            self.fail("noise_power", f"must lie in (0, 10] (1 = uniform levels), got {self.noise_power:g}")

    def degradation(self) -> MultiTaskDegradation:
        return MultiTaskDegradation(MultiTaskConfig(probabilities=self.probabilities, sr_factors=self.sr_factors, blur_sigma_max=self.blur_sigma_max,
                                                    drop_max=self.drop_max, noise_max=self.noise_max))


def hqs_levels(sigma_n: Tensor, *, iterations: int, sigma_start: float, sigma_end: float) -> Tensor:
    """DPIR's levels per sample, shape (iterations, B): geometric from ``sigma_start`` to
    ``max(sigma_n, sigma_end)``, as :func:`~learnreg.solvers.hqs.geometric_schedule` per sample."""
    last = sigma_n.clamp(min=sigma_end)
    first = last.clamp(min=sigma_start)
    if iterations == 1:
        return last[None]
    k = torch.arange(iterations - 1, dtype=sigma_n.dtype, device=sigma_n.device)[:, None]
    ratio = (last / first) ** (1.0 / (iterations - 1))
    return torch.cat([first[None] * ratio[None] ** k, last[None]])


def unrolled_hqs(prior, operator: Operator, y: Tensor, x0: Tensor, sigma_n: Tensor, *, iterations: int,
                 lam: float, sigma_start: float, sigma_end: float, finisher=None, finish_iterations: int = 0
                 ) -> Tensor:
    """``z_K`` of DPIR's HQS with ``prior`` (a :class:`~learnreg.regularizers.denoiser.DenoiserPrior`),
    differentiable; ``sigma_n`` (B,) the floored noise levels.

    The same iteration as :func:`learnreg.restore.pnp.run_hqs` (``HQS`` with ``mu_k = lambda
    sigma_n^2 / sigma_k^2``), per-sample levels. With ``finisher`` (another prior), the last
    ``finish_iterations`` iterations call it instead of ``prior`` (``pnp-hqs``'s ``finish_prior``);
    the ensemble turns continue across the two.
    """
    levels = hqs_levels(sigma_n, iterations=iterations, sigma_start=sigma_start, sigma_end=sigma_end)
    z = x0
    for k, sigma_k in enumerate(levels):
        x = operator.prox_data(z, y, sigma_k**2 / (lam * sigma_n**2))
        if finisher is not None and k >= iterations - finish_iterations:
            finisher.evaluations = prior.evaluations
            z = finisher.denoise(x, sigma_k).float()
            prior.evaluations = finisher.evaluations
        else:
            z = prior.denoise(x, sigma_k).float()
    return z


class UnrolledHQSTask:
    """Fine-tune a denoiser through unrolled HQS on random degradations (see the module notes)."""

    def __init__(self, config: "TrainConfig", context: "TaskContext", *, source: PatchSource | None = None):
        from learnreg.learned.hub import read_record

        self.options: UnrolledOptions = config.task.parsed_options()
        if config.model.architecture != "drunet" or not config.model.options.get("noise_map"):
            raise ValueError("task unrolled_hqs trains a denoiser: model.architecture must be drunet with "
                             "noise_map: true")
        self.model_channels = int(config.model.options.get("channels", 1))
        self.data = config.data
        if self.data.channels != self.model_channels and not (self.model_channels == 1 and self.data.channels == 3):
            raise ValueError(f"task unrolled_hqs: a {self.model_channels}-channel denoiser cannot restore "
                             f"{self.data.channels}-channel patches (a gray one serves RGB through the opponent "
                             "transform)")
        if max(self.options.sr_factors) > 1 and self.data.patch_size % math.lcm(*self.options.sr_factors):
            raise ValueError(f"task unrolled_hqs: data.patch_size {self.data.patch_size} must be divisible by "
                             f"every SR factor {list(self.options.sr_factors)}")
        if self.options.init_denoiser:
            try:
                read_record(self.options.init_denoiser)
            except (ValueError, OSError) as error:
                raise ValueError(f"task.options.init_denoiser: {error}") from None
        self.finisher = None
        if self.options.finish_denoiser:
            from learnreg.learned.hub import load

            try:
                finisher = load(self.options.finish_denoiser, device=context.device)
            except (ValueError, OSError) as error:
                raise ValueError(f"task.options.finish_denoiser: {error}") from None
            if getattr(getattr(finisher, "config", None), "channels", None) != self.model_channels or \
                    not getattr(finisher.config, "noise_map", False):
                raise ValueError(f"task.options.finish_denoiser: {self.options.finish_denoiser!r} is not a "
                                 f"{self.model_channels}-channel denoiser D(x, sigma) like the model")
            self.finisher = finisher.requires_grad_(False).eval()
        self.context = context
        self.degradation = self.options.degradation()
        self.source = build_source(config.data) if source is None else source
        self.training_data = describe_training_data(self.source, self.degradation,
                                                    sigma_power=self.options.noise_power) + (
            f"; unrolled HQS, {self.options.iterations} iterations, lambda {self.options.lam:g}")
        if self.options.init_denoiser:
            self.training_data += f"; fine-tuned from {self.options.init_denoiser}"
        if self.finisher is not None:
            self.training_data += (f"; the last {self.options.finish_iterations} iteration(s) by "
                                   f"{self.options.finish_denoiser} (frozen)")
        self.metric_names = ("psnr", "psnr_inpaint90", "psnr_blur2", "psnr_sr2")
        self._validation = None

    def _prior(self, network, offset: int):
        from learnreg.regularizers.denoiser import DenoiserPrior

        color = "native" if self.data.channels == self.model_channels else "opponent"
        prior = DenoiserPrior(network, color=color, self_ensemble=True)
        prior.evaluations = offset
        return prior

    def _run(self, model: nn.Module, operator: Operator, y: Tensor, x0: Tensor, sigma: Tensor, offset: int) -> Tensor:
        options = self.options
        finisher = None if self.finisher is None else self._prior(self.finisher, offset)
        return unrolled_hqs(self._prior(model, offset), operator, y, x0, sigma.clamp(min=options.sigma_floor),
                            iterations=options.iterations, lam=options.lam, sigma_start=options.sigma_start,
                            sigma_end=options.sigma_end, finisher=finisher,
                            finish_iterations=options.finish_iterations if finisher is not None else 0)

    def make_batch(self, generator: torch.Generator) -> tuple[DegradedBatch, int]:
        from learnreg.restore.classical import initial_estimate
        from learnreg.restore.methods import Problem

        clean = self.source.sample(self.context.batch_size, generator=generator)
        batch = draw_degraded_batch(clean, self.degradation, generator=generator,
                                    sigma_power=self.options.noise_power,
                                    start=lambda y, operator: initial_estimate(Problem(y, operator)))
        return batch, int(torch.randint(8, (), generator=generator))

    def initialize(self, model: nn.Module) -> None:
        """Load ``init_denoiser`` (a fresh run only; a resumed one keeps its checkpoint)."""
        if self.options.init_denoiser:
            from learnreg.training.distributed import unwrap

            load_pretrained(unwrap(model), self.options.init_denoiser, part="denoiser", task="unrolled_hqs")

    def loss(self, model: nn.Module, batch: tuple[DegradedBatch, int]) -> Tensor:
        problems, offset = batch
        operator = batch_operator(problems, self.degradation)
        z = self._run(model, operator, problems.y, problems.x0, problems.sigma, offset)
        return (z - problems.clean).abs().mean()

    def validate(self, model: nn.Module) -> dict[str, float]:
        from learnreg.metrics.image import psnr
        from learnreg.restore.classical import initial_estimate
        from learnreg.restore.methods import Problem

        if self._validation is None:
            generator = torch.Generator().manual_seed(self.data.validation_seed)
            clean = self.source.sample(max(self.data.validation_size, 1), generator=generator)
            self._validation = validation_problems(clean, self.degradation, generator=generator)
        was_training = model.training
        model.eval()
        scores = {}
        try:
            with torch.inference_mode():
                for problem in self._validation:
                    operator = problem.operator
                    y = problem.y.to(self.context.device)
                    x0 = initial_estimate(Problem(y, operator))
                    sigma = torch.full((y.shape[0],), problem.sigma, device=y.device)
                    z = self._run(model, operator, y, x0, sigma, 0).clamp(0.0, 1.0).cpu()
                    scores[f"psnr_{problem.name}"] = float(psnr(z, problem.clean).mean())
        finally:
            model.train(was_training)
        scores["psnr"] = math.fsum(scores.values()) / len(scores)
        return {name: scores[name] for name in self.metric_names}


register_task("unrolled_hqs", UnrolledHQSTask, options=UnrolledOptions, replace=True)
