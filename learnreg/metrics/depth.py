"""Depth-map metrics: RMSE, MAE, bad-matching percentage and RMSE_v.

All functions take depth maps of shape ``(B, 1, H, W)`` (``rmse`` and ``mae``
accept any channel count) and return one value per map, shape ``(B,)``.

Invalid pixels are excluded everywhere: a pixel counts only where the optional
boolean ``mask`` is true **and** both ``pred`` and ``gt`` are finite, so NaN or
inf may mark holes in a ground truth. A map with no valid pixel raises.

Units
-----
* ``rmse``, ``mae``: the data's own units (state them when reporting).
* ``bmp``: percent, after normalising both maps to ``[0, 255]`` with the
  ground truth's per-image min and max over valid pixels.
* ``rmse_v``: grey levels in ``[0, 255]`` of Lambertian renderings, with the
  pixel pitch ``pixel_size`` in depth units (default ``1 / W``, the
  unit-square scenes).

``rmse_v`` follows the adopted definition (after Voynov et al. 2019):
orthographic camera along +Z, forward differences
``g_x = z[i, j+1] - z[i, j]``, ``g_y = z[i+1, j] - z[i, j]`` on the
``(H-1) x (W-1)`` grid without padding, normal ``n = (g_x, g_y, -h) / |.|``,
directional light from the camera ``l = (0, 0, -1)``, no shadows, so the
shading is ``s = h / sqrt(h^2 + g_x^2 + g_y^2)`` and the image ``I = 255 s``.
A cell is valid when its three pixels ``(i, j), (i, j+1), (i+1, j)`` are
valid in both maps.
"""

from __future__ import annotations

import logging

import torch
from torch import Tensor

logger = logging.getLogger(__name__)


def _check_depth_pair(pred: Tensor, gt: Tensor, function: str, *, single_channel: bool) -> None:
    for name, value in (("pred", pred), ("gt", gt)):
        if not isinstance(value, Tensor):
            raise TypeError(f"{function}: {name} must be a torch.Tensor, got {type(value).__name__}")
        if value.dim() != 4:
            raise ValueError(
                f"{function}: {name} must have shape (B, 1, H, W), got {tuple(value.shape)}; "
                "add the missing dimensions, e.g. depth[None, None] for an (H, W) map"
            )
    if pred.shape != gt.shape:
        raise ValueError(
            f"{function}: pred has shape {tuple(pred.shape)} but gt has shape "
            f"{tuple(gt.shape)}; upsample the prediction to the ground-truth size first"
        )
    if single_channel and pred.shape[1] != 1:
        raise ValueError(
            f"{function}: depth maps must have one channel, got shape {tuple(pred.shape)}"
        )


def _valid_pixels(pred: Tensor, gt: Tensor, mask: Tensor | None, function: str) -> Tensor:
    """Boolean (B, C, H, W): mask & finite(pred) & finite(gt)."""
    valid = torch.isfinite(pred) & torch.isfinite(gt)
    if mask is not None:
        if not isinstance(mask, Tensor) or mask.dtype != torch.bool:
            kind = mask.dtype if isinstance(mask, Tensor) else type(mask).__name__
            raise TypeError(
                f"{function}: mask must be a bool tensor (true = valid pixel), got {kind}; "
                "pass e.g. gt > 0"
            )
        try:
            valid = valid & mask.to(valid.device)
        except RuntimeError:
            raise ValueError(
                f"{function}: mask of shape {tuple(mask.shape)} does not broadcast to the "
                f"depth shape {tuple(pred.shape)}; pass (B, 1, H, W), (1, 1, H, W) or (H, W)"
            ) from None
        if valid.shape != pred.shape:
            raise ValueError(
                f"{function}: mask of shape {tuple(mask.shape)} enlarges the depth shape "
                f"{tuple(pred.shape)}; pass (B, 1, H, W), (1, 1, H, W) or (H, W)"
            )
    return valid


def _count_valid(valid: Tensor, function: str) -> Tensor:
    count = valid.flatten(1).sum(dim=1)
    empty = (count == 0).nonzero().flatten().tolist()
    if empty:
        raise ValueError(
            f"{function}: no valid pixel in batch item(s) {empty} (mask false or values "
            "non-finite everywhere); check the mask and the ground truth"
        )
    return count


def _masked_mean(values: Tensor, valid: Tensor, count: Tensor) -> Tensor:
    # torch.where, not multiplication, so NaN in excluded pixels cannot leak
    # into the value or its gradient
    zeros = torch.zeros((), dtype=values.dtype, device=values.device)
    return torch.where(valid, values, zeros).flatten(1).sum(dim=1) / count


