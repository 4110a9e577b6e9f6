"""Dead-leaves generator: statistics, reproducibility, range, dataset."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from learnreg.data.deadleaves import DeadLeaves, DeadLeavesConfig, dead_leaves, dead_leaves_batch


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _spectrum_slope(images: torch.Tensor, band: tuple[float, float]) -> float:
    """Log-log slope of the radially averaged power spectrum of (N, H, H) images over ``band``
    (cycles per pixel)."""
    size = images.shape[-1]
    images = images - images.mean(dim=(1, 2), keepdim=True)
    window = torch.hann_window(size, periodic=False, dtype=torch.float64)
    power = torch.fft.fft2(images.double() * window[:, None] * window[None, :]).abs().pow(2).mean(0)
    frequency = torch.fft.fftfreq(size, dtype=torch.float64)
    radius = torch.round(torch.sqrt(frequency[:, None] ** 2 + frequency[None, :] ** 2) * size).long()
    radial = torch.bincount(radius.flatten(), power.flatten()) / torch.bincount(radius.flatten())
    f = torch.arange(len(radial), dtype=torch.float64) / size
    keep = (f >= band[0]) & (f <= band[1])
    return float(np.polyfit(np.log(f[keep].numpy()), np.log(radial[keep].numpy()), 1)[0])


@pytest.mark.parametrize("textures", [False, True])
def test_power_spectrum_falls_as_one_over_f_squared(textures):
    # 16 grey 256^2 images, alpha = 3; natural images have slope about -2.
    # Tolerance: -2 +- 0.3 over the mid band 0.02..0.25 cycles/pixel
    # (measured: -2.04 plain, -2.08 with textures and ramps).
    generator = _generator(0)
    images = torch.stack([dead_leaves(256, channels=1, generator=generator, textures=textures,
                                      ramps=textures)[0] for _ in range(16)])
    slope = _spectrum_slope(images, (0.02, 0.25))
    print(f"spectrum slope (textures={textures}): {slope:.3f}")
    assert -2.3 < slope < -1.7


@pytest.mark.parametrize("channels", [1, 3])
def test_shape_range_and_reproducibility(channels):
    first = dead_leaves((40, 56), channels=channels, generator=_generator(3), polygons=0.3)
    again = dead_leaves((40, 56), channels=channels, generator=_generator(3), polygons=0.3)
    other = dead_leaves((40, 56), channels=channels, generator=_generator(4), polygons=0.3)
    assert first.shape == (channels, 40, 56) and first.dtype == torch.float32
    assert first.min() >= 0 and first.max() <= 1 and first.std() > 0.02
    assert torch.equal(first, again)
    assert not torch.equal(first, other)


def test_options_change_the_image_and_grey_has_no_colour():
    plain = dead_leaves(48, generator=_generator(1), textures=False, ramps=False)
    textured = dead_leaves(48, generator=_generator(1), textures=True, ramps=False)
    assert not torch.equal(plain, textured)

    # without textures a shape is one palette colour (k / 255): inside shapes, away from
    # the anti-aliased edges, pixels hold exactly such values
    def on_palette(image):
        scaled = image * 255
        return float(((scaled - scaled.round()).abs() < 1e-3).float().mean())

    assert on_palette(plain) > 0.5
    assert on_palette(textured) < on_palette(plain)
    rgb = dead_leaves(32, generator=_generator(2))
    assert (rgb[0] - rgb[1]).abs().max() > 0.05  # real colours, not grey


def test_budget_and_background():
    # a tiny budget leaves most pixels to the background colour, still valid
    image = dead_leaves(32, generator=_generator(0), r_min=0.5, r_max=1.0, max_shapes=1,
                        textures=False, ramps=False)
    assert image.shape == (3, 32, 32) and torch.isfinite(image).all()


def test_bad_arguments():
    with pytest.raises(ValueError, match="channels must be 1"):
        dead_leaves(16, channels=2, generator=_generator(0))
    with pytest.raises(ValueError, match="r_min < r_max"):
        dead_leaves(16, generator=_generator(0), r_min=4.0, r_max=2.0)
    with pytest.raises(ValueError, match="alpha must be > 1"):
        DeadLeavesConfig(alpha=1.0)


def test_config_round_trip_and_batches():
    config = DeadLeavesConfig(size=24, channels=1, polygons=0.2)
    assert DeadLeavesConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="unknown keys"):
        DeadLeavesConfig.from_dict({"sise": 3})
    batch = dead_leaves_batch(config, 2, generator=_generator(0))
    assert batch.shape == (2, 1, 24, 24)


def test_dataset_is_reproducible_and_epochs_differ():
    dataset = DeadLeaves(DeadLeavesConfig(size=16), batch_size=2, seed=5, batches=3)
    first = list(DataLoader(dataset, batch_size=None))
    assert len(first) == len(dataset) == 3
    assert all(batch.shape == (2, 3, 16, 16) for batch in first)
    assert not torch.equal(first[0], first[1])
    again = list(dataset)
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    dataset.set_epoch(1)
    assert not torch.equal(next(iter(dataset)), first[0])
    with pytest.raises(TypeError, match="endless"):
        len(DeadLeaves(DeadLeavesConfig(size=16), batch_size=1, seed=0))


def test_vectorised_painting_matches_brute_force():
    # every pixel must take the first shape (in drawing order) that covers its centre,
    # across batches, bucket sizes, the one-by-one path for large shapes, and polygons
    from learnreg.data import _leaves as module

    height, width = 40, 50
    generator = _generator(6)
    index = torch.full((height, width), module.UNCOVERED, dtype=torch.int64)
    batches, base = [], 0
    for _ in range(2):
        shapes = module.sample_shapes(height, width, r_min=0.7, r_max=70.0, alpha=3.0,
                                       polygons=0.5, generator=generator)
        module.paint(index, shapes, base)
        batches.append(shapes)
        base += len(shapes.r)
    assert bool((torch.cat([b.r for b in batches]) > module.LARGEST_BUCKET).any())

    expected = torch.full((height, width), module.UNCOVERED, dtype=torch.int64)
    y = torch.arange(height)[:, None] + 0.5
    x = torch.arange(width)[None, :] + 0.5
    base = 0
    for shapes in batches:
        for i in range(len(shapes.r)):
            dy, dx = y - shapes.cy[i], x - shapes.cx[i]
            inside = dy**2 + dx**2 <= shapes.r[i] ** 2
            if shapes.polygon[i]:
                inside &= module.in_polygon(dy[None], dx[None], shapes.vertices[i:i + 1])[0]
            expected = torch.where(inside & (expected == module.UNCOVERED), base + i, expected)
        base += len(shapes.r)
    assert torch.equal(index, expected)


def test_polygon_test_on_a_diamond():
    from learnreg.data import _leaves as module

    # vertices (dy, dx) at angles 0, 90, 180, 270 degrees, padded with the last one:
    # the diamond |dx| + |dy| <= 1
    angles = torch.tensor([0.0, 0.5, 1.0, 1.5, 1.5, 1.5, 1.5, 1.5]) * torch.pi
    vertices = torch.stack([torch.sin(angles), torch.cos(angles)], dim=-1)[None]
    grid = torch.linspace(-1.2, 1.2, 25)
    dy, dx = grid[None, :, None], grid[None, None, :]
    inside = module.in_polygon(dy, dx, vertices)[0]
    distance = (dy.abs() + dx.abs())[0]
    clear = (distance - 1).abs() > 1e-3  # leave the points on the edges to rounding
    assert torch.equal(inside[clear], (distance <= 1)[clear])
    assert clear.sum() > 500


def test_strokes_are_optional_thin_and_straight():
    from learnreg.data import _leaves as module

    # strokes = 0 draws nothing extra from the generator: the image stream is unchanged
    assert torch.equal(dead_leaves(48, generator=_generator(7)),
                       dead_leaves(48, generator=_generator(7), strokes=0.0))
    with_strokes = dead_leaves(48, channels=1, generator=_generator(7), strokes=1.0)
    assert with_strokes.min() >= 0 and with_strokes.max() <= 1
    assert torch.equal(with_strokes, dead_leaves(48, channels=1, generator=_generator(7), strokes=1.0))

    # every group is one stroke or a family of parallel ones: projected on the axis across
    # them, its pixels fall in bands at most 4 px wide (plus one pixel of rasterisation)
    for seed in range(6):
        index = torch.zeros(96, 96, dtype=torch.int64)
        groups = module.paint_strokes(index, 1, 96, 1, _generator(seed))
        assert 1 <= groups <= 4 and int(index.max()) <= groups
        for k in range(1, groups + 1):
            ys, xs = (index == k).nonzero(as_tuple=True)
            if len(ys) < 20:  # mostly hidden under later groups
                continue
            points = torch.stack([ys, xs], 1).double()
            points -= points.mean(0)
            # the stroke direction is the principal axis of the longest stroke's pixels;
            # try the candidate directions (PCA of the whole group, and the axes) and keep
            # the thinnest band structure
            best = min(_band_widths(points, angle) for angle in torch.linspace(0, np.pi, 181)[:-1])
            assert best <= 5.0, (seed, k, best)


def _band_widths(points: torch.Tensor, angle: torch.Tensor) -> float:
    """Widest run of occupied 1-px bins of the points projected across direction ``angle``."""
    across = points[:, 0] * torch.cos(angle) - points[:, 1] * torch.sin(angle)
    bins = torch.unique(torch.floor(across).long())
    widest, run = 1, 1
    for a, b in zip(bins[:-1].tolist(), bins[1:].tolist()):
        run = run + 1 if b == a + 1 else 1
        widest = max(widest, run)
    return float(widest)


def test_spectrum_with_polygons_and_strokes_stays_natural():
    # the training recipe's data (polygons 0.3, strokes 0.5): still about 1/f^2
    generator = _generator(0)
    images = torch.stack([dead_leaves(256, channels=1, generator=generator, polygons=0.3,
                                      strokes=0.5)[0] for _ in range(16)])
    slope = _spectrum_slope(images, (0.02, 0.25))
    print(f"spectrum slope (polygons 0.3, strokes 0.5): {slope:.3f}")
    assert -2.3 < slope < -1.7


def test_bad_strokes():
    with pytest.raises(ValueError, match="strokes is a probability"):
        DeadLeavesConfig(strokes=1.5)


def test_rough_outlines_are_optional_and_painted_exactly():
    from learnreg.data import _leaves as module

    # rough = 0 draws nothing extra: the image stream (and so every shipped recipe's data) is unchanged
    assert torch.equal(dead_leaves(48, generator=_generator(4)), dead_leaves(48, generator=_generator(4), rough=0.0))
    assert not torch.equal(dead_leaves(48, generator=_generator(4)),
                           dead_leaves(48, generator=_generator(4), rough=1.0))
    # both painting paths (buckets and large shapes one by one) agree with a brute-force test
    height, width = 40, 50
    shapes = module.sample_shapes(height, width, r_min=0.7, r_max=70.0, alpha=1.5, polygons=0.3,
                                   generator=_generator(8), rough=0.8)
    assert bool((shapes.harmonics[..., 1].sum(-1) > 0).any()) and bool((shapes.r > module.LARGEST_BUCKET).any())
    assert not bool((shapes.harmonics[shapes.polygon, :, 1] > 0).any())  # polygons stay straight
    index = torch.full((height, width), module.UNCOVERED, dtype=torch.int64)
    module.paint(index, shapes, 0)
    y, x = torch.arange(height)[:, None] + 0.5, torch.arange(width)[None, :] + 0.5
    expected = torch.full((height, width), module.UNCOVERED, dtype=torch.int64)
    for i in range(len(shapes.r)):
        dy, dx = y - shapes.cy[i], x - shapes.cx[i]
        order, amplitude, phase = shapes.harmonics[i].unbind(-1)
        theta = torch.atan2(dy, dx)[..., None]
        radius = shapes.r[i]
        if amplitude.sum() > 0:
            radius = radius * (1 - module.ROUGHNESS * (1 + (amplitude * torch.sin(order * theta + phase)).sum(-1)))
        inside = dy**2 + dx**2 <= radius**2
        if shapes.polygon[i]:
            inside &= module.in_polygon(dy[None], dx[None], shapes.vertices[i:i + 1])[0]
        expected = torch.where(inside & (expected == module.UNCOVERED), i, expected)
    assert torch.equal(index, expected)


def test_rough_outline_stays_between_0_7_r_and_r():
    from learnreg.data import _leaves as module

    shapes = module.sample_shapes(400, 400, r_min=150.0, r_max=190.0, alpha=3.0, polygons=0.0,
                                   generator=_generator(2), rough=1.0)
    grid = torch.arange(-200, 201, dtype=torch.float32) + 0.5
    dy, dx = grid[None, :, None], grid[None, None, :]
    for i in range(min(4, len(shapes.r))):
        inside = module.covers(dy, dx, shapes.r[i].view(1, 1, 1), shapes.harmonics[i:i + 1])[0]
        distance = torch.sqrt(dy[0] ** 2 + dx[0] ** 2)
        r = float(shapes.r[i])
        assert bool(inside[distance <= 0.7 * r - 1].all()) and not bool(inside[distance > r].any())
        assert not bool(inside[distance <= r - 1].all())  # it is rough: some of the disk is cut away


def test_stroke_width_sets_the_widest_stroke():
    from learnreg.data import _leaves as module

    widest = []
    for seed in range(12):
        index = torch.zeros(128, 128, dtype=torch.int64)
        groups = module.paint_strokes(index, 1, 128, 1, _generator(seed), 12.0)
        for k in range(1, groups + 1):
            ys, xs = (index == k).nonzero(as_tuple=True)
            if len(ys) >= 40:
                points = torch.stack([ys, xs], 1).double()
                widest.append(min(_band_widths(points - points.mean(0), a) for a in torch.linspace(0, np.pi, 721)[:-1]))
    assert max(widest) <= 13.0 and max(widest) > 5.0


def test_bad_rough_and_stroke_width():
    with pytest.raises(ValueError, match="rough is a probability"):
        DeadLeavesConfig(rough=-0.1)
    with pytest.raises(ValueError, match="stroke_width must be >= 0.7"):
        DeadLeavesConfig(stroke_width=0.2)


def test_blur_is_optional_and_a_normalised_gaussian():
    from learnreg.physics.kernels import gaussian_lowpass

    # blur = 0 draws nothing extra: every shipped recipe's data is unchanged
    assert torch.equal(dead_leaves(48, generator=_generator(5)), dead_leaves(48, generator=_generator(5), blur=0.0))
    sharp = dead_leaves(64, channels=1, generator=_generator(6))
    soft = dead_leaves(64, channels=1, generator=_generator(6), blur=1.0, blur_sigma=2.0)
    assert soft.shape == sharp.shape and 0 <= float(soft.min()) and float(soft.max()) <= 1
    assert abs(float(soft.mean() - sharp.mean())) < 0.01  # blurring moves no mass (reflected borders)
    assert float(soft.diff(dim=-1).abs().mean()) < 0.8 * float(sharp.diff(dim=-1).abs().mean())
    # the kernel: unit mass, variance sigma^2 per axis, separable
    impulse = torch.zeros(1, 1, 41, 41)
    impulse[..., 20, 20] = 1.0
    kernel = gaussian_lowpass(impulse, 1.7)[0, 0]
    offsets = torch.arange(-20, 21, dtype=torch.float32)
    assert float(kernel.sum()) == pytest.approx(1.0, abs=1e-6)
    assert float((kernel.sum(dim=0) * offsets**2).sum()) == pytest.approx(1.7**2, rel=0.02)
    assert torch.allclose(kernel, torch.outer(kernel.sum(dim=1), kernel.sum(dim=0)), atol=1e-7)
    constant = torch.full((1, 3, 16, 16), 0.4)
    assert torch.allclose(gaussian_lowpass(constant, 3.0), constant)


def test_bad_blur():
    with pytest.raises(ValueError, match="blur is a probability"):
        DeadLeavesConfig(blur=1.5)
    with pytest.raises(ValueError, match=r"blur_sigma must be in \[0.3, 8\]"):
        DeadLeavesConfig(blur=0.5, blur_sigma=0.1)


def test_texture_options_default_to_the_old_stream_and_set_amplitude_and_grain():
    # the defaults draw exactly what the generator drew before the options existed
    base = dead_leaves(64, channels=1, generator=_generator(7))
    assert torch.equal(base, dead_leaves(64, channels=1, generator=_generator(7), texture_amplitude=0.1,
                                         texture_beta=0.5, periodic=0.0))
    # no amplitude: every shape is flat (up to its ramp), like textures=False with the same shapes
    flat = dead_leaves(64, channels=1, generator=_generator(7), texture_amplitude=0.0, ramps=False)
    plain = dead_leaves(64, channels=1, generator=_generator(7), textures=False, ramps=False)
    assert len(torch.unique(flat)) <= len(torch.unique(plain)) + 1
    # beta 0 (white grain) puts more power at high frequencies than the default 0.5
    def high(beta: float) -> float:
        images = torch.stack([dead_leaves(128, channels=1, generator=_generator(i), texture_amplitude=0.3,
                                          texture_beta=beta, ramps=False)[0] for i in range(6)])
        spectrum = torch.fft.fft2(images - images.mean(dim=(1, 2), keepdim=True)).abs().pow(2)
        f = torch.fft.fftfreq(128)
        radius = torch.sqrt(f[:, None] ** 2 + f[None, :] ** 2)
        return float(spectrum[:, radius > 0.3].sum() / spectrum.sum())
    assert high(0.0) > 1.2 * high(0.5)  # measured 0.114 against 0.086


def test_periodic_images_repeat_a_block_with_a_running_bond():
    image = dead_leaves(96, channels=1, generator=_generator(3), periodic=1.0)[0]
    # find the periods: the smallest vertical shift p_y with rows r and r + 2 p_y equal, same horizontally
    p_y = next(p for p in range(8, 49) if torch.equal(image[: 96 - 2 * p], image[2 * p:]))
    p_x = next(p for p in range(8, 49) if torch.equal(image[:, : 96 - p], image[:, p:]))
    assert 8 <= p_y <= 48 and 8 <= p_x <= 48
    # not periodic with probability 0 (and distinct from the non-periodic image of the same seed)
    assert not torch.equal(image, dead_leaves(96, channels=1, generator=_generator(3))[0])
    with pytest.raises(ValueError, match="periodic is a probability"):
        DeadLeavesConfig(periodic=2.0)
    with pytest.raises(ValueError, match=r"texture_amplitude must be in \[0, 1\]"):
        DeadLeavesConfig(texture_amplitude=-0.1)
    with pytest.raises(ValueError, match=r"texture_beta must be in \[0, 2\]"):
        DeadLeavesConfig(texture_beta=3.0)


def test_stroke_spacing_sets_the_grating_period():
    from learnreg.data import _leaves as module

    # the default range (6, 40) draws the stream every shipped recipe was trained on
    assert torch.equal(dead_leaves(64, channels=1, generator=_generator(3), strokes=1.0),
                       dead_leaves(64, channels=1, generator=_generator(3), strokes=1.0, stroke_spacing=(6.0, 40.0)))
    periods = []
    for seed in range(16):
        index = torch.zeros(128, 128, dtype=torch.int64)
        groups = module.paint_strokes(index, 1, 128, 1, _generator(seed), 0.7, spacing=(3.0, 3.0))
        for k in range(1, groups + 1):
            ys, xs = (index == k).nonzero(as_tuple=True)
            if len(ys) < 200:  # a single stroke, or mostly hidden
                continue
            points = torch.stack([ys, xs], 1).double()
            points -= points.mean(0)
            angle = min(torch.linspace(0, np.pi, 721)[:-1], key=lambda a: _band_widths(points, a))
            across = points[:, 0] * torch.cos(angle) - points[:, 1] * torch.sin(angle)
            centres = torch.tensor([float(across[torch.floor(across).long() == b].mean())
                                    for b in torch.unique(torch.floor(across).long()).tolist()])
            bands = [centres[0].item()]  # merge adjacent occupied bins into one stroke
            for c in centres[1:].tolist():
                if c - bands[-1] > 1.6:
                    bands.append(c)
            if len(bands) >= 3:
                periods.append(float(torch.tensor(bands).diff().median()))
    assert len(periods) >= 3 and all(2.5 <= p <= 3.5 for p in periods), periods
    with pytest.raises(ValueError, match=r"stroke_spacing must be a range \(low, high\) with 2 <= low"):
        DeadLeavesConfig(stroke_spacing=(1.0, 10.0))
    with pytest.raises(ValueError, match="stroke_spacing must be a range"):
        DeadLeavesConfig(stroke_spacing=(10.0, 6.0))
    assert DeadLeavesConfig.from_dict({"stroke_spacing": [2.5, 16]}).stroke_spacing == (2.5, 16.0)
