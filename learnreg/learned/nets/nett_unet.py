"""A small U-Net with leaky ReLUs for NETT regularizers ``R(x) = ||Phi(x)||^2`` (Li et al., 2020).

Architecture, for ``widths = (w0, w1, ..., wK)``::

    level k (k < K):  [conv3x3 -> LeakyReLU] x 2  -> skip_k,  maxpool 2x2
    bottom (k = K):   [conv3x3 -> LeakyReLU] x 2
    back up:          bilinear x2 -> concat(skip_k) -> [conv3x3 -> LeakyReLU] x 2
    head:             conv1x1 -> Phi(x)            (+ x with ``residual=True``)

Why this shape: NETT's convergence theory asks for a *coercive* regularizer, and
Gazdieva et al. (appendix) obtain layer-wise coercivity with leaky ReLUs (injective,
unlike ReLU). Without biases (the default) every layer -- convolutions, leaky ReLU,
max pooling, bilinear upsampling -- is positively homogeneous, so
``Phi(t x) = t Phi(x)`` for ``t > 0`` and ``R(t x) = t^2 R(x)``: ``R`` grows without bound
along every ray where it is not zero. No batch normalisation, so ``grad R`` is a fixed
function of ``x`` (the paper's networks had BatchNorm, a pitfall at test time).

Inputs whose size is not a multiple of ``2^K`` are reflect-padded and cropped back.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from learnreg.config import DictConfig

__all__ = ["NETTUNetConfig", "NETTUNet"]


@dataclass(frozen=True)
class NETTUNetConfig(DictConfig):
    """Shape of a :class:`NETTUNet`; round-trips through :meth:`to_dict` (JSON-safe).

    Attributes
    ----------
    channels : int
        Input and output channels (1 for depth).
    widths : tuple of int
        Features per level, finest first (the paper's U-Net has 5 levels from 64; the
        CPU default ``(16, 32, 64)`` has 0.12 M parameters).
    negative_slope : float
        Slope of the leaky ReLU for negative inputs, in (0, 1).
    residual : bool
        Output ``x + U(x)`` (scheme 2: ``Phi`` is near the identity) instead of ``U(x)``.
    bias : bool
        Biases in the convolutions (off keeps ``Phi`` positively homogeneous).
    """

    channels: int = 1
    widths: tuple[int, ...] = (16, 32, 64)
    negative_slope: float = 0.2
    residual: bool = False
    bias: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "widths", tuple(int(w) for w in self.widths))
        if self.channels < 1 or len(self.widths) < 2 or min(self.widths) < 1:
            raise ValueError(f"NETTUNetConfig: need channels >= 1 and >= 2 positive widths; got "
                             f"channels={self.channels}, widths={self.widths}")
        if not 0.0 < self.negative_slope < 1.0:
            raise ValueError(f"NETTUNetConfig: negative_slope must lie in (0, 1), got {self.negative_slope}")


class _DoubleConv(nn.Sequential):
    def __init__(self, inputs: int, outputs: int, *, slope: float, bias: bool):
        super().__init__(
            nn.Conv2d(inputs, outputs, 3, padding=1, bias=bias), nn.LeakyReLU(slope),
            nn.Conv2d(outputs, outputs, 3, padding=1, bias=bias), nn.LeakyReLU(slope),
        )


class NETTUNet(nn.Module):
    """U-Net ``Phi`` of a NETT regularizer.

    Parameters
    ----------
    config : NETTUNetConfig

    Examples
    --------
    >>> net = NETTUNet(NETTUNetConfig(widths=(4, 8)))
    >>> net(torch.rand(2, 1, 17, 23)).shape
    torch.Size([2, 1, 17, 23])
    """

    guided = False

    def __init__(self, config: NETTUNetConfig):
        super().__init__()
        self.config = config
        slope, bias, widths = config.negative_slope, config.bias, config.widths
        self.down = nn.ModuleList()
        previous = config.channels
        for width in widths[:-1]:
            self.down.append(_DoubleConv(previous, width, slope=slope, bias=bias))
            previous = width
        self.bottom = _DoubleConv(previous, widths[-1], slope=slope, bias=bias)
        self.up = nn.ModuleList(
            _DoubleConv(widths[k + 1] + widths[k], widths[k], slope=slope, bias=bias)
            for k in reversed(range(len(widths) - 1))
        )
        self.head = nn.Conv2d(widths[0], config.channels, 1, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        """``Phi(x)``, same shape as ``x`` (B, C, H, W)."""
        height, width = x.shape[-2:]
        multiple = 2 ** (len(self.config.widths) - 1)
        pad_h, pad_w = -height % multiple, -width % multiple
        h = F.pad(x, (0, pad_w, 0, pad_h), mode="reflect") if pad_h or pad_w else x
        skips = []
        for block in self.down:
            h = block(h)
            skips.append(h)
            h = F.max_pool2d(h, 2)
        h = self.bottom(h)
        for block, skip in zip(self.up, reversed(skips)):
            h = F.interpolate(h, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            h = block(torch.cat([h, skip], dim=1))
        out = self.head(h)[..., :height, :width]
        return x + out if self.config.residual else out
