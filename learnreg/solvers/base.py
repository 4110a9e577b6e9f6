"""The solver contract: ``init_state``, ``step``, ``run(stop) -> (x, History)``.

A solver's state is a dataclass holding at least the current iterate ``x``.
``step`` is out-of-place and autograd-friendly, so the same step runs as a
classical solver, inside an unrolled network and inside a deep-equilibrium
fixed point. ``run`` drives ``step`` until a composable stopping rule fires,
records a :class:`History`, and stops with status ``"diverged"`` (returning the
last finite iterate) instead of returning a garbage image.

Stopping rules compose with ``|``::

    stop = MaxIter(500) | RelativeChange(1e-7) | Diverged(abs_max=100)
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import Tensor


@dataclass
class State:
    """Minimal solver state; solvers subclass it with their own variables."""

    x: Tensor
    iteration: int = 0


@dataclass
class History:
    """What happened during a run; one entry per iteration.

    ``objective`` holds NaN where a solver has no objective; ``psnr`` is filled
    only when ``run`` was given a reference image. ``evaluations`` counts calls of
    the expensive part (a network) where a solver reports them, else iterations.
    """

    objective: list[float] = field(default_factory=list)
    relative_change: list[float] = field(default_factory=list)
    time: list[float] = field(default_factory=list)
    psnr: list[float] = field(default_factory=list)
    evaluations: list[int] = field(default_factory=list)
    status: str = "running"
    iterations: int = 0

    @property
    def converged(self) -> bool:
        return self.status == "converged"

    @property
    def diverged(self) -> bool:
        return self.status == "diverged"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass
class StopInfo:
    """What a stopping rule sees after each step."""

    iteration: int
    x: Tensor
    relative_change: float
    objective: float


class StopRule:
    """A stopping rule: returns a status string to stop, ``None`` to go on."""

    def __call__(self, info: StopInfo) -> str | None:
        raise NotImplementedError

    def __or__(self, other: "StopRule") -> "StopRule":
        return AnyOf(self, other)


class AnyOf(StopRule):
    def __init__(self, *rules: StopRule):
        self.rules: tuple[StopRule, ...] = ()
        for rule in rules:
            self.rules += rule.rules if isinstance(rule, AnyOf) else (rule,)

    def __call__(self, info: StopInfo) -> str | None:
        # Divergence is checked first so that a NaN on the last iteration is reported.
        for rule in sorted(self.rules, key=lambda r: not isinstance(r, Diverged)):
            status = rule(info)
            if status is not None:
                return status
        return None

    def __repr__(self) -> str:
        return " | ".join(map(repr, self.rules))


@dataclass
class MaxIter(StopRule):
    """Stop after ``n`` iterations with status ``"max_iter"``."""

    n: int

    def __post_init__(self):
        if self.n < 1:
            raise ValueError(f"MaxIter needs n >= 1, got {self.n}")

    def __call__(self, info: StopInfo) -> str | None:
        return "max_iter" if info.iteration >= self.n else None


@dataclass
class RelativeChange(StopRule):
    """Stop with ``"converged"`` when ``||x_k - x_{k-1}|| / ||x_{k-1}|| < tol``."""

    tol: float

    def __call__(self, info: StopInfo) -> str | None:
        return "converged" if info.relative_change < self.tol else None


@dataclass
class Diverged(StopRule):
    """Stop with ``"diverged"`` on a NaN/Inf or any ``|x| > abs_max``."""

    abs_max: float = 100.0

    def __call__(self, info: StopInfo) -> str | None:
        x = info.x
        if not bool(torch.isfinite(x).all()) or float(x.abs().max()) > self.abs_max:
            return "diverged"
        if math.isinf(info.objective):
            return "diverged"
        return None


def default_stop(max_iter: int = 300, tol: float = 1e-6) -> StopRule:
    """``MaxIter(max_iter) | RelativeChange(tol) | Diverged(100)``."""
    return MaxIter(max_iter) | RelativeChange(tol) | Diverged(100.0)


def clipped_psnr(x: Tensor, reference: Tensor) -> float:
    """PSNR (dB) of ``x`` clipped to [0, 1] against ``reference``, over the whole batch: what History records."""
    mse = float((x.clamp(0, 1) - reference).pow(2).mean())
    return float("inf") if mse == 0 else -10.0 * math.log10(mse)


class Solver:
    """Base class: subclasses implement ``init_state`` and ``step``.

    ``objective(state)`` returns the objective per batch element summed to a
    float, or NaN when the solver has none. ``evaluations(state)`` may report
    network calls; the default counts iterations.
    """

    def init_state(self, x0: Tensor) -> State:
        return State(x=x0)

    def step(self, state: State) -> State:
        raise NotImplementedError

    def objective(self, state: State) -> float:
        return float("nan")

    def evaluations(self, state: State) -> int:
        return state.iteration

    def output(self, state: State) -> Tensor:
        """The restored image held by ``state`` (``state.x`` unless a solver says otherwise)."""
        return state.x

    @property
    def name(self) -> str:
        return type(self).__name__

    def run(
        self,
        x0: Tensor,
        *,
        stop: StopRule | None = None,
        reference: Tensor | None = None,
        record_objective: bool = True,
        callback: Callable[[State, History], None] | None = None,
    ) -> tuple[Tensor, History]:
        """Iterate from ``x0`` until ``stop`` fires.

        Parameters
        ----------
        x0 : Tensor, shape (B, C, H, W)
            Initial iterate.
        stop : StopRule, optional
            Defaults to :func:`default_stop`.
        reference : Tensor, optional
            Ground truth; when given, PSNR (on [0, 1], clipped) is recorded per iteration.
        record_objective : bool
            Evaluate the objective each iteration (costs a forward pass in some solvers).
        callback : callable, optional
            ``callback(state, history)`` after each step (progress bars, logging).

        Returns
        -------
        x : Tensor
            The last iterate, or the last finite one when the run diverged.
        history : History
        """
        stop = default_stop() if stop is None else stop
        history = History()
        state = self.init_state(x0)
        start = time.perf_counter()
        with torch.no_grad():
            while True:
                previous = self.output(state)
                new_state = self.step(state)
                x = self.output(new_state)
                change = float((x - previous).flatten().norm() / previous.flatten().norm().clamp_min(1e-12))
                objective = self.objective(new_state) if record_objective else float("nan")
                info = StopInfo(new_state.iteration, x, change, objective)
                status = stop(info)
                if status == "diverged":
                    history.status = "diverged"
                    history.iterations = new_state.iteration
                    break
                state = new_state
                history.objective.append(objective)
                history.relative_change.append(change)
                history.time.append(time.perf_counter() - start)
                history.evaluations.append(self.evaluations(state))
                if reference is not None:
                    history.psnr.append(clipped_psnr(x, reference))
                history.iterations = state.iteration
                if callback is not None:
                    callback(state, history)
                if status is not None:
                    history.status = status
                    break
        return self.output(state), history
