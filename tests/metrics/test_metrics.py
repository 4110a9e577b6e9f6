"""Metrics: closed forms, invariants and agreement with scikit-image."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity

from learnreg.data import sample
from learnreg.metrics import band_errors, bmp, mae, psnr, render_depth, rmse, rmse_v, ssim


def _generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# -- PSNR ----------------------------------------------------------------------------------
def test_psnr_closed_form_per_image():
    reference = torch.rand(2, 3, 8, 9, generator=_generator())
    offsets = torch.tensor([0.1, 0.01]).view(2, 1, 1, 1)
    value = psnr(reference + offsets, reference)
    assert value.shape == (2,)
    torch.testing.assert_close(value, torch.tensor([20.0, 40.0]), atol=1e-3, rtol=0)
    scaled = psnr(255 * (reference + offsets), 255 * reference, data_range=255.0)
    torch.testing.assert_close(scaled, value, atol=1e-3, rtol=0)


def test_psnr_identical_is_infinite_and_nan_estimate_is_reported():
    reference = torch.rand(1, 1, 8, 8, generator=_generator())
    assert torch.isinf(psnr(reference, reference)).all()
    broken = reference.clone()
    broken[0, 0, 0, 0] = float("nan")
    assert torch.isnan(psnr(broken, reference)).all()


@pytest.mark.parametrize("metric", [psnr, ssim])
def test_shape_errors_name_both_shapes(metric):
    with pytest.raises(ValueError, match=r"\(1, 1, 16, 16\).*\(1, 1, 16, 17\)"):
        metric(torch.zeros(1, 1, 16, 16), torch.zeros(1, 1, 16, 17))
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        metric(torch.zeros(16, 16), torch.zeros(16, 16))
    reference = torch.zeros(1, 1, 16, 16)
    reference[0, 0, 0, 0] = float("inf")
    with pytest.raises(ValueError, match="reference contains NaN or inf"):
        metric(torch.zeros(1, 1, 16, 16), reference)


# -- error by frequency band --------------------------------------------------------------
def test_band_errors_add_up_to_the_mse_and_place_a_grating_in_its_band():
    reference = torch.rand(2, 3, 30, 24, generator=_generator(1))
    x = reference + 0.05 * torch.randn(2, 3, 30, 24, generator=_generator(2))
    bands = band_errors(x, reference)
    assert bands.shape == (2, 4) and bool((bands >= 0).all())
    torch.testing.assert_close(bands.sum(dim=1), (x - reference).pow(2).flatten(1).mean(dim=1), rtol=1e-5, atol=0)
    # a vertical grating of 0.25 cycles per pixel: all of its energy in [1/6, 1/3)
    grating = 0.1 * torch.cos(torch.arange(24.0) * (2 * math.pi * 0.25)).expand(1, 1, 30, 24)
    bands = band_errors(grating, torch.zeros_like(grating))[0]
    torch.testing.assert_close(bands, torch.tensor([0.0, 0.0, 0.005, 0.0]), atol=1e-9, rtol=0)
    # the Nyquist frequency itself belongs to the last band
    checker = 0.1 * torch.cos(torch.arange(24.0) * math.pi).expand(1, 1, 30, 24)
    assert float(band_errors(checker, torch.zeros_like(checker))[0, -1]) == pytest.approx(0.01)
    with pytest.raises(ValueError, match="edges must increase from 0 to 0.5"):
        band_errors(x, reference, edges=(0.0, 0.3, 0.2, 0.5))


# -- SSIM ----------------------------------------------------------------------------------
def _skimage_ssim(x: torch.Tensor, reference: torch.Tensor) -> float:
    """skimage on one (1, C, H, W) pair, the convention learnreg documents."""
    channels = x.shape[1]
    first = x[0].double().numpy().transpose(1, 2, 0)
    second = reference[0].double().numpy().transpose(1, 2, 0)
    if channels == 1:
        first, second, axis = first[..., 0], second[..., 0], None
    else:
        axis = -1
    return float(structural_similarity(
        first, second, data_range=1, gaussian_weights=True, sigma=1.5,
        use_sample_covariance=False, channel_axis=axis,
    ))


@pytest.mark.parametrize("name, size", [("camera", 96), ("retina", 64)])
def test_ssim_matches_skimage(name, size):
    reference = sample(name, size=size)
    noisy = (reference + 0.1 * torch.randn(reference.shape, generator=_generator(1))).clamp(0, 1)
    blurred = torch.nn.functional.avg_pool2d(reference, 3, stride=1, padding=1,
                                             count_include_pad=False)
    estimates = torch.cat([noisy, blurred])
    references = torch.cat([reference, reference])
    ours = ssim(estimates, references)
    assert ours.shape == (2,)
    for index in range(2):
        expected = _skimage_ssim(estimates[index:index + 1], reference)
        assert abs(ours[index].item() - expected) < 1e-3


def test_ssim_identical_is_one_and_differentiable():
    reference = torch.rand(2, 3, 16, 20, generator=_generator())
    torch.testing.assert_close(ssim(reference, reference), torch.ones(2))
    estimate = (reference + 0.05).requires_grad_(True)
    ssim(estimate, reference).sum().backward()
    assert torch.isfinite(estimate.grad).all() and estimate.grad.abs().sum() > 0


def test_ssim_rejects_images_smaller_than_the_window():
    with pytest.raises(ValueError, match="at least 11 x 11"):
        ssim(torch.zeros(1, 1, 10, 32), torch.zeros(1, 1, 10, 32))


# -- RMSE, MAE -----------------------------------------------------------------------------
def test_rmse_and_mae_skip_masked_and_non_finite_pixels():
    gt = torch.zeros(2, 1, 4, 4)
    pred = torch.zeros(2, 1, 4, 4)
    pred[:, :, :2] = 2.0           # half the pixels off by 2
    pred[0, 0, 3, 3] = 1e6          # masked out below
    gt[1, 0, 3, 3] = float("nan")   # a hole in the ground truth
    pred[1, 0, 3, 3] = 1e6
    mask = torch.ones(2, 1, 4, 4, dtype=torch.bool)
    mask[0, 0, 3, 3] = False
    # 8 of 15 valid pixels off by 2
    torch.testing.assert_close(rmse(pred, gt, mask=mask), torch.full((2,), math.sqrt(32 / 15)))
    torch.testing.assert_close(mae(pred, gt, mask=mask), torch.full((2,), 16 / 15))


def test_depth_metrics_validate_mask():
    depth = torch.zeros(1, 1, 4, 4)
    with pytest.raises(TypeError, match="bool tensor"):
        rmse(depth, depth, mask=torch.ones(1, 1, 4, 4))
    with pytest.raises(ValueError, match="no valid pixel in batch item"):
        mae(depth, depth, mask=torch.zeros(4, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="does not broadcast"):
        rmse(depth, depth, mask=torch.ones(3, 3, dtype=torch.bool))


# -- BMP -----------------------------------------------------------------------------------
def test_bmp_constructed_case_and_normalisation():
    gt = torch.arange(256.0).view(1, 1, 16, 16)  # min 0, max 255: normalisation is identity
    pred = gt.clone()
    pred.view(-1)[:10] += 5.0                    # 10 bad pixels
    pred.view(-1)[10:20] += 3.0                  # exactly delta: not bad
    expected = torch.tensor([100.0 * 10 / 256])
    torch.testing.assert_close(bmp(pred, gt), expected)
    # an affine change of depth units leaves the normalised maps unchanged
    torch.testing.assert_close(bmp(0.5 * pred + 7.0, 0.5 * gt + 7.0), expected)
    # masking 5 of the bad pixels (not the minimum, which sets the normalisation)
    mask = torch.ones(1, 1, 16, 16, dtype=torch.bool)
    mask.view(-1)[5:10] = False
    torch.testing.assert_close(bmp(pred, gt, mask=mask), torch.tensor([100.0 * 5 / 251]))
    torch.testing.assert_close(bmp(pred, gt, delta=1.0), torch.tensor([100.0 * 20 / 256]))


def test_bmp_rejects_constant_ground_truth():
    with pytest.raises(ValueError, match="constant"):
        bmp(torch.rand(1, 1, 4, 4), torch.ones(1, 1, 4, 4))


# -- RMSE_v --------------------------------------------------------------------------------
def _plane(slope_x: float, slope_y: float, size: int, pixel_size: float) -> torch.Tensor:
    rows = torch.arange(size, dtype=torch.float64).view(size, 1)
    cols = torch.arange(size, dtype=torch.float64).view(1, size)
    return (pixel_size * (slope_x * cols + slope_y * rows))[None, None]


def test_rmse_v_is_zero_for_identical_maps_and_ignores_offsets():
    depth = torch.rand(2, 1, 12, 10, generator=_generator(), dtype=torch.float64)
    torch.testing.assert_close(rmse_v(depth, depth), torch.zeros(2, dtype=torch.float64))
    torch.testing.assert_close(rmse_v(depth + 3.5, depth), torch.zeros(2, dtype=torch.float64))
    assert rmse_v(2 * depth, depth).min() > 0


def test_rmse_v_plane_against_tilted_plane():
    # z = a x: g_x = a h, g_y = 0, so s = 1 / sqrt(1 + a^2) against s = 1 for the flat plane
    size, slope = 9, 2.0
    flat = torch.zeros(1, 1, size, size, dtype=torch.float64)
    tilted = _plane(slope, 0.0, size, 1.0 / size)
    expected = 255.0 * (1.0 - 1.0 / math.sqrt(1.0 + slope**2))
    assert rmse_v(tilted, flat).item() == pytest.approx(expected, rel=1e-12)
    # an explicit pixel size: the same slope in depth units per pixel pitch
    tilted = _plane(slope, 0.0, size, 0.25)
    assert rmse_v(tilted, flat, pixel_size=0.25).item() == pytest.approx(expected, rel=1e-12)
    # both directions: s = 1 / sqrt(1 + a^2 + b^2)
    tilted = _plane(1.0, 2.0, size, 1.0 / size)
    expected = 255.0 * (1.0 - 1.0 / math.sqrt(6.0))
    assert rmse_v(tilted, flat).item() == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("how", ["nan", "mask"])
def test_rmse_v_excludes_cells_touching_invalid_pixels(how):
    gt = torch.rand(1, 1, 10, 10, generator=_generator(), dtype=torch.float64)
    pred = gt.clone()
    pred[0, 0, 5, 5] += 10.0  # changes cells (5, 5), (5, 4) and (4, 5) only
    assert rmse_v(pred, gt) > 0
    mask = None
    if how == "nan":
        gt[0, 0, 5, 5] = float("nan")
    else:
        mask = torch.ones(10, 10, dtype=torch.bool)
        mask[5, 5] = False
    torch.testing.assert_close(rmse_v(pred, gt, mask=mask), torch.zeros(1, dtype=torch.float64))


def test_render_depth_shape_range_and_holes():
    depth = torch.rand(2, 1, 8, 6, generator=_generator())
    depth[1, 0, 0, 0] = float("inf")
    shading = render_depth(depth)
    assert shading.shape == (2, 1, 7, 5)
    assert shading.min() >= 0 and shading.max() <= 1
    assert shading[1, 0, 0, 0] == 0
    torch.testing.assert_close(render_depth(torch.zeros(1, 1, 3, 3)), torch.ones(1, 1, 2, 2))
    with pytest.raises(ValueError, match=r"\(B, 1, H, W\)"):
        render_depth(torch.zeros(1, 3, 8, 8))


def test_rmse_v_matches_a_direct_numpy_evaluation():
    gt = torch.rand(1, 1, 7, 8, generator=_generator(2), dtype=torch.float64)
    pred = gt + 0.05 * torch.rand(1, 1, 7, 8, generator=_generator(3), dtype=torch.float64)

    def image(z: np.ndarray, h: float) -> np.ndarray:
        gx = z[:-1, 1:] - z[:-1, :-1]
        gy = z[1:, :-1] - z[:-1, :-1]
        return 255.0 * h / np.sqrt(h * h + gx * gx + gy * gy)

    h = 1.0 / 8
    expected = np.sqrt(np.mean((image(pred[0, 0].numpy(), h) - image(gt[0, 0].numpy(), h)) ** 2))
    assert rmse_v(pred, gt).item() == pytest.approx(expected, rel=1e-12)
