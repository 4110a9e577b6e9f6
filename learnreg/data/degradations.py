"""Random multi-task degradations for training regularizing gradients and DEQs.

Each draw picks one task, with probability 1/3 each (Willingham et al., VISAPP
2024, §5):

===================  ==================================  ==============================
task                 parameter                           operator (learnreg.physics)
===================  ==================================  ==============================
``deblur``           Gaussian sigma_b ~ U[0, 4] pixels   ``Blur``; ``Identity`` if 0
``super_resolution`` factor uniform in {1, 2, 4}         ``SuperResolution``; ``Identity``
                                                         for factor 1
``completion``       p_drop ~ U[0, 0.99]                 ``Inpaint`` with a random mask
===================  ==================================  ==============================

and a noise level ``sigma ~ U[0, 50/255]``; then ``y = A(x) + sigma * n``,
``n ~ N(0, I)``. For completion the noise is masked too (``y = M(x + sigma n)``),
so missing pixels stay exactly 0.

SR kernel
---------
The paper does not say which kernel its SR training used; its test tables use
both a bicubic kernel and a Gaussian of std 0.5 (HR pixels). So by default a
draw picks one of the two with equal probability (``sr_kernels``); pass
``sr_kernels=("bicubic",)`` for the usual bicubic-only setting.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Iterable, Iterator, NamedTuple

import torch
from torch import Tensor

from learnreg.physics.operator import Operator
from learnreg.config import DictConfig

__all__ = ["TASKS", "MultiTaskConfig", "Task", "DegradedSample", "MultiTaskDegradation"]

TASKS = ("deblur", "super_resolution", "completion")
_SR_KERNELS = ("bicubic", "gaussian")


@dataclass(frozen=True)
class MultiTaskConfig(DictConfig):
    """Distribution of the degradations; round-trips through :meth:`to_dict`.

    Attributes
    ----------
    probabilities : (float, float, float)
        Of deblurring, super-resolution and completion; they must sum to 1.
    blur_sigma_max : float
        Gaussian blur std ~ U[0, blur_sigma_max], in pixels.
    sr_factors : tuple of int
        Super-resolution factors, drawn uniformly; 1 means denoising only.
    sr_kernels : tuple of {'bicubic', 'gaussian'}
        SR anti-aliasing kernels, drawn uniformly (see the module notes).
    sr_gaussian_sigma : float
        Std of the Gaussian SR kernel, in HR pixels.
    drop_max : float
        Fraction of missing pixels ~ U[0, drop_max], below 1.
    noise_max : float
        Noise std ~ U[0, noise_max], on the [0, 1] image scale.
    """

    probabilities: tuple[float, float, float] = (1 / 3, 1 / 3, 1 / 3)
    blur_sigma_max: float = 4.0
    sr_factors: tuple[int, ...] = (1, 2, 4)
    sr_kernels: tuple[str, ...] = _SR_KERNELS
    sr_gaussian_sigma: float = 0.5
    drop_max: float = 0.99
    noise_max: float = 50 / 255

    def __post_init__(self) -> None:
        object.__setattr__(self, "probabilities", tuple(float(p) for p in self.probabilities))
        object.__setattr__(self, "sr_factors", tuple(int(f) for f in self.sr_factors))
        object.__setattr__(self, "sr_kernels", tuple(self.sr_kernels))
        if (len(self.probabilities) != 3 or min(self.probabilities) < 0
                or abs(sum(self.probabilities) - 1) > 1e-6):
            raise ValueError(f"MultiTaskConfig: probabilities must be 3 non-negative numbers "
                             f"summing to 1 (deblur, SR, completion), got {self.probabilities}")
        if not self.sr_factors or min(self.sr_factors) < 1:
            raise ValueError(f"MultiTaskConfig: sr_factors must be positive integers, "
                             f"got {self.sr_factors}")
        unknown = [k for k in self.sr_kernels if k not in _SR_KERNELS]
        if not self.sr_kernels or unknown:
            raise ValueError(f"MultiTaskConfig: sr_kernels must be drawn from {_SR_KERNELS}, "
                             f"got {self.sr_kernels}")
        if not 0 <= self.drop_max < 1:
            raise ValueError(f"MultiTaskConfig: drop_max must be in [0, 1), got {self.drop_max}")
        if self.blur_sigma_max < 0 or self.noise_max < 0 or self.sr_gaussian_sigma <= 0:
            raise ValueError("MultiTaskConfig: blur_sigma_max and noise_max must be >= 0 and "
                             "sr_gaussian_sigma > 0")

    def to_dict(self) -> dict[str, Any]:
        """The fields as a JSON-serialisable dict (tuples become lists)."""
        return {key: list(value) if isinstance(value, tuple) else value
                for key, value in asdict(self).items()}



@dataclass(frozen=True)
class Task:
    """One drawn degradation.

    Attributes
    ----------
    kind : {'deblur', 'super_resolution', 'completion'}
    parameter : float
        Blur std (pixels), SR factor, or fraction of missing pixels.
    sigma : float
        Noise std on the [0, 1] scale.
    kernel : str or None
        SR kernel name; ``None`` for the other tasks.
    """

    kind: str
    parameter: float
    sigma: float
    kernel: str | None = None

    def __str__(self) -> str:
        name = {"deblur": "blur sigma_b", "super_resolution": "SR x",
                "completion": "completion p_drop"}[self.kind]
        detail = f" ({self.kernel})" if self.kernel else ""
        return f"{name} {self.parameter:g}{detail}, noise sigma {self.sigma * 255:.1f}/255"


class DegradedSample(NamedTuple):
    """``x`` (B, C, H, W) clean, ``y = A(x) + noise``, the operator ``A``, the noise std."""

    x: Tensor
    y: Tensor
    operator: Operator
    sigma: float


def _uniform(low: float, high: float, generator: torch.Generator) -> float:
    return low + (high - low) * float(torch.rand((), generator=generator, dtype=torch.float64))


def _choice(options: tuple, generator: torch.Generator) -> Any:
    return options[int(torch.randint(len(options), (), generator=generator))]


class MultiTaskDegradation:
    """Draw a task, build its operator, degrade a clean batch.

    Parameters
    ----------
    config : MultiTaskConfig, optional
        The distribution; the paper's by default.

    Examples
    --------
    >>> degrade = MultiTaskDegradation()
    >>> g = torch.Generator().manual_seed(0)
    >>> x, y, A, sigma = degrade(torch.rand(1, 3, 32, 32), generator=g)  # doctest: +SKIP
    """

    def __init__(self, config: MultiTaskConfig | None = None):
        self.config = MultiTaskConfig() if config is None else config

    def sample_task(self, *, generator: torch.Generator) -> Task:
        """Draw a task and a noise level (no operator is built)."""
        config = self.config
        cumulative = torch.tensor(config.probabilities, dtype=torch.float64).cumsum(0)
        u = torch.rand((), generator=generator, dtype=torch.float64)
        kind = TASKS[min(int((u >= cumulative).sum()), 2)]
        kernel = None
        if kind == "deblur":
            parameter = _uniform(0.0, config.blur_sigma_max, generator)
        elif kind == "super_resolution":
            parameter = float(_choice(config.sr_factors, generator))
            kernel = _choice(config.sr_kernels, generator)
        else:
            parameter = _uniform(0.0, config.drop_max, generator)
        sigma = _uniform(0.0, config.noise_max, generator)
        return Task(kind, parameter, sigma, kernel)

    def operator(self, task: Task, shape: tuple[int, int, int], *,
                 generator: torch.Generator) -> Operator:
        """The operator of ``task`` for images of per-sample ``shape = (C, H, W)``.

        Raises
        ------
        ValueError
            An SR factor that does not divide ``H`` and ``W``.
        """
        # imported here so that task sampling works without the physics operators
        from learnreg.physics.blur import Blur
        from learnreg.physics.kernels import bicubic_kernel, gaussian_kernel
        from learnreg.physics.simple import Identity, Inpaint, random_mask
        from learnreg.physics.superres import SuperResolution

        channels, height, width = shape
        if task.kind == "deblur":
            if task.parameter == 0:
                return Identity(shape)
            return Blur(gaussian_kernel(task.parameter), shape)
        if task.kind == "super_resolution":
            factor = int(task.parameter)
            if factor == 1:
                return Identity(shape)
            if height % factor or width % factor:
                raise ValueError(
                    f"super-resolution x{factor} needs H and W divisible by {factor}, got "
                    f"{height} x {width}; use patch sizes divisible by {max(self.config.sr_factors)}"
                )
            if task.kernel == "bicubic":
                kernel = bicubic_kernel(factor)
            else:
                kernel = gaussian_kernel(self.config.sr_gaussian_sigma)
            return SuperResolution(kernel, factor, shape)
        return Inpaint(random_mask((height, width), task.parameter, generator=generator), shape)

    def degrade(self, x: Tensor, task: Task, *, generator: torch.Generator) -> DegradedSample:
        """Apply ``task`` to ``x`` (B, C, H, W) or (C, H, W); one operator for the batch."""
        if x.dim() == 3:
            x = x[None]
        if x.dim() != 4:
            raise ValueError(f"degrade: x must be (B, C, H, W) or (C, H, W), got {tuple(x.shape)}")
        operator = self.operator(task, tuple(x.shape[1:]), generator=generator)
        clean = operator(x)
        noise = torch.randn(clean.shape, generator=generator, dtype=clean.dtype)
        noise = task.sigma * noise.to(clean.device)
        if task.kind == "completion":
            noise = operator(noise)  # missing pixels stay 0
        return DegradedSample(x, clean + noise, operator, task.sigma)

    def __call__(self, x: Tensor, *, generator: torch.Generator) -> DegradedSample:
        """Draw a task and apply it to ``x`` (B, C, H, W) or (C, H, W), values in [0, 1].

        Returns
        -------
        DegradedSample
            ``(x, y, operator, sigma)`` with ``x`` of shape (B, C, H, W), ``y`` of
            shape ``(B, *operator.out_shape)``, ``sigma`` the noise std.
        """
        return self.degrade(x, self.sample_task(generator=generator), generator=generator)

    def stream(self, images: Iterable[Tensor], *,
               generator: torch.Generator) -> Iterator[DegradedSample]:
        """Degrade each clean image or batch of ``images`` with a fresh task."""
        for x in images:
            yield self(x, generator=generator)
