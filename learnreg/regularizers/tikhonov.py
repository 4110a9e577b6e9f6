"""Tikhonov regularization ``R(x) = 1/2 ||L x||^2``, with ``L`` the identity or the image gradient."""

from __future__ import annotations

import torch
from torch import Tensor

from learnreg.physics.gradient import FiniteDifference
from learnreg.physics.operator import LinearOperator, conjugate_gradient
from learnreg.regularizers.base import CapabilityError, Regularizer, per_sample
from learnreg.regularizers.pointwise import SquaredNorm


class Tikhonov(Regularizer):
    """Quadratic prior ``R(x) = 1/2 ||L x||^2``.

    Parameters
    ----------
    operator : LinearOperator, optional
        ``L``; the identity when omitted (``R(x) = 1/2 ||x||^2``). Use
        :meth:`Tikhonov.gradient` for ``L = D``, periodic finite differences
        (``R(x) = 1/2 ||grad x||^2``, the Sobolev/H1 prior).

    Notes
    -----
    ``grad R(x) = L^T L x`` with Lipschitz constant ``||L||^2`` (:attr:`lipschitz`).
    ``prox_{tau R}(v) = (I + tau L^T L)^{-1} v``: ``v / (1 + tau)`` for the identity, one
    FFT pair when ``L`` is circulant (``L.normal_fourier()`` is not ``None``, as for
    :class:`~learnreg.physics.gradient.FiniteDifference`), conjugate gradients otherwise.

    Examples
    --------
    >>> import torch
    >>> prior = Tikhonov.gradient((1, 8, 8))
    >>> prior.prox(torch.ones(1, 1, 8, 8), 3.0).sub(1).abs().max().item() < 1e-6  # constants pass
    True
    """

    has_value = has_grad = has_prox = True

    def __init__(self, *, operator: LinearOperator | None = None):
        if operator is not None and not isinstance(operator, LinearOperator):
            raise TypeError(f"Tikhonov needs a LinearOperator, got {type(operator).__name__}")
        self.operator = operator
        self._eigenvalues = None if operator is None else operator.normal_fourier()
        self.prox_is_exact = operator is None or self._eigenvalues is not None

    @classmethod
    def gradient(cls, shape: tuple[int, int, int]) -> "Tikhonov":
        """``R(x) = 1/2 ||D x||^2`` with periodic finite differences on images of shape ``(C, H, W)``."""
        return cls(operator=FiniteDifference(shape))

    @property
    def name(self) -> str:
        if self.operator is None:
            return "Tikhonov"
        suffix = "" if self.prox_is_exact else ", approximate prox: conjugate gradients"
        return f"Tikhonov(L={self.operator.name}{suffix})"

    @property
    def lipschitz(self) -> float:
        """Lipschitz constant of :meth:`grad`, ``||L||^2``."""
        return 1.0 if self.operator is None else self.operator.norm() ** 2

    def value(self, x: Tensor) -> Tensor:
        field = x if self.operator is None else self.operator(x)
        return 0.5 * field.flatten(1).pow(2).sum(1)

    def grad(self, x: Tensor) -> Tensor:
        return x if self.operator is None else self.operator.adjoint(self.operator(x))

    def prox(self, v: Tensor, tau: float | Tensor) -> Tensor:
        tau = per_sample(tau, v)
        if self.operator is None:
            return v / (1.0 + tau)
        if self._eigenvalues is not None:
            denominator = 1.0 + tau * self._eigenvalues.to(v.dtype)  # (B or 1, 1 or C, H, W // 2 + 1)
            return torch.fft.irfft2(torch.fft.rfft2(v) / denominator, s=v.shape[-2:])
        operator = self.operator
        return conjugate_gradient(lambda x: x + tau * operator.normal(x), v, x0=v, max_iter=500, tol=1e-10)

    def split(self) -> tuple[LinearOperator, Regularizer]:
        """``(L, phi)`` with ``R(x) = phi(L x)`` and ``phi = 1/2 ||.||^2`` (:class:`SquaredNorm`)."""
        if self.operator is None:
            raise CapabilityError(
                "Tikhonov with the identity has a closed-form prox, so split() is not needed; "
                "use its prox directly, or build Tikhonov(operator=Identity(shape)) to split"
            )
        return self.operator, SquaredNorm()
