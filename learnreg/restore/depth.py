"""Depth super-resolution baselines: box pseudo-inverse, bilinear, guided filter.

Depth maps are ``(B, 1, H, W)`` tensors in their own units. The measurements
``y = A x`` come from a :class:`~learnreg.physics.superres.SuperResolution`
operator, usually box (block-average) downsampling as in Gazdieva et al. (VISAPP
2022), or nearest decimation.

* :func:`box_pseudo_inverse`: ``A^+ y`` for block averaging, i.e. block
  replication; ``A A^T = I / s^2`` there, so ``A^+ = s^2 A^T`` and ``A A^+ y = y``.
* :func:`bilinear_upsample`: bilinear (tent) interpolation on the operator's own
  sampling grid, the twin of :func:`~learnreg.restore.baselines.bicubic_upsample`.
* :func:`guided_filter_upsample`: bicubic upsampling followed by the guided
  filter of He, Sun & Tang (ECCV 2010 / TPAMI 2013) steered by an RGB image of the
  scene, a classic joint (guided) depth upsampling baseline.

Registered methods: ``bilinear`` (any SR operator), ``box-pinv`` (box
downsampling only) and ``guided-filter`` (SR with ``Problem.guide``; CLI
``--guide``). A TV depth upsampling baseline is the generic ``tv`` method.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from learnreg.learned.nets.msgnet import luminance
from learnreg.physics.operator import LinearOperator, Operator
from learnreg.physics.superres import SuperResolution
from learnreg.restore.baselines import _is_sr, interpolate_upsample
from learnreg.restore.methods import Method, Parameter, Problem, check_guide, register

__all__ = [
    "bilinear_upsample", "box_filter", "box_pseudo_inverse", "guided_filter",
    "guided_filter_upsample", "is_box_downsampling", "luminance",
]



# -- box pseudo-inverse ----------------------------------------------------------------------
def _box_support(operator: Operator) -> tuple[int, int] | None:
    """``(first row, first column)`` of the ``s x s`` block of ``1 / s^2`` taps if the kernel is a box, else None."""
    if not isinstance(operator, SuperResolution):
        return None
    s = operator.factor
    kernel = operator.kernel
    nonzero = (kernel.abs() > 1e-12).nonzero()
    if nonzero.shape[0] != s * s:
        return None
    top, left = (int(v) for v in nonzero.min(dim=0).values)
    block = kernel[top:top + s, left:left + s]
    if tuple(block.shape) != (s, s) or not bool(torch.allclose(block, torch.full_like(block, 1.0 / s**2),
                                                                rtol=0.0, atol=1e-12)):
        return None
    return top, left


def is_box_downsampling(operator: Operator) -> bool:
    """Whether ``operator`` is block averaging: SR whose kernel is ``s x s`` taps of ``1 / s^2`` (zeros elsewhere).

    Judged from the kernel array, so operators rebuilt from a saved spec (whose kernel
    is an array, not the name ``"box"``) qualify too; so do odd factors, whose
    :func:`~learnreg.physics.kernels.box_kernel` is padded with a zero row and column.
    """
    return _box_support(operator) is not None


def box_pseudo_inverse(y: Tensor, operator: SuperResolution) -> Tensor:
    """Moore-Penrose pseudo-inverse of block averaging: replicate each LR value over its block.

    Parameters
    ----------
    y : Tensor, shape (B, C, h, w)
        Low-resolution measurements, ``(C, h, w) = operator.out_shape``.
    operator : SuperResolution
        Box downsampling by ``s`` (``sr:S:box``), any sampling offset.

    Returns
    -------
    Tensor, shape (B, C, s h, s w)
        ``A^+ y = s^2 A^T y``: the block of ``y[i, j]`` holds ``y[i, j]``. Then
        ``A A^+ y = y`` exactly, and among all ``x`` with ``A x = y`` this one has the
        smallest norm. Same dtype and device as ``y``.

    Notes
    -----
    With ``(A x)[i, j] = sum_ab k[a, b] x[o_r + s i + kh//2 - a, o_c + s j + kw//2 - b]``
    (:class:`~learnreg.physics.superres.SuperResolution`) and ``k = 1 / s^2`` on rows
    ``t .. t + s - 1`` (and zero elsewhere), LR pixel ``i`` averages rows
    ``d + s i .. d + s i + s - 1`` with ``d = o_r + kh//2 - t - (s - 1)`` (0 for the
    default offset), modulo ``H``; likewise for columns. The blocks tile the image, so
    ``A A^T = I / s^2`` and ``A^+ = A^T (A A^T)^{-1} = s^2 A^T``.
    """
    support = _box_support(operator)
    if support is None:
        name = getattr(operator, "name", type(operator).__name__)
        raise ValueError(f"box_pseudo_inverse needs box downsampling (sr:FACTOR:box), got {name}; "
                         "use bilinear_upsample or bicubic_upsample for other kernels")
    s = operator.factor
    shift = tuple(o + size // 2 - t - (s - 1)
                  for o, size, t in zip(operator.offset, operator.kernel.shape, support))
    big = y.repeat_interleave(s, dim=2).repeat_interleave(s, dim=3)
    return torch.roll(big, shifts=shift, dims=(2, 3))


# -- bilinear --------------------------------------------------------------------------------
def bilinear_upsample(y: Tensor, operator: LinearOperator, *, boundary: str = "periodic") -> Tensor:
    """Bilinear interpolation of ``y`` onto ``operator.in_shape``, on the operator's grid.

    Parameters
    ----------
    y : Tensor, shape (B, C, h, w)
    operator : LinearOperator
        An SR operator; LR pixel ``i`` is placed at the centroid of its footprint
        ``A^T e_i`` (see :mod:`learnreg.restore.baselines`), e.g. the block centre
        ``s i + (s - 1) / 2`` for box downsampling, ``s i`` for nearest decimation.
    boundary : {"periodic", "replicate"}, optional
        Periodic (as :func:`~learnreg.restore.baselines.bicubic_upsample` and the
        circular SR operators) or edge replication, which avoids wrap-around ramps on
        depth maps whose opposite borders differ (box and nearest kernels only reach
        inside the image, so replication is consistent with them).

    Returns
    -------
    Tensor, shape (B, C, H, W)
        Tent-kernel interpolation; no overshoot (values stay within the range of
        ``y``). Same dtype and device as ``y``.
    """
    return interpolate_upsample(y, operator, kernel="linear", boundary=boundary)


# -- guided filter ---------------------------------------------------------------------------
def box_filter(x: Tensor, radius: int) -> Tensor:
    """Mean over the ``(2 r + 1)^2`` window around each pixel, clipped at the borders.

    Parameters
    ----------
    x : Tensor, shape (..., H, W)
    radius : int
        ``r >= 0``; windows are cut at the image edges and the mean is over the pixels
        inside (as in He et al.'s reference implementation).

    Returns
    -------
    Tensor, shape (..., H, W)
        Computed from cumulative sums: ``O(1)`` operations per pixel whatever ``r``.
        Accumulate in float64 for large images (cancellation in the differences).
    """
    if isinstance(radius, bool) or int(radius) != radius or radius < 0:
        raise ValueError(f"box filter radius must be an integer >= 0, got {radius!r}")
    radius = int(radius)
    for dim in (-2, -1):
        size = x.shape[dim]
        zero = torch.zeros_like(x.narrow(dim, 0, 1))
        cumulative = torch.cat([zero, x.cumsum(dim)], dim=dim)  # cumulative[k] = sum of x[:k]
        index = torch.arange(size, device=x.device)
        high = (index + radius + 1).clamp(max=size)
        low = (index - radius).clamp(min=0)
        count = (high - low).to(x.dtype)
        window = cumulative.index_select(dim, high) - cumulative.index_select(dim, low)
        x = window / (count.view(-1, 1) if dim == -2 else count)
    return x


def guided_filter(p: Tensor, guide: Tensor, *, radius: int, eps: float) -> Tensor:
    """The guided filter of He, Sun & Tang, grey (one guide channel) or colour (three).

    In every ``(2 r + 1)^2`` window ``w`` the output is an affine function of the guide,
    ``q = a_w^T I + b_w``, with ``(a_w, b_w)`` minimising
    ``sum_w (a^T I + b - p)^2 + eps |a|^2``::

        a = (Sigma_I + eps Id)^{-1} cov(I, p),   b = mean(p) - a^T mean(I)

    and ``q(x)`` averages the affine models of the windows containing ``x``:
    ``q = mean(a)^T I + mean(b)``.

    Parameters
    ----------
    p : Tensor, shape (B, Cp, H, W)
        The image to filter (e.g. an upsampled depth map); each channel is filtered.
    guide : Tensor, shape (B or 1, Cg, H, W), Cg = 1 or 3
        Guide intensities, usually in ``[0, 1]``.
    radius : int
        Window radius ``r`` in pixels.
    eps : float
        ``> 0``, in guide units squared (``[0, 1]`` intensities: ``eps = 1e-4`` means
        edges with a contrast below about ``sqrt(eps) = 0.01`` are smoothed over).
        It does not depend on the units of ``p``.

    Returns
    -------
    Tensor, shape (B, Cp, H, W)
        Same dtype and device as ``p``; computed in float64 (box sums by cumulative
        sums, ``Cg x Cg`` solves per pixel).

    Notes
    -----
    With a constant guide ``a = 0`` and ``q = mean(mean(p))``, two box filters in a
    row; with ``guide = p`` (one channel) and ``eps -> 0``, ``q -> p``.
    """
    if not eps > 0:
        raise ValueError(f"guided filter eps must be > 0, got {eps!r}")
    if (p.dim() != 4 or guide.dim() != 4 or guide.shape[1] not in (1, 3) or guide.shape[-2:] != p.shape[-2:]
            or guide.shape[0] not in (1, p.shape[0])):
        raise ValueError(f"guided_filter: p must be (B, C, H, W) and guide (B or 1, 1|3, H, W) of the same size; "
                         f"got {tuple(p.shape)} and {tuple(guide.shape)}")
    I = guide.to(device=p.device, dtype=torch.float64)
    q = p.to(torch.float64)
    channels = I.shape[1]

    def mean(x: Tensor) -> Tensor:
        return box_filter(x, radius)

    mean_I = mean(I)  # (B, Cg, H, W)
    mean_p = mean(q)  # (B, Cp, H, W)
    # cov(I_k, p_c): (B, Cg, Cp, H, W); Sigma_kl: (B, H, W, Cg, Cg)
    cov_Ip = mean(I[:, :, None] * q[:, None]) - mean_I[:, :, None] * mean_p[:, None]
    sigma = mean(I[:, :, None] * I[:, None]) - mean_I[:, :, None] * mean_I[:, None]  # (B, Cg, Cg, H, W)
    sigma = sigma.permute(0, 3, 4, 1, 2) + eps * torch.eye(channels, dtype=torch.float64, device=p.device)
    a = torch.linalg.solve(sigma, cov_Ip.permute(0, 3, 4, 1, 2))  # (B, H, W, Cg, Cp)
    a = a.permute(0, 3, 4, 1, 2)  # (B, Cg, Cp, H, W)
    b = mean_p - (a * mean_I[:, :, None]).sum(dim=1)  # (B, Cp, H, W)
    out = (mean(a) * I[:, :, None]).sum(dim=1) + mean(b)
    return out.to(p.dtype)


def guided_filter_upsample(y: Tensor, operator: LinearOperator, guide: Tensor | None, *, radius: int | None = None,
                           eps: float = 1e-4, color: bool = True, boundary: str = "periodic") -> Tensor:
    """Joint upsampling: bicubic interpolation of ``y``, then a guided filter steered by ``guide``.

    Parameters
    ----------
    y : Tensor, shape (B, 1, h, w)
        Low-resolution depth (any units; the filter is linear in ``y``).
    operator : LinearOperator
        The SR operator; the bicubic step uses its sampling grid.
    guide : Tensor, shape (B or 1, 3, H, W) or (B or 1, 1, H, W)
        Aligned high-resolution image, intensities in ``[0, 1]``.
    radius : int, optional
        Window radius in high-resolution pixels; default twice the SR factor ``s`` (8 for
        x4), so a window spans about two LR samples each way. Picked on a 64 x 64
        synthetic scene (boxes on a slanted plane, box x4): radius ``s``, ``1.5 s``,
        ``2 s``, ``3 s``, ``4 s`` gave RMSE_d 0.0385, 0.0356, 0.0346, 0.0349, 0.0369.
    eps : float, optional
        Regularisation in guide-intensity units squared (not depth units): guide edges
        weaker than about ``sqrt(eps)`` are not transferred. ``1e-4`` by default (on the
        scene above ``1e-4``, ``1e-3``, ``1e-2`` gave RMSE_d 0.0385, 0.0393, 0.0460 at radius 4).
    color : bool, optional
        ``True``: the colour guided filter (3 x 3 covariance per window), which
        separates objects of equal luminance but different colour. ``False``: the
        guide's luminance (BT.601) only.
    boundary : {"periodic", "replicate"}, optional
        Boundary of the bicubic step (see :func:`bilinear_upsample`); the guided filter
        itself cuts its windows at the image edges.

    Returns
    -------
    Tensor, shape (B, 1, H, W)
        Same dtype and device as ``y``.

    Raises
    ------
    ValueError
        No guide, or a guide whose size is not the operator's input ``H x W``.
    """
    guide = check_guide(guide, operator, batch=y.shape[0], method="guided_filter_upsample")
    if radius is None:
        radius = 2 * round(operator.in_shape[1] / operator.out_shape[1])
    start = interpolate_upsample(y, operator, kernel="cubic", boundary=boundary)
    guide = guide.to(device=y.device, dtype=torch.float64)
    if not color:
        guide = luminance(guide)
    return guided_filter(start, guide, radius=radius, eps=eps)


# -- registered methods ----------------------------------------------------------------------
def _run_bilinear(problem: Problem, params: dict[str, Any], *, reference=None, callback=None):
    return bilinear_upsample(problem.y, problem.operator, boundary=params["boundary"]), None


def _run_box_pinv(problem: Problem, params: dict[str, Any], *, reference=None, callback=None):
    return box_pseudo_inverse(problem.y, problem.operator), None


def _run_guided_filter(problem: Problem, params: dict[str, Any], *, reference=None, callback=None):
    check_guide(problem.guide, problem.operator, method="guided-filter")
    radius = None if params["radius"] == 0 else params["radius"]
    return guided_filter_upsample(problem.y, problem.operator, problem.guide, radius=radius, eps=params["eps"],
                                  color=params["color"], boundary=params["boundary"]), None


_BOUNDARY = Parameter(str, "periodic", "interpolation boundary: periodic or replicate (edge samples repeated)")


register(Method("bilinear", "bilinear interpolation on the operator's sampling grid (SR)", _run_bilinear,
                {"boundary": _BOUNDARY}, _is_sr, "bilinear applies to super-resolution operators (sr:...)"))
register(Method("box-pinv", "pseudo-inverse of box downsampling: block replication (SR, box kernel)", _run_box_pinv,
                {}, is_box_downsampling,
                "box-pinv applies to box-average super-resolution only (sr:FACTOR:box); use bilinear or bicubic"))
register(Method("guided-filter", "bicubic then He et al.'s guided filter steered by an RGB guide (SR, needs --guide)",
                _run_guided_filter,
                {"radius": Parameter(int, 0, "window radius in high-resolution pixels; 0 = twice the SR factor"),
                 "eps": Parameter(float, 1e-4, "regularisation in guide intensity^2 ([0, 1] scale)"),
                 "color": Parameter(bool, True, "colour guided filter (false: guide luminance only)"),
                 "boundary": _BOUNDARY},
                _is_sr, "guided-filter applies to super-resolution operators (sr:...) with a guide image (--guide)"))
