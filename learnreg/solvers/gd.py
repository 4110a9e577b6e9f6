"""Gradient descent (fixed step or Armijo backtracking) and Adam on ``F(x) = f(x) + g(x)``."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from learnreg.regularizers.base import Regularizer
from learnreg.solvers.base import Solver, State
from learnreg.solvers.terms import objective_value, per_sample_value, require, total_lipschitz

_SHAPE = (-1, 1, 1, 1)  # (B,) -> (B, 1, 1, 1) broadcasting of per-sample step sizes


def _gradient(x: Tensor, f: Regularizer, g: Regularizer | None) -> Tensor:
    return f.grad(x) if g is None else f.grad(x) + g.grad(x)


@dataclass
class GradientDescentState(State):
    """``x`` and the per-sample step size ``step_size``, shape ``(B,)``."""

    step_size: Tensor | None = None


class GradientDescent(Solver):
    """Gradient descent ``x_{k+1} = x_k - eta_k (grad f(x_k) + grad g(x_k))``.

    Parameters
    ----------
    f : Regularizer
        First term, usually the data term :class:`~learnreg.regularizers.data.L2Data`.
    g : Regularizer, optional
        Second term (a prior, already weighted: ``weight * prior``).
    step : float, optional
        Fixed step ``eta``. Default ``1 / L`` with ``L = L_f + L_g`` from the terms'
        declared Lipschitz constants (``||A||^2`` for ``L2Data``); with backtracking, the
        initial trial step (default ``1 / L``, or 1 when ``L`` is unknown).
    backtracking : bool
        Armijo line search per batch element: halve ``eta`` until
        ``F(x - eta d) <= F(x) - eta / 2 ||d||^2`` (``d`` the gradient), then try twice
        the accepted step at the next iteration. Needs ``value`` of both terms.
    max_backtracks : int
        Cap on halvings per iteration.

    Notes
    -----
    With ``grad F`` ``L``-Lipschitz, a fixed step ``0 < eta < 2 / L`` converges and
    ``eta = 1 / L`` decreases ``F`` monotonically. Terms with a smoothed gradient
    (TV, hyper-Laplacian) are minimised as their smoothed surrogates.

    Examples
    --------
    >>> import torch
    >>> from learnreg.regularizers import SquaredNorm
    >>> solver = GradientDescent(SquaredNorm(), step=0.5)
    >>> x, history = solver.run(torch.ones(1, 1, 2, 2))
    >>> history.status
    'converged'
    """

    def __init__(
        self,
        f: Regularizer,
        g: Regularizer | None = None,
        *,
        step: float | None = None,
        backtracking: bool = False,
        max_backtracks: int = 50,
    ):
        for term in (f, g):
            if term is not None:
                require(term, "grad", type(self).__name__)
                if backtracking:
                    require(term, "value", f"{type(self).__name__}(backtracking=True)")
        self.f, self.g = f, g
        self.backtracking = bool(backtracking)
        self.max_backtracks = int(max_backtracks)
        if step is None:
            lipschitz = total_lipschitz(f, g)
            if lipschitz is None or lipschitz <= 0:
                if not backtracking:
                    raise ValueError(
                        f"no Lipschitz constant is known for {f.name}" + ("" if g is None else f" + {g.name}")
                        + "; pass step= or backtracking=True"
                    )
                step = 1.0
            else:
                step = 1.0 / lipschitz
        if step <= 0:
            raise ValueError(f"step must be > 0, got {step}")
        self.step_size = float(step)

    def init_state(self, x0: Tensor) -> GradientDescentState:
        step_size = torch.full((x0.shape[0],), self.step_size, dtype=x0.dtype, device=x0.device)
        return GradientDescentState(x=x0, step_size=step_size)

    def step(self, state: GradientDescentState) -> GradientDescentState:
        x = state.x
        direction = _gradient(x, self.f, self.g)  # grad F(x_k)
        if not self.backtracking:
            x_next = x - self.step_size * direction  # x_{k+1} = x_k - eta grad F(x_k)
            return GradientDescentState(x=x_next, iteration=state.iteration + 1, step_size=state.step_size)
        # Armijo: F(x - eta d) <= F(x) - eta/2 ||d||^2, per batch element.
        current = per_sample_value(x, self.f, self.g)
        squared = direction.flatten(1).pow(2).sum(1)
        eta = 2.0 * state.step_size
        accepted = torch.zeros_like(eta, dtype=torch.bool)
        for _ in range(self.max_backtracks):
            trial = per_sample_value(x - eta.view(_SHAPE) * direction, self.f, self.g)
            accepted = trial <= current - 0.5 * eta * squared
            if bool(accepted.all()):
                break
            eta = torch.where(accepted, eta, 0.5 * eta)
        x_next = x - eta.view(_SHAPE) * direction
        return GradientDescentState(x=x_next, iteration=state.iteration + 1, step_size=eta)

    def objective(self, state: State) -> float:
        return objective_value(state.x, self.f, self.g)


@dataclass
class AdamState(State):
    """``x``, the moment estimates ``m`` and ``v``, and ``v_max`` (AMSGrad)."""

    m: Tensor | None = None
    v: Tensor | None = None
    v_max: Tensor | None = None


class Adam(Solver):
    """Adam on ``F(x) = f(x) + g(x)``, over ``x`` itself (the test-time solver of pnpReG).

    Parameters
    ----------
    f, g : Regularizer
        Terms with ``grad`` (``g`` optional).
    lr : float
        Learning rate.
    betas : tuple of float
        Decay rates of the first and second moment estimates.
    eps : float
        Added to ``sqrt(v)`` in the denominator.
    amsgrad : bool
        Use the running maximum of ``v`` (Reddi et al., 2018); then the effective step
        no longer grows as the gradient vanishes, and Adam converges to the exact
        minimiser of a smooth convex problem instead of hovering at a distance ``~lr``.

    Notes
    -----
    Kingma & Ba (2015), per pixel::

        m = b1 m + (1 - b1) d,  v = b2 v + (1 - b2) d^2,  d = grad F(x)
        x = x - lr (m / (1 - b1^k)) / (sqrt(v / (1 - b2^k)) + eps)

    There is no step-size condition to check; ``lr`` bounds the per-pixel move.
    """

    def __init__(
        self,
        f: Regularizer,
        g: Regularizer | None = None,
        *,
        lr: float,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        amsgrad: bool = False,
    ):
        for term in (f, g):
            if term is not None:
                require(term, "grad", type(self).__name__)
        if lr <= 0:
            raise ValueError(f"lr must be > 0, got {lr}")
        if not (0.0 <= betas[0] < 1.0 and 0.0 <= betas[1] < 1.0):
            raise ValueError(f"betas must lie in [0, 1), got {betas}")
        self.f, self.g = f, g
        self.lr, self.eps, self.amsgrad = float(lr), float(eps), bool(amsgrad)
        self.betas = (float(betas[0]), float(betas[1]))

    def init_state(self, x0: Tensor) -> AdamState:
        zeros = torch.zeros_like(x0)
        return AdamState(x=x0, m=zeros, v=zeros, v_max=zeros)

    def step(self, state: AdamState) -> AdamState:
        beta1, beta2 = self.betas
        k = state.iteration + 1
        direction = _gradient(state.x, self.f, self.g)
        m = beta1 * state.m + (1.0 - beta1) * direction
        v = beta2 * state.v + (1.0 - beta2) * direction.pow(2)
        v_max = torch.maximum(state.v_max, v) if self.amsgrad else v
        m_hat = m / (1.0 - beta1**k)  # bias corrections
        v_hat = v_max / (1.0 - beta2**k)
        x = state.x - self.lr * m_hat / (v_hat.sqrt() + self.eps)
        return AdamState(x=x, iteration=k, m=m, v=v, v_max=v_max)

    def objective(self, state: State) -> float:
        return objective_value(state.x, self.f, self.g)
