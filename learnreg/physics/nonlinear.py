"""Known nonlinear degradations applied pixel by pixel (camera response curves and the like).

They are :class:`~learnreg.physics.operator.Operator` s without an adjoint: solvers use
:meth:`~learnreg.physics.operator.Operator.data_grad`, computed by autograd, and
they compose with linear operators through ``@`` (``ResponseCurve(s) @ Blur(k, s)``).
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import Tensor

from learnreg.physics.operator import Operator, _as_shape

__all__ = ["Pointwise", "ResponseCurve"]


class Pointwise(Operator):
    """``y = f(x)`` elementwise, for a differentiable torch function ``f``.

    Parameters
    ----------
    function : callable
        ``Tensor -> Tensor`` of the same shape, built from torch operations (autograd
        gives the data gradient ``f'(x) (f(x) - y)``).
    shape : tuple of int
        Per-sample shape ``(C, H, W)`` of ``x`` and ``y``.
    name : str
        Shown in messages.

    Examples
    --------
    >>> import torch
    >>> A = Pointwise(torch.sqrt, (1, 2, 2), name="sqrt")
    >>> A(torch.full((1, 1, 2, 2), 4.0)).flatten().tolist()
    [2.0, 2.0, 2.0, 2.0]
    """

    def __init__(self, function: Callable[[Tensor], Tensor], shape: tuple[int, ...], *, name: str = "Pointwise"):
        if not callable(function):
            raise TypeError(f"Pointwise needs a callable, got {type(function).__name__}")
        shape = _as_shape(shape, "shape")
        super().__init__(shape, shape)
        self.function = function
        self._name = str(name)

    @property
    def name(self) -> str:
        return self._name

    def _forward(self, x: Tensor) -> Tensor:
        y = self.function(x)
        if not isinstance(y, Tensor) or y.shape != x.shape:
            got = tuple(y.shape) if isinstance(y, Tensor) else type(y).__name__
            raise ValueError(f"{self._name}: the function must keep the shape {tuple(x.shape)}, returned {got}")
        return y


class ResponseCurve(Pointwise):
    """A smooth saturating camera response: soft clipping at ``saturation``, then a gamma curve.

    Parameters
    ----------
    shape : tuple of int
        Per-sample shape ``(C, H, W)``.
    gamma : float
        Display gamma ``> 0``; the curve raises to ``1 / gamma``.
    saturation : float
        Level ``s > 0`` where the sensor saturates.
    epsilon : float
        Offset ``> 0`` that keeps the gamma curve's slope finite at 0 (as the linear
        toe of sRGB does); the slope at 0 is ``epsilon^(1/gamma - 1) / gamma``.

    Notes
    -----
    With ``u = s tanh(x / s)`` (slope 1 at 0, tends to ``s``)::

        y = (u + epsilon)^(1/gamma) - epsilon^(1/gamma)      for u >= 0
        y = epsilon^(1/gamma - 1) / gamma * u                for u < 0   (linear continuation)

    The map is increasing and continuously differentiable everywhere, so autograd
    gives the exact data gradient; it is not invertible above the saturation in
    practice (its slope vanishes), which is the point of the degradation.

    Examples
    --------
    >>> import torch
    >>> A = ResponseCurve((1, 1, 3), gamma=1.0, saturation=1.0)
    >>> [round(v, 3) for v in A(torch.tensor([[[[0.0, 0.5, 10.0]]]])).flatten().tolist()]
    [0.0, 0.462, 1.0]
    """

    def __init__(self, shape: tuple[int, ...], *, gamma: float = 2.2, saturation: float = 1.0, epsilon: float = 1e-2):
        for label, value in (("gamma", gamma), ("saturation", saturation), ("epsilon", epsilon)):
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"ResponseCurve {label} must be a finite number > 0, got {value!r}")
        self.gamma, self.saturation, self.epsilon = float(gamma), float(saturation), float(epsilon)
        name = f"ResponseCurve(gamma={self.gamma:g}, saturation={self.saturation:g})"
        super().__init__(self._curve, shape, name=name)

    def _curve(self, x: Tensor) -> Tensor:
        s, power, eps = self.saturation, 1.0 / self.gamma, self.epsilon
        u = s * torch.tanh(x / s)
        positive = u >= 0
        # where() routes the gradient to the selected branch only; the other branch sees a safe value
        safe = torch.where(positive, u, torch.zeros_like(u))
        curve = (safe + eps).pow(power) - eps ** power
        return torch.where(positive, curve, (power * eps ** (power - 1)) * u)
