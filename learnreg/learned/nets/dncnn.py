"""DnCNN: a plain convolutional denoiser with residual learning (Zhang et al., TIP 2017).

Architecture, for ``depth`` layers of ``features`` channels::

    conv3x3 -> ReLU
    (depth - 2) x [conv3x3 -> (BatchNorm) -> ReLU]
    conv3x3                                   -> N(x), the predicted noise
    D(x) = x - N(x)

Batch normalisation is off by default: as a regularizing gradient the network
must be a fixed function of its input, not of the batch statistics. With
``noise_map=True`` the noise level enters as an extra input channel, as in
DRUNet; otherwise ``sigma`` is accepted and ignored (a blind denoiser), so the
call ``D(x, sigma)`` is the same for every denoiser.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from learnreg.learned.nets.drunet import noise_level_map
from learnreg.config import DictConfig

__all__ = ["DnCNNConfig", "DnCNN"]


@dataclass(frozen=True)
class DnCNNConfig(DictConfig):
    """Shape of a DnCNN; round-trips through :meth:`to_dict` (JSON-safe).

    Attributes
    ----------
    channels : int
        Image channels in and out.
    depth : int
        Convolution layers, >= 2 (17 in the paper).
    features : int
        Channels of the hidden layers.
    batch_norm : bool
        Batch normalisation after the hidden convolutions.
    noise_map : bool
        Take ``sigma`` as an extra input channel.
    bias : bool
        Biases in the convolutions (those followed by batch norm never have one).
    """

    channels: int = 3
    depth: int = 17
    features: int = 64
    batch_norm: bool = False
    noise_map: bool = False
    bias: bool = True

    def __post_init__(self) -> None:
        if self.channels < 1 or self.depth < 2 or self.features < 1:
            raise ValueError(f"DnCNNConfig: need channels >= 1, depth >= 2, features >= 1; got "
                             f"{self.channels}, {self.depth}, {self.features}")



class DnCNN(nn.Module):
    """DnCNN denoiser ``D(x, sigma) = x - N(x[, sigma])``.

    Parameters
    ----------
    config : DnCNNConfig

    Examples
    --------
    >>> net = DnCNN(DnCNNConfig(channels=1, depth=5, features=16))
    >>> net(torch.rand(2, 1, 17, 23)).shape
    torch.Size([2, 1, 17, 23])
    """

    def __init__(self, config: DnCNNConfig):
        super().__init__()
        self.config = config
        inputs = config.channels + int(config.noise_map)
        layers: list[nn.Module] = [nn.Conv2d(inputs, config.features, 3, padding=1, bias=config.bias),
                                   nn.ReLU()]
        for _ in range(config.depth - 2):
            layers.append(nn.Conv2d(config.features, config.features, 3, padding=1,
                                    bias=config.bias and not config.batch_norm))
            if config.batch_norm:
                layers.append(nn.BatchNorm2d(config.features))
            layers.append(nn.ReLU())
        layers.append(nn.Conv2d(config.features, config.channels, 3, padding=1, bias=config.bias))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: Tensor, sigma: float | Tensor | None = None) -> Tensor:
        """Denoise ``x``.

        Parameters
        ----------
        x : Tensor, shape (B, C, H, W)
            Noisy images, values nominally in [0, 1]; any H, W.
        sigma : float or Tensor, optional
            Noise std on the [0, 1] scale; required with a noise map, ignored without.

        Returns
        -------
        Tensor, shape (B, C, H, W)
        """
        if x.dim() != 4 or x.shape[1] != self.config.channels:
            raise ValueError(f"DnCNN: x must be (B, {self.config.channels}, H, W), got {tuple(x.shape)}")
        h = x
        if self.config.noise_map:
            if sigma is None:
                raise ValueError("DnCNN: this network takes a noise map; pass sigma "
                                 "(on the [0, 1] scale, e.g. 25/255)")
            h = torch.cat([x, noise_level_map(sigma, x)], dim=1)
        return x - self.layers(h)  # residual learning: the layers predict the noise
