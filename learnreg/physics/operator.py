"""Operator contracts: ``x -> y`` maps with fixed per-sample shapes.

Every operator acts on batched tensors of shape ``(B, C, H, W)``; the per-sample
shapes ``in_shape = (C, H, W)`` and ``out_shape`` are fixed at construction and
checked on every call, so a wrong input fails at the boundary with a message that
names the expected shape. Linear operators add an exact ``adjoint``, the normal
operator, the operator norm by power iteration and the data-term prox

    prox_data(v, y, tau) = argmin_x  tau/2 ||A x - y||^2 + 1/2 ||x - v||^2
                         = (I + tau A^T A)^{-1} (v + tau A^T y),

in closed form where one exists and by conjugate gradients otherwise (the
``prox_data_closed_form`` flag says which). Operators compose with ``@``, add with
``+`` and scale with scalar ``*``.
"""

from __future__ import annotations

import logging
import math
from typing import Callable

import torch
from torch import Tensor

logger = logging.getLogger(__name__)

Shape = tuple[int, int, int]


class ShapeError(ValueError):
    """An input does not have the shape an operator was built for."""


def _as_shape(shape: tuple[int, ...], what: str) -> Shape:
    if len(shape) != 3 or any(int(s) <= 0 for s in shape):
        raise ShapeError(
            f"{what} must be (C, H, W) with positive sizes, got {tuple(shape)}; "
            "pass the per-sample shape, without the batch dimension"
        )
    return (int(shape[0]), int(shape[1]), int(shape[2]))


