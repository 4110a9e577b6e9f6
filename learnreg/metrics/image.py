"""Full-reference image quality: PSNR and SSIM on batched tensors.

Both metrics take ``(B, C, H, W)`` tensors and return one value per image,
shape ``(B,)``. They are plain differentiable torch code, so SSIM can also
serve as a training loss.

SSIM follows Wang et al. (IEEE TIP 2004) in the convention that
:func:`skimage.metrics.structural_similarity` uses with
``gaussian_weights=True, sigma=1.5, use_sample_covariance=False``:

* an 11 x 11 Gaussian window, sigma = 1.5, truncated at 3.5 sigma
  (radius 5) and normalised to sum 1;
* ``K1 = 0.01``, ``K2 = 0.03``, ``C1 = (K1 L)^2``, ``C2 = (K2 L)^2`` with
  ``L = data_range``;
* population (biased) local variances and covariance;
* the SSIM map is averaged over the *valid* region only: the 5-pixel border,
  where the window would leave the image, is dropped (skimage filters with
  reflection and then crops that border, which gives the same numbers);
* colour images: SSIM per channel, then the mean over channels.
"""

from __future__ import annotations

import logging
import math

import torch
import torch.nn.functional as F
from torch import Tensor

logger = logging.getLogger(__name__)

SSIM_SIGMA = 1.5
SSIM_RADIUS = 5  # int(3.5 * sigma + 0.5), skimage's truncate=3.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03


def _check_pair(x: Tensor, reference: Tensor, function: str) -> None:
    for name, value in (("x", x), ("reference", reference)):
        if not isinstance(value, Tensor):
            raise TypeError(f"{function}: {name} must be a torch.Tensor, got {type(value).__name__}")
        if value.dim() != 4:
            raise ValueError(
                f"{function}: {name} must have shape (B, C, H, W), got {tuple(value.shape)}; "
                "add the missing dimensions, e.g. image[None, None] for an (H, W) image"
            )
    if x.shape != reference.shape:
        raise ValueError(
            f"{function}: x has shape {tuple(x.shape)} but reference has shape "
            f"{tuple(reference.shape)}; crop or resize so that both match"
        )
    if not torch.isfinite(reference).all():
        raise ValueError(
            f"{function}: reference contains NaN or inf; a reference image must be finite"
        )


def _check_data_range(data_range: float, function: str) -> float:
    data_range = float(data_range)
    if not math.isfinite(data_range) or data_range <= 0:
        raise ValueError(f"{function}: data_range must be a positive number, got {data_range}")
    return data_range


def psnr(x: Tensor, reference: Tensor, *, data_range: float = 1.0) -> Tensor:
    """Peak signal-to-noise ratio per image, in dB.

    ``PSNR = 10 log10(data_range^2 / MSE)`` with the mean squared error over
    all channels and pixels of each image.

    Parameters
    ----------
    x : Tensor, shape (B, C, H, W)
        Estimate, on the same scale as ``reference``.
    reference : Tensor, shape (B, C, H, W)
        Ground truth; must be finite.
    data_range : float, optional
        Peak-to-peak range of the signal, 1 for images in ``[0, 1]``.

    Returns
    -------
    Tensor, shape (B,)
        PSNR in dB; ``inf`` for an exact match and ``nan`` when ``x`` holds
        non-finite values (a diverged estimate is reported, not hidden).

    Examples
    --------
    >>> reference = torch.zeros(1, 1, 8, 8)
    >>> psnr(reference + 0.1, reference)
    tensor([20.])
    """
    _check_pair(x, reference, "psnr")
    data_range = _check_data_range(data_range, "psnr")
    mse = (x - reference).pow(2).flatten(1).mean(dim=1)
    return 10.0 * torch.log10(data_range**2 / mse)


def band_errors(x: Tensor, reference: Tensor, edges: tuple[float, ...] = (0.0, 1 / 12, 1 / 6, 1 / 3, 0.5)) -> Tensor:
    """The mean squared error of each image split by spatial-frequency band.

    The error ``x - reference`` is taken to the discrete Fourier domain; a frequency
    ``(f_y, f_x)`` (cycles per pixel) belongs to band ``k`` when ``edges[k] <= max(|f_y|, |f_x|)
    < edges[k + 1]`` (the last band includes 0.5, the Nyquist frequency). By Parseval the
    bands add up to the MSE, so they say *where* an estimate's error lies: for example
    below or above the Nyquist limit ``1 / (2 s)`` of measurements sampled every ``s`` pixels.

    Parameters
    ----------
    x, reference : Tensor, shape (B, C, H, W)
        Estimate and ground truth.
    edges : tuple of float
        Increasing band edges from 0 to 0.5, in cycles per pixel.

    Returns
    -------
    Tensor, shape (B, len(edges) - 1)
        The MSE contributed by each band (mean over channels and pixels).

    Examples
    --------
    >>> reference = torch.zeros(1, 1, 12, 12)
    >>> x = reference + 0.1 * torch.cos(torch.arange(12.0) * (2 * math.pi / 4))  # 1/4 cycle per pixel
    >>> band_errors(x, reference, edges=(0.0, 0.2, 0.5)).round(decimals=4)
    tensor([[0.0000, 0.0050]])
    """
    _check_pair(x, reference, "band_errors")
    if len(edges) < 2 or edges[0] != 0.0 or edges[-1] != 0.5 or any(b <= a for a, b in zip(edges, edges[1:])):
        raise ValueError(f"band_errors: edges must increase from 0 to 0.5 (cycles per pixel), got {edges}")
    error = (x - reference).to(torch.float64)
    height, width = error.shape[-2:]
    power = torch.fft.fft2(error).abs().pow(2).mean(dim=1) / (height * width) ** 2  # (B, H, W), sums to the MSE
    fy = torch.fft.fftfreq(height, dtype=torch.float64).abs().view(-1, 1)
    fx = torch.fft.fftfreq(width, dtype=torch.float64).abs().view(1, -1)
    radius = torch.maximum(fy, fx)
    bands = [(radius >= low) & ((radius < high) if k < len(edges) - 2 else (radius <= high))
             for k, (low, high) in enumerate(zip(edges, edges[1:]))]
    return torch.stack([(power * band).sum(dim=(-2, -1)) for band in bands], dim=1).to(x.dtype)


