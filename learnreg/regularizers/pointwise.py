"""Separable penalties on a field ``u`` (an image or its gradient) with cheap exact proxes.

They are the ``phi`` of analysis regularizers ``R(x) = phi(L x)`` (see ``split()`` on
:class:`~learnreg.regularizers.tv.TotalVariation` and friends): ADMM-type solvers
apply ``L`` themselves and only need the prox of ``phi``, which here is pointwise.
All accept any shape ``(B, ...)``; values are per batch element, shape ``(B,)``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from learnreg.regularizers.base import Regularizer, per_sample


def _per_batch_sum(t: Tensor) -> Tensor:
    return t.flatten(1).sum(1)


class SquaredNorm(Regularizer):
    """``R(u) = 1/2 ||u||^2``.

    Notes
    -----
    ``grad R(u) = u`` (Lipschitz constant 1) and ``prox_{tau R}(v) = v / (1 + tau)``.
    """

    has_value = has_grad = has_prox = True
    lipschitz = 1.0

    def value(self, x: Tensor) -> Tensor:
        return 0.5 * _per_batch_sum(x.pow(2))

    def grad(self, x: Tensor) -> Tensor:
        return x

    def prox(self, v: Tensor, tau: float | Tensor) -> Tensor:
        return v / (1.0 + per_sample(tau, v))


def group_soft_threshold(v: Tensor, tau: float | Tensor, *, dim: int = 1) -> Tensor:
    """``v * max(0, 1 - tau / ||v||)``, norms taken along ``dim`` (group shrinkage).

    Parameters
    ----------
    v : Tensor, shape (B, K, H, W)
        Groups are the ``K`` entries along ``dim`` at each position.
    tau : float or Tensor of shape (B,)
        Threshold, ``>= 0``.
    """
    tau = per_sample(tau, v)
    norm = v.pow(2).sum(dim, keepdim=True).sqrt()
    # clamp_min avoids 0/0 for zero groups; they stay at zero since the factor is clipped at 0.
    factor = (1.0 - tau / norm.clamp_min(torch.finfo(v.dtype).tiny)).clamp_min(0.0)
    return v * factor


class L21Norm(Regularizer):
    """Mixed norm ``R(u) = sum_positions ||u[:, :, i, j]||_2`` (groups along channels).

    On the gradient field ``u = D x`` of :class:`~learnreg.physics.gradient.FiniteDifference`
    (``2C`` channels) this is the isotropic, colour-coupled (vectorial) total variation.

    Notes
    -----
    ``prox_{tau R}(v) = v * max(0, 1 - tau / ||v||)`` per group (group soft-thresholding),
    exact. Not differentiable at zero groups, so there is no ``grad``.
    """

    has_value = has_prox = True

    def value(self, x: Tensor) -> Tensor:
        return _per_batch_sum(x.pow(2).sum(1).sqrt())

    def prox(self, v: Tensor, tau: float | Tensor) -> Tensor:
        return group_soft_threshold(v, tau, dim=1)


def _prox_half(a: Tensor, tau: Tensor | float) -> Tensor:
    """Largest positive stationary point for ``p = 1/2``: with ``t = s^2``, ``s^3 - a s + tau/2 = 0``."""
    # Three real roots iff 27 tau^2 / 4 < 4 a^3; the largest is the trigonometric root k = 0.
    safe_a = a.clamp_min(torch.finfo(a.dtype).tiny)
    argument = (-(3.0 * tau / (4.0 * safe_a)) * torch.sqrt(3.0 / safe_a)).clamp(-1.0, 1.0)
    s = 2.0 * torch.sqrt(safe_a / 3.0) * torch.cos(torch.arccos(argument) / 3.0)
    exists = 27.0 * tau**2 / 4.0 < 4.0 * a.pow(3)
    return torch.where(exists, s.pow(2), torch.zeros_like(a))


def _prox_two_thirds(a: Tensor, tau: Tensor | float) -> Tensor:
    """Largest positive stationary point for ``p = 2/3`` (Krishnan & Fergus 2009).

    With ``t = s^3`` the stationarity condition is the quartic ``s^4 - a s + b = 0``,
    ``b = 2 tau / 3``. It factors as ``(s^2 + alpha s + beta)(s^2 - alpha s + gamma)`` where
    ``w = alpha^2`` is the positive root of the resolvent cubic ``w^3 - 4 b w - a^2 = 0``;
    the positive roots are those of the second factor, ``s = (alpha +- sqrt(2a/alpha - alpha^2)) / 2``.
    """
    tiny = torch.finfo(a.dtype).tiny
    b = 2.0 * tau / 3.0 + torch.zeros_like(a)
    half_q = a.pow(2) / 2.0  # -Q/2 for the depressed cubic w^3 + P w + Q, P = -4b, Q = -a^2
    discriminant = half_q.pow(2) - (4.0 * b / 3.0).pow(3)
    root = discriminant.clamp_min(0.0).sqrt()
    cardano = torch.sign(half_q + root) * (half_q + root).abs().pow(1 / 3) + torch.sign(half_q - root) * (
        half_q - root
    ).abs().pow(1 / 3)
    safe_b = b.clamp_min(tiny)
    argument = ((3.0 * a.pow(2) / (8.0 * safe_b)) * torch.sqrt(3.0 / (4.0 * safe_b))).clamp(-1.0, 1.0)
    trigonometric = 2.0 * torch.sqrt(4.0 * safe_b / 3.0) * torch.cos(torch.arccos(argument) / 3.0)
    w = torch.where(discriminant >= 0, cardano, trigonometric)
    alpha = w.clamp_min(tiny).sqrt()
    inner = 2.0 * a / alpha - alpha.pow(2)
    s = (alpha + inner.clamp_min(0.0).sqrt()) / 2.0
    exists = (inner >= 0) & (a > 0)
    return torch.where(exists, s.pow(3), torch.zeros_like(a))


def _prox_newton(a: Tensor, tau: Tensor | float, p: float, iterations: int) -> Tensor:
    """Minimiser on ``t >= 0`` of ``tau t^p + 1/2 (t - a)^2`` for ``0 < p < 1``, by Newton.

    The nonzero stationary point beats ``t = 0`` exactly when ``a`` exceeds the threshold
    ``a* = t* + tau p t*^(p-1)`` with ``t* = (2 tau (1 - p))^(1/(2-p))`` (where both the
    stationarity condition and ``E(t) = E(0)`` hold). Above it, the root of
    ``h(t) = t + tau p t^(p-1) - a`` lies in ``[t*, a]``, where ``h`` is convex, increasing and
    ``h' >= 1 - p/2``; Newton from ``t = a`` then decreases monotonically and converges
    quadratically.
    """
    tiny = torch.finfo(a.dtype).tiny
    tau_t = tau + torch.zeros_like(a)
    t_star = (2.0 * tau_t * (1.0 - p)).pow(1.0 / (2.0 - p))
    threshold = t_star + tau_t * p * t_star.clamp_min(tiny).pow(p - 1.0)
    nonzero = a > threshold
    # Where the answer is 0, iterate on a harmless dummy problem (tau = 0, a = 1) and mask it out.
    tau_masked = torch.where(nonzero, tau_t, torch.zeros_like(a))
    target = torch.where(nonzero, a, torch.ones_like(a))
    floor = torch.where(nonzero, t_star, torch.zeros_like(a))
    t = target
    tolerance = 16.0 * torch.finfo(a.dtype).eps  # rounding of h is ~eps * a
    for _ in range(iterations):
        t_power = t.pow(p - 2.0)  # t^(p-2); t^(p-1) = t^(p-2) * t
        h = t + tau_masked * p * t_power * t - target
        slope = 1.0 + tau_masked * p * (p - 1.0) * t_power  # >= 1 - p/2 on [t*, a]
        update = h / slope
        t = torch.maximum(t - update, floor)
        if bool((update.abs() <= tolerance * target).all()):
            break
    return torch.where(nonzero, t, torch.zeros_like(a))


def lp_prox(v: Tensor, tau: float | Tensor, p: float, *, newton_iterations: int = 50) -> Tensor:
    """Elementwise ``argmin_w tau |w|^p + 1/2 (w - v)^2`` for ``0 < p <= 1``.

    Parameters
    ----------
    v : Tensor, shape (B, ...)
    tau : float or Tensor of shape (B,)
        ``>= 0``.
    p : float
        Exponent in ``(0, 1]``.
    newton_iterations : int
        Cap on Newton iterations for exponents without a closed form.

    Notes
    -----
    ``p = 1`` is soft-thresholding. For ``p < 1`` the problem is nonconvex: the minimiser is
    ``0`` or the largest positive stationary point ``t`` of ``tau p t^(p-1) + t = |v|``,
    whichever has the lower energy. ``t`` has a closed form for ``p = 1/2`` (a cubic) and
    ``p = 2/3`` (a quartic, Krishnan & Fergus, NeurIPS 2009); other exponents use Newton's
    method from ``t = |v|``, monotone and quadratically convergent above the threshold
    where the nonzero branch wins (see ``_prox_newton``); below it the answer is 0.
    """
    if not 0.0 < p <= 1.0:
        raise ValueError(f"lp_prox needs 0 < p <= 1, got p={p}")
    tau = per_sample(tau, v)
    if p == 1.0:
        return torch.sign(v) * (v.abs() - tau).clamp_min(0.0)
    a = v.abs()
    if math.isclose(p, 0.5):
        t = _prox_half(a, tau)
    elif math.isclose(p, 2.0 / 3.0):
        t = _prox_two_thirds(a, tau)
    else:
        t = _prox_newton(a, tau, p, newton_iterations)
    energy_t = tau * t.pow(p) + 0.5 * (t - a).pow(2)
    t = torch.where(energy_t < 0.5 * a.pow(2), t, torch.zeros_like(a))
    return torch.sign(v) * t


class LpNorm(Regularizer):
    """``R(u) = sum |u|^p`` elementwise, ``0 < p <= 1`` (``p < 1``: nonconvex, sparsity promoting).

    Parameters
    ----------
    p : float
        Exponent in ``(0, 1]``.

    Notes
    -----
    ``prox_{tau R}`` is separable and computed exactly by :func:`lp_prox` (a global
    minimiser even though ``R`` is nonconvex for ``p < 1``).
    """

    has_value = has_prox = True

    def __init__(self, p: float):
        if not 0.0 < p <= 1.0:
            raise ValueError(f"LpNorm needs 0 < p <= 1, got p={p}")
        self.p = float(p)

    @property
    def name(self) -> str:
        return f"LpNorm(p={self.p:g})"

    def value(self, x: Tensor) -> Tensor:
        return _per_batch_sum(x.abs().pow(self.p))

    def prox(self, v: Tensor, tau: float | Tensor) -> Tensor:
        return lp_prox(v, tau, self.p)
