"""DEQ training of regularizing gradients and denoisers (Willingham et al., VISAPP 2024): ``mtdeq``, ``rg``.

=========  ===================  =====================================================================
task       model                objective (:mod:`learnreg.training.rg_losses`)
=========  ===================  =====================================================================
``mtdeq``  ``drunet`` with      DEQ training of the FB map (12) over random degradations: forward
           noise map, or        fixed point without gradients, one JFB step, ``L_FB`` (15)
           ``rg_pair``          (a pair trains only its denoiser)
``rg``     ``rg_pair``          ``objective: rg1`` (28), ``deqgd`` (29) or ``rerg`` (30)
=========  ===================  =====================================================================

(pnpReG, the link-loss pre-training of a pair, is :mod:`learnreg.training.pnpreg`.)

Algorithm 1 of the paper, per step: clean patches from ``data`` (dead leaves by default, gray
or RGB) are degraded with one task drawn per batch and a noise level per sample (a deviation
from the paper, which draws per sample; see :mod:`learnreg.training.rg_common`); the fixed
points ``x_f`` of the FB map and/or ``x_g`` of the GD map are found without gradients from
pnpReG's initial estimate, each sample stopped by the paper's rules (``max_iter``, ``tol``,
``abs_max``), optionally with Anderson acceleration; samples whose solve diverged are left out
of the loss (``keep=``); the loss takes one differentiable step of the maps from the detached
fixed points (Jacobian-free backpropagation). The GD fixed point is found by iterating the GD
map itself, where the paper ran Adam on ``x``: the fixed point is the same, and the stopping
rules then apply to the map that is differentiated.

Pretrained starts (the paper initialises ``G`` from pnpReG and ``P`` from MTDEQ):
``init_gradient`` and ``init_denoiser`` name shipped weights (or their ``.json`` path),
loaded by :meth:`initialize`, which the training loop calls once before a fresh run (not on
resume). The tasks run in one process: they call the pair's halves directly, past DDP.

Validation (fixed, from ``data.validation_seed``): three problems on ``data.validation_size``
patches (90% completion noise-free, Gaussian blur 2 with noise 0.01, bicubic SR x2
noise-free) solved to the FB and/or GD fixed point in at most ``validation_iterations``:
``psnr_fb_inpaint90``, ``psnr_gd_blur2``..., ``deq_converged_fb``... (fraction converged),
``psnr`` (mean over the problems of the map the method restores with: FB for MTDEQ, GD for
the RGs). Also reported, from the task's checkpointed state: the training forward solves
since the last validation, ``train_converged_fb``, ``train_diverged_fb``,
``train_iterations_fb`` (and ``_gd``).
"""

from __future__ import annotations

import functools
import logging
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Literal

import torch
from torch import Tensor, nn

from learnreg.data.degradations import MultiTaskConfig, MultiTaskDegradation
from learnreg.learned.deq import DEFAULT_SIGMA_FLOOR, deq_fixed_point, fb_map, gd_map, jfb_step
from learnreg.learned.nets import RegularizerPair
from learnreg.solvers.fixed_point import FixedPointSampleInfo
from learnreg.training._schema import Section
from learnreg.training.distributed import unwrap
from learnreg.training.registry import register_task
from learnreg.training.rg_common import (
    VALIDATION_TASKS,
    DEQMeter,
    DegradedBatch,
    ValidationProblem,
    batch_operator,
    chunks,
    describe_training_data,
    draw_degraded_batch,
    load_pretrained,
    require_model,
    require_single_process,
    validation_problems,
)
from learnreg.training.rg_losses import deqgd_loss, fb_loss, rerg_loss, rg1_loss
from learnreg.training.sources import PatchSource, build_source

if TYPE_CHECKING:  # pragma: no cover
    from learnreg.training.config import TrainConfig
    from learnreg.training.tasks import TaskContext

logger = logging.getLogger(__name__)

__all__ = ["DEQOptions", "MTDEQOptions", "MTDEQTask", "RGOptions", "RGTask"]