def rmse(pred: Tensor, gt: Tensor, *, mask: Tensor | None = None) -> Tensor:
    """Root-mean-square error over valid pixels (RMSE_d), in the data's units.

    Parameters
    ----------
    pred, gt : Tensor, shape (B, C, H, W)
        Estimate and ground truth in the same units.
    mask : Tensor of bool, broadcastable to (B, C, H, W), optional
        True where a pixel counts; non-finite pixels never count.

    Returns
    -------
    Tensor, shape (B,)
    """
    _check_depth_pair(pred, gt, "rmse", single_channel=False)
    valid = _valid_pixels(pred, gt, mask, "rmse")
    count = _count_valid(valid, "rmse")
    return _masked_mean((pred - gt).pow(2), valid, count).sqrt()


def mae(pred: Tensor, gt: Tensor, *, mask: Tensor | None = None) -> Tensor:
    """Mean absolute error over valid pixels, in the data's units.

    Parameters
    ----------
    pred, gt : Tensor, shape (B, C, H, W)
        Estimate and ground truth in the same units.
    mask : Tensor of bool, broadcastable to (B, C, H, W), optional
        True where a pixel counts; non-finite pixels never count.

    Returns
    -------
    Tensor, shape (B,)
    """
    _check_depth_pair(pred, gt, "mae", single_channel=False)
    valid = _valid_pixels(pred, gt, mask, "mae")
    count = _count_valid(valid, "mae")
    return _masked_mean((pred - gt).abs(), valid, count)


def bmp(pred: Tensor, gt: Tensor, *, delta: float = 3.0, mask: Tensor | None = None) -> Tensor:
    """Bad-matching percentage ``BMP_delta``.

    Both maps are mapped to ``[0, 255]`` with the ground truth's per-image
    minimum and maximum over valid pixels, ``u = 255 (z - min) / (max - min)``;
    a valid pixel is bad when ``|u_pred - u_gt| > delta``.

    Parameters
    ----------
    pred, gt : Tensor, shape (B, 1, H, W)
        Estimated and ground-truth depth, same units.
    delta : float, optional
        Threshold in normalised grey levels (of 255), 3 by default.
    mask : Tensor of bool, broadcastable to (B, 1, H, W), optional
        True where a pixel counts; non-finite pixels never count.

    Returns
    -------
    Tensor, shape (B,)
        ``100 * #bad / #valid``, in percent.

    Raises
    ------
    ValueError
        If a ground truth is constant over its valid pixels (no range to
        normalise by).
    """
    _check_depth_pair(pred, gt, "bmp", single_channel=True)
    valid = _valid_pixels(pred, gt, mask, "bmp")
    count = _count_valid(valid, "bmp")
    flat_gt = gt.detach().flatten(1)
    flat_valid = valid.flatten(1)
    inf = torch.tensor(float("inf"), dtype=gt.dtype, device=gt.device)
    low = torch.where(flat_valid, flat_gt, inf).amin(dim=1)
    high = torch.where(flat_valid, flat_gt, -inf).amax(dim=1)
    flat = (high <= low).nonzero().flatten().tolist()
    if flat:
        raise ValueError(
            f"bmp: ground truth is constant over its valid pixels in batch item(s) {flat}; "
            "the [0, 255] normalisation needs a depth range"
        )
    scale = (255.0 / (high - low)).view(-1, 1, 1, 1)
    error = (pred - gt).abs() * scale  # the min cancels in the difference
    bad = valid & (error > delta)
    return 100.0 * bad.flatten(1).sum(dim=1).to(pred.dtype) / count


def _default_pixel_size(depth: Tensor, pixel_size: float | None, function: str) -> float:
    if pixel_size is None:
        return 1.0 / depth.shape[-1]
    pixel_size = float(pixel_size)
    if not pixel_size > 0 or pixel_size == float("inf"):
        raise ValueError(f"{function}: pixel_size must be a positive number, got {pixel_size}")
    return pixel_size


def _shading(depth: Tensor, pixel_size: float) -> tuple[Tensor, Tensor]:
    """Lambertian shading and cell validity.

    (B, 1, H, W) -> two (B, 1, H-1, W-1) tensors: s in [0, 1] (0 where
    invalid) and the bool validity of the cell's three pixels.
    """
    finite = torch.isfinite(depth)
    zeros = torch.zeros((), dtype=depth.dtype, device=depth.device)
    z = torch.where(finite, depth, zeros)
    corner = z[..., :-1, :-1]
    gx = z[..., :-1, 1:] - corner  # z[i, j+1] - z[i, j]
    gy = z[..., 1:, :-1] - corner  # z[i+1, j] - z[i, j]
    h2 = pixel_size * pixel_size
    s = pixel_size / torch.sqrt(h2 + gx * gx + gy * gy)  # <n, l>, n = (gx, gy, -h)/|.|
    valid = finite[..., :-1, :-1] & finite[..., :-1, 1:] & finite[..., 1:, :-1]
    return torch.where(valid, s, zeros), valid


