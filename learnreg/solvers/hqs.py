"""Half-quadratic splitting with an increasing penalty schedule (the DPIR-style plug-and-play loop)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from torch import Tensor

from learnreg.regularizers.base import Regularizer
from learnreg.solvers.base import Solver, State
from learnreg.solvers.terms import objective_value, require


def geometric_schedule(start: float, end: float, iterations: int) -> tuple[float, ...]:
    """``iterations`` penalties from ``start`` to ``end``, evenly spaced in log scale.

    Examples
    --------
    >>> geometric_schedule(1.0, 100.0, 3)
    (1.0, 10.0, 100.0)
    """
    if start <= 0 or end <= 0:
        raise ValueError(f"penalties must be > 0, got start={start}, end={end}")
    if iterations < 1:
        raise ValueError(f"iterations must be >= 1, got {iterations}")
    if iterations == 1:
        return (float(end),)
    ratio = (end / start) ** (1.0 / (iterations - 1))
    values = [start * ratio**k for k in range(iterations - 1)] + [end]
    return tuple(float(v) for v in values)


Schedule = Sequence[float] | Callable[[int], float]


def check_schedule(schedule: Schedule, name: str) -> tuple[float, ...] | Callable[[int], float]:
    """A penalty schedule as stored: a function kept as is, a sequence as a non-empty tuple of positive floats."""
    if callable(schedule):
        return schedule
    values = tuple(float(v) for v in schedule)
    if not values or min(values) <= 0:
        raise ValueError(f"the {name} schedule must hold at least one value, all > 0")
    return values


def scheduled(schedule: tuple[float, ...] | Callable[[int], float], iteration: int, name: str) -> float:
    """The value of ``schedule`` at ``iteration`` (0-based): a sequence keeps its last value once exhausted."""
    if callable(schedule):
        value = float(schedule(iteration))
        if value <= 0:
            raise ValueError(f"the {name} schedule gave {value} at iteration {iteration}; it must be > 0")
        return value
    return schedule[min(iteration, len(schedule) - 1)]


@dataclass
class HQSState(State):
    """``x`` (data-consistent estimate), ``z`` (prior estimate, the output) and the penalty ``mu`` last used."""

    z: Tensor | None = None
    mu: float = 0.0


class HQS(Solver):
    """Half-quadratic splitting for ``min f(x) + g(x)``.

    Parameters
    ----------
    f : Regularizer
        Term with ``prox``, usually the data term (``prox`` = ``operator.prox_data``).
    g : Regularizer
        Term with ``prox``: a weighted prior, or a denoiser-based prox.
    schedule : sequence of float, or callable
        Penalties ``mu_k > 0`` by iteration (``k = 0, 1, ...``): a sequence, whose last
        value is kept once exhausted (:func:`geometric_schedule` gives the DPIR choice), or
        a function ``k -> mu_k``.

    Notes
    -----
    HQS minimises ``f(x) + g(z) + mu/2 ||x - z||^2`` alternately, with
    ``prox_{tau h}(v) = argmin_x tau h(x) + 1/2 ||x - v||^2``::

        x_{k+1} = prox_{f / mu_k}(z_k)
        z_{k+1} = prox_{g / mu_k}(x_{k+1})

    At a fixed ``mu`` it converges (convex terms) to the minimiser of the penalised
    problem, which approaches that of ``f + g`` only as ``mu -> infinity``; hence the
    increasing schedule. The output is ``z`` (the prior/denoiser estimate, as in DPIR).

    Examples
    --------
    >>> import torch
    >>> from learnreg.regularizers import SquaredNorm
    >>> solver = HQS(SquaredNorm(), SquaredNorm(), schedule=geometric_schedule(0.1, 10.0, 20))
    >>> x, history = solver.run(torch.ones(1, 1, 2, 2))
    >>> float(x.abs().max()) < 1e-3
    True
    """

    def __init__(self, f: Regularizer, g: Regularizer, *, schedule: Sequence[float] | Callable[[int], float]):
        require(f, "prox", type(self).__name__)
        require(g, "prox", type(self).__name__)
        self.f, self.g, self.schedule = f, g, check_schedule(schedule, "mu")

    def penalty(self, iteration: int) -> float:
        """``mu_k`` for iteration ``k`` (0-based)."""
        return scheduled(self.schedule, iteration, "mu")

    def init_state(self, x0: Tensor) -> HQSState:
        return HQSState(x=x0, z=x0, mu=self.penalty(0))

    def output(self, state: State) -> Tensor:
        return state.z  # type: ignore[attr-defined]

    def step(self, state: HQSState) -> HQSState:
        mu = self.penalty(state.iteration)
        x = self.f.prox(state.z, 1.0 / mu)  # argmin_x f(x) + mu/2 ||x - z||^2
        z = self.g.prox(x, 1.0 / mu)  # argmin_z g(z) + mu/2 ||x - z||^2
        return HQSState(x=x, iteration=state.iteration + 1, z=z, mu=mu)

    def objective(self, state: State) -> float:
        return objective_value(self.output(state), self.f, self.g)
