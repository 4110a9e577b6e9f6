"""pnpReG (Fermanian et al., SIIMS 2023): train a regularizer pair on the link loss, task ``pnpreg``.

A pair (``model.architecture: rg_pair``) holds a denoiser ``P(x, sigma)`` and a gradient
``G(x)``; eq. (8) of Willingham et al. (VISAPP 2024),

    delta ||P(z~, sigma) - x_hat||_1 + lam ||sigma^2 G(P(z~, sigma)) - (z~ - P(z~, sigma))||^2,

with ``z~ = x_hat + sigma_0 n``, ``sigma_0 ~ U(0, sigma_max)`` per patch, ``lam = 0.004``.
As in the reference code (``rita442/PnP-ReG``, ``train_ReG.py``), steps alternate ``delta = 1``
at the true level ``sigma = sigma_0`` and ``delta = 0`` at a level drawn independently from
the same law (a mismatched noise map, link term only); both networks train on both kinds
of step. With ``train_denoiser: false`` every step is a ``delta = 0`` step and ``P`` stays
frozen (the reference's default, which starts from a pretrained denoiser:
``init_denoiser``). Losses are per-sample sums averaged over the batch
(:mod:`learnreg.training.rg_losses`), where the reference averages per pixel: the same
balance between the terms, a larger magnitude.

Validation (fixed patches from ``data.validation_seed``): ``psnr``, the denoiser's PSNR at
``validation_sigma`` (25/255), and ``link``, the link loss there.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, ClassVar

import torch
from torch import Tensor, nn

from learnreg.training._schema import Section
from learnreg.training.distributed import unwrap
from learnreg.training.registry import register_task
from learnreg.training.rg_common import (
    chunks,
    describe_training_data,
    load_pretrained,
    require_model,
    require_single_process,
)
from learnreg.training.rg_losses import link_loss, pnpreg_loss
from learnreg.training.sources import PatchSource, build_source

if TYPE_CHECKING:  # pragma: no cover
    from learnreg.training.config import TrainConfig
    from learnreg.training.tasks import TaskContext

logger = logging.getLogger(__name__)

__all__ = ["PnPReGOptions", "PnPReGBatch", "PnPReGTask"]


def _check_level(options: Section, name: str) -> None:
    value = getattr(options, name)
    if not 0 <= value <= 1:
        options.fail(name, f"noise levels are on the [0, 1] scale, got {value:g} (write 50/255, not 50)")


@dataclass(frozen=True)
class PnPReGOptions(Section):
    """Options of the ``pnpreg`` task.

    Attributes
    ----------
    sigma_max : float
        ``sigma_0`` and the mismatched levels are ``U(0, sigma_max)`` per patch ([0, 1] scale).
    lam : float
        Weight of the link term (0.004).
    train_denoiser : bool
        Alternate ``delta = 1`` and ``delta = 0`` steps, training both networks; false: every
        step is a ``delta = 0`` step and ``P`` stays frozen (the reference's default mode).
    validation_sigma : float
        Level of the validation denoising and link loss.
    init_denoiser, init_gradient : str, optional
        Shipped weights (name or ``.json`` path) to start ``P`` / ``G`` from (pnpReG starts
        ``P`` from a pretrained DRUNet denoiser).
    """

    section: ClassVar[str] = "task.options"
    sigma_max: float = 50 / 255
    lam: float = 0.004
    train_denoiser: bool = True
    validation_sigma: float = 25 / 255
    init_denoiser: str | None = None
    init_gradient: str | None = None

    def check(self) -> None:
        _check_level(self, "sigma_max")
        _check_level(self, "validation_sigma")
        if self.lam < 0:
            self.fail("lam", f"must be >= 0, got {self.lam}")


def _frozen(network: nn.Module) -> Callable[[Tensor, Tensor], Tensor]:
    """``network`` called without gradients: no loss term reaches its parameters."""
    def call(x: Tensor, level: Tensor) -> Tensor:
        with torch.no_grad():
            return network(x, level)

    return call


@dataclass(frozen=True)
class PnPReGBatch:
    """``noisy = clean + sigma n``; ``mismatched``: the independent levels of the ``delta = 0`` steps. (B, ...)."""

    clean: Tensor
    noisy: Tensor
    sigma: Tensor
    mismatched: Tensor


class PnPReGTask:
    """pnpReG (Fermanian et al., 2023): train ``G`` (and ``P``) on eq. (8) (module docstring)."""

    def __init__(self, config: "TrainConfig", context: "TaskContext", *, source: PatchSource | None = None):
        require_model(config, "pnpreg")
        require_single_process(context, "pnpreg")
        self.options: PnPReGOptions = config.task.parsed_options()
        self.data, self.context = config.data, context
        self.source = build_source(config.data) if source is None else source
        self.training_data = describe_training_data(self.source) + \
            f"; Gaussian noise sigma ~ U[0, {self.options.sigma_max * 255:.0f}/255] per patch"
        self.metric_names = ("psnr", "link") if self.data.validation_size else ()
        self.steps = 0  # loss() calls: odd ones are the delta = 0 steps
        self._validation: tuple[Tensor, Tensor] | None = None

    def state_dict(self) -> dict[str, int]:
        return {"steps": self.steps}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.steps = int(state["steps"])

    def initialize(self, model: nn.Module) -> None:
        """Load ``init_denoiser`` / ``init_gradient`` into the pair (a fresh run only)."""
        pair = unwrap(model)
        if self.options.init_denoiser:
            load_pretrained(pair.denoiser, self.options.init_denoiser, part="denoiser", task="pnpreg")
        if self.options.init_gradient:
            load_pretrained(pair.gradient, self.options.init_gradient, part="gradient", task="pnpreg")

    def make_batch(self, generator: torch.Generator) -> PnPReGBatch:
        clean = self.source.sample(self.context.batch_size, generator=generator)
        count, high = clean.shape[0], self.options.sigma_max
        sigma = high * torch.rand(count, generator=generator)
        noisy = clean + sigma.view(-1, 1, 1, 1) * torch.randn(clean.shape, generator=generator)
        return PnPReGBatch(clean, noisy, sigma, high * torch.rand(count, generator=generator))

    def delta(self, step: int) -> float:
        """``delta`` of the ``step``-th loss (0-based): 1 on even steps when training ``P``, else 0."""
        return 1.0 if self.options.train_denoiser and step % 2 == 0 else 0.0

    def loss(self, model: nn.Module, batch: PnPReGBatch) -> Tensor:
        pair = unwrap(model)
        delta = self.delta(self.steps)
        self.steps += 1
        denoiser = pair.denoiser if self.options.train_denoiser else _frozen(pair.denoiser)
        sigma = batch.sigma if delta else batch.mismatched
        return pnpreg_loss(pair.gradient, denoiser, batch.clean, batch.noisy, sigma, delta=delta,
                           lam=self.options.lam)

    def _validation_set(self) -> tuple[Tensor, Tensor]:
        if self._validation is None:
            generator = torch.Generator().manual_seed(self.data.validation_seed)
            clean = self.source.sample(self.data.validation_size, generator=generator)
            noisy = clean + self.options.validation_sigma * torch.randn(clean.shape, generator=generator)
            self._validation = (noisy, clean)
        return self._validation

    def validate(self, model: nn.Module) -> dict[str, float]:
        """Denoising PSNR of ``P`` and the link loss, both at ``validation_sigma``."""
        if not self.metric_names:
            return {}
        from learnreg.metrics.image import psnr

        pair, device = unwrap(model), self.context.device
        noisy, clean = self._validation_set()
        was_training = pair.training
        pair.eval()
        psnrs, links = [], []
        try:
            with torch.no_grad():
                for chunk in chunks(noisy.shape[0], self.context.batch_size):
                    z = noisy[chunk].to(device)
                    level = torch.full((z.shape[0],), self.options.validation_sigma, device=device)
                    psnrs.append(psnr(pair.denoiser(z, level).clamp(0, 1).cpu(), clean[chunk]))
                    links.append(float(link_loss(pair.gradient, pair.denoiser, z, level)) * z.shape[0])
        finally:
            pair.train(was_training)
        return {"psnr": float(torch.cat(psnrs).mean()), "link": math.fsum(links) / noisy.shape[0]}


register_task("pnpreg", PnPReGTask, options=PnPReGOptions, replace=True)
