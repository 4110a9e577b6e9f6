"""Two-block ADMM ``min f(x) + g(z) s.t. x = z`` in scaled form, through the proxes of ``f`` and ``g``."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from learnreg.regularizers.base import Regularizer
from learnreg.solvers.base import Solver, State
from learnreg.solvers.terms import objective_value, require


@dataclass
class ADMMState(State):
    """``x``, the split copy ``z`` and the scaled dual ``u`` (multiplier over ``rho``)."""

    z: Tensor | None = None
    u: Tensor | None = None


class ADMM(Solver):
    """Alternating direction method of multipliers for ``min_x f(x) + g(x)``.

    Parameters
    ----------
    f, g : Regularizer
        Terms with ``prox`` (``f`` usually the data term, ``g`` a weighted prior or a
        denoiser prox, as in plug-and-play ADMM).
    rho : float
        Penalty parameter ``rho > 0`` of the augmented Lagrangian.

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

    def __init__(self, f: Regularizer, g: Regularizer, *, rho: float):
        require(f, "prox", type(self).__name__)
        require(g, "prox", type(self).__name__)
        if rho <= 0:
            raise ValueError(f"rho must be > 0, got {rho}")
        self.f, self.g, self.rho = f, g, float(rho)

    def init_state(self, x0: Tensor) -> ADMMState:
        return ADMMState(x=x0, z=x0, u=torch.zeros_like(x0))

    def step(self, state: ADMMState) -> ADMMState:
        tau = 1.0 / self.rho
        x = self.f.prox(state.z - state.u, tau)
        z = self.g.prox(x + state.u, tau)
        u = state.u + x - z  # scaled dual ascent on the constraint x = z
        return ADMMState(x=x, iteration=state.iteration + 1, z=z, u=u)

    def objective(self, state: State) -> float:
        return objective_value(state.x, self.f, self.g)
