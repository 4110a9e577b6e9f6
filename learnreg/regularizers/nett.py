"""NETT: a network Tikhonov regularizer ``R(x) = ||Phi(x)||^2`` (Li, Schwab, Antholzer, Haltmeier, 2020).

Two forms, after Gazdieva et al. (VISAPP 2022), who use them for depth super-resolution:

* ``scheme="residual"`` (their scheme 1): ``Phi`` predicts the artifact ``x - F^+ F x`` of an
  approximation and 0 on clean inputs, ``R(x) = ||Phi(x)||^2``;
* ``scheme="identity"`` (scheme 2): ``Phi`` maps an approximation to the ground truth and a
  clean input to itself, ``R(x) = ||Phi(x) - x||^2``.

Either may add ``coercive * ||x||^2`` (the paper's coercivity term). A guided network
(``network.guided``, e.g. :class:`~learnreg.learned.nets.msgnet.UMSGNet`) is called as
``Phi(x, guide)`` with the guide bound here.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from learnreg.regularizers.base import Regularizer

SCHEMES = ("residual", "identity")


class NETT(Regularizer):
    """``R(x) = ||Phi(x)||^2`` or ``||Phi(x) - x||^2`` (+ ``coercive ||x||^2``), summed per sample.

    Parameters
    ----------
    network : nn.Module
        ``Phi``, called as ``network(x)`` or, when ``network.guided`` is true,
        ``network(x, guide)``. It is put in evaluation mode (BatchNorm or dropout would
        otherwise make ``grad R`` depend on the batch); its parameters are not touched.
    scheme : {"residual", "identity"}
        Which form (module docstring).
    coercive : float
        Weight of the added ``||x||^2``, >= 0.
    guide : Tensor, optional, shape (B, C_g, H, W)
        The guide image for a guided network; required exactly when the network is guided.

    Notes
    -----
    ``grad R`` comes from autograd through ``Phi``; no Lipschitz constant is known, so
    gradient solvers need an explicit step. Sums (not means) over pixels keep the
    per-pixel gradient independent of the image size.

    Examples
    --------
    >>> import torch
    >>> from learnreg.learned.nets import NETTUNet, NETTUNetConfig
    >>> R = NETT(NETTUNet(NETTUNetConfig(widths=(4, 8))), scheme="identity")
    >>> R.grad(torch.rand(1, 1, 8, 8)).shape
    torch.Size([1, 1, 8, 8])
    """

    has_value = has_grad = True

    def __init__(self, network: nn.Module, *, scheme: str = "identity", coercive: float = 0.0,
                 guide: Tensor | None = None):
        if scheme not in SCHEMES:
            raise ValueError(f"unknown NETT scheme {scheme!r}; valid: {', '.join(SCHEMES)}")
        if coercive < 0:
            raise ValueError(f"coercive weight must be >= 0, got {coercive}")
        guided = bool(getattr(network, "guided", False))
        if guided and guide is None:
            raise ValueError(f"{type(network).__name__} is a guided network; pass guide= (an RGB image of the "
                             "depth map's size)")
        if not guided and guide is not None:
            raise ValueError(f"{type(network).__name__} takes no guide; drop guide= or use a guided network")
        self.network = network.eval()
        self.scheme = scheme
        self.coercive = float(coercive)
        self.guide = guide

    @property
    def name(self) -> str:
        form = "||Phi(x)||^2" if self.scheme == "residual" else "||Phi(x) - x||^2"
        extra = f" + {self.coercive:g}||x||^2" if self.coercive else ""
        return f"NETT({type(self.network).__name__}: {form}{extra})"

    def phi(self, x: Tensor) -> Tensor:
        """The network's output ``Phi(x)`` (with the bound guide)."""
        if self.guide is None:
            return self.network(x)
        if self.guide.shape[0] != x.shape[0] and self.guide.shape[0] == 1:
            return self.network(x, self.guide.expand(x.shape[0], -1, -1, -1))
        return self.network(x, self.guide)

    def residual(self, x: Tensor) -> Tensor:
        """What is squared: ``Phi(x)`` or ``Phi(x) - x``."""
        out = self.phi(x)
        return out if self.scheme == "residual" else out - x

    def value(self, x: Tensor) -> Tensor:
        total = self.residual(x).flatten(1).pow(2).sum(1)
        if self.coercive:
            total = total + self.coercive * x.flatten(1).pow(2).sum(1)
        return total

    def grad(self, x: Tensor) -> Tensor:
        if x.requires_grad and torch.is_grad_enabled():
            # Inside a differentiable computation: keep the graph (create_graph).
            (gradient,) = torch.autograd.grad(self.value(x).sum(), x, create_graph=True)
            return gradient
        with torch.enable_grad():
            leaf = x.detach().requires_grad_(True)
            (gradient,) = torch.autograd.grad(self.value(leaf).sum(), leaf)
        return gradient
