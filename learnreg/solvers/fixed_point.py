"""Fixed-point iteration ``x <- T(x)`` with optional Anderson acceleration, and the DEQ forward solve."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from learnreg.solvers.base import Solver, State


@dataclass
class FixedPointState(State):
    """``x``, the Anderson memory (last inputs ``x_i`` and images ``T(x_i)``), the
    relative residual ``||T(x) - x|| / ||x||`` of the last input, shape ``(B,)``, and the
    number of evaluations of ``T``."""

    inputs: tuple[Tensor, ...] = ()
    images: tuple[Tensor, ...] = ()
    residual: Tensor | None = None
    evaluations: int = 0


class FixedPoint(Solver):
    """Iterate ``x <- T(x)``, optionally with Anderson acceleration (type II).

    Parameters
    ----------
    operator_fn : callable
        ``T``, mapping ``(B, C, H, W)`` to the same shape (a solver step, a network...).
    anderson : int
        Memory ``m``; 0 gives the plain (relaxed) iteration.
    beta : float
        Relaxation/mixing: ``x <- beta T(x) + (1 - beta) x`` (Anderson: applied to the
        combinations of images and inputs).
    regularization : float
        Tikhonov regularization of the Anderson least-squares system, relative to the
        mean of its diagonal.

    Notes
    -----
    Anderson (Walker & Ni 2011, as used for deep equilibrium models by Bai et al. 2019),
    per batch element, with residuals ``g_i = T(x_i) - x_i`` of the last ``m`` inputs::

        alpha = argmin_{sum alpha = 1} ||sum_i alpha_i g_i||^2
              = H^{-1} 1 / (1^T H^{-1} 1),   H = G G^T + lambda I
        x_{k+1} = beta sum_i alpha_i T(x_i) + (1 - beta) sum_i alpha_i x_i

    The small system is solved in float64; where it fails (non-finite weights) the
    sample falls back to the plain step. ``T`` should be a contraction (or at least
    averaged) for convergence. :meth:`objective` reports the mean relative residual
    ``||T(x) - x|| / ||x||``, which ``History.objective`` then records.

    Examples
    --------
    >>> import torch
    >>> solver = FixedPoint(lambda x: 0.5 * x + 1.0, anderson=3)
    >>> x, history = solver.run(torch.zeros(1, 1, 2, 2))
    >>> round(float(x.mean()), 4)
    2.0
    """

    def __init__(
        self,
        operator_fn: Callable[[Tensor], Tensor],
        *,
        anderson: int = 0,
        beta: float = 1.0,
        regularization: float = 1e-8,
    ):
        if anderson < 0:
            raise ValueError(f"anderson memory must be >= 0, got {anderson}")
        if not 0.0 < beta <= 1.0 + 1e-12:
            raise ValueError(f"beta must lie in (0, 1], got {beta}")
        if regularization < 0:
            raise ValueError(f"regularization must be >= 0, got {regularization}")
        self.operator_fn = operator_fn
        self.anderson, self.beta, self.regularization = int(anderson), float(beta), float(regularization)

    def init_state(self, x0: Tensor) -> FixedPointState:
        return FixedPointState(x=x0)

    def _anderson_weights(self, residuals: Tensor) -> Tensor:
        """``alpha``, shape ``(B, n)``, from residuals of shape ``(B, n, N)``; NaN rows where the solve failed."""
        G = residuals.double()
        H = G @ G.transpose(1, 2)  # (B, n, n)
        n = H.shape[-1]
        scale = H.diagonal(dim1=1, dim2=2).mean(-1).clamp_min(torch.finfo(torch.float64).tiny)
        ridge = self.regularization * scale + torch.finfo(torch.float64).tiny  # (B,)
        H = H + ridge[:, None, None] * torch.eye(n, dtype=H.dtype, device=H.device)
        ones = torch.ones(H.shape[0], n, 1, dtype=H.dtype, device=H.device)
        solution, info = torch.linalg.solve_ex(H, ones)
        solution = solution.squeeze(-1)
        total = solution.sum(-1, keepdim=True)
        alpha = solution / total
        bad = (info != 0) | ~torch.isfinite(alpha).all(-1) | (total.squeeze(-1).abs() < 1e-300)
        return torch.where(bad[:, None], torch.full_like(alpha, float("nan")), alpha).to(residuals.dtype)

    def step(self, state: FixedPointState) -> FixedPointState:
        x = state.x
        fx = self.operator_fn(x)
        norm = x.flatten(1).norm(dim=1).clamp_min(1e-12)
        residual = (fx - x).flatten(1).norm(dim=1) / norm
        plain = self.beta * fx + (1.0 - self.beta) * x
        if self.anderson == 0:
            return FixedPointState(
                x=plain, iteration=state.iteration + 1, residual=residual, evaluations=state.evaluations + 1
            )
        inputs = (state.inputs + (x,))[-self.anderson :]
        images = (state.images + (fx,))[-self.anderson :]
        x_next = plain
        if len(inputs) > 1:
            X = torch.stack([t.flatten(1) for t in inputs], dim=1)  # (B, n, N)
            F = torch.stack([t.flatten(1) for t in images], dim=1)  # (B, n, N)
            alpha = self._anderson_weights(F - X)  # (B, n)
            mixed = self.beta * (alpha[:, None, :] @ F) + (1.0 - self.beta) * (alpha[:, None, :] @ X)  # (B, 1, N)
            mixed = mixed.view_as(x)
            ok = torch.isfinite(alpha).all(-1).view(-1, *([1] * (x.dim() - 1)))
            x_next = torch.where(ok, mixed, plain)
        return FixedPointState(
            x=x_next,
            iteration=state.iteration + 1,
            inputs=inputs,
            images=images,
            residual=residual,
            evaluations=state.evaluations + 1,
        )

    def objective(self, state: State) -> float:
        residual = getattr(state, "residual", None)
        return float("nan") if residual is None else float(residual.mean())

    def evaluations(self, state: State) -> int:
        return getattr(state, "evaluations", state.iteration)


@dataclass
class FixedPointInfo:
    """Outcome of :func:`solve_fixed_point`.

    ``status`` is ``"converged"``, ``"diverged"`` or ``"max_iter"``; ``iterations`` the
    number of evaluations of ``T``; ``mean_squared_change`` the last
    ``mean((x_{k+1} - x_k)^2)``; ``residual`` the last relative residual per sample.
    """

    status: str
    iterations: int
    mean_squared_change: float
    residual: Tensor | None


def solve_fixed_point(
    T: Callable[[Tensor], Tensor],
    x0: Tensor,
    *,
    max_iter: int = 500,
    tol: float = 1e-7,
    abs_max: float = 100.0,
    anderson: int = 0,
    beta: float = 1.0,
) -> tuple[Tensor, FixedPointInfo]:
    """Forward fixed-point solve without gradients, with the stopping rules of the DEQ paper.

    Parameters
    ----------
    T : callable
        The map whose fixed point is sought, ``(B, C, H, W) -> (B, C, H, W)``.
    x0 : Tensor, shape (B, C, H, W)
    max_iter : int
        Stop with ``"max_iter"`` after this many iterations (500 in the paper).
    tol : float
        Stop with ``"converged"`` once ``mean((x_{k+1} - x_k)^2) < tol`` (1e-7).
    abs_max : float
        Stop with ``"diverged"`` once any ``|x| > abs_max`` or a value is not finite (100);
        the last finite, in-range iterate is returned.
    anderson, beta : see :class:`FixedPoint`.

    Returns
    -------
    x : Tensor
        The last accepted iterate, detached (run one differentiable step of ``T`` on it
        for Jacobian-free backpropagation).
    info : FixedPointInfo
    """
    if max_iter < 1:
        raise ValueError(f"max_iter must be >= 1, got {max_iter}")
    solver = FixedPoint(T, anderson=anderson, beta=beta)
    status, change, iterations = "max_iter", float("nan"), 0
    with torch.no_grad():
        state = solver.init_state(x0.detach())
        for iterations in range(1, max_iter + 1):
            new = solver.step(state)
            if not bool(torch.isfinite(new.x).all()) or float(new.x.abs().max()) > abs_max:
                status = "diverged"
                break
            change = float((new.x - state.x).pow(2).mean())
            state = new
            if change < tol:
                status = "converged"
                break
    info = FixedPointInfo(status=status, iterations=iterations, mean_squared_change=change, residual=state.residual)
    return state.x, info


@dataclass
class FixedPointSampleInfo:
    """Per-sample outcome of :func:`solve_fixed_point_per_sample`.

    Attributes
    ----------
    status : tuple of str
        Per sample, ``"converged"``, ``"diverged"`` or ``"max_iter"``.
    iterations : Tensor, shape (B,), int64
        Evaluations of ``T`` until the sample stopped.
    mean_squared_change : Tensor, shape (B,)
        The sample's last accepted ``mean((x_{k+1} - x_k)^2)`` (NaN if it diverged at once).
    residual : Tensor, shape (B,)
        Relative residual ``||T(x) - x|| / ||x||`` at the sample's last evaluated input.
    """

    status: tuple[str, ...]
    iterations: Tensor
    mean_squared_change: Tensor
    residual: Tensor

    @property
    def converged(self) -> Tensor:
        """``(B,)`` bool: the sample met the change tolerance."""
        return torch.tensor([s == "converged" for s in self.status], device=self.iterations.device)

    @property
    def diverged(self) -> Tensor:
        """``(B,)`` bool: the sample left ``[-abs_max, abs_max]`` or became non-finite."""
        return torch.tensor([s == "diverged" for s in self.status], device=self.iterations.device)


def solve_fixed_point_per_sample(
    T: Callable[[Tensor], Tensor],
    x0: Tensor,
    *,
    max_iter: int = 500,
    tol: float = 1e-7,
    abs_max: float = 100.0,
    anderson: int = 0,
    beta: float = 1.0,
) -> tuple[Tensor, FixedPointSampleInfo]:
    """:func:`solve_fixed_point` with its three stopping rules applied to each sample on its own.

    A batch mixes easy and hard problems (a DEQ trained on random degradations), so one
    diverging sample must neither stop the others nor hide among them: each sample stops
    with ``"converged"`` once its own ``mean((x_{k+1} - x_k)^2) < tol``, with
    ``"diverged"`` once any of its entries leaves ``[-abs_max, abs_max]`` or is not
    finite (it then keeps its last accepted iterate), and with ``"max_iter"`` otherwise.

    Parameters
    ----------
    T : callable
        ``(B, C, H, W) -> (B, C, H, W)``, acting on each sample independently (no
        batch statistics), as a solver step or a DRUNet does.
    x0 : Tensor, shape (B, C, H, W)
    max_iter, tol, abs_max, anderson, beta : see :func:`solve_fixed_point`.

    Returns
    -------
    x : Tensor, shape (B, C, H, W)
        Each sample's last accepted iterate, detached.
    info : FixedPointSampleInfo

    Notes
    -----
    The whole batch is evaluated until every sample has stopped; a stopped sample is
    held still (``T`` is replaced by the identity on it and its iterate reset to the
    accepted one), so it costs evaluations but cannot blow up or move.

    Examples
    --------
    >>> x0 = torch.ones(2, 1, 1, 1)
    >>> x, info = solve_fixed_point_per_sample(lambda x: x * x.new_tensor([0.5, 2.0]).view(2, 1, 1, 1), x0)
    >>> info.status
    ('converged', 'diverged')
    """
    if max_iter < 1:
        raise ValueError(f"max_iter must be >= 1, got {max_iter}")
    if x0.dim() < 2 or x0.shape[0] < 1:
        raise ValueError(f"x0 must be batched, shape (B, C, H, W), got {tuple(x0.shape)}; add a batch dimension")
    batch = x0.shape[0]
    broadcast = (-1,) + (1,) * (x0.dim() - 1)  # (B,) -> (B, 1, ..., 1)
    active = torch.ones(batch, dtype=torch.bool, device=x0.device)

    def held(x: Tensor) -> Tensor:
        return torch.where(active.view(broadcast), T(x), x)

    solver = FixedPoint(held, anderson=anderson, beta=beta)
    codes = torch.zeros(batch, dtype=torch.long, device=x0.device)  # 0 max_iter, 1 converged, 2 diverged
    iterations = torch.zeros(batch, dtype=torch.long, device=x0.device)
    change = torch.full((batch,), float("nan"), dtype=x0.dtype, device=x0.device)
    residual = torch.full((batch,), float("nan"), dtype=x0.dtype, device=x0.device)
    with torch.no_grad():
        accepted = x0.detach()
        state = solver.init_state(accepted)
        for iteration in range(1, max_iter + 1):
            new = solver.step(state)
            flat = new.x.flatten(1)
            bad = ~torch.isfinite(flat).all(1) | (flat.abs().amax(1) > abs_max)
            sample_change = (new.x - state.x).flatten(1).pow(2).mean(1)
            ok = active & ~bad
            accepted = torch.where(ok.view(broadcast), new.x, accepted)
            change = torch.where(ok, sample_change, change)
            residual = torch.where(active, new.residual, residual)
            iterations = torch.where(active, torch.full_like(iterations, iteration), iterations)
            diverged, converged = active & bad, ok & (sample_change < tol)
            codes = torch.where(diverged, torch.full_like(codes, 2), codes)
            codes = torch.where(converged, torch.full_like(codes, 1), codes)
            active = active & ~diverged & ~converged
            new.x = torch.where(active.view(broadcast), new.x, accepted)
            state = new
            if not bool(active.any()):
                break
    names = ("max_iter", "converged", "diverged")
    info = FixedPointSampleInfo(
        status=tuple(names[int(c)] for c in codes), iterations=iterations, mean_squared_change=change,
        residual=residual,
    )
    return accepted, info