def _cell_mask(mask: Tensor) -> Tensor:
    """Pixel mask (..., H, W) -> cell mask (..., H-1, W-1)."""
    return mask[..., :-1, :-1] & mask[..., :-1, 1:] & mask[..., 1:, :-1]


def render_depth(depth: Tensor, *, pixel_size: float | None = None) -> Tensor:
    """Lambertian rendering of a depth map lit from the camera.

    Parameters
    ----------
    depth : Tensor, shape (B, 1, H, W)
        Depth in its own units; non-finite pixels mark holes.
    pixel_size : float, optional
        Pixel pitch ``h`` in depth units; ``1 / W`` by default (unit-square
        scenes). For real data, pass the pitch at the depth of the scene.

    Returns
    -------
    Tensor, shape (B, 1, H-1, W-1)
        Shading ``s = h / sqrt(h^2 + g_x^2 + g_y^2)`` in ``[0, 1]`` on the
        forward-difference grid (see the module docstring); 0 (black) in
        cells that touch a non-finite pixel. ``255 * s`` is the image that
        :func:`rmse_v` compares.

    Examples
    --------
    >>> render_depth(torch.zeros(1, 1, 4, 4))  # a fronto-parallel plane is white
    tensor([[[[1., 1., 1.],
              [1., 1., 1.],
              [1., 1., 1.]]]])
    """
    if not isinstance(depth, Tensor) or depth.dim() != 4 or depth.shape[1] != 1:
        shape = tuple(depth.shape) if isinstance(depth, Tensor) else type(depth).__name__
        raise ValueError(f"render_depth: depth must be a tensor of shape (B, 1, H, W), got {shape}")
    if depth.shape[-1] < 2 or depth.shape[-2] < 2:
        raise ValueError(f"render_depth: depth must be at least 2 x 2, got {tuple(depth.shape)}")
    pixel_size = _default_pixel_size(depth, pixel_size, "render_depth")
    shading, _ = _shading(depth, pixel_size)
    return shading


def rmse_v(pred: Tensor, gt: Tensor, *, pixel_size: float | None = None,
           mask: Tensor | None = None) -> Tensor:
    """RMSE of Lambertian renderings (RMSE_v), in grey levels of 255.

    ``RMSE_v = sqrt(mean((I_pred - I_gt)^2))`` over cells valid in both maps,
    with ``I = 255 h / sqrt(h^2 + g_x^2 + g_y^2)`` (module docstring). It
    measures the surface shape: a constant depth offset does not change it.

    Parameters
    ----------
    pred, gt : Tensor, shape (B, 1, H, W)
        Estimated and ground-truth depth in the same units; compute at the
        ground-truth (high) resolution.
    pixel_size : float, optional
        Pixel pitch ``h`` in depth units; ``1 / W`` by default (unit-square
        scenes). Report it with the number.
    mask : Tensor of bool, broadcastable to (B, 1, H, W), optional
        Valid pixels; a cell counts only if its three pixels are valid and
        finite in both maps.

    Returns
    -------
    Tensor, shape (B,)

    Examples
    --------
    >>> flat = torch.zeros(1, 1, 8, 8)
    >>> ramp = torch.arange(8.0).view(1, 1, 1, 8).expand(1, 1, 8, 8) / 8  # 45 degrees
    >>> rmse_v(ramp, flat)  # 255 * (1 - 1 / sqrt(2))
    tensor([74.6878])
    """
    _check_depth_pair(pred, gt, "rmse_v", single_channel=True)
    if pred.shape[-1] < 2 or pred.shape[-2] < 2:
        raise ValueError(f"rmse_v: depth must be at least 2 x 2, got {tuple(pred.shape)}")
    pixel_size = _default_pixel_size(gt, pixel_size, "rmse_v")
    pixels = _valid_pixels(pred, gt, mask, "rmse_v")
    shading_pred, _ = _shading(pred, pixel_size)
    shading_gt, _ = _shading(gt, pixel_size)
    cells = _cell_mask(pixels)
    count = _count_valid(cells, "rmse_v")
    difference = 255.0 * (shading_pred - shading_gt)
    return _masked_mean(difference.pow(2), cells, count).sqrt()
