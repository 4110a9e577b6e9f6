"""Pre-training of NETT depth regularizers: Gazdieva et al.'s schemes and their Table 1 augmentations.

A NETT regularizer ``R`` is trained *before* it is used, by a regression that never
sees the optimisation it will serve. The paper's two schemes:

* ``scheme: residual`` (scheme 1): ``Phi(input) ≈ input - x`` (the artifact; 0 on clean
  inputs), later ``R(x) = ||Phi(x)||^2``;
* ``scheme: identity`` (scheme 2): ``Phi(input) ≈ x`` (identity on clean inputs), later
  ``R(x) = ||Phi(x) - x||^2``.

Each batch mixes, in equal shares, the sample kinds that the options enable:

``clean``          input = x (always)
``approximation``  input = F^+ F x, the upsampled box-downsampled patch (always)
``gt_noise``       input = x + N(0, s^2), s = MSE(x, F^+ F x) of the patch (Table 1 row 6)
``noisy_target``   input = x + e, target x + e / 10, e ~ N(0, input_noise^2) (row 7)
``interpolation``  input = x + t (F^+ F x - x), t ~ U(0, 1) (row 8)
``one_step``       input = a - (s alpha) grad R(a), a = F^+ F x, with the current network (row 9)
``refine``         input = the current network's estimate from a (not in the paper: it teaches
                   ``Phi`` to correct its own output, where NETT iterations start or end)

``input_noise`` adds N(0, level^2) to every input except ``noisy_target`` ones (rows 2, 4),
with ``level = input_noise * noise_decay^(step // noise_decay_every)`` (row 5: 0.7 every
10 epochs). Loss: mean squared error. Data: ``data.source: depthscenes`` (synthetic scenes,
channel 0 depth, channels 1-3 the RGB guide). Guided networks (``model.guided``) get
the guide as a second argument.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Literal

import torch
from torch import Tensor, nn

from learnreg.training._schema import Section
from learnreg.training.registry import register_source, register_task
from learnreg.training.sources import build_source

if TYPE_CHECKING:  # pragma: no cover
    from learnreg.training.config import DataConfig, TrainConfig
    from learnreg.training.tasks import TaskContext

logger = logging.getLogger(__name__)

__all__ = ["NETTOptions", "NETTBatch", "NETTTask", "DepthSceneSource", "approximate", "sample_kinds",
           "training_targets"]

KINDS = ("clean", "approximation", "gt_noise", "noisy_target", "interpolation", "one_step", "refine")


@dataclass(frozen=True)
class NETTOptions(Section):
    """Options of the ``nett`` task (``task.options`` in a recipe).

    Attributes
    ----------
    scheme : {'residual', 'identity'}
        What ``Phi`` learns (module docstring).
    factor : int
        Downsampling factor of ``F`` (4 in the paper).
    kernel : {'box', 'nearest', 'bicubic', 'gaussian'}
        Kernel of ``F`` (box averaging in the paper).
    approximation : {'box-pinv', 'bilinear', 'bicubic'}
        ``F^+``: the pseudo-inverse of box downsampling (block replication), bilinear or
        bicubic interpolation on ``F``'s sampling grid.
    input_noise : float
        Std of the Gaussian noise added to the inputs, depth units.
    noise_decay, noise_decay_every : float, int
        Multiply ``input_noise`` by ``noise_decay`` every ``noise_decay_every`` steps
        (0: never).
    gt_noise, noisy_target, interpolation, one_step, refine : bool
        Add the sample kinds of the module docstring.
    one_step_size : float
        ``s * alpha`` of the ``one_step`` samples (0.001 in the paper's eq. 6).
    """

    section: ClassVar[str] = "task.options"
    scheme: Literal["residual", "identity"] = "identity"
    factor: int = 4
    kernel: Literal["box", "nearest", "bicubic", "gaussian"] = "box"
    approximation: Literal["box-pinv", "bilinear", "bicubic"] = "bicubic"
    input_noise: float = 0.0
    noise_decay: float = 1.0
    noise_decay_every: int = 0
    gt_noise: bool = False
    noisy_target: bool = False
    interpolation: bool = False
    one_step: bool = False
    one_step_size: float = 0.001
    refine: bool = False

    def check(self) -> None:
        if self.factor < 2:
            self.fail("factor", f"must be >= 2, got {self.factor}")
        if self.input_noise < 0:
            self.fail("input_noise", f"must be >= 0, got {self.input_noise}")
        if not 0.0 < self.noise_decay <= 1.0:
            self.fail("noise_decay", f"must lie in (0, 1], got {self.noise_decay}")
        if self.noise_decay_every < 0:
            self.fail("noise_decay_every", f"must be >= 0 (0: no decay), got {self.noise_decay_every}")
        if self.noisy_target and self.input_noise == 0:
            self.fail("noisy_target", "needs input_noise > 0 (the std of e)")
        if self.one_step_size <= 0:
            self.fail("one_step_size", f"must be > 0, got {self.one_step_size}")
        if self.approximation == "box-pinv" and self.kernel != "box":
            self.fail("approximation", "box-pinv is the pseudo-inverse of box downsampling; use kernel: box "
                                       "or approximation: bilinear / bicubic")

    @property
    def kinds(self) -> tuple[str, ...]:
        enabled = {"clean": True, "approximation": True, "gt_noise": self.gt_noise,
                   "noisy_target": self.noisy_target, "interpolation": self.interpolation,
                   "one_step": self.one_step, "refine": self.refine}
        return tuple(kind for kind in KINDS if enabled[kind])


def approximate(depth: Tensor, *, factor: int, kernel: str, approximation: str) -> Tensor:
    """``F^+ F x`` for depth patches ``(B, 1, P, P)``: downsample, then upsample back."""
    from learnreg.physics.superres import SuperResolution
    from learnreg.restore.baselines import bicubic_upsample
    from learnreg.restore.depth import bilinear_upsample, box_pseudo_inverse

    operator = SuperResolution(kernel, factor, tuple(depth.shape[1:]))
    low = operator(depth)
    upsample = {"box-pinv": box_pseudo_inverse, "bilinear": bilinear_upsample, "bicubic": bicubic_upsample}
    return upsample[approximation](low, operator)


def sample_kinds(count: int, kinds: tuple[str, ...], *, generator: torch.Generator) -> list[str]:
    """``count`` kinds in equal shares (the remainder drawn at random), randomly ordered."""
    base = [kinds[i % len(kinds)] for i in range(count - count % len(kinds))]
    extra = torch.randperm(len(kinds), generator=generator)[: count % len(kinds)].tolist()
    base += [kinds[i] for i in extra]
    order = torch.randperm(count, generator=generator).tolist()
    return [base[i] for i in order]


@dataclass(frozen=True)
class NETTBatch:
    """Inputs before the step-dependent noise; shapes (B, 1, P, P), guide (B, 3, P, P).

    ``noise`` is standard normal, scaled by the current input-noise level in
    :meth:`NETTTask.loss`; ``noise_mask`` (B,) says which samples receive it;
    ``one_step`` (B,) marks the samples to move by one regularizer step first,
    ``refine`` (B,) those to replace by the current network's estimate.
    """

    inputs: Tensor
    targets: Tensor
    clean: Tensor
    guide: Tensor
    noise: Tensor
    noise_mask: Tensor
    one_step: Tensor
    refine: Tensor


def training_targets(scheme: str, inputs: Tensor, targets: Tensor) -> Tensor:
    """What ``Phi(inputs)`` is regressed on: ``inputs - targets`` (residual) or ``targets`` (identity)."""
    return inputs - targets if scheme == "residual" else targets


def _guided(model: nn.Module) -> bool:
    return bool(getattr(getattr(model, "module", model), "guided", False))


def _phi(model: nn.Module, x: Tensor, guide: Tensor) -> Tensor:
    return model(x, guide) if _guided(model) else model(x)


class NETTTask:
    """Regression pre-training of ``Phi`` for NETT depth regularizers (module docstring)."""

    def __init__(self, config: "TrainConfig", context: "TaskContext", *, source=None):
        self.options: NETTOptions = config.task.parsed_options()
        self.data = config.data
        self.context = context
        if self.data.channels != 4:
            raise ValueError("task nett needs data.channels: 4 (depth and an RGB guide); "
                             f"got {self.data.channels}")
        if self.data.patch_size % self.options.factor:
            raise ValueError(f"task nett: data.patch_size {self.data.patch_size} is not a multiple of "
                             f"factor {self.options.factor}; choose e.g. {self.options.factor * 16}")
        self.source = build_source(config.data) if source is None else source
        self.training_data = self.source.description
        self.metric_names = ("rmse_approximation", "rmse_network") if self.data.validation_size else ()
        self.steps = 0  # loss() calls = optimizer steps: drives the noise decay
        self._validation: tuple[Tensor, Tensor, Tensor] | None = None

    # -- state (the noise schedule depends on the step) --------------------------------
    def state_dict(self) -> dict:
        return {"steps": self.steps}

    def load_state_dict(self, state: dict) -> None:
        self.steps = int(state["steps"])

    def noise_level(self, step: int) -> float:
        options = self.options
        decays = step // options.noise_decay_every if options.noise_decay_every else 0
        return options.input_noise * options.noise_decay**decays

    # -- batches ----------------------------------------------------------------------
    def make_batch(self, generator: torch.Generator) -> NETTBatch:
        options = self.options
        patches = self.source.sample(self.context.batch_size, generator=generator)
        clean, guide = patches[:, :1], patches[:, 1:]
        approximation = approximate(clean, factor=options.factor, kernel=options.kernel,
                                    approximation=options.approximation)
        count = clean.shape[0]
        kinds = sample_kinds(count, options.kinds, generator=generator)
        noise = torch.randn(clean.shape, generator=generator)
        extra = torch.randn(clean.shape, generator=generator)
        ratio = torch.rand(count, generator=generator)
        inputs, targets = clean.clone(), clean.clone()
        noise_mask = torch.ones(count, dtype=torch.bool)
        one_step = torch.zeros(count, dtype=torch.bool)
        refine = torch.zeros(count, dtype=torch.bool)
        for i, kind in enumerate(kinds):
            if kind in ("approximation", "one_step", "refine"):
                inputs[i] = approximation[i]
                one_step[i] = kind == "one_step"
                refine[i] = kind == "refine"
            elif kind == "gt_noise":
                level = (clean[i] - approximation[i]).pow(2).mean()  # sigma = MSE(GT, approximation)
                inputs[i] = clean[i] + level * extra[i]
            elif kind == "noisy_target":
                error = options.input_noise * extra[i]
                inputs[i], targets[i] = clean[i] + error, clean[i] + error / 10
                noise_mask[i] = False
            elif kind == "interpolation":
                inputs[i] = clean[i] + ratio[i] * (approximation[i] - clean[i])
        return NETTBatch(inputs, targets, clean, guide.contiguous(), noise, noise_mask, one_step, refine)

    def _one_step(self, model: nn.Module, inputs: Tensor, guide: Tensor) -> Tensor:
        """``a - (s alpha) grad R(a)`` with the current network, without gradients to the weights."""
        module = getattr(model, "module", model)  # not through DDP: this pass has no weight gradients
        with torch.enable_grad():
            leaf = inputs.detach().requires_grad_(True)
            out = _phi(module, leaf, guide)
            residual = out if self.options.scheme == "residual" else out - leaf
            (gradient,) = torch.autograd.grad(residual.pow(2).sum(), leaf)
        return (inputs - self.options.one_step_size * gradient).detach()

    def loss(self, model: nn.Module, batch: NETTBatch) -> Tensor:
        level = self.noise_level(self.steps)
        self.steps += 1
        inputs = batch.inputs
        if level > 0:
            inputs = inputs + level * batch.noise * batch.noise_mask.view(-1, 1, 1, 1).to(inputs.dtype)
        if bool(batch.one_step.any()):
            moved = self._one_step(model, inputs[batch.one_step], batch.guide[batch.one_step])
            inputs = inputs.clone()
            inputs[batch.one_step] = moved
        if bool(batch.refine.any()):
            module = getattr(model, "module", model)
            with torch.no_grad():
                start = inputs[batch.refine]
                out = _phi(module, start, batch.guide[batch.refine])
                estimate = start - out if self.options.scheme == "residual" else out
            inputs = inputs.clone()
            inputs[batch.refine] = estimate.detach()
        target = training_targets(self.options.scheme, inputs, batch.targets)
        return (_phi(model, inputs, batch.guide) - target).square().mean()

    # -- validation ---------------------------------------------------------------------
    def _validation_set(self) -> tuple[Tensor, Tensor, Tensor]:
        if self._validation is None:
            generator = torch.Generator().manual_seed(self.data.validation_seed)
            patches = self.source.sample(self.data.validation_size, generator=generator)
            clean, guide = patches[:, :1], patches[:, 1:]
            approximation = approximate(clean, factor=self.options.factor, kernel=self.options.kernel,
                                        approximation=self.options.approximation)
            self._validation = (approximation, clean, guide)
        return self._validation

    def validate(self, model: nn.Module) -> dict[str, float]:
        """RMSE (depth units) of the approximation and of the network alone on it."""
        if not self.metric_names:
            return {}
        approximation, clean, guide = self._validation_set()
        was_training = model.training
        model.eval()
        try:
            with torch.inference_mode():
                outputs = []
                for start in range(0, approximation.shape[0], self.context.batch_size):
                    chunk = slice(start, start + self.context.batch_size)
                    device = self.context.device
                    out = _phi(model, approximation[chunk].to(device), guide[chunk].to(device)).cpu()
                    outputs.append(approximation[chunk] - out if self.options.scheme == "residual" else out)
                network = torch.cat(outputs)
        finally:
            model.train(was_training)
        return {"rmse_approximation": float((approximation - clean).pow(2).mean().sqrt()),
                "rmse_network": float((network - clean).pow(2).mean().sqrt())}


class DepthSceneSource:
    """Depth-and-guide patches from a pool of synthetic scenes: tensors (N, 4, P, P).

    Channel 0 is depth (scene units), channels 1-3 the RGB guide; the pool of
    ``data.pool_images`` scenes of ``data.pool_image_size`` is rendered once from
    ``data.validation_seed + 1`` with the ``data.scenes`` options
    (:class:`~learnreg.data.depthscenes.DepthSceneConfig` fields, e.g. ``family``).
    """

    def __init__(self, config: "DataConfig"):
        from learnreg.data.depthscenes import DepthSceneConfig, DepthScenePool

        if config.channels != 4:
            raise ValueError(f"source depthscenes yields 4 channels (depth + RGB guide); set data.channels: 4, "
                             f"got {config.channels}")
        images = config.pool_images or 64
        scene = DepthSceneConfig.from_dict({"size": config.pool_image_size, **config.scenes})
        self.pool = DepthScenePool(scene, images=images, seed=config.validation_seed + 1)
        self.patch_size = config.patch_size
        self.description = (f"synthetic depth scenes ({scene.family} family): pool of {images} scenes "
                            f"{config.pool_image_size}x{config.pool_image_size}, random {config.patch_size}x"
                            f"{config.patch_size} crops with flips and rotations; depth + RGB guide")

    def sample(self, count: int, *, generator: torch.Generator) -> Tensor:
        depth, guide = self.pool.sample(count, patch_size=self.patch_size, generator=generator)
        return torch.cat([depth, guide], dim=1)


register_source("depthscenes", DepthSceneSource, replace=True)
register_task("nett", NETTTask, options=NETTOptions, replace=True)
