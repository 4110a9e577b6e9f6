"""Convolution kernels for blur and super-resolution, as 2-D float64 numpy arrays summing to 1.

Centring convention
-------------------
Every operator in :mod:`learnreg.physics` places the *origin* of a kernel of
size ``(kh, kw)`` at index ``(kh // 2, kw // 2)`` and convolves circularly::

    (k * x)[i, j] = sum_{a, b} k[a, b] x[i - a + kh // 2, j - b + kw // 2]   (indices mod H, W)

For odd sizes the origin is the centre pixel, so a symmetric kernel does not move
the image. For even sizes the geometric centre ``((kh - 1) / 2, (kw - 1) / 2)``
lies half a pixel before the origin: output pixel ``i`` is then a weighted mean
of input pixels centred on ``i + 1/2``. For every size this is exactly
``scipy.ndimage.convolve(x, k, mode="wrap")``.
The builders below sample symmetric kernels about their geometric centre.

The super-resolution kernels (:func:`bicubic_kernel`, :func:`box_kernel`) always
have an even number of taps, padding with one leading zero row and column when
their natural support is odd, so that one rule places them on MATLAB's
``imresize`` grid (see :class:`~learnreg.physics.superres.SuperResolution`).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["gaussian_kernel", "gaussian_lowpass", "uniform_kernel", "bicubic_kernel", "box_kernel", "load_kernel", "check_kernel"]


def check_kernel(kernel, *, what: str = "kernel") -> np.ndarray:
    """Validate a kernel and return it as a contiguous 2-D float64 array (not renormalised).

    Raises
    ------
    ValueError
        Not 2-D, empty, NaN or infinite entries, or a sum that is not positive.
    """
    try:
        array = np.array(kernel.detach().cpu() if hasattr(kernel, "detach") else kernel, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{what} must be a 2-D array of numbers: {error}") from None
    if array.ndim != 2 or array.size == 0:
        raise ValueError(f"{what} must be a non-empty 2-D array (kh, kw), got shape {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError(f"{what} contains NaN or Inf; fix or regenerate the kernel")
    if not array.sum() > 0:
        raise ValueError(f"{what} must have a positive sum (got {array.sum():.3g}); a blur kernel sums to 1")
    return np.ascontiguousarray(array)


def _normalised(array: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(array / array.sum())


def gaussian_kernel(sigma: float, size: int | None = None) -> np.ndarray:
    """Isotropic sampled Gaussian ``exp(-r^2 / (2 sigma^2))``, normalised to sum 1.

    Parameters
    ----------
    sigma : float
        Standard deviation in pixels, ``>= 0``; ``0`` gives the 1x1 identity kernel.
    size : int, optional
        Side of the square kernel; default ``2 * ceil(3 sigma) + 1`` (odd). An even size
        is sampled symmetrically about its geometric centre (see the module notes).

    Returns
    -------
    ndarray, shape (size, size), float64

    Examples
    --------
    >>> gaussian_kernel(2.0).shape
    (13, 13)
    >>> float(gaussian_kernel(2.0, 25).sum())
    1.0
    """
    sigma = float(sigma)
    if not math.isfinite(sigma) or sigma < 0:
        raise ValueError(f"Gaussian sigma must be a finite number >= 0 (pixels), got {sigma}")
    if size is None:
        size = 2 * math.ceil(3 * sigma) + 1
    size = _positive_int(size, "Gaussian kernel size")
    if sigma == 0:
        kernel = np.zeros((size, size))
        kernel[size // 2, size // 2] = 1.0
        return kernel
    t = np.arange(size, dtype=np.float64) - (size - 1) / 2
    profile = np.exp(-0.5 * (t / sigma) ** 2)
    return _normalised(np.outer(profile, profile))


def uniform_kernel(k: int) -> np.ndarray:
    """``k x k`` uniform (moving-average) kernel, every entry ``1 / k^2``.

    Returns
    -------
    ndarray, shape (k, k), float64
    """
    k = _positive_int(k, "uniform kernel size")
    return np.full((k, k), 1.0 / (k * k))


def _keys_cubic(t: np.ndarray, a: float = -0.5) -> np.ndarray:
    """Keys (1981) cubic convolution kernel, MATLAB's ``cubic`` (``a = -0.5``)."""
    t = np.abs(t)
    near = ((a + 2) * t - (a + 3)) * t * t + 1
    far = ((a * t - 5 * a) * t + 8 * a) * t - 4 * a
    return np.where(t <= 1, near, np.where(t < 2, far, 0.0))


