"""Image and depth metrics.

Image quality (:mod:`learnreg.metrics.image`): :func:`psnr`, :func:`ssim`, and :func:`band_errors`, the
MSE split by spatial-frequency band.
Depth (:mod:`learnreg.metrics.depth`): :func:`rmse`, :func:`mae`, :func:`bmp`,
:func:`rmse_v` and the rendering it is built on, :func:`render_depth`.
Every metric takes batched ``(B, C, H, W)`` tensors and returns shape ``(B,)``.
"""

from learnreg.metrics.depth import bmp, mae, render_depth, rmse, rmse_v
from learnreg.metrics.image import band_errors, psnr, ssim

__all__ = ["psnr", "ssim", "band_errors", "rmse", "mae", "bmp", "rmse_v", "render_depth"]
