"""U-MSG-Net: a guided depth network in the spirit of MSG-Net (Hui et al., ECCV 2016).

Gazdieva et al. (section 4.2, Fig. 12) use a U-Net-shaped MSG-Net as the NETT map ``Phi``:
it sees the *high-frequency* parts of the depth map and of the guide's intensity, fuses
guide features at several scales, and adds its output to the input (input-output skip),
so ``Phi`` starts near the identity (scheme 2, ``R(x) = ||Phi(x, g) - x||^2``). The exact
layout of the paper's network is not published; this one keeps its ingredients::

    low-pass   L = gaussian blur (std ``lowpass_sigma``)
    depth      d_h = x - L x                  guide  y_h = (Y - L Y) / (std(Y - L Y) + eps)
    guide branch:  conv -> PReLU at full res, then [strided conv -> PReLU] per coarser level
    depth branch:  conv -> PReLU, [strided conv -> PReLU] per level     (encoder)
                   per level, coarse to fine: transposed conv up, concat(depth skip,
                   guide features), [conv -> PReLU] x 2                   (decoder + fusion)
    output:        x + conv3x3(features)

``Y`` is the luminance of the RGB guide (0.299 R + 0.587 G + 0.114 B). Convolutions have
no biases, so for a fixed guide the network is positively homogeneous in the depth
branch's inputs. Sizes not divisible by ``2^(levels-1)`` are reflect-padded and cropped.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from learnreg.config import DictConfig
from learnreg.physics.kernels import gaussian_lowpass

__all__ = ["UMSGNetConfig", "UMSGNet", "gaussian_lowpass", "luminance"]


@dataclass(frozen=True)
class UMSGNetConfig(DictConfig):
    """Shape of a :class:`UMSGNet`; round-trips through :meth:`to_dict` (JSON-safe).

    Attributes
    ----------
    width : int
        Features at every level (32 gives ~0.15 M parameters with 3 levels).
    levels : int
        Scales, >= 2 (full, 1/2, 1/4 for 3).
    lowpass_sigma : float
        Std of the Gaussian that separates low from high frequencies, in pixels.
    guide_channels : int
        Channels of the guide (3 for RGB, 1 for an intensity image).
    """

    width: int = 32
    levels: int = 3
    lowpass_sigma: float = 2.0
    guide_channels: int = 3

    def __post_init__(self) -> None:
        if self.width < 1 or self.levels < 2 or self.lowpass_sigma <= 0 or self.guide_channels not in (1, 3):
            raise ValueError(f"UMSGNetConfig: need width >= 1, levels >= 2, lowpass_sigma > 0, "
                             f"guide_channels 1 or 3; got {self}")


def luminance(guide: Tensor) -> Tensor:
    """Intensity ``(B, 1, H, W)`` of a guide ``(B, 3, H, W)`` (ITU-R 601 weights) or itself if gray."""
    if guide.shape[1] == 1:
        return guide
    weights = guide.new_tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    return (guide * weights).sum(1, keepdim=True)


def _conv(inputs: int, outputs: int, *, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(inputs, outputs, 3, stride=stride, padding=1, bias=False)


class UMSGNet(nn.Module):
    """Guided map ``Phi(x, guide)`` for depth NETT regularizers.

    Parameters
    ----------
    config : UMSGNetConfig

    Examples
    --------
    >>> net = UMSGNet(UMSGNetConfig(width=8))
    >>> net(torch.rand(2, 1, 20, 28), torch.rand(2, 3, 20, 28)).shape
    torch.Size([2, 1, 20, 28])
    """

    guided = True

    def __init__(self, config: UMSGNetConfig):
        super().__init__()
        self.config = config
        width, levels = config.width, config.levels
        self.guide_in = nn.Sequential(_conv(1, width), nn.PReLU(width))
        self.guide_down = nn.ModuleList(nn.Sequential(_conv(width, width, stride=2), nn.PReLU(width))
                                        for _ in range(levels - 1))
        self.depth_in = nn.Sequential(_conv(1, width), nn.PReLU(width))
        self.depth_down = nn.ModuleList(nn.Sequential(_conv(width, width, stride=2), nn.PReLU(width))
                                        for _ in range(levels - 1))
        self.bottom = nn.Sequential(_conv(2 * width, width), nn.PReLU(width))
        self.up = nn.ModuleList(nn.ConvTranspose2d(width, width, 2, stride=2, bias=False)
                                for _ in range(levels - 1))
        self.fuse = nn.ModuleList(
            nn.Sequential(_conv(3 * width, width), nn.PReLU(width), _conv(width, width), nn.PReLU(width))
            for _ in range(levels - 1)
        )
        self.head = _conv(width, 1)

    def high_pass(self, x: Tensor, guide: Tensor) -> tuple[Tensor, Tensor]:
        """High-frequency parts: ``x - L x`` and the normalised ``Y - L Y`` of the guide."""
        intensity = luminance(guide)
        guide_high = intensity - gaussian_lowpass(intensity, self.config.lowpass_sigma)
        scale = guide_high.flatten(1).std(dim=1).view(-1, 1, 1, 1) + 1e-3
        return x - gaussian_lowpass(x, self.config.lowpass_sigma), guide_high / scale

    def forward(self, x: Tensor, guide: Tensor) -> Tensor:
        """``Phi(x, guide)``: ``x`` (B, 1, H, W) depth, ``guide`` (B, C_g, H, W); returns (B, 1, H, W)."""
        if guide.shape[0] != x.shape[0] or guide.shape[-2:] != x.shape[-2:]:
            raise ValueError(f"UMSGNet: guide of shape {tuple(guide.shape)} does not match depth of shape "
                             f"{tuple(x.shape)}; pass a guide with the depth map's batch and size")
        if guide.shape[1] != self.config.guide_channels:
            raise ValueError(f"UMSGNet: guide has {guide.shape[1]} channels, the network expects "
                             f"{self.config.guide_channels}")
        height, width = x.shape[-2:]
        multiple = 2 ** (self.config.levels - 1)
        pad = (0, -width % multiple, 0, -height % multiple)
        depth_high, guide_high = self.high_pass(x, guide)
        if any(pad):
            depth_high, guide_high = F.pad(depth_high, pad, mode="reflect"), F.pad(guide_high, pad, mode="reflect")
        guide_features = [self.guide_in(guide_high)]
        for block in self.guide_down:
            guide_features.append(block(guide_features[-1]))
        depth_features = [self.depth_in(depth_high)]
        for block in self.depth_down:
            depth_features.append(block(depth_features[-1]))
        h = self.bottom(torch.cat([depth_features[-1], guide_features[-1]], dim=1))
        for k, (up, fuse) in enumerate(zip(self.up, self.fuse)):
            level = self.config.levels - 2 - k
            h = up(h)
            h = fuse(torch.cat([h, depth_features[level], guide_features[level]], dim=1))
        return x + self.head(h)[..., :height, :width]