# -- options ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DEQOptions(Section):
    """Options shared by the DEQ tasks (``mtdeq``, ``rg``).

    Attributes
    ----------
    anderson : int
        Anderson memory of the forward solves (0: plain iteration, as in the paper).
    max_iter, tol, abs_max : int, float, float
        The paper's per-sample stopping rules: at most ``max_iter`` iterations (500), converged
        once ``mean((x_{k+1} - x_k)^2) < tol`` (1e-7), diverged once ``|x| > abs_max`` (100).
    sigma_floor : float
        ``s = max(sigma, sigma_floor)`` in the maps (the paper's "positive weight" at sigma = 0).
    degradation : dict
        :class:`~learnreg.data.degradations.MultiTaskConfig` fields (default: the paper's).
    validation_iterations : int
        Cap on the iterations of each validation solve.
    init_denoiser : str, optional
        Shipped weights (name or ``.json`` path) to start the denoiser from.
    """

    section: ClassVar[str] = "task.options"
    anderson: int = 0
    max_iter: int = 500
    tol: float = 1e-7
    abs_max: float = 100.0
    sigma_floor: float = DEFAULT_SIGMA_FLOOR
    degradation: dict[str, Any] = field(default_factory=dict)
    validation_iterations: int = 100
    init_denoiser: str | None = None

    def check(self) -> None:
        if self.anderson < 0:
            self.fail("anderson", f"must be >= 0 (0: plain iteration), got {self.anderson}")
        for name in ("max_iter", "validation_iterations"):
            if getattr(self, name) < 1:
                self.fail(name, f"must be >= 1, got {getattr(self, name)}")
        if not self.tol > 0 or not self.abs_max > 0 or self.sigma_floor < 0:
            self.fail("tol", "tol and abs_max must be > 0 and sigma_floor >= 0")
        try:
            MultiTaskConfig.from_dict(self.degradation)
        except (TypeError, ValueError) as error:
            self.fail("degradation", str(error))

    def etas(self) -> dict[str, float]:
        """The step ``eta`` of each map, ``{"fb": ..., "gd": ...}``."""
        raise NotImplementedError


@dataclass(frozen=True)
class MTDEQOptions(DEQOptions):
    """Options of the ``mtdeq`` task: :class:`DEQOptions` and ``eta``, the FB step (0.49)."""

    eta: float = 0.49

    def check(self) -> None:
        super().check()
        if not self.eta > 0:
            self.fail("eta", f"must be > 0, got {self.eta}")

    def etas(self) -> dict[str, float]:
        return {"fb": self.eta}


@dataclass(frozen=True)
class RGOptions(DEQOptions):
    """Options of the ``rg`` task: :class:`DEQOptions` and

    Attributes
    ----------
    objective : {'rg1', 'deqgd', 'rerg'}
        Eq. (28), (29) or (30).
    eta_fb, eta_gd : float
        Steps of the FB (0.49) and GD (0.05) maps.
    link_weight, gd_weight : float
        The 0.1 of RG1's link term and of RERG's GD term.
    init_gradient : str, optional
        Shipped weights to start ``G`` from (a pnpReG pair).
    """

    objective: Literal["rg1", "deqgd", "rerg"] = "rg1"
    eta_fb: float = 0.49
    eta_gd: float = 0.05
    link_weight: float = 0.1
    gd_weight: float = 0.1
    init_gradient: str | None = None

    def check(self) -> None:
        super().check()
        for name in ("eta_fb", "eta_gd"):
            if not getattr(self, name) > 0:
                self.fail(name, f"must be > 0, got {getattr(self, name)}")
        if self.link_weight < 0 or self.gd_weight < 0:
            self.fail("link_weight", "link_weight and gd_weight must be >= 0")

    def etas(self) -> dict[str, float]:
        return {"fb": self.eta_fb, "gd": self.eta_gd}


