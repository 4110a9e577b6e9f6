"""A regularizer pair: a denoiser ``P(x, sigma)`` and a regularizing gradient ``G(x)``, trained and shipped as one.

pnpReG (Fermanian et al., SIIMS 2023) and the regularizing-gradient objectives of
Willingham et al. (VISAPP 2024; RG1, RERG) train two DRUNets together, linked by
``sigma^2 G(P(z)) ~= z - P(z)`` (eq. 6-7 of the latter):

* ``denoiser``: a DRUNet *with* noise map, ``P(x, sigma)``, the prox of ``sigma^2 R``;
* ``gradient``: a DRUNet *without* noise map, ``G(x) ~= grad R(x)``.

Keeping both in one module lets one recipe train them, one weights file ship them
(``architecture: rg_pair``) and one checkpoint resume them. At test time the gradient
runs in gradient descent (``rg-gd``), the denoiser in plug-and-play (``pnp-*``, ``rg-fb``).

Examples
--------
>>> import torch
>>> pair = RegularizerPair(RegularizerPairConfig.from_dict({
...     "denoiser": {"channels": 1, "widths": [4, 8], "blocks": 1},
...     "gradient": {"channels": 1, "widths": [4, 8], "blocks": 1}}))
>>> x = torch.rand(2, 1, 12, 12)
>>> pair(x, 0.1).shape, pair.gradient(x).shape
(torch.Size([2, 1, 12, 12]), torch.Size([2, 1, 12, 12]))
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from torch import Tensor, nn

from learnreg.config import DictConfig
from learnreg.learned.nets.drunet import DRUNet, DRUNetConfig

__all__ = ["RegularizerPairConfig", "RegularizerPair"]


def _drunet_config(value: Any, *, role: str, noise_map: bool) -> DRUNetConfig:
    """``value`` (a DRUNetConfig or its dict) as a DRUNetConfig with the noise map ``role`` needs."""
    if isinstance(value, DRUNetConfig):
        config = value
    elif isinstance(value, dict):
        data = {"noise_map": noise_map, **value}
        try:
            config = DRUNetConfig.from_dict(data)
        except (TypeError, ValueError) as error:
            raise ValueError(f"RegularizerPairConfig.{role}: {error}") from None
    else:
        raise ValueError(f"RegularizerPairConfig.{role}: expected a DRUNet config dict "
                         f"(channels, widths, blocks), got {type(value).__name__}")
    if config.noise_map != noise_map:
        what = "a denoiser P(x, sigma) takes a noise map" if noise_map else "a gradient G(x) takes no noise map"
        raise ValueError(f"RegularizerPairConfig.{role}: {what}; set noise_map: {str(noise_map).lower()} "
                         "(or leave it out)")
    return config


@dataclass(frozen=True)
class RegularizerPairConfig(DictConfig):
    """Shapes of the two DRUNets of a :class:`RegularizerPair`; round-trips through :meth:`to_dict`.

    Attributes
    ----------
    denoiser : DRUNetConfig
        ``P(x, sigma)``; ``noise_map`` must be true (the default here).
    gradient : DRUNetConfig
        ``G(x)``; ``noise_map`` must be false (the default here).

    Both may be given as dicts of :class:`~learnreg.learned.nets.DRUNetConfig` fields;
    their ``channels`` must agree.
    """

    denoiser: DRUNetConfig
    gradient: DRUNetConfig

    def __post_init__(self) -> None:
        object.__setattr__(self, "denoiser", _drunet_config(self.denoiser, role="denoiser", noise_map=True))
        object.__setattr__(self, "gradient", _drunet_config(self.gradient, role="gradient", noise_map=False))
        if self.denoiser.channels != self.gradient.channels:
            raise ValueError(f"RegularizerPairConfig: the denoiser has {self.denoiser.channels} channels and the "
                             f"gradient {self.gradient.channels}; give both the image's channel count")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RegularizerPairConfig":
        """Build from :meth:`to_dict` output; unknown or missing keys raise ``ValueError``."""
        missing = [name for name in ("denoiser", "gradient") if name not in data]
        if missing:
            raise ValueError(f"RegularizerPairConfig: missing {missing}; give both as DRUNet config dicts, "
                             'e.g. {"denoiser": {"widths": [16, 32, 64, 128], "blocks": 1}, "gradient": {...}}')
        return super().from_dict(data)

    @property
    def channels(self) -> int:
        """Image channels of both networks."""
        return self.denoiser.channels

    def to_dict(self) -> dict[str, Any]:
        """``{"denoiser": {...}, "gradient": {...}}``, JSON-safe."""
        return {field.name: getattr(self, field.name).to_dict() for field in fields(self)}


class RegularizerPair(nn.Module):
    """A denoiser ``P(x, sigma)`` and a regularizing gradient ``G(x)``, two DRUNets in one module.

    Parameters
    ----------
    config : RegularizerPairConfig

    Attributes
    ----------
    denoiser : DRUNet
        ``P``, with noise map: ``pair.denoiser(x, sigma)``.
    gradient : DRUNet
        ``G``, without noise map: ``pair.gradient(x)``.

    Notes
    -----
    ``forward(x, sigma)`` is the denoiser, so a pair serves wherever a denoiser
    ``D(x, sigma)`` is expected (plug-and-play, denoising validation); call
    ``pair.gradient`` explicitly for ``G``. The state dict holds ``denoiser.*`` and
    ``gradient.*``, so either half of a shipped pair loads into a lone DRUNet.
    """

    def __init__(self, config: RegularizerPairConfig):
        super().__init__()
        self.config = config
        self.denoiser = DRUNet(config.denoiser)
        self.gradient = DRUNet(config.gradient)

    def forward(self, x: Tensor, sigma: float | Tensor | None = None) -> Tensor:
        """The denoiser ``P(x, sigma)``.

        Parameters
        ----------
        x : Tensor, shape (B, C, H, W)
            Noisy images, values nominally in [0, 1].
        sigma : float or Tensor
            Noise std on the [0, 1] scale: a float, a ``(B,)`` tensor or a per-pixel map
            (see :func:`~learnreg.learned.nets.drunet.noise_level_map`).

        Returns
        -------
        Tensor, shape (B, C, H, W)
        """
        return self.denoiser(x, sigma)

