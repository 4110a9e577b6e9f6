"""Hyper-Laplacian prior ``R(x) = sum |D x|^p``, ``0 < p <= 1`` (Krishnan & Fergus, NeurIPS 2009)."""

from __future__ import annotations

from torch import Tensor

from learnreg.physics.gradient import FiniteDifference
from learnreg.physics.operator import LinearOperator
from learnreg.regularizers.base import Regularizer
from learnreg.regularizers.pointwise import LpNorm


class HyperLaplacian(Regularizer):
    """Sparse-gradient prior ``R(x) = sum_k |(D x)_k|^p`` over all ``2C`` difference channels.

    Parameters
    ----------
    shape : tuple of int
        Per-sample image shape ``(C, H, W)``.
    p : float
        Exponent in ``(0, 1]``; natural images favour ``0.5 <= p <= 0.8``. ``p = 1`` is
        anisotropic total variation. ``p < 1`` makes the prior nonconvex.
    epsilon : float
        Smoothing of :meth:`grad`, on the scale of image differences.

    Notes
    -----
    Each difference is penalised on its own (anisotropic), as in Krishnan & Fergus.
    There is no prox of ``R`` itself; :meth:`split` returns ``(D, LpNorm(p))`` whose
    elementwise prox is exact (closed forms for ``p = 1/2`` and ``2/3``), the
    half-quadratic / ADMM route of the paper. :meth:`grad` differentiates the smoothed
    surrogate :meth:`smoothed_value`, ``sum (u^2 + epsilon^2)^(p/2) - epsilon^p`` with
    ``u = D x``, for gradient solvers only; its Lipschitz constant is
    ``||D||^2 p epsilon^(p-2)``.

    Examples
    --------
    >>> import torch
    >>> prior = HyperLaplacian((1, 8, 8), p=0.5)
    >>> prior.value(torch.ones(1, 1, 8, 8)).item()
    0.0
    """

    has_value = has_grad = True

    def __init__(self, shape: tuple[int, int, int], p: float = 0.8, *, epsilon: float = 1e-2):
        if not 0.0 < p <= 1.0:
            raise ValueError(f"HyperLaplacian needs 0 < p <= 1, got p={p}")
        if epsilon <= 0:
            raise ValueError(f"epsilon must be > 0 (the smoothing of grad), got {epsilon}")
        self.operator = FiniteDifference(shape)
        self.p = float(p)
        self.epsilon = float(epsilon)

    @property
    def name(self) -> str:
        return f"HyperLaplacian(p={self.p:g})"

    @property
    def lipschitz(self) -> float:
        """Lipschitz constant of the smoothed :meth:`grad`."""
        return self.operator.norm() ** 2 * self.p * self.epsilon ** (self.p - 2.0)

    def value(self, x: Tensor) -> Tensor:
        """Exact ``sum |D x|^p``, shape ``(B,)``."""
        return self.operator(x).abs().pow(self.p).flatten(1).sum(1)

    def smoothed_value(self, x: Tensor) -> Tensor:
        """``sum (|D x|^2 + epsilon^2)^(p/2) - epsilon^p``, shape ``(B,)``."""
        u = self.operator(x)
        return (u.pow(2) + self.epsilon**2).pow(self.p / 2).sub(self.epsilon**self.p).flatten(1).sum(1)

    def grad(self, x: Tensor) -> Tensor:
        """Gradient of :meth:`smoothed_value`: ``D^T (p u (u^2 + epsilon^2)^(p/2 - 1))``."""
        u = self.operator(x)
        return self.operator.adjoint(self.p * u * (u.pow(2) + self.epsilon**2).pow(self.p / 2 - 1.0))

    def split(self) -> tuple[LinearOperator, Regularizer]:
        """``(D, LpNorm(p))`` with ``R(x) = LpNorm(p)(D x)``."""
        return self.operator, LpNorm(self.p)
