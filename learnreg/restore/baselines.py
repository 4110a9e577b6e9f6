"""Direct baselines: bicubic interpolation and back-projection for SR, harmonic fill for masks.

Bicubic upsampling here respects the operator's own sampling grid: the centre of
low-resolution pixel ``i`` sits at high-resolution coordinate ``c0 + i * factor``,
where ``c0`` is measured from the operator itself (the centroid of the footprint
``A^T e_i``), so the interpolant lines up with MATLAB-convention bicubic
decimation, with nearest decimation at any offset, and with any user kernel.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import torch
from torch import Tensor

from learnreg.physics.gradient import FiniteDifference
from learnreg.physics.operator import LinearOperator, Operator, conjugate_gradient
from learnreg.restore.methods import Method, Parameter, Problem, register
from learnreg.solvers.base import History


def family(operator: Operator) -> str:
    """``"denoise"``, ``"blur"``, ``"sr"`` or ``"inpaint"``: the task an operator poses."""
    from learnreg.physics import Blur, Identity, Inpaint, SuperResolution

    if isinstance(operator, Identity):
        return "denoise"
    if isinstance(operator, SuperResolution):
        return "sr"
    if isinstance(operator, Inpaint):
        return "inpaint"
    if isinstance(operator, Blur):
        return "blur"
    if operator.out_shape[1:] != operator.in_shape[1:]:
        return "sr"
    return "blur"


def _sampling_origin(operator: LinearOperator, axis: int) -> float:
    """HR coordinate of LR pixel 0's centre along ``axis`` (2 rows, 3 columns), from the footprint."""
    _, h, w = operator.out_shape
    probe = torch.zeros((1, *operator.out_shape), dtype=torch.float64)
    mid_row, mid_col = h // 2, w // 2
    probe[0, 0, mid_row, mid_col] = 1.0
    footprint = operator.adjoint(probe)[0, 0].abs()
    profile = footprint.sum(dim=1 if axis == 2 else 0)
    coordinates = torch.arange(profile.numel(), dtype=torch.float64)
    centre = float((profile * coordinates).sum() / profile.sum())
    factor = operator.in_shape[axis - 1] / operator.out_shape[axis - 1]
    return centre - (mid_row if axis == 2 else mid_col) * factor


def _keys_cubic(t: Tensor, a: float = -0.5) -> Tensor:
    t = t.abs()
    near = ((a + 2) * t - (a + 3)) * t * t + 1
    far = ((a * t - 5 * a) * t + 8 * a) * t - 4 * a
    return torch.where(t <= 1, near, torch.where(t < 2, far, torch.zeros_like(t)))


def _tent(t: Tensor) -> Tensor:
    return (1.0 - t.abs()).clamp_min(0.0)


# name -> (kernel, half support in LR samples)
INTERPOLATION_KERNELS: dict[str, tuple[Callable[[Tensor], Tensor], int]] = {
    "cubic": (_keys_cubic, 2),
    "linear": (_tent, 1),
}


def _interpolation_matrix(high: int, low: int, origin: float, factor: float, *, kernel: str = "cubic",
                          boundary: str = "periodic") -> Tensor:
    """``(high, low)`` interpolation from LR samples at ``origin + i * factor``.

    ``kernel`` is ``"cubic"`` (Keys, ``a = -0.5``, 4 taps) or ``"linear"`` (tent, 2 taps);
    ``boundary`` ``"periodic"`` wraps around, ``"replicate"`` repeats the edge samples.
    """
    function, support = INTERPOLATION_KERNELS[kernel]
    positions = (torch.arange(high, dtype=torch.float64) - origin) / factor  # LR coordinate of each HR pixel
    base = torch.floor(positions)
    matrix = torch.zeros(high, low, dtype=torch.float64)
    rows = torch.arange(high)
    for offset in range(1 - support, support + 1):
        index = base + offset
        weight = function(positions - index)
        index = index.long() % low if boundary == "periodic" else index.long().clamp(0, low - 1)
        matrix.index_put_((rows, index), weight, accumulate=True)
    return matrix


def interpolate_upsample(y: Tensor, operator: LinearOperator, *, kernel: str = "cubic",
                         boundary: str = "periodic") -> Tensor:
    """Separable interpolation of ``y`` onto ``operator.in_shape``, on the operator's sampling grid.

    Parameters
    ----------
    y : Tensor, shape (B, C, h, w)
        Low-resolution measurements, ``(C, h, w) = operator.out_shape``.
    operator : LinearOperator
        The SR operator; LR pixel ``i`` sits at HR coordinate ``c0 + i * factor`` with
        ``c0`` measured from its footprint (module docstring).
    kernel : {"cubic", "linear"}, optional
        Keys bicubic (``a = -0.5``) or bilinear (tent) interpolation.
    boundary : {"periodic", "replicate"}, optional
        Periodic matches the circular convolution of the SR operators; ``"replicate"``
        repeats the edge samples, better for signals that do not wrap around (depth
        maps of slanted surfaces) when the kernel does not cross the border (box,
        nearest).

    Returns
    -------
    Tensor, shape (B, C, H, W)
        Same dtype and device as ``y``.
    """
    if kernel not in INTERPOLATION_KERNELS:
        raise ValueError(f"unknown interpolation kernel {kernel!r}; valid kernels: {', '.join(INTERPOLATION_KERNELS)}")
    if boundary not in ("periodic", "replicate"):
        raise ValueError(f"unknown boundary {boundary!r}; valid boundaries: periodic, replicate")
    _, H, W = operator.in_shape
    _, h, w = operator.out_shape
    rows = _interpolation_matrix(H, h, _sampling_origin(operator, 2), H / h, kernel=kernel, boundary=boundary).to(y)
    cols = _interpolation_matrix(W, w, _sampling_origin(operator, 3), W / w, kernel=kernel, boundary=boundary).to(y)
    return torch.einsum("Hh,bchw,Ww->bcHW", rows, y, cols)


