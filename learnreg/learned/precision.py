"""Network calls in bfloat16: the same denoiser, 2.2-2.6x faster on CPUs with AVX-512 BF16.

:func:`reduced_precision` wraps a network ``D(x, sigma)`` so that its convolutions run under
:func:`torch.autocast` in bfloat16 (the precision the shipped denoisers were trained in) while
the caller keeps float32 tensors. The input is rounded to bfloat16 first, and the network sees
that rounded image also on its global-residual path (``x + h(x)``): otherwise the output would be
``x + h(round(x))``, which carries the rounding error ``x - round(x)`` (up to 2^-9 relative,
about 0.001 RMS on [0, 1] images) straight through, since ``h`` cannot see it. That error cost
0.1 dB on the smooth ``clock`` image at sigma = 15/255; with the rounded input the mean over the
gray development images at sigma = 15/255 moved by -0.002 dB (drunet-gray-wide, one call), +0.002 dB
(the same, 8-fold self-ensemble) and -0.007 dB (drunet-gray-wide-ft, 4-fold) against float32
(README, docs/benchmarks/denoising.md).

Without hardware bfloat16 (no AVX-512 BF16 / AMX on the CPU) autocast still works but is
emulated and slower than float32: :func:`bfloat16_fast` tells which.
"""

from __future__ import annotations

import functools
import logging
from typing import Callable

import torch
from torch import Tensor

__all__ = ["PRECISIONS", "ReducedPrecision", "bfloat16_fast", "reduced_precision"]

logger = logging.getLogger(__name__)

Denoiser = Callable[[Tensor, "float | Tensor"], Tensor]

PRECISIONS: tuple[str, ...] = ("float32", "bfloat16")


@functools.lru_cache(maxsize=None)
def bfloat16_fast(device_type: str = "cpu") -> bool:
    """Whether ``device_type`` runs bfloat16 convolutions natively (CUDA with bf16, or a CPU with AVX-512 BF16)."""
    if device_type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device_type != "cpu":
        return False
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # private oneDNN query; absent in some builds
        return False


class ReducedPrecision:
    """``D(x, sigma)`` computed in bfloat16 autocast on the bfloat16-rounded ``x``; the output has ``x``'s dtype.

    Build it with :func:`reduced_precision`. ``network`` is the wrapped callable. The first call on a
    device without native bfloat16 (:func:`bfloat16_fast`) logs a warning: there it is slower than float32.
    """

    def __init__(self, network: Denoiser):
        if not callable(network):
            raise TypeError(f"reduced_precision needs a callable network(x, sigma), got {type(network).__name__}")
        self.network = network
        self._checked = False

    def __repr__(self) -> str:
        return f"ReducedPrecision({type(self.network).__name__}, bfloat16)"

    def __call__(self, x: Tensor, sigma: float | Tensor) -> Tensor:
        if not self._checked:
            self._checked = True
            if not bfloat16_fast(x.device.type):
                logger.warning("precision=bfloat16: this %s has no native bfloat16 convolutions, so they are "
                               "emulated and slower than float32; use precision=float32 here", x.device.type)
        rounded = x.to(torch.bfloat16).to(x.dtype)  # what the first convolution would see anyway
        with torch.autocast(x.device.type, dtype=torch.bfloat16):
            out = self.network(rounded, sigma)
        return out.to(x.dtype)


def reduced_precision(network: Denoiser, precision: str = "bfloat16") -> Denoiser:
    """``network`` run at ``precision``: ``"float32"`` returns it unchanged, ``"bfloat16"`` wraps it.

    Raises
    ------
    ValueError
        An unknown precision (the message lists the valid ones).
    """
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; valid: {', '.join(PRECISIONS)}")
    return network if precision == "float32" else ReducedPrecision(network)