def gaussian_window(*, sigma: float = SSIM_SIGMA, radius: int = SSIM_RADIUS,
                    dtype: torch.dtype = torch.float32,
                    device: torch.device | str | None = None) -> Tensor:
    """Normalised 1-D Gaussian window of length ``2 * radius + 1``.

    Returns
    -------
    Tensor, shape (2 * radius + 1,)
        ``exp(-t^2 / (2 sigma^2))`` for ``t = -radius..radius``, summing to 1.
    """
    t = torch.arange(-radius, radius + 1, dtype=dtype, device=device)
    window = torch.exp(-0.5 * (t / sigma) ** 2)
    return window / window.sum()


def _filter_valid(image: Tensor, window: Tensor) -> Tensor:
    """Separable Gaussian filter per channel, valid region only.

    (B, C, H, W) -> (B, C, H - 2r, W - 2r)
    """
    channels = image.shape[1]
    size = window.numel()
    rows = window.view(1, 1, size, 1).expand(channels, 1, size, 1)
    cols = window.view(1, 1, 1, size).expand(channels, 1, 1, size)
    out = F.conv2d(image, rows, groups=channels)
    return F.conv2d(out, cols, groups=channels)


def ssim(x: Tensor, reference: Tensor, *, data_range: float = 1.0) -> Tensor:
    """Structural similarity index per image (Gaussian-window SSIM).

    Parameters
    ----------
    x : Tensor, shape (B, C, H, W)
        Estimate, on the same scale as ``reference``; ``H, W >= 11``.
    reference : Tensor, shape (B, C, H, W)
        Ground truth; must be finite.
    data_range : float, optional
        Peak-to-peak range of the signal, 1 for images in ``[0, 1]``.

    Returns
    -------
    Tensor, shape (B,)
        Mean SSIM over the valid region and over channels; 1 for identical
        images. Differentiable in ``x``.

    Notes
    -----
    The convention is the one in the module docstring: it matches
    ``skimage.metrics.structural_similarity(x, reference, data_range=...,
    gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
    channel_axis=...)`` to float precision. Other tools (MATLAB ``ssim``,
    uniform 7 x 7 windows, sample covariance) give slightly different numbers;
    compare SSIM values only within one convention.

    Examples
    --------
    >>> reference = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    >>> ssim(reference, reference)
    tensor([1., 1.])
    """
    _check_pair(x, reference, "ssim")
    data_range = _check_data_range(data_range, "ssim")
    size = 2 * SSIM_RADIUS + 1
    height, width = x.shape[-2:]
    if height < size or width < size:
        raise ValueError(
            f"ssim: images must be at least {size} x {size} pixels for the "
            f"{size} x {size} Gaussian window, got {height} x {width}; use larger images"
        )
    dtype = torch.promote_types(torch.promote_types(x.dtype, reference.dtype), torch.float32)
    x = x.to(dtype)
    reference = reference.to(dtype)
    window = gaussian_window(dtype=dtype, device=x.device)

    c1 = (SSIM_K1 * data_range) ** 2
    c2 = (SSIM_K2 * data_range) ** 2
    mu_x = _filter_valid(x, window)
    mu_y = _filter_valid(reference, window)
    # population (co)variances: E[xy] - E[x]E[y] under the window weights
    var_x = _filter_valid(x * x, window) - mu_x * mu_x
    var_y = _filter_valid(reference * reference, window) - mu_y * mu_y
    cov_xy = _filter_valid(x * reference, window) - mu_x * mu_y
    numerator = (2 * mu_x * mu_y + c1) * (2 * cov_xy + c2)
    denominator = (mu_x * mu_x + mu_y * mu_y + c1) * (var_x + var_y + c2)
    # mean over the valid region of each channel, then over channels
    return (numerator / denominator).flatten(1).mean(dim=1)
