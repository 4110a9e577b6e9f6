"""Operator and noise spec strings, as the CLI writes them.

Spec strings
------------
Operators (``--operator``)::

    identity | denoise                 y = x
    blur:gaussian:SIGMA[:SIZE]         Gaussian blur, std SIGMA pixels, SIZE x SIZE taps
                                       (default 2 ceil(3 SIGMA) + 1)
    blur:uniform:K                     K x K moving average
    blur:kernel:PATH                   kernel from .npy/.txt/.csv/image, normalised to sum 1
    sr:S:bicubic | sr:S:box | sr:S:nearest
    sr:S:gaussian:SIGMA[:SIZE]         decimation by S after a Gaussian blur
    sr:S:kernel:PATH                   decimation by S after a kernel from a file
    inpaint:random:P                   a fraction P of the pixels missing, drawn with the seed
    inpaint:box:F                      a centred missing box, F times the image side
    inpaint:mask:PATH                  mask from .npy/.txt/image, nonzero = observed

Noise (``--noise``; levels on the [0, 1] scale): ``none``, ``gaussian:SIGMA``,
``poisson:PEAK``, ``poisson-gaussian:PEAK:SIGMA``. See :mod:`learnreg.physics.noise`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from learnreg.physics.kernels import gaussian_kernel, load_kernel, uniform_kernel
from learnreg.physics.noise import GaussianNoise, NoNoise, Noise, PoissonGaussianNoise, PoissonNoise
from learnreg.physics.simple import box_mask, load_mask, random_mask
from learnreg.physics.superres import sr_kernel

__all__ = ["OperatorSpec", "parse_operator", "parse_noise"]

_KINDS = "identity, denoise, blur, sr, inpaint (e.g. blur:gaussian:2.0, sr:4:bicubic, inpaint:random:0.8)"
_VARIANTS = {
    "blur": ("gaussian", "uniform", "kernel"),
    "sr": ("bicubic", "box", "nearest", "gaussian", "kernel"),
    "inpaint": ("random", "box", "mask"),
}
_NOISE_KINDS = "none, gaussian:SIGMA, poisson:PEAK, poisson-gaussian:PEAK:SIGMA"


@dataclass(frozen=True)
class OperatorSpec:
    """A parsed operator spec string (see the module notes for the syntax)."""

    text: str
    kind: str  # identity | blur | sr | inpaint
    variant: str | None = None  # kernel (blur, sr) or mask (inpaint) family
    factor: int = 1
    sigma: float | None = None
    size: int | None = None
    fraction: float | None = None
    path: str | None = None

    def build_kernel(self) -> np.ndarray | None:
        """The kernel array of a blur or SR spec (loaded from ``path`` for ``kernel``), else None."""
        if self.kind == "blur":
            if self.variant == "gaussian":
                return gaussian_kernel(self.sigma, self.size)
            if self.variant == "uniform":
                return uniform_kernel(self.size)
            return load_kernel(self.path)
        if self.kind == "sr":
            if self.variant == "kernel":
                return load_kernel(self.path)
            if self.variant == "gaussian":
                return gaussian_kernel(self.sigma, self.size)
            return sr_kernel(self.variant, self.factor)
        return None

    def build_mask(self, size: tuple[int, int], *, seed: int) -> np.ndarray | None:
        """The bool ``(H, W)`` mask of an inpainting spec (random ones drawn with ``seed``), else None."""
        if self.kind != "inpaint":
            return None
        if self.variant == "random":
            mask = random_mask(size, self.fraction, torch.Generator().manual_seed(seed))
        elif self.variant == "box":
            mask = box_mask(size, self.fraction)
        else:
            mask = load_mask(self.path)
            if tuple(mask.shape) != tuple(size):
                raise ValueError(f"mask {self.path} is {mask.shape[0]}x{mask.shape[1]} but the image is "
                                 f"{size[0]}x{size[1]}; use a mask of the image size")
        return mask.numpy()


def _number(text: str, what: str, spec: str, cast=float):
    try:
        value = cast(text)
    except ValueError:
        kind = "an integer" if cast is int else "a number"
        raise ValueError(f"{spec!r}: {what} must be {kind}, got {text!r}") from None
    if cast is float and not np.isfinite(value):
        raise ValueError(f"{spec!r}: {what} must be finite, got {text!r}")
    return value


def parse_operator(text: str) -> OperatorSpec:
    """Parse an operator spec string such as ``"blur:gaussian:2.0"`` or ``"sr:4:bicubic"``.

    Raises
    ------
    ValueError
        Unknown kind or variant (the message lists the valid ones), wrong number of
        fields, or a field that is not a number.
    """
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"operator spec must be a non-empty string; valid kinds: {_KINDS}")
    text = text.strip()
    parts = text.split(":")
    kind = parts[0].lower()
    if kind in ("identity", "denoise"):
        if len(parts) != 1:
            raise ValueError(f"{text!r}: {kind} takes no parameters")
        return OperatorSpec(text, "identity")
    if kind not in _VARIANTS:
        raise ValueError(f"unknown operator kind {parts[0]!r} in {text!r}; valid kinds: {_KINDS}")
    factor = 1
    if kind == "sr":
        if len(parts) < 3:
            raise ValueError(f"{text!r}: write sr:FACTOR:KERNEL, e.g. sr:4:bicubic; "
                             f"kernels: {', '.join(_VARIANTS['sr'])}")
        factor = _number(parts[1], "the SR factor", text, int)
        if factor < 1:
            raise ValueError(f"{text!r}: the SR factor must be >= 1")
        parts = parts[:1] + parts[2:]
    variants = _VARIANTS[kind]
    variant = parts[1].lower() if len(parts) > 1 else ""
    if variant not in variants:
        raise ValueError(f"unknown {kind} variant {variant!r} in {text!r}; valid: {', '.join(variants)}")
    arguments = parts[2:]
    if variant in ("kernel", "mask"):
        path = ":".join(arguments)
        if not path:
            raise ValueError(f"{text!r}: give a file, e.g. {kind}:{variant}:{variant[0].upper()}.npy")
        return OperatorSpec(text, kind, variant, factor, path=path)
    expected = {"gaussian": (1, 2), "uniform": (1, 1), "random": (1, 1), "box": (0, 0) if kind == "sr" else (1, 1),
                "bicubic": (0, 0), "nearest": (0, 0)}[variant]
    if not expected[0] <= len(arguments) <= expected[1]:
        count = str(expected[0]) if expected[0] == expected[1] else f"{expected[0]} or {expected[1]}"
        raise ValueError(f"{text!r}: {kind}:{variant} takes {count} parameter(s), got {len(arguments)}")
    if variant == "gaussian":
        size = _number(arguments[1], "the kernel size", text, int) if len(arguments) > 1 else None
        return OperatorSpec(text, kind, variant, factor, sigma=_number(arguments[0], "sigma", text), size=size)
    if variant == "uniform":
        return OperatorSpec(text, kind, variant, factor, size=_number(arguments[0], "the kernel size", text, int))
    if kind == "inpaint":
        return OperatorSpec(text, kind, variant, fraction=_number(arguments[0], "the fraction", text))
    return OperatorSpec(text, kind, variant, factor)


def parse_noise(text: str) -> Noise:
    """Parse a noise spec string (``none``, ``gaussian:0.01``, ``poisson:255``, ``poisson-gaussian:255:0.01``)."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"noise spec must be a non-empty string; valid: {_NOISE_KINDS}")
    text = text.strip()
    kind, *arguments = text.split(":")
    kind = kind.lower()
    arity = {"none": 0, "gaussian": 1, "poisson": 1, "poisson-gaussian": 2}.get(kind)
    if arity is None:
        raise ValueError(f"unknown noise kind {kind!r} in {text!r}; valid: {_NOISE_KINDS}")
    if len(arguments) != arity:
        raise ValueError(f"{text!r}: {kind} takes {arity} parameter(s); valid: {_NOISE_KINDS}")
    values = [_number(a, "the noise parameter", text) for a in arguments]
    if kind == "none":
        return NoNoise()
    if kind == "gaussian":
        return GaussianNoise(values[0])
    if kind == "poisson":
        return PoissonNoise(values[0])
    return PoissonGaussianNoise(values[0], values[1])
