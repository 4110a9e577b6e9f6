"""The data-fidelity term ``1/2 ||A(x) - y||^2`` behind the regularizer contract."""

from __future__ import annotations

from torch import Tensor

from learnreg.physics.operator import Operator, ShapeError
from learnreg.regularizers.base import CapabilityError, Regularizer


class L2Data(Regularizer):
    """``f(x) = 1/2 ||A(x) - y||^2`` per batch element, so solvers treat data and prior alike.

    Parameters
    ----------
    operator : Operator
        The forward model ``A`` (linear or not).
    y : Tensor, shape (B, *operator.out_shape)
        Measurements.

    Notes
    -----
    ``grad f(x) = J_A(x)^T (A(x) - y)`` (``A^T (A x - y)`` when linear), with Lipschitz
    constant ``||A||^2`` for linear operators (:attr:`lipschitz`, by power iteration,
    cached on the operator) and ``None`` otherwise.
    ``prox_{tau f}(v) = argmin_x tau/2 ||A x - y||^2 + 1/2 ||x - v||^2
    = (I + tau A^T A)^{-1} (v + tau A^T y)`` only for linear operators, through
    ``operator.prox_data`` (closed form where the operator has one, conjugate gradients
    otherwise; ``prox_is_exact`` mirrors ``operator.prox_data_closed_form``).

    Examples
    --------
    >>> import torch
    >>> from learnreg.physics.gradient import FiniteDifference
    >>> A = FiniteDifference((1, 4, 4))
    >>> data = L2Data(A, torch.zeros(1, 2, 4, 4))
    >>> data.value(torch.ones(1, 1, 4, 4)).item()
    0.0
    """

    has_value = has_grad = True

    def __init__(self, operator: Operator, y: Tensor):
        if not isinstance(operator, Operator):
            raise TypeError(f"L2Data needs an Operator, got {type(operator).__name__}")
        if not isinstance(y, Tensor) or y.dim() != 4 or tuple(y.shape[1:]) != operator.out_shape:
            got = tuple(y.shape) if isinstance(y, Tensor) else type(y).__name__
            raise ShapeError(
                f"L2Data: measurements must have shape (B, {', '.join(map(str, operator.out_shape))}) "
                f"to match {operator.name}, got {got}"
            )
        self.operator = operator
        self.y = y
        self.has_prox = bool(operator.linear)
        self.prox_is_exact = bool(getattr(operator, "prox_data_closed_form", False))

    @property
    def name(self) -> str:
        return f"L2Data({self.operator.name})"

    @property
    def lipschitz(self) -> float | None:
        """``||A||^2`` for a linear ``A`` (power iteration), ``None`` for a nonlinear one."""
        if not self.operator.linear:
            return None
        return self.operator.norm() ** 2  # type: ignore[attr-defined]

    def value(self, x: Tensor) -> Tensor:
        return self.operator.data_value(x, self.y)

    def grad(self, x: Tensor) -> Tensor:
        return self.operator.data_grad(x, self.y)

    def prox(self, v: Tensor, tau: float | Tensor) -> Tensor:
        if not self.operator.linear:
            raise CapabilityError(
                f"{self.name}: a nonlinear operator has no data prox; use a gradient solver (gd, adam)"
            )
        return self.operator.prox_data(v, self.y, tau)  # type: ignore[attr-defined]