# -- DEQ tasks -------------------------------------------------------------------------------------
class _DEQTask:
    """Shared machinery of ``mtdeq`` and ``rg``: batches, forward solves, validation."""

    name: ClassVar[str]
    trained: tuple[str, ...]  # maps whose fixed points the loss needs ("fb", "gd")
    validated: tuple[str, ...]  # maps solved at validation, the restoring one first

    def __init__(self, config: "TrainConfig", context: "TaskContext", *, source: PatchSource | None = None):
        require_single_process(context, self.name)
        self.options = config.task.parsed_options()
        self.data, self.context = config.data, context
        self.degradation = MultiTaskDegradation(MultiTaskConfig.from_dict(self.options.degradation))
        multiple = math.lcm(2, *self.degradation.config.sr_factors)  # 2: the validation SR x2
        if self.data.patch_size % multiple:
            raise ValueError(f"task {self.name}: data.patch_size {self.data.patch_size} must be a multiple of "
                             f"{multiple} (the SR factors); e.g. {multiple * 16}")
        kernel = 2 * math.ceil(3 * max(self.degradation.config.blur_sigma_max, 2.0)) + 1  # 2: the validation blur
        if self.data.patch_size < kernel:
            raise ValueError(f"task {self.name}: data.patch_size {self.data.patch_size} is smaller than the blur kernel "
                             f"({kernel} pixels); use patches of at least {kernel} pixels or lower "
                             "task.options.degradation.blur_sigma_max")
        self.source = build_source(config.data) if source is None else source
        self.training_data = describe_training_data(self.source, self.degradation)
        self.meter = DEQMeter(self.trained)
        validation = []
        if self.data.validation_size:
            validation = ["psnr", *(f"psnr_{m}_{t}" for m in self.validated for t in VALIDATION_TASKS),
                          *(f"deq_converged_{m}" for m in self.validated)]
        self.metric_names = (*validation, *self.meter.metric_names)
        self._validation: list[ValidationProblem] | None = None

    def _denoiser(self, model: nn.Module) -> nn.Module:
        """The network playing ``P`` (a pair's denoiser; MTDEQ also takes a lone DRUNet)."""
        return unwrap(model).denoiser

    def _map(self, name: str, model: nn.Module, operator, y: Tensor, sigma: float | Tensor
             ) -> Callable[[Tensor], Tensor]:
        """The FB map (12) or the GD map (14) of one problem, as a function of ``x``."""
        eta, floor = self.options.etas()[name], self.options.sigma_floor
        if name == "fb":
            return functools.partial(fb_map, operator=operator, y=y, sigma=sigma, denoiser=self._denoiser(model),
                                     eta=eta, sigma_floor=floor)
        return functools.partial(gd_map, operator=operator, y=y, sigma=sigma, gradient_net=unwrap(model).gradient,
                                 eta=eta, sigma_floor=floor)

    def _solve(self, step: Callable[[Tensor], Tensor], x0: Tensor, *, max_iter: int
               ) -> tuple[Tensor, FixedPointSampleInfo]:
        """The per-sample forward solve of the options (Anderson memory, stopping rules), without gradients."""
        o = self.options
        return deq_fixed_point(step, x0, anderson=o.anderson, max_iter=max_iter, tol=o.tol, abs_max=o.abs_max)

    def _fixed_points(self, model: nn.Module, batch: DegradedBatch, operator) -> tuple[dict[str, Tensor], Tensor]:
        """The detached fixed points of the trained maps, and which samples to keep (none diverged)."""
        points, keep = {}, torch.ones(batch.clean.shape[0], dtype=torch.bool, device=batch.clean.device)
        for name in self.trained:
            points[name], info = self._solve(self._map(name, model, operator, batch.y, batch.sigma), batch.x0,
                                             max_iter=self.options.max_iter)
            self.meter.add(name, info)
            keep = keep & ~info.diverged.to(keep.device)
        return points, keep

    def state_dict(self) -> dict[str, Any]:
        return {"meter": self.meter.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.meter.load_state_dict(state["meter"])

    def make_batch(self, generator: torch.Generator) -> DegradedBatch:
        clean = self.source.sample(self.context.batch_size, generator=generator)
        return draw_degraded_batch(clean, self.degradation, generator=generator)

    def _validation_set(self) -> list[ValidationProblem]:
        if self._validation is None:
            generator = torch.Generator().manual_seed(self.data.validation_seed)
            clean = self.source.sample(self.data.validation_size, generator=generator)
            self._validation = validation_problems(clean, self.degradation, generator=generator)
        return self._validation

    def validate(self, model: nn.Module) -> dict[str, float]:
        """PSNR of the fixed points of the fixed problems, fraction converged, training solve statistics."""
        scores: dict[str, float] = {}
        if self.data.validation_size:
            scores = self._validation_scores(model)
        scores.update(self.meter.summary())
        self.meter.reset()
        return {name: scores[name] for name in self.metric_names}

    def _validation_scores(self, model: nn.Module) -> dict[str, float]:
        from learnreg.metrics.image import psnr

        module, device = unwrap(model), self.context.device
        was_training = module.training
        module.eval()
        scores: dict[str, float] = {}
        converged: dict[str, list[Tensor]] = {name: [] for name in self.validated}
        try:
            with torch.no_grad():
                for problem in self._validation_set():
                    for name in self.validated:
                        values = []
                        for chunk in chunks(problem.clean.shape[0], self.context.batch_size):
                            y, x0 = problem.y[chunk].to(device), problem.x0[chunk].to(device)
                            step = self._map(name, module, problem.operator, y, problem.sigma)
                            x, info = self._solve(step, x0, max_iter=self.options.validation_iterations)
                            values.append(psnr(x.clamp(0, 1).cpu(), problem.clean[chunk]))
                            converged[name].append(info.converged.cpu())
                        scores[f"psnr_{name}_{problem.name}"] = float(torch.cat(values).mean())
        finally:
            module.train(was_training)
        primary = self.validated[0]
        scores["psnr"] = math.fsum(scores[f"psnr_{primary}_{t}"] for t in VALIDATION_TASKS) / len(VALIDATION_TASKS)
        for name in self.validated:
            scores[f"deq_converged_{name}"] = float(torch.cat(converged[name]).float().mean())
        return scores


class MTDEQTask(_DEQTask):
    """Multi-task DEQ training of the FB map (12) with a denoiser, by JFB on ``L_FB`` (module docstring)."""

    name = "mtdeq"
    trained = ("fb",)
    validated = ("fb",)

    def __init__(self, config: "TrainConfig", context: "TaskContext", *, source: PatchSource | None = None):
        require_model(config, "mtdeq", drunet_denoiser=True)
        super().__init__(config, context, source=source)

    def _denoiser(self, model: nn.Module) -> nn.Module:
        module = unwrap(model)
        return module.denoiser if isinstance(module, RegularizerPair) else module

    def initialize(self, model: nn.Module) -> None:
        """Load ``init_denoiser`` into the denoiser (a fresh run only)."""
        if self.options.init_denoiser:
            load_pretrained(self._denoiser(model), self.options.init_denoiser, part="denoiser", task=self.name)

    def loss(self, model: nn.Module, batch: DegradedBatch) -> Tensor:
        operator = batch_operator(batch, self.degradation)
        points, keep = self._fixed_points(model, batch, operator)
        step = self._map("fb", model, operator, batch.y, batch.sigma)
        return fb_loss(jfb_step(step, points["fb"]), batch.clean, keep=keep)  # eq. (15)


class RGTask(_DEQTask):
    """RG1, DEQGD or RERG training of a regularizer pair (module docstring)."""

    name = "rg"
    _MAPS = {"rg1": (("fb",), ("gd", "fb")), "deqgd": (("gd",), ("gd",)), "rerg": (("fb", "gd"), ("gd", "fb"))}

    def __init__(self, config: "TrainConfig", context: "TaskContext", *, source: PatchSource | None = None):
        require_model(config, "rg")
        objective = config.task.parsed_options().objective
        self.trained, self.validated = self._MAPS[objective]
        super().__init__(config, context, source=source)

    def initialize(self, model: nn.Module) -> None:
        """Load ``init_gradient`` and ``init_denoiser`` into the pair (a fresh run only)."""
        pair = unwrap(model)
        if self.options.init_gradient:
            load_pretrained(pair.gradient, self.options.init_gradient, part="gradient", task=self.name)
        if self.options.init_denoiser:
            load_pretrained(pair.denoiser, self.options.init_denoiser, part="denoiser", task=self.name)

    def loss(self, model: nn.Module, batch: DegradedBatch) -> Tensor:
        o, pair = self.options, unwrap(model)
        operator = batch_operator(batch, self.degradation)
        points, keep = self._fixed_points(model, batch, operator)
        common = dict(operator=operator, y=batch.y, sigma=batch.sigma, sigma_floor=o.sigma_floor, keep=keep)
        if o.objective == "rg1":  # eq. (28)
            return rg1_loss(pair.gradient, pair.denoiser, points["fb"], batch.clean, eta=o.eta_fb,
                            link_weight=o.link_weight, **common)
        if o.objective == "deqgd":  # eq. (29)
            return deqgd_loss(pair.gradient, points["gd"], batch.clean, eta=o.eta_gd, **common)
        return rerg_loss(pair.gradient, pair.denoiser, points["fb"], points["gd"], batch.clean,  # eq. (30)
                         eta_fb=o.eta_fb, eta_gd=o.eta_gd, link_weight=o.link_weight, gd_weight=o.gd_weight, **common)


register_task("mtdeq", MTDEQTask, options=MTDEQOptions, replace=True)
register_task("rg", RGTask, options=RGOptions, replace=True)
