"""Accelerated gradient methods for ``F = f + g`` where ``g`` may offer only a gradient.

A learned regularizing gradient (:class:`~learnreg.regularizers.RegularizingGradient`) has
neither value nor prox, so proximal methods and line searches are out; what remains is
the gradient step ``T(x) = x - eta (grad f(x) + grad g(x))``, which this module speeds up
in two ways:

* :class:`Nesterov`: Nesterov's accelerated gradient with adaptive restart
  (O'Donoghue & Candes, Found. Comput. Math. 2015), ``O(sqrt(kappa))`` iterations instead of
  gradient descent's ``O(kappa)`` on a ``kappa``-conditioned problem;
* :func:`gradient_step_map`: ``T`` as a plain map, to be run under
  :class:`~learnreg.solvers.FixedPoint` with Anderson acceleration.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor

from learnreg.regularizers.base import Regularizer
from learnreg.solvers.base import Solver, State
from learnreg.solvers.terms import lipschitz_constant, objective_value, per_sample_value, require

RESTARTS = ("gradient", "function", "none")

_SHAPE = (-1, 1, 1, 1)  # (B,) -> (B, 1, 1, 1)


def _gradient(x: Tensor, f: Regularizer, g: Regularizer | None) -> Tensor:
    return f.grad(x) if g is None else f.grad(x) + g.grad(x)


def _step_size(f: Regularizer, g: Regularizer | None, step: float | None, g_lipschitz: float | None,
               solver: str) -> float:
    """``step``, or ``1 / (L_f + L_g)`` from the declared constants (``L_g = g_lipschitz`` if given)."""
    if step is None:
        lipschitz_f = lipschitz_constant(f)
        lipschitz_g = lipschitz_constant(g) if g_lipschitz is None else float(g_lipschitz)
        if lipschitz_f is None or lipschitz_g is None or lipschitz_f + lipschitz_g <= 0:
            unknown = f.name if lipschitz_f is None else ("" if g is None else g.name)
            raise ValueError(f"{solver}: no Lipschitz constant is known for {unknown}; pass step=, or "
                             "g_lipschitz= (a bound on the Lipschitz constant of g's gradient)")
        step = 1.0 / (lipschitz_f + lipschitz_g)
    if not step > 0:
        raise ValueError(f"{solver}: step must be > 0, got {step}")
    return float(step)


def gradient_step_map(f: Regularizer, g: Regularizer | None = None, *, step: float | None = None,
                      g_lipschitz: float | None = None) -> Callable[[Tensor], Tensor]:
    """The gradient step ``T(x) = x - eta (grad f(x) + grad g(x))`` as a map, for :class:`FixedPoint`.

    Parameters
    ----------
    f, g : Regularizer
        Terms with ``grad`` (``g`` optional), e.g. ``L2Data`` and a weighted
        :class:`~learnreg.regularizers.RegularizingGradient`.
    step : float, optional
        ``eta``; default ``1 / (L_f + L_g)`` as in :class:`Nesterov`.
    g_lipschitz : float, optional
        Lipschitz bound of ``grad g`` when ``g`` declares none.

    Returns
    -------
    callable
        ``(B, C, H, W) -> (B, C, H, W)``, out-of-place and differentiable.

    Notes
    -----
    The fixed points of ``T`` are the stationary points of ``f + g``; for a strongly convex
    ``F`` and ``eta <= 1 / L`` it is a contraction, and Anderson acceleration on it behaves
    like a Krylov method (GMRES on the linear case).

    Examples
    --------
    >>> from learnreg.regularizers import SquaredNorm
    >>> from learnreg.solvers import FixedPoint
    >>> T = gradient_step_map(SquaredNorm(), step=0.5)
    >>> x, history = FixedPoint(T, anderson=5).run(torch.ones(1, 1, 2, 2))
    >>> float(x.abs().max()) < 1e-6
    True
    """
    require(f, "grad", "gradient_step_map")
    if g is not None:
        require(g, "grad", "gradient_step_map")
    eta = _step_size(f, g, step, g_lipschitz, "gradient_step_map")

    def gradient_step(x: Tensor) -> Tensor:
        return x - eta * _gradient(x, f, g)

    return gradient_step


@dataclass
class NesterovState(State):
    """``x_k``, the extrapolated point ``y_k``, the momentum ``t_k`` and restart count per sample (``(B,)``),
    and ``F(x_k)`` per sample (function restart only)."""

    extrapolated: Tensor | None = None
    momentum: Tensor | None = None
    restarts: Tensor | None = None
    value: Tensor | None = None


class Nesterov(Solver):
    """Nesterov's accelerated gradient on ``F = f + g`` with adaptive restart.

    Parameters
    ----------
    f : Regularizer
        Smooth term with ``grad`` (usually :class:`~learnreg.regularizers.L2Data`).
    g : Regularizer, optional
        Second term with ``grad``, already weighted; a learned gradient field is fine.
    step : float, optional
        Step ``eta``. Default ``1 / (L_f + L_g)`` with ``L_f`` declared by ``f``
        (``||A||^2`` for ``L2Data``) and ``L_g`` declared by ``g`` or given as ``g_lipschitz``.
    g_lipschitz : float, optional
        Lipschitz bound of ``grad g`` where ``g`` declares none (a learned gradient).
    restart : {"gradient", "function", "none"}
        Adaptive restart per sample. ``"gradient"``: when ``<grad F(y_k), x_{k+1} - x_k> > 0``
        (the step goes uphill; free, needs only gradients). ``"function"``: when
        ``F(x_{k+1}) > F(x_k)`` (needs ``value`` of both terms). ``"none"``: plain Nesterov.

    Notes
    -----
    One iteration, with ``t_0 = 1`` and ``y_0 = x_0``::

        x_{k+1} = y_k - eta grad F(y_k)
        t_{k+1} = (1 + sqrt(1 + 4 t_k^2)) / 2
        y_{k+1} = x_{k+1} + (t_k - 1) / t_{k+1} (x_{k+1} - x_k)

    and on a restart ``t_{k+1} = 1``, ``y_{k+1} = x_{k+1}``. For convex ``F`` with
    ``L``-Lipschitz gradient and ``0 < eta <= 1 / L``, ``F(x_k) - F* = O(1 / k^2)``; with
    restart, an ``mu``-strongly convex ``F`` converges linearly at the optimal rate
    ``1 - sqrt(mu / L)`` without knowing ``mu`` (O'Donoghue & Candes, 2015). For a
    learned ``G`` none of this is guaranteed; the gradient restart still damps the
    oscillations that momentum causes.

    Examples
    --------
    >>> from learnreg.regularizers import SquaredNorm
    >>> x, history = Nesterov(SquaredNorm(), step=0.5).run(torch.ones(1, 1, 2, 2))
    >>> history.status
    'converged'
    """

    def __init__(self, f: Regularizer, g: Regularizer | None = None, *, step: float | None = None,
                 g_lipschitz: float | None = None, restart: str = "gradient"):
        if restart not in RESTARTS:
            raise ValueError(f"unknown restart {restart!r}; valid: {', '.join(RESTARTS)}")
        for term in (f, g):
            if term is not None:
                require(term, "grad", type(self).__name__)
                if restart == "function":
                    require(term, "value", f"{type(self).__name__}(restart='function')")
        self.f, self.g = f, g
        self.restart = restart
        self.step_size = _step_size(f, g, step, g_lipschitz, type(self).__name__)

    @property
    def name(self) -> str:
        return f"Nesterov(restart={self.restart})"

    def init_state(self, x0: Tensor) -> NesterovState:
        batch = x0.shape[0]
        value = per_sample_value(x0, self.f, self.g) if self.restart == "function" else None
        return NesterovState(
            x=x0, extrapolated=x0, momentum=x0.new_ones(batch),
            restarts=torch.zeros(batch, dtype=torch.long, device=x0.device), value=value,
        )

    def step(self, state: NesterovState) -> NesterovState:
        x, y, t = state.x, state.extrapolated, state.momentum
        direction = _gradient(y, self.f, self.g)  # grad F(y_k)
        x_next = y - self.step_size * direction  # x_{k+1} = y_k - eta grad F(y_k)
        t_next = (1.0 + torch.sqrt(1.0 + 4.0 * t * t)) / 2.0
        beta = (t - 1.0) / t_next
        value = None
        if self.restart == "gradient":
            restart = (direction * (x_next - x)).flatten(1).sum(1) > 0
        elif self.restart == "function":
            value = per_sample_value(x_next, self.f, self.g)
            restart = value > state.value
        else:
            restart = torch.zeros_like(t, dtype=torch.bool)
        t_next = torch.where(restart, torch.ones_like(t_next), t_next)
        beta = torch.where(restart, torch.zeros_like(beta), beta)
        y_next = x_next + beta.view(_SHAPE) * (x_next - x)
        return NesterovState(
            x=x_next, iteration=state.iteration + 1, extrapolated=y_next, momentum=t_next,
            restarts=state.restarts + restart.long(), value=value,
        )

    def objective(self, state: State) -> float:
        return objective_value(state.x, self.f, self.g)