def bicubic_upsample(y: Tensor, operator: LinearOperator) -> Tensor:
    """Keys bicubic interpolation of ``y`` onto ``operator.in_shape``, on the operator's grid.

    Boundaries are periodic, matching the circular convolution of the SR operators.
    """
    return interpolate_upsample(y, operator, kernel="cubic")


def backprojection(y: Tensor, operator: LinearOperator, *, iterations: int = 30,
                   callback=None, reference: Tensor | None = None) -> tuple[Tensor, History]:
    """Iterative back-projection (Irani & Peleg 1991): ``x <- x + U(y - A x)``, ``U`` bicubic."""
    from learnreg.solvers.base import Diverged, MaxIter, Solver, State

    class _BackProjection(Solver):
        def step(self, state: State) -> State:
            return State(x=state.x + bicubic_upsample(y - operator(state.x), operator), iteration=state.iteration + 1)

    return _BackProjection().run(bicubic_upsample(y, operator), stop=MaxIter(iterations) | Diverged(100.0),
                                 reference=reference, callback=callback, record_objective=False)


def observation_mask(operator: LinearOperator) -> Tensor:
    """The diagonal of a masking operator, ``A 1``, shape ``(1, C, H, W)``."""
    return operator(torch.ones((1, *operator.in_shape)))


def harmonic_fill(y: Tensor, operator: LinearOperator, *, iterations: int = 300, tol: float = 1e-6) -> Tensor:
    """Fill missing pixels with the harmonic interpolant: ``Laplacian x = 0`` on holes, ``x = y`` elsewhere.

    Solved by conjugate gradients on the hole pixels (periodic boundary).
    """
    mask = observation_mask(operator).to(y)
    holes = 1.0 - mask
    gradient = FiniteDifference(operator.in_shape)
    observed = mask * y
    # start the holes at the mean of the observed pixels, per image and channel
    mean = observed.sum((2, 3), keepdim=True) / mask.sum((2, 3), keepdim=True).clamp_min(1.0)
    start = observed + holes * mean
    rhs = -holes * gradient.normal(observed)
    filled = conjugate_gradient(lambda v: holes * gradient.normal(holes * v), rhs, x0=holes * start,
                                max_iter=iterations, tol=tol)
    return observed + holes * filled


def upsample_for_display(y: Tensor, operator: Operator, *, clamp: bool = True) -> Tensor:
    """Measurements on the image grid for pictures: nearest-neighbour enlargement for SR.

    ``clamp`` clips to ``[0, 1]`` (images); pass ``False`` for depth maps in their own units.
    """
    if y.shape[1:] != operator.in_shape:
        factor = math.ceil(operator.in_shape[1] / y.shape[2])
        big = y.repeat_interleave(factor, dim=2).repeat_interleave(factor, dim=3)
        y = big[..., : operator.in_shape[1], : operator.in_shape[2]]
    return y.clamp(0, 1) if clamp else y


def _is_sr(operator: Operator) -> bool:
    return operator.linear and family(operator) == "sr"


def _is_inpaint(operator: Operator) -> bool:
    return operator.linear and family(operator) == "inpaint"


def _run_bicubic(problem: Problem, params: dict[str, Any], *, reference=None, callback=None):
    return bicubic_upsample(problem.y, problem.operator), None


def _run_backprojection(problem: Problem, params: dict[str, Any], *, reference=None, callback=None):
    return backprojection(problem.y, problem.operator, iterations=params["iterations"],
                          reference=reference, callback=callback)


def _run_harmonic(problem: Problem, params: dict[str, Any], *, reference=None, callback=None):
    return harmonic_fill(problem.y, problem.operator, iterations=params["iterations"]), None


register(Method("bicubic", "bicubic interpolation on the operator's sampling grid (SR)", _run_bicubic,
                {}, _is_sr, "bicubic applies to super-resolution operators (sr:...)"))
register(Method("backprojection", "iterative back-projection with bicubic upsampling (SR)", _run_backprojection,
                {"iterations": Parameter(int, 30, "back-projection iterations")}, _is_sr,
                "back-projection applies to super-resolution operators (sr:...)"))
register(Method("harmonic", "harmonic (Laplace) fill of missing pixels (inpainting)", _run_harmonic,
                {"iterations": Parameter(int, 500, "conjugate-gradient iterations")}, _is_inpaint,
                "harmonic fill applies to inpainting operators (inpaint:...)"))
