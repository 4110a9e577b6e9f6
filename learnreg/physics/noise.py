"""Noise models ``y = n(A x)``; randomness only through an explicit ``torch.Generator``.

Every model has ``sigma_equivalent``, the standard deviation of a Gaussian noise of
about the same strength on the ``[0, 1]`` scale. Solvers and default regularization
weights use it; for signal-dependent noise it is an approximation, evaluated at the
reference intensity ``REFERENCE_LEVEL = 0.5`` (mid-grey) unless a level is given to
:meth:`Noise.sigma_at`.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["Noise", "NoNoise", "GaussianNoise", "PoissonNoise", "PoissonGaussianNoise", "REFERENCE_LEVEL"]

REFERENCE_LEVEL = 0.5


def _check_sigma(sigma: float) -> float:
    try:
        sigma = float(sigma)
    except (TypeError, ValueError):
        raise ValueError(f"noise sigma must be a number on the [0, 1] scale, got {sigma!r}") from None
    if not math.isfinite(sigma) or not 0 <= sigma <= 1:
        hint = ""
        if math.isfinite(sigma) and sigma > 1:
            hint = f"; for 8-bit levels pass {sigma:g}/255 = {sigma / 255:.4g}"
        raise ValueError(f"noise sigma must be on the [0, 1] scale, got {sigma:g}{hint}")
    return sigma


def _check_peak(peak: float) -> float:
    try:
        peak = float(peak)
    except (TypeError, ValueError):
        raise ValueError(f"Poisson peak must be a positive number, got {peak!r}") from None
    if not math.isfinite(peak) or peak <= 0:
        raise ValueError(f"Poisson peak must be a finite number > 0 (photons at intensity 1), got {peak:g}")
    return peak


def _number(value: float) -> str:
    """Shortest exact text of a float (``255``, ``0.01``), so specs round-trip."""
    return str(int(value)) if value.is_integer() else repr(value)


def _gaussian(like: Tensor, generator: torch.Generator) -> Tensor:
    """Standard normal noise shaped like ``like``, drawn on the generator's device."""
    noise = torch.randn(like.shape, generator=generator, dtype=like.dtype, device=generator.device)
    return noise.to(like.device)


class Noise:
    """Base class: ``noise(y, generator) -> y`` with the noise added."""

    def __call__(self, y: Tensor, generator: torch.Generator) -> Tensor:
        if not isinstance(generator, torch.Generator):
            raise TypeError(f"{type(self).__name__} needs a torch.Generator (no global seeding), "
                            f"got {type(generator).__name__}")
        return self._apply(y, generator)

    def _apply(self, y: Tensor, generator: torch.Generator) -> Tensor:
        raise NotImplementedError

    @property
    def sigma_equivalent(self) -> float:
        """Gaussian-equivalent std at :data:`REFERENCE_LEVEL` on the [0, 1] scale."""
        return self.sigma_at(REFERENCE_LEVEL)

    def sigma_at(self, level: float) -> float:
        """Noise standard deviation at intensity ``level`` (in [0, 1])."""
        raise NotImplementedError

    @property
    def spec(self) -> str:
        """The CLI spec string, e.g. ``"gaussian:0.01"``."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.spec!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Noise) and type(other) is type(self) and other.spec == self.spec

    def __hash__(self) -> int:
        return hash(self.spec)


class NoNoise(Noise):
    """Noise-free measurements: ``y`` is returned unchanged; ``sigma_equivalent = 0``."""

    def _apply(self, y: Tensor, generator: torch.Generator) -> Tensor:
        return y

    def sigma_at(self, level: float) -> float:
        return 0.0

    @property
    def spec(self) -> str:
        return "none"


class GaussianNoise(Noise):
    """Additive white Gaussian noise ``y + sigma n``, ``n ~ N(0, I)``.

    Parameters
    ----------
    sigma : float
        Standard deviation on the [0, 1] scale (``25/255``, not ``25``).

    Examples
    --------
    >>> import torch
    >>> y = GaussianNoise(0.1)(torch.zeros(1, 1, 64, 64), torch.Generator().manual_seed(0))
    >>> round(float(y.std()), 1)
    0.1
    """

    def __init__(self, sigma: float):
        self.sigma = _check_sigma(sigma)

    def _apply(self, y: Tensor, generator: torch.Generator) -> Tensor:
        return y + self.sigma * _gaussian(y, generator)

    def sigma_at(self, level: float) -> float:
        return self.sigma

    @property
    def spec(self) -> str:
        return f"gaussian:{_number(self.sigma)}"


class PoissonNoise(Noise):
    """Shot noise ``Poisson(peak * y) / peak``, intensity ``1`` worth ``peak`` photons.

    Parameters
    ----------
    peak : float
        Photon count at intensity 1 (``> 0``); larger means less noise.

    Notes
    -----
    Negative intensities are clipped to 0 before sampling. The result has mean ``y``
    and variance ``y / peak``, so ``sigma_at(level) = sqrt(level / peak)`` and
    ``sigma_equivalent = sqrt(0.5 / peak)`` (mid-grey).
    """

    def __init__(self, peak: float):
        self.peak = _check_peak(peak)

    def _apply(self, y: Tensor, generator: torch.Generator) -> Tensor:
        rate = (self.peak * y.clamp_min(0)).to(generator.device)
        return (torch.poisson(rate, generator=generator) / self.peak).to(y.device)

    def sigma_at(self, level: float) -> float:
        return math.sqrt(max(float(level), 0.0) / self.peak)

    @property
    def spec(self) -> str:
        return f"poisson:{_number(self.peak)}"


class PoissonGaussianNoise(Noise):
    """Shot noise then read-out noise: ``Poisson(peak * y) / peak + sigma n``.

    Parameters
    ----------
    peak : float
        Photon count at intensity 1 (``> 0``).
    sigma : float
        Std of the additive Gaussian part, [0, 1] scale.

    Notes
    -----
    Variance ``y / peak + sigma^2``; ``sigma_at(level) = sqrt(level / peak + sigma^2)``.
    """

    def __init__(self, peak: float, sigma: float):
        self.peak = _check_peak(peak)
        self.sigma = _check_sigma(sigma)

    def _apply(self, y: Tensor, generator: torch.Generator) -> Tensor:
        shot = PoissonNoise(self.peak)._apply(y, generator)
        return shot + self.sigma * _gaussian(y, generator)

    def sigma_at(self, level: float) -> float:
        return math.sqrt(max(float(level), 0.0) / self.peak + self.sigma ** 2)

    @property
    def spec(self) -> str:
        return f"poisson-gaussian:{_number(self.peak)}:{_number(self.sigma)}"
