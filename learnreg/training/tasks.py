"""Training tasks: what a step feeds the network and what it minimises.

A task is the pluggable part of a training run. The loop
(:func:`learnreg.training.train`) owns the model, the optimizer, the
generators and the checkpoints; the task only

* draws a batch from the generator it is handed (:meth:`Task.make_batch`),
* turns (model, batch) into a scalar loss (:meth:`Task.loss`),
* scores the model on a fixed validation set (:meth:`Task.validate`).

All of a step's randomness must come from the generator passed to
``make_batch`` (seeded from the run's seed, the process rank and the step
number, see :mod:`learnreg.training.batches`), so that a resumed run repeats
the uninterrupted one bit for bit, and batches can be drawn ahead in worker
processes. A new task is a class with these methods plus a
registration::

    register_task("my_task", MyTask, options=MyOptions)   # MyTask(config, context)

after which ``task: {name: my_task, options: {...}}`` works in recipes.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol, runtime_checkable

import torch
from torch import Tensor, nn

from learnreg.training._schema import Section
from learnreg.training.registry import register_task
from learnreg.training.sources import FolderSource, PatchSource, build_source

if TYPE_CHECKING:  # pragma: no cover
    from learnreg.training.config import TrainConfig

logger = logging.getLogger(__name__)

__all__ = ["Task", "TaskContext", "DenoiseOptions", "DenoiseBatch", "DenoiseTask"]


@dataclass(frozen=True)
class TaskContext:
    """Where a task runs, as the loop sees it.

    Attributes
    ----------
    batch_size : int
        Samples per step in *this* process (``data.batch_size / world_size``).
    device : torch.device
        Where batches must be put.
    rank, world_size : int
        This process among the data-parallel processes (0 and 1 without DDP).
    """

    batch_size: int
    device: torch.device
    rank: int = 0
    world_size: int = 1


@runtime_checkable
class Task(Protocol):
    """What a training task provides to the loop.

    Attributes
    ----------
    metric_names : tuple of str
        The keys :meth:`validate` returns (columns of ``log.csv``), fixed at construction.
    training_data : str
        One line describing the training data (for logs and exported weights).

    Notes
    -----
    Optional methods: ``state_dict() -> dict`` and ``load_state_dict(state)`` for
    a task with state of its own that changes during training (tensors and
    plain types only); the loop checkpoints it per process. Such state lives in
    the main process: it is not seen by ``make_batch`` in worker processes.
    ``initialize(model)``: called once before the first step of a fresh run (not
    when resuming from a checkpoint), e.g. to load pretrained weights into ``model``.
    """

    metric_names: tuple[str, ...]
    training_data: str

    def make_batch(self, generator: torch.Generator) -> Any:
        """One step's batch for this process, on the CPU, drawn with ``generator`` only.

        The loop moves it to the device (tensors inside dataclasses, tuples and
        dicts included) before :meth:`loss`. It may run in a worker process.
        """
        ...

    def loss(self, model: nn.Module, batch: Any) -> Tensor:
        """The scalar loss of ``model`` on ``batch`` (a mean over the batch, so DDP averages right)."""
        ...

    def validate(self, model: nn.Module) -> dict[str, float]:
        """Scores on a fixed validation set; independent of training progress and of any RNG."""
        ...


def _sigma_name(sigma: float) -> str:
    level = sigma * 255
    return f"s{round(level)}" if abs(level - round(level)) < 1e-6 else f"s{level:.3g}"


@dataclass(frozen=True)
class DenoiseOptions(Section):
    """Options of the ``denoise`` task (``task.options`` in a recipe).

    Attributes
    ----------
    sigma_min, sigma_max : float
        Training noise levels lie in ``[sigma_min, sigma_max]``, on the [0, 1] scale
        (``25/255`` may be written as such in a recipe).
    sigma_power : float
        Per patch ``sigma = sigma_min + (sigma_max - sigma_min) u^sigma_power``, ``u ~ U[0, 1]``:
        1 draws the levels uniformly, 2 draws half of them below a quarter of the range (density
        falling as ``1 / sqrt(sigma - sigma_min)``), to spend a fine-tuning stage on low levels.
    init_denoiser : str
        A shipped denoiser (``learnreg models``) or a weights ``.json`` to start a fresh run from
        (fine-tuning); the model's architecture and options must match it. Empty: random start.
    loss : {'l1', 'l2'}
        Mean absolute or mean squared error to the clean patch.
    validation_sigmas : list of float
        Noise levels of the validation set, [0, 1] scale.
    validation_images : list of str
        Development images (:func:`learnreg.data.samples.sample` names, e.g.
        ``camera``) also scored at each validation sigma.
    validation_image_size : int
        Side of the centre crop of those images.
    """

    section: ClassVar[str] = "task.options"
    sigma_min: float = 0.0
    sigma_max: float = 50 / 255
    sigma_power: float = 1.0
    init_denoiser: str = ""
    loss: Literal["l1", "l2"] = "l1"
    validation_sigmas: tuple[float, ...] = (15 / 255, 25 / 255, 50 / 255)
    validation_images: tuple[str, ...] = ()
    validation_image_size: int = 256

    def check(self) -> None:
        for name in ("sigma_min", "sigma_max"):
            _check_level(self, name, getattr(self, name))
        for sigma in self.validation_sigmas:
            _check_level(self, "validation_sigmas", sigma)
        if self.sigma_min > self.sigma_max:
            self.fail("sigma_min", f"{self.sigma_min:g} exceeds sigma_max = {self.sigma_max:g}")
        if not 0 < self.sigma_power <= 10:
            self.fail("sigma_power", f"must lie in (0, 10] (1 = uniform levels), got {self.sigma_power:g}")
        if self.validation_image_size < 8:
            self.fail("validation_image_size", f"must be >= 8, got {self.validation_image_size}")
        if self.validation_images:
            from learnreg.data.samples import DEVELOPMENT_IMAGES

            unknown = [name for name in self.validation_images if name not in DEVELOPMENT_IMAGES]
            if unknown:
                self.fail("validation_images", f"unknown {unknown}; valid: {', '.join(DEVELOPMENT_IMAGES)}")


def _check_level(options: DenoiseOptions, name: str, sigma: float) -> None:
    if sigma > 1:
        options.fail(name, f"{sigma:g} is outside [0, 1]: noise levels are on the [0,1] scale: "
                           f"use {sigma:g}/255 ≈ {sigma / 255:.3f}, not {sigma:g}")
    if sigma < 0:
        options.fail(name, f"noise levels must be >= 0, got {sigma:g}")


@dataclass(frozen=True)
class DenoiseBatch:
    """Noisy patches ``noisy = clean + sigma * n``, n ~ N(0, 1); shapes (B, C, P, P) and (B,)."""

    noisy: Tensor
    sigma: Tensor
    clean: Tensor


class DenoiseTask:
    """Gaussian denoising: train ``D(x + sigma n, sigma) ≈ x``, sigma in [sigma_min, sigma_max].

    Parameters
    ----------
    config : TrainConfig
        Uses ``data`` (source, patch size, validation set) and ``task.options``
        (:class:`DenoiseOptions`).
    context : TaskContext
        Per-process batch size and device.
    source : PatchSource, optional
        The training patches; built from ``config.data`` when omitted.

    Notes
    -----
    The model is called as ``model(noisy, sigma)`` with ``sigma`` of shape (B,),
    the denoiser convention of :mod:`learnreg.learned.nets`. Validation PSNR
    (output clamped to [0, 1]) is measured on ``data.validation_size`` patches
    drawn once from the same source (or from ``data.validation_path``) with a
    generator seeded by ``data.validation_seed``, noise included, so it does not
    depend on training progress. Metrics: ``psnr`` (mean over the validation
    sigmas), ``psnr_s15``..., and ``psnr_IMAGE_s15``... for development images.
    """

    def __init__(self, config: "TrainConfig", context: TaskContext, *,
                 source: PatchSource | None = None):
        self.options: DenoiseOptions = config.task.parsed_options()
        self.data = config.data
        self.context = context
        if self.options.init_denoiser:  # a typo fails now, not after the dead-leaves pool is painted
            from learnreg.learned.hub import read_record

            try:
                read_record(self.options.init_denoiser)
            except (ValueError, OSError) as error:
                raise ValueError(f"task.options.init_denoiser: {error}") from None
        self.source = build_source(config.data) if source is None else source
        self.training_data = self.source.description
        if self.options.sigma_power != 1:
            self.training_data += (f"; noise sigma = {self.options.sigma_min * 255:.3g}/255 + "
                                   f"{(self.options.sigma_max - self.options.sigma_min) * 255:.3g}/255 "
                                   f"u^{self.options.sigma_power:g}")
        if self.options.init_denoiser:
            self.training_data += f"; fine-tuned from {self.options.init_denoiser}"
        crops = [f"psnr_{_sigma_name(sigma)}" for sigma in self.options.validation_sigmas]
        self._crop_names = tuple(crops) if self.data.validation_size > 0 else ()
        names = ["psnr", *self._crop_names] if self._crop_names else []
        names += [f"psnr_{image}_{_sigma_name(sigma)}" for image in self.options.validation_images
                  for sigma in self.options.validation_sigmas]
        self.metric_names = tuple(names)
        self._validation: dict[str, tuple[Tensor, Tensor, float]] | None = None

    def make_batch(self, generator: torch.Generator) -> DenoiseBatch:
        clean = self.source.sample(self.context.batch_size, generator=generator)
        low, high = self.options.sigma_min, self.options.sigma_max
        sigma = low + (high - low) * torch.rand(clean.shape[0], generator=generator) ** self.options.sigma_power
        noise = torch.randn(clean.shape, generator=generator)
        return DenoiseBatch(clean + sigma.view(-1, 1, 1, 1) * noise, sigma, clean)

    def initialize(self, model: nn.Module) -> None:
        """Load ``init_denoiser`` into the model (a fresh run only; a resumed one keeps its checkpoint)."""
        if self.options.init_denoiser:
            from learnreg.training.distributed import unwrap
            from learnreg.training.rg_common import load_pretrained

            load_pretrained(unwrap(model), self.options.init_denoiser, part="denoiser", task="denoise")

    def loss(self, model: nn.Module, batch: DenoiseBatch) -> Tensor:
        residual = model(batch.noisy, batch.sigma) - batch.clean
        return residual.abs().mean() if self.options.loss == "l1" else residual.square().mean()

    def _validation_set(self) -> dict[str, tuple[Tensor, Tensor, float]]:
        """name -> (noisy, clean, sigma), built once from ``data.validation_seed``."""
        if self._validation is not None:
            return self._validation
        generator = torch.Generator().manual_seed(self.data.validation_seed)
        sets: dict[str, tuple[Tensor, Tensor, float]] = {}
        if self.data.validation_size > 0:
            source = self.source
            if self.data.validation_path:
                source = FolderSource(self.data.validation_path, patch_size=self.data.patch_size,
                                      channels=self.data.channels, augment=False)
            clean = source.sample(self.data.validation_size, generator=generator)
            for sigma in self.options.validation_sigmas:
                noisy = clean + sigma * torch.randn(clean.shape, generator=generator)
                sets[f"psnr_{_sigma_name(sigma)}"] = (noisy, clean, sigma)
        for image in self.options.validation_images:
            clean = _development_image(image, self.options.validation_image_size, self.data.channels)
            for sigma in self.options.validation_sigmas:
                noisy = clean + sigma * torch.randn(clean.shape, generator=generator)
                sets[f"psnr_{image}_{_sigma_name(sigma)}"] = (noisy, clean, sigma)
        self._validation = sets
        return sets

    def validate(self, model: nn.Module) -> dict[str, float]:
        from learnreg.metrics.image import psnr

        was_training = model.training
        model.eval()
        scores: dict[str, float] = {}
        try:
            with torch.inference_mode():
                for name, (noisy, clean, sigma) in self._validation_set().items():
                    values = []
                    for start in range(0, noisy.shape[0], self.context.batch_size):
                        chunk = noisy[start:start + self.context.batch_size].to(self.context.device)
                        level = torch.full((chunk.shape[0],), sigma, device=chunk.device)
                        restored = model(chunk, level).clamp(0.0, 1.0).cpu()
                        values.append(psnr(restored, clean[start:start + chunk.shape[0]]))
                    scores[name] = float(torch.cat(values).mean())
        finally:
            model.train(was_training)
        crops = [scores[name] for name in self._crop_names]
        if crops:
            scores["psnr"] = math.fsum(crops) / len(crops)
        return {name: scores[name] for name in self.metric_names}


def _development_image(name: str, size: int, channels: int) -> Tensor:
    """A centre crop of a development image with ``channels`` channels, shape (1, C, S, S)."""
    from learnreg.data.samples import sample

    image = sample(name, size=size)
    if image.shape[1] == channels:
        return image
    if channels == 3 and image.shape[1] == 1:
        return image.expand(-1, 3, -1, -1).contiguous()
    if channels == 1 and image.shape[1] == 3:
        luma = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)  # ITU-R BT.601
        return (image * luma).sum(dim=1, keepdim=True)
    raise ValueError(f"denoise: cannot show development image {name!r} to a {channels}-channel model")


register_task("denoise", DenoiseTask, options=DenoiseOptions, replace=True)
