"""The regularizer contract: ``value``, ``grad`` and ``prox`` with capability flags.

Convention (DESIGN.md):

    prox_{tau R}(v) = argmin_x  tau R(x) + 1/2 ||x - v||^2.

A regularizer declares what it can do with ``has_value``, ``has_grad`` and
``has_prox``; calling a missing capability raises :class:`CapabilityError`, which
names the regularizer and what to use instead. An approximate prox (a fixed
budget of inner iterations, a denoiser) sets ``prox_is_exact = False`` and says so
in its name. ``tau`` may be a float or a per-sample tensor of shape ``(B,)``.
"""

from __future__ import annotations

from torch import Tensor

from learnreg.physics.operator import per_sample  # noqa: F401  (re-exported for regularizers)


class CapabilityError(NotImplementedError):
    """A regularizer was asked for something it cannot compute."""


class Regularizer:
    """Base class of every regularizer, classical or learned.

    Subclasses set the capability flags and override the matching methods.
    Learned regularizers wrap the network they are given and build none.
    """

    has_value: bool = False
    has_grad: bool = False
    has_prox: bool = False
    prox_is_exact: bool = True

    @property
    def name(self) -> str:
        return type(self).__name__

    def __repr__(self) -> str:
        return self.name

    def value(self, x: Tensor) -> Tensor:
        """``R(x)`` per batch element. ``x``: ``(B, C, H, W)``; returns ``(B,)``."""
        raise CapabilityError(f"{self.name} has no value(); use a solver that needs only grad or prox")

    def grad(self, x: Tensor) -> Tensor:
        """``nabla R(x)``, same shape as ``x``."""
        raise CapabilityError(f"{self.name} has no grad(); use a proximal solver (forward-backward, ADMM, HQS)")

    def prox(self, v: Tensor, tau: float | Tensor) -> Tensor:
        """``prox_{tau R}(v)``, same shape as ``v``."""
        raise CapabilityError(f"{self.name} has no prox(); use a gradient solver (gd, adam)")

    # -- algebra --------------------------------------------------------------
    def __mul__(self, weight: float) -> "Regularizer":
        if not isinstance(weight, (int, float)):
            return NotImplemented
        return Weighted(self, float(weight))

    __rmul__ = __mul__

    def __add__(self, other: "Regularizer") -> "Regularizer":
        if not isinstance(other, Regularizer):
            return NotImplemented
        return Sum(self, other)


class Weighted(Regularizer):
    """``w * R``; ``prox_{tau w R} = prox_{(tau w) R}``."""

    def __init__(self, base: Regularizer, weight: float):
        if weight < 0:
            raise ValueError(f"regularization weight must be >= 0, got {weight}")
        self.base, self.weight = base, weight
        self.has_value, self.has_grad, self.has_prox = base.has_value, base.has_grad, base.has_prox
        self.prox_is_exact = base.prox_is_exact

    @property
    def name(self) -> str:
        return f"{self.weight:g}*{self.base.name}"

    def value(self, x: Tensor) -> Tensor:
        return self.weight * self.base.value(x)

    def grad(self, x: Tensor) -> Tensor:
        return self.weight * self.base.grad(x)

    def prox(self, v: Tensor, tau: float | Tensor) -> Tensor:
        return self.base.prox(v, tau * self.weight)


class Sum(Regularizer):
    """``R1 + R2``: value and grad add; there is no prox of a sum in general."""

    def __init__(self, first: Regularizer, second: Regularizer):
        self.first, self.second = first, second
        self.has_value = first.has_value and second.has_value
        self.has_grad = first.has_grad and second.has_grad

    @property
    def name(self) -> str:
        return f"({self.first.name} + {self.second.name})"

    def value(self, x: Tensor) -> Tensor:
        return self.first.value(x) + self.second.value(x)

    def grad(self, x: Tensor) -> Tensor:
        return self.first.grad(x) + self.second.grad(x)
