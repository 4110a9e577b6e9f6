"""Incremental gradient descent: a data step, then a regularizer step (NETT, Li et al. 2020)."""

from __future__ import annotations

from learnreg.regularizers.base import Regularizer
from learnreg.solvers.base import Solver, State
from learnreg.solvers.terms import objective_value, require


class IncrementalGradient(Solver):
    """``x <- x - s grad f(x)``, then ``x <- x - s alpha grad R(x)``: one sweep per iteration.

    The solver of NETT and of Gazdieva et al.'s depth super-resolution study (section 4.1),
    minimising ``f(x) + alpha R(x)`` by taking the terms one at a time.

    Parameters
    ----------
    f : Regularizer
        The data term, usually :class:`~learnreg.regularizers.data.L2Data`.
    prior : Regularizer
        ``R``, with ``grad`` (e.g. :class:`~learnreg.regularizers.nett.NETT`).
    step : float
        ``s``, the data step; ``s < 2 / ||A||^2`` keeps the data step non-expansive.
    weight : float
        ``alpha``; the regularizer step is ``s * alpha`` (0.001 in the paper's eq. 6).

    Notes
    -----
    Each iteration calls ``grad R`` once (one forward and one backward pass of the
    network). For small steps the sweep approximates gradient descent on
    ``f + alpha R``, whose value :meth:`objective` reports.

    Examples
    --------
    >>> import torch
    >>> from learnreg.regularizers import SquaredNorm
    >>> solver = IncrementalGradient(SquaredNorm(), SquaredNorm(), step=0.5, weight=1.0)
    >>> x, history = solver.run(torch.ones(1, 1, 2, 2))
    >>> float(x.abs().max()) < 1e-5
    True
    """

    def __init__(self, f: Regularizer, prior: Regularizer, *, step: float, weight: float):
        require(f, "grad", type(self).__name__)
        require(prior, "grad", type(self).__name__)
        if step <= 0:
            raise ValueError(f"step must be > 0, got {step}")
        if weight < 0:
            raise ValueError(f"weight must be >= 0, got {weight}")
        self.f, self.prior = f, prior
        self.step_size, self.weight = float(step), float(weight)

    def step(self, state: State) -> State:
        x = state.x - self.step_size * self.f.grad(state.x)  # data step
        x = x - self.step_size * self.weight * self.prior.grad(x)  # regularizer step, size s * alpha
        return State(x=x, iteration=state.iteration + 1)

    def objective(self, state: State) -> float:
        return objective_value(state.x, self.f, self.weight * self.prior)
