"""Isotropic (vectorial) total variation with an iterative, certified prox."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from learnreg.physics.gradient import FiniteDifference
from learnreg.physics.operator import LinearOperator
from learnreg.regularizers.base import Regularizer, per_sample
from learnreg.regularizers.pointwise import L21Norm


@dataclass
class TVProx:
    """Result of the FGP prox of TV, with its optimality certificate.

    Attributes
    ----------
    x : Tensor, shape (B, C, H, W)
        ``v - tau D^T dual``, the approximate prox.
    dual : Tensor, shape (B, 2C, H, W)
        Dual variable, feasible (``||dual[:, :, i, j]||_2 <= 1`` at every pixel).
    gap : Tensor, shape (B,)
        Duality gap ``tau (TV(x) - <D x, dual>) >= 0``; ``||x - prox|| <= sqrt(2 gap)``.
    iterations : int
        FGP iterations run.
    """

    x: Tensor
    dual: Tensor
    gap: Tensor
    iterations: int


def _project_unit_ball(p: Tensor) -> Tensor:
    """Project every pixel's ``2C``-vector onto the unit Euclidean ball."""
    return p / p.pow(2).sum(1, keepdim=True).sqrt().clamp_min(1.0)


class TotalVariation(Regularizer):
    """Isotropic total variation ``TV(x) = sum_{i,j} sqrt(sum_c dx_c^2 + dy_c^2)``.

    The channels are coupled (vectorial / colour TV): each pixel contributes the
    Euclidean norm of all ``2C`` finite differences of
    :class:`~learnreg.physics.gradient.FiniteDifference`, periodic boundary.

    Parameters
    ----------
    shape : tuple of int
        Per-sample image shape ``(C, H, W)``.
    prox_iterations : int
        Budget of FGP iterations for :meth:`prox`.
    prox_tol : float
        Stop earlier once the duality gap certifies that the root-mean-square distance
        to the exact prox is below ``prox_tol`` for every batch element; ``0`` always
        runs the full budget.
    epsilon : float
        Smoothing of :meth:`grad` (Charbonnier), on the scale of image differences.

    Notes
    -----
    ``prox_{tau TV}(v) = argmin_x tau TV(x) + 1/2 ||x - v||^2`` is computed by the fast
    gradient projection (FGP) of Beck & Teboulle (IEEE TIP 2009) on the dual problem
    ``min_{||p_ij|| <= 1} 1/2 ||v - tau D^T p||^2`` with ``x = v - tau D^T p`` and step
    ``1 / (tau^2 ||D||^2)``. This prox is **approximate** (a finite iteration budget,
    ``prox_is_exact = False``). The duality gap ``tau (TV(x) - <D x, p>)`` bounds
    ``1/2 ||x - prox||^2`` because the primal is 1-strongly convex; :meth:`prox_certified`
    returns it.

    TV is not differentiable; :meth:`grad` is the gradient of the smoothed surrogate
    :meth:`smoothed_value`, ``sum sqrt(|D x|^2 + epsilon^2) - epsilon``, meant only for
    gradient solvers (its Lipschitz constant ``||D||^2 / epsilon`` forces small steps).
    For the exact problem use a proximal solver, best ``SplitADMM`` with :meth:`split`.

    Examples
    --------
    >>> import torch
    >>> tv = TotalVariation((1, 16, 16), prox_iterations=100)
    >>> v = torch.rand(1, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    >>> bool(tv.value(tv.prox(v, 0.1)) < tv.value(v))
    True
    """

    has_value = has_grad = has_prox = True
    prox_is_exact = False

    def __init__(
        self,
        shape: tuple[int, int, int],
        *,
        prox_iterations: int = 50,
        prox_tol: float = 1e-4,
        epsilon: float = 1e-2,
    ):
        if prox_iterations < 1:
            raise ValueError(f"prox_iterations must be >= 1, got {prox_iterations}")
        if prox_tol < 0:
            raise ValueError(f"prox_tol must be >= 0, got {prox_tol}")
        if epsilon <= 0:
            raise ValueError(f"epsilon must be > 0 (the smoothing of grad), got {epsilon}")
        self.operator = FiniteDifference(shape)
        self.prox_iterations = int(prox_iterations)
        self.prox_tol = float(prox_tol)
        self.epsilon = float(epsilon)
        self._norm_squared = self.operator.norm() ** 2

    @property
    def name(self) -> str:
        return f"TotalVariation(approximate prox: FGP, {self.prox_iterations} iterations)"

    @property
    def lipschitz(self) -> float:
        """Lipschitz constant of the smoothed :meth:`grad`, ``||D||^2 / epsilon``."""
        return self._norm_squared / self.epsilon

    def value(self, x: Tensor) -> Tensor:
        """Exact ``TV(x)``, shape ``(B,)``."""
        return L21Norm().value(self.operator(x))

    def smoothed_value(self, x: Tensor) -> Tensor:
        """``sum_{i,j} sqrt(|D x|_{ij}^2 + epsilon^2) - epsilon``, shape ``(B,)``."""
        u = self.operator(x)
        return (u.pow(2).sum(1) + self.epsilon**2).sqrt().sub(self.epsilon).flatten(1).sum(1)

    def grad(self, x: Tensor) -> Tensor:
        """Gradient of :meth:`smoothed_value`: ``D^T (D x / sqrt(|D x|^2 + epsilon^2))``."""
        u = self.operator(x)
        return self.operator.adjoint(u / (u.pow(2).sum(1, keepdim=True) + self.epsilon**2).sqrt())

    def prox(self, v: Tensor, tau: float | Tensor) -> Tensor:
        """Approximate ``prox_{tau TV}(v)`` by FGP (see Notes)."""
        return self.prox_certified(v, tau).x

    def prox_certified(self, v: Tensor, tau: float | Tensor, *, check_every: int = 5) -> TVProx:
        """FGP prox with its dual variable and duality gap.

        Parameters
        ----------
        v : Tensor, shape (B, C, H, W)
        tau : float or Tensor of shape (B,)
            ``>= 0``.
        check_every : int
            Evaluate the duality gap (one extra ``D``) every ``check_every`` iterations.
        """
        D = self.operator
        tau_b = per_sample(tau, v)
        if not isinstance(tau_b, Tensor):
            tau_b = torch.full((v.shape[0], 1, 1, 1), float(tau_b), dtype=v.dtype, device=v.device)
        positive = tau_b > 0
        tau_safe = torch.where(positive, tau_b, torch.ones_like(tau_b))
        step = 1.0 / (tau_safe * self._norm_squared)  # dual gradient step, ascent on -1/2||v - tau D^T p||^2
        samples = v[0].numel()

        def primal(p: Tensor) -> Tensor:
            return v - tau_safe * D.adjoint(p)

        def gap_of(p: Tensor) -> tuple[Tensor, Tensor]:
            x = primal(p)
            u = D(x)
            gap = tau_safe.flatten() * (u.pow(2).sum(1).sqrt().flatten(1).sum(1) - (u * p).flatten(1).sum(1))
            return x, gap.clamp_min(0.0)

        p = torch.zeros((v.shape[0], *D.out_shape), dtype=v.dtype, device=v.device)
        r, t = p, 1.0
        iterations = 0
        for iterations in range(1, self.prox_iterations + 1):
            # Beck & Teboulle (2009), FGP: projected gradient at the extrapolated point r, then momentum.
            p_next = _project_unit_ball(r + step * D(primal(r)))
            t_next = (1.0 + math.sqrt(1.0 + 4.0 * t * t)) / 2.0
            r = p_next + ((t - 1.0) / t_next) * (p_next - p)
            p, t = p_next, t_next
            if self.prox_tol > 0 and iterations % check_every == 0:
                _, gap = gap_of(p)
                if bool((2.0 * gap / samples).sqrt().le(self.prox_tol).all()):
                    break
        x, gap = gap_of(p)
        x = torch.where(positive, x, v)
        gap = torch.where(positive.flatten(), gap, torch.zeros_like(gap))
        return TVProx(x=x, dual=p, gap=gap, iterations=iterations)

    def split(self) -> tuple[LinearOperator, Regularizer]:
        """``(D, phi)`` with ``TV(x) = phi(D x)``, ``phi`` the pixelwise group norm :class:`L21Norm`."""
        return self.operator, L21Norm()