def bicubic_kernel(factor: int) -> np.ndarray:
    """MATLAB ``imresize(x, 1/factor)`` antialiased bicubic kernel, normalised to sum 1.

    The Keys cubic (``a = -0.5``) stretched by ``factor``, ``w(t) = cubic(t / factor)``,
    sampled where MATLAB samples it: output pixel ``i`` (0-based) sits at input
    coordinate ``u = factor * i + (factor - 1) / 2`` (MATLAB's ``u = (i - 0.5) s + 0.5``,
    1-based), so the taps lie at half-integer distances for even factors and at
    integer distances for odd ones.

    Parameters
    ----------
    factor : int
        Downscaling factor ``s >= 1``.

    Returns
    -------
    ndarray, shape (4 s, 4 s), float64
        Separable, ``outer(w, w)`` with ``w[a] = cubic((a - 2 s + d) / s)``,
        ``d = 1/2`` for even ``s`` and ``0`` for odd ``s``. For even ``s`` the kernel is
        symmetric about index ``2 s - 1/2`` (between pixels); for odd ``s`` its first row
        and column are zero (MATLAB's taps at distance ``2 s``) and it is symmetric about
        index ``2 s``. With :class:`~learnreg.physics.superres.SuperResolution`'s default
        offset ``(s - 1) // 2`` this reproduces MATLAB's ``imresize`` away from the borders.

    Examples
    --------
    >>> bicubic_kernel(4).shape
    (16, 16)
    """
    s = _positive_int(factor, "bicubic factor")
    shift = 0.5 if s % 2 == 0 else 0.0
    taps = _keys_cubic((np.arange(4 * s, dtype=np.float64) - 2 * s + shift) / s)
    return _normalised(np.outer(taps, taps))


def box_kernel(factor: int) -> np.ndarray:
    """Block average over ``factor x factor`` pixels (area downsampling), normalised to sum 1.

    Returns
    -------
    ndarray, float64
        Shape ``(s, s)`` with entries ``1 / s^2`` for even ``s``; for odd ``s`` shape
        ``(s + 1, s + 1)`` with a leading zero row and column, so that (with the
        default offset of :class:`~learnreg.physics.superres.SuperResolution`) low
        resolution pixel ``i`` is the mean of the block ``x[s i : s i + s]``, as
        ``skimage.transform.downscale_local_mean``. For plain blurring use :func:`uniform_kernel`.
    """
    s = _positive_int(factor, "box factor")
    size = s if s % 2 == 0 else s + 1
    kernel = np.zeros((size, size))
    kernel[size - s:, size - s:] = 1.0 / (s * s)
    return kernel


def read_array_file(path: str | Path, what: str, *, gray_image: bool) -> np.ndarray:
    """A numeric array from ``.npy``, ``.txt``/``.csv`` (whitespace or comma separated) or an image.

    Shared by kernel and mask files. ``gray_image`` converts images to gray levels (float for
    16-bit and float images); otherwise images keep their channels. Errors name the file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} file {path} does not exist")
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            return np.load(path, allow_pickle=False)
        if suffix in {".txt", ".csv"}:
            return np.loadtxt(path, delimiter="," if suffix == ".csv" else None, ndmin=2)
        from PIL import Image

        with Image.open(path) as image:
            if not gray_image:
                return np.asarray(image)
            return np.asarray(image.convert("F") if image.mode in {"I", "I;16", "F"} else image.convert("L"))
    except Exception as error:  # numpy and PIL raise many types; report the file
        raise ValueError(f"cannot read {what} file {path}: {error}") from None


def load_kernel(path: str | Path) -> np.ndarray:
    """Read a kernel from ``.npy``, ``.txt``/``.csv`` (whitespace or comma separated) or an image.

    Images (``.png``, ``.tif``...) are read in gray levels. The kernel is normalised to sum 1.

    Returns
    -------
    ndarray, shape (kh, kw), float64

    Raises
    ------
    FileNotFoundError
        No such file.
    ValueError
        Unreadable, not 2-D, NaN/Inf entries, or a sum that is not positive.
    """
    array = read_array_file(path, "kernel", gray_image=True)
    return _normalised(check_kernel(array, what=f"kernel in {path}"))


def _positive_int(value, what: str) -> int:
    try:
        valid = not isinstance(value, bool) and int(value) == value and int(value) >= 1
    except (TypeError, ValueError, OverflowError):
        valid = False
    if not valid:
        raise ValueError(f"{what} must be a positive integer, got {value!r}")
    return int(value)


def gaussian_lowpass(x: Tensor, sigma: float) -> Tensor:
    """Separable Gaussian blur with reflect padding, radius ``ceil(3 sigma)``, per channel."""
    radius = max(1, math.ceil(3 * sigma))
    taps = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    kernel = torch.exp(-0.5 * (taps / sigma) ** 2)
    kernel = kernel / kernel.sum()
    channels = x.shape[1]
    radius_h = min(radius, x.shape[-2] - 1)
    radius_w = min(radius, x.shape[-1] - 1)
    h = F.pad(x, (radius_w, radius_w, radius_h, radius_h), mode="reflect")
    # Reflect padding cannot exceed the size; the missing margin is replicated.
    h = F.pad(h, (radius - radius_w,) * 2 + (radius - radius_h,) * 2, mode="replicate")
    h = F.conv2d(h, kernel.view(1, 1, 1, -1).expand(channels, 1, 1, -1), groups=channels)
    return F.conv2d(h, kernel.view(1, 1, -1, 1).expand(channels, 1, -1, 1), groups=channels)