def _check_input(x: Tensor, shape: Shape, name: str, what: str) -> None:
    if not isinstance(x, Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 4 or tuple(x.shape[1:]) != shape:
        raise ShapeError(
            f"{name}: {what} must have shape (B, {shape[0]}, {shape[1]}, {shape[2]}), "
            f"got {tuple(x.shape)}; build the operator for this size or crop/resize the input"
        )


class Operator:
    """A (possibly nonlinear) forward model ``y = A(x)``.

    Subclasses implement :meth:`_forward`. Nonlinear operators get their data-term
    gradient from autograd (:meth:`data_grad`), so any differentiable map works.

    Parameters
    ----------
    in_shape, out_shape : tuple of int
        Per-sample shapes ``(C, H, W)`` of ``x`` and ``y``.
    """

    linear: bool = False

    def __init__(self, in_shape: tuple[int, ...], out_shape: tuple[int, ...]):
        self.in_shape = _as_shape(in_shape, "in_shape")
        self.out_shape = _as_shape(out_shape, "out_shape")

    @property
    def name(self) -> str:
        return type(self).__name__

    def __repr__(self) -> str:
        return f"{self.name}(in_shape={self.in_shape}, out_shape={self.out_shape})"

    # -- forward --------------------------------------------------------------
    def _forward(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def forward(self, x: Tensor) -> Tensor:
        """Apply the operator. ``x``: shape ``(B, *in_shape)``; returns ``(B, *out_shape)``."""
        _check_input(x, self.in_shape, self.name, "x")
        return self._forward(x)

    __call__ = forward

    # -- data term ------------------------------------------------------------
    def data_value(self, x: Tensor, y: Tensor) -> Tensor:
        """``1/2 ||A(x) - y||^2`` per batch element, shape ``(B,)``."""
        r = self.forward(x) - y
        return 0.5 * r.flatten(1).pow(2).sum(1)

    def data_grad(self, x: Tensor, y: Tensor) -> Tensor:
        """``J_A(x)^T (A(x) - y)``, the gradient of :meth:`data_value`, by autograd."""
        with torch.enable_grad():
            xv = x.detach().requires_grad_(True)
            r = self.forward(xv) - y
            (g,) = torch.autograd.grad(r, xv, grad_outputs=r.detach())
        return g

    # -- algebra --------------------------------------------------------------
    def __matmul__(self, other: "Operator") -> "Operator":
        if not isinstance(other, Operator):
            return NotImplemented
        if other.linear and self.linear:
            return LinearComposition(self, other)  # type: ignore[arg-type]
        return Composition(self, other)


class Composition(Operator):
    """``(outer @ inner)(x) = outer(inner(x))``."""

    def __init__(self, outer: Operator, inner: Operator):
        if inner.out_shape != outer.in_shape:
            raise ShapeError(
                f"cannot compose {outer.name} @ {inner.name}: {inner.name} returns "
                f"{inner.out_shape} but {outer.name} expects {outer.in_shape}"
            )
        super().__init__(inner.in_shape, outer.out_shape)
        self.outer, self.inner = outer, inner

    @property
    def name(self) -> str:
        return f"({self.outer.name} @ {self.inner.name})"

    def _forward(self, x: Tensor) -> Tensor:
        return self.outer._forward(self.inner._forward(x))


class LinearOperator(Operator):
    """A linear operator with an exact adjoint.

    Subclasses implement :meth:`_forward` and :meth:`_adjoint`, and may override
    :meth:`prox_data` with a closed form (then set ``prox_data_closed_form = True``).
    """

    linear = True
    prox_data_closed_form: bool = False

    # -- adjoint --------------------------------------------------------------
    def _adjoint(self, y: Tensor) -> Tensor:
        raise NotImplementedError

    def adjoint(self, y: Tensor) -> Tensor:
        """Apply ``A^T``. ``y``: shape ``(B, *out_shape)``; returns ``(B, *in_shape)``."""
        _check_input(y, self.out_shape, self.name, "y (adjoint input)")
        return self._adjoint(y)

    def normal(self, x: Tensor) -> Tensor:
        """``A^T A x``."""
        return self._adjoint(self._forward(x))

    @property
    def T(self) -> "LinearOperator":
        return Adjoint(self)

    def data_grad(self, x: Tensor, y: Tensor) -> Tensor:
        """``A^T (A x - y)``."""
        _check_input(x, self.in_shape, self.name, "x")
        return self._adjoint(self._forward(x) - y)

    # -- norm -----------------------------------------------------------------
    def norm(self, *, iterations: int = 100, tol: float = 1e-6, generator: torch.Generator | None = None) -> float:
        """Operator norm ``||A||_2`` by power iteration on ``A^T A`` (cached).

        The result is cached per operator; the random start is drawn from
        ``generator`` (a fixed seed when omitted, so the value is reproducible).
        """
        cached = getattr(self, "_norm_cache", None)
        if cached is not None:
            return cached
        if generator is None:
            generator = torch.Generator().manual_seed(0)
        x = torch.randn((1, *self.in_shape), generator=generator, dtype=torch.float64)
        x = x / x.norm()
        estimate = 0.0
        for _ in range(iterations):
            z = self.normal(x)
            new = float(z.norm())
            if new == 0.0:
                estimate = 0.0
                break
            x = z / new
            if abs(new - estimate) <= tol * new:
                estimate = new
                break
            estimate = new
        self._norm_cache = math.sqrt(estimate)
        return self._norm_cache

    # -- circulant structure --------------------------------------------------
    def normal_fourier(self) -> Tensor | None:
        """Eigenvalues of ``A^T A`` on the ``rfft2`` grid, or ``None``.

        Circulant operators (identity, circular blur, periodic finite differences)
        return a real tensor of shape ``(1 or C, H, W // 2 + 1)`` such that
        ``A^T A x = irfft2(normal_fourier() * rfft2(x))``; every other operator
        returns ``None``.
        """
        return None

    # -- data prox ------------------------------------------------------------
    def prox_data(self, v: Tensor, y: Tensor, tau: float | Tensor) -> Tensor:
        """``argmin_x tau/2 ||A x - y||^2 + 1/2 ||x - v||^2``.

        The base implementation runs conjugate gradients on
        ``(I + tau A^T A) x = v + tau A^T y``; operators with a closed form override it.
        """
        return self.prox_data_cg(v, y, tau)

    def prox_data_cg(self, v: Tensor, y: Tensor, tau: float | Tensor, *, max_iter: int = 200, tol: float = 1e-10) -> Tensor:
        """Conjugate-gradient data prox, available for every linear operator."""
        if not getattr(self, "_warned_cg", False) and not self.prox_data_closed_form:
            logger.info("%s has no closed-form data prox; using conjugate gradients", self.name)
            self._warned_cg = True
        tau = per_sample(tau, v)
        rhs = v + tau * self.adjoint(y)
        return conjugate_gradient(lambda x: x + tau * self.normal(x), rhs, x0=v, max_iter=max_iter, tol=tol)

    # -- algebra --------------------------------------------------------------
    def __add__(self, other: "LinearOperator") -> "LinearOperator":
        if not isinstance(other, LinearOperator):
            return NotImplemented
        return LinearSum(self, other)

    def __mul__(self, scalar: float) -> "LinearOperator":
        if not isinstance(scalar, (int, float)):
            return NotImplemented
        return LinearScaled(self, float(scalar))

    __rmul__ = __mul__


def per_sample(tau: float | Tensor, like: Tensor) -> float | Tensor:
    """Broadcast a per-sample ``(B,)`` tensor to ``(B, 1, 1, 1)``; pass scalars through."""
    if isinstance(tau, Tensor) and tau.dim() == 1:
        return tau.to(like).view(-1, 1, 1, 1)
    return tau


def conjugate_gradient(
    apply: Callable[[Tensor], Tensor], rhs: Tensor, *, x0: Tensor | None = None, max_iter: int = 200, tol: float = 1e-10
) -> Tensor:
    """Solve ``apply(x) = rhs`` for a symmetric positive definite ``apply``, per batch element.

    Stops when every sample's residual satisfies ``||r|| <= tol * ||rhs||`` (relative).
    """
    x = torch.zeros_like(rhs) if x0 is None else x0.clone()
    r = rhs - apply(x)
    p = r.clone()
    dims = tuple(range(1, rhs.dim()))
    shape = (-1,) + (1,) * (rhs.dim() - 1)
    rs = (r * r).sum(dims)
    threshold = (tol * rhs.flatten(1).norm(dim=1)).pow(2)
    for _ in range(max_iter):
        if bool((rs <= threshold).all()):
            break
        ap = apply(p)
        denom = (p * ap).sum(dims)
        alpha = torch.where(denom > 0, rs / denom.clamp_min(torch.finfo(rhs.dtype).tiny), torch.zeros_like(rs))
        x = x + alpha.view(shape) * p
        r = r - alpha.view(shape) * ap
        rs_new = (r * r).sum(dims)
        beta = torch.where(rs > 0, rs_new / rs.clamp_min(torch.finfo(rhs.dtype).tiny), torch.zeros_like(rs))
        p = r + beta.view(shape) * p
        rs = rs_new
    return x


class Adjoint(LinearOperator):
    """``A^T`` as an operator of its own."""

    def __init__(self, op: LinearOperator):
        super().__init__(op.out_shape, op.in_shape)
        self.op = op

    @property
    def name(self) -> str:
        return f"{self.op.name}.T"

    def norm(self, *, iterations: int = 100, tol: float = 1e-6, generator: torch.Generator | None = None) -> float:
        return self.op.norm(iterations=iterations, tol=tol, generator=generator)  # ||A^T|| = ||A||

    def _forward(self, x: Tensor) -> Tensor:
        return self.op._adjoint(x)

    def _adjoint(self, y: Tensor) -> Tensor:
        return self.op._forward(y)


class LinearComposition(Composition, LinearOperator):
    """``A @ B`` for linear ``A`` and ``B``; adjoint ``B^T A^T``."""

    def _adjoint(self, y: Tensor) -> Tensor:
        return self.inner._adjoint(self.outer._adjoint(y))  # type: ignore[attr-defined]


class LinearSum(LinearOperator):
    """``A + B`` for operators of equal shapes."""

    def __init__(self, first: LinearOperator, second: LinearOperator):
        if first.in_shape != second.in_shape or first.out_shape != second.out_shape:
            raise ShapeError(f"cannot add {first.name} and {second.name}: shapes differ")
        super().__init__(first.in_shape, first.out_shape)
        self.first, self.second = first, second

    @property
    def name(self) -> str:
        return f"({self.first.name} + {self.second.name})"

    def _forward(self, x: Tensor) -> Tensor:
        return self.first._forward(x) + self.second._forward(x)

    def _adjoint(self, y: Tensor) -> Tensor:
        return self.first._adjoint(y) + self.second._adjoint(y)


class LinearScaled(LinearOperator):
    """``c * A``."""

    def __init__(self, op: LinearOperator, scale: float):
        super().__init__(op.in_shape, op.out_shape)
        self.op, self.scale = op, scale

    @property
    def name(self) -> str:
        return f"{self.scale:g}*{self.op.name}"

    def norm(self, *, iterations: int = 100, tol: float = 1e-6, generator: torch.Generator | None = None) -> float:
        return abs(self.scale) * self.op.norm(iterations=iterations, tol=tol, generator=generator)

    def _forward(self, x: Tensor) -> Tensor:
        return self.scale * self.op._forward(x)

    def _adjoint(self, y: Tensor) -> Tensor:
        return self.scale * self.op._adjoint(y)


def check_adjoint(
    op: LinearOperator, *, dtype: torch.dtype = torch.float64, batch: int = 2, generator: torch.Generator | None = None
) -> float:
    """Relative adjoint error ``|<Ax, y> - <x, A^T y>| / (||Ax|| ||y||)`` on random inputs.

    Returns a float; an exact adjoint gives about ``1e-15`` in float64.
    """
    if generator is None:
        generator = torch.Generator().manual_seed(1234)
    x = torch.randn((batch, *op.in_shape), generator=generator, dtype=dtype)
    y = torch.randn((batch, *op.out_shape), generator=generator, dtype=dtype)
    ax = op.forward(x)
    aty = op.adjoint(y)
    lhs = (ax * y).sum()
    rhs = (x * aty).sum()
    scale = float(ax.norm() * y.norm()) or 1.0
    return float((lhs - rhs).abs()) / scale
