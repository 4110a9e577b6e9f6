"""Forward-backward splitting (proximal gradient) and its accelerated form, FISTA."""

from __future__ import annotations

import math
from dataclasses import dataclass

from torch import Tensor

from learnreg.regularizers.base import Regularizer
from learnreg.solvers.base import Solver, State
from learnreg.solvers.terms import lipschitz_constant, objective_value, require


@dataclass
class ForwardBackwardState(State):
    """``x_k``, the extrapolated point ``y_k`` (``= x_k`` without acceleration) and FISTA's ``t_k``."""

    extrapolated: Tensor | None = None
    momentum: float = 1.0


class ForwardBackward(Solver):
    """Minimise ``f(x) + g(x)`` with ``f`` smooth and ``g`` proximable.

    Parameters
    ----------
    f : Regularizer
        Smooth term with ``grad`` (usually :class:`~learnreg.regularizers.data.L2Data`).
    g : Regularizer
        Term with ``prox`` (a weighted prior, or a denoiser-based prox).
    step : float, optional
        Step ``gamma``; default ``1 / L_f`` from ``f``'s declared Lipschitz constant
        (``||A||^2`` for ``L2Data``).
    accelerated : bool
        FISTA momentum (Beck & Teboulle, SIAM J. Imaging Sci. 2009).

    Notes
    -----
    One iteration, with ``prox_{gamma g}(v) = argmin_x gamma g(x) + 1/2 ||x - v||^2``::

        x_{k+1} = prox_{gamma g}(y_k - gamma grad f(y_k))
        t_{k+1} = (1 + sqrt(1 + 4 t_k^2)) / 2                 (FISTA; else y = x)
        y_{k+1} = x_{k+1} + (t_k - 1) / t_{k+1} (x_{k+1} - x_k)

    Convergence needs ``0 < gamma <= 1 / L_f`` for FISTA and ``0 < gamma < 2 / L_f``
    for plain forward-backward (convex ``f`` and ``g``). An approximate prox (TV by
    FGP, a denoiser) gives an inexact scheme.

    Examples
    --------
    >>> import torch
    >>> from learnreg.regularizers import SquaredNorm, LpNorm
    >>> solver = ForwardBackward(SquaredNorm(), 0.1 * LpNorm(1.0), accelerated=True)
    >>> x, history = solver.run(torch.ones(1, 1, 2, 2))
    >>> float(x.abs().max())
    0.0
    """

    def __init__(self, f: Regularizer, g: Regularizer, *, step: float | None = None, accelerated: bool = False):
        require(f, "grad", type(self).__name__)
        require(g, "prox", type(self).__name__)
        self.f, self.g = f, g
        self.accelerated = bool(accelerated)
        if step is None:
            lipschitz = lipschitz_constant(f)
            if lipschitz is None or lipschitz <= 0:
                raise ValueError(f"no Lipschitz constant is known for {f.name}; pass step=")
            step = 1.0 / lipschitz
        if step <= 0:
            raise ValueError(f"step must be > 0, got {step}")
        self.step_size = float(step)

    @property
    def name(self) -> str:
        return "FISTA" if self.accelerated else "ForwardBackward"

    def init_state(self, x0: Tensor) -> ForwardBackwardState:
        return ForwardBackwardState(x=x0, extrapolated=x0, momentum=1.0)

    def step(self, state: ForwardBackwardState) -> ForwardBackwardState:
        gamma, y = self.step_size, state.extrapolated
        x = self.g.prox(y - gamma * self.f.grad(y), gamma)  # forward (gradient) then backward (prox) step
        if not self.accelerated:
            return ForwardBackwardState(x=x, iteration=state.iteration + 1, extrapolated=x, momentum=1.0)
        t = state.momentum
        t_next = (1.0 + math.sqrt(1.0 + 4.0 * t * t)) / 2.0
        y_next = x + ((t - 1.0) / t_next) * (x - state.x)
        return ForwardBackwardState(x=x, iteration=state.iteration + 1, extrapolated=y_next, momentum=t_next)

    def objective(self, state: State) -> float:
        return objective_value(state.x, self.f, self.g)
