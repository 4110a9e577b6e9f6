"""Two-block ADMM ``min f(x) + g(z) s.t. x = z`` in scaled form, through the proxes of ``f`` and ``g``."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from learnreg.regularizers.base import Regularizer
from learnreg.solvers.base import Solver, State
from learnreg.solvers.hqs import Schedule, check_schedule, scheduled
from learnreg.solvers.terms import objective_value, require


@dataclass
class ADMMState(State):
    """``x``, the split copy ``z``, the scaled dual ``u`` (multiplier over ``rho``) and the ``rho`` last used."""

    z: Tensor | None = None
    u: Tensor | None = None
    rho: float = 0.0


class ADMM(Solver):
    """Alternating direction method of multipliers for ``min_x f(x) + g(x)``.

    Parameters
    ----------
    f, g : Regularizer
        Terms with ``prox`` (``f`` usually the data term, ``g`` a weighted prior or a
        denoiser prox, as in plug-and-play ADMM).
    rho : float, sequence of float, or callable
        Penalty parameter ``rho > 0`` of the augmented Lagrangian: a constant, or ``rho_k`` by
        iteration (a sequence whose last value is kept once exhausted, or a function
        ``k -> rho_k``), e.g. an increasing :func:`~learnreg.solvers.hqs.geometric_schedule`
        (continuation, Chan et al. 2017). When ``rho`` changes, the scaled dual is rescaled
        (``u <- u rho_old / rho_new``) so that the multiplier ``rho u`` is kept.

    Notes
    -----
    Scaled form (Boyd et al. 2011, §3.1.1) of ``min f(x) + g(z) s.t. x = z``, with
    ``prox_{tau h}(v) = argmin_x tau h(x) + 1/2 ||x - v||^2``::

        x_{k+1} = prox_{f / rho}(z_k - u_k)
        z_{k+1} = prox_{g / rho}(x_{k+1} + u_k)
        u_{k+1} = u_k + x_{k+1} - z_{k+1}

    Converges for any ``rho > 0`` when ``f`` and ``g`` are closed, proper and convex; ``rho``
    only sets the speed. The output is ``x``. For analysis priors ``phi(L x)`` with a
    quadratic data term, :class:`~learnreg.solvers.split_admm.SplitADMM` is much faster.

    Examples
    --------
    >>> import torch
    >>> from learnreg.regularizers import SquaredNorm
    >>> solver = ADMM(SquaredNorm(), SquaredNorm(), rho=1.0)
    >>> x, history = solver.run(torch.ones(1, 1, 2, 2))
    >>> float(x.abs().max()) < 1e-5
    True
    """

    def __init__(self, f: Regularizer, g: Regularizer, *, rho: float | Schedule):
        require(f, "prox", type(self).__name__)
        require(g, "prox", type(self).__name__)
        if isinstance(rho, (int, float)) and rho <= 0:
            raise ValueError(f"rho must be > 0, got {rho}")
        self.f, self.g = f, g
        self.rho = float(rho) if isinstance(rho, (int, float)) else check_schedule(rho, "rho")

    def penalty(self, iteration: int) -> float:
        """``rho_k`` for iteration ``k`` (0-based)."""
        return self.rho if isinstance(self.rho, float) else scheduled(self.rho, iteration, "rho")

    def init_state(self, x0: Tensor) -> ADMMState:
        return ADMMState(x=x0, z=x0, u=torch.zeros_like(x0), rho=self.penalty(0))

    def step(self, state: ADMMState) -> ADMMState:
        rho = self.penalty(state.iteration)
        u = state.u if rho == state.rho else state.u * (state.rho / rho)  # keep the multiplier rho u
        tau = 1.0 / rho
        x = self.f.prox(state.z - u, tau)
        z = self.g.prox(x + u, tau)
        u = u + x - z  # scaled dual ascent on the constraint x = z
        return ADMMState(x=x, iteration=state.iteration + 1, z=z, u=u, rho=rho)

    def objective(self, state: State) -> float:
        return objective_value(state.x, self.f, self.g)
