"""Synthetic depth scenes: analytic ray casting, reproducibility, ranges, guide, noise and masks."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from learnreg.data.depthscenes import (Albedo, DepthSceneConfig, DepthScenePool, Scene, SceneObject,
                                       add_depth_noise, depth_scene_batch, invalid_mask, pixel_grid,
                                       raycast_cylinder, raycast_plane, raycast_torus, render, render_scene,
                                       rotation_matrix, sample_scene)


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _scene(*objects: SceneObject, background: SceneObject | None = None) -> Scene:
    background = background or SceneObject("heightfield", {"offset": 1.0})
    return Scene(background, list(objects), light=torch.tensor([0.0, 0.0, -1.0], dtype=torch.float64))


def _grid(height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    y = ((torch.arange(height, dtype=torch.float64) + 0.5) / height)[:, None].expand(height, width)
    x = ((torch.arange(width, dtype=torch.float64) + 0.5) / width)[None, :].expand(height, width)
    return x, y


def test_tilted_plane_matches_formula_at_pixel_centres():
    height, width = 24, 40
    x, y = _grid(height, width)
    expected = 0.55 + 0.2 * x - 0.15 * y
    t, normal = raycast_plane(*pixel_grid(height, width), offset=0.55, slope_x=0.2, slope_y=-0.15)
    assert torch.allclose(t, expected, atol=1e-12, rtol=0)
    assert torch.allclose(normal, torch.tensor([0.2, -0.15, -1.0], dtype=torch.float64) / math.sqrt(1.0625))
    # the same plane as the background of a rendered scene
    plane = SceneObject("heightfield", {"offset": 0.55, "slope_x": 0.2, "slope_y": -0.15})
    rendered = render(_scene(background=plane), (height, width))
    assert (rendered.depth[0].double() - expected).abs().max() < 1e-5
    assert (rendered.objects == 0).all()


def test_half_plane_keeps_one_side():
    x, y = pixel_grid(32, 32)
    t, _ = raycast_plane(x, y, offset=0.5, half_plane=(1.0, 0.0, 0.5))
    assert torch.isfinite(t[x >= 0.5]).all() and torch.isinf(t[x < 0.5]).all()


def test_sphere_matches_formula_inside_disk_and_background_outside():
    centre, radius = (0.45, 0.55, 0.6), 0.3
    rendered = render(_scene(SceneObject("sphere", {"centre": centre, "radius": radius})), 48)
    x, y = _grid(48, 48)
    square = radius**2 - (x - centre[0]) ** 2 - (y - centre[1]) ** 2
    inside = square >= 0
    depth = rendered.depth[0].double()
    assert (depth[inside] - (centre[2] - torch.sqrt(square[inside]))).abs().max() < 1e-5
    assert (depth[~inside] == 1.0).all()
    assert (rendered.objects[inside] == 1).all() and (rendered.objects[~inside] == 0).all()
    assert (rendered.normals[2] <= 0).all()
    assert torch.allclose(rendered.normals.norm(dim=0), torch.ones(48, 48), atol=1e-5)


def test_box_front_face_depth_in_footprint():
    box = SceneObject("box", {"centre": (0.5, 0.5, 0.4), "half_extents": (0.2, 0.15, 0.1)})
    rendered = render(_scene(box), 40)
    x, y = _grid(40, 40)
    footprint = ((x - 0.5).abs() < 0.2) & ((y - 0.5).abs() < 0.15)
    depth = rendered.depth[0]
    assert (depth[footprint] - 0.3).abs().max() < 1e-6
    assert (depth[~footprint] == 1.0).all()
    facing = torch.tensor([0.0, 0.0, -1.0]).expand(int(footprint.sum()), 3)
    assert torch.allclose(rendered.normals[:, footprint].T, facing)


def test_box_rotated_about_the_optical_axis_keeps_its_front_face():
    angle = 0.5
    box = SceneObject("box", {"centre": (0.5, 0.5, 0.6), "half_extents": (0.25, 0.1, 0.05),
                              "rotation": rotation_matrix((0.0, 0.0, angle))})
    rendered = render(_scene(box), 48)
    x, y = _grid(48, 48)
    u = (x - 0.5) * math.cos(angle) + (y - 0.5) * math.sin(angle)
    v = -(x - 0.5) * math.sin(angle) + (y - 0.5) * math.cos(angle)
    footprint = (u.abs() < 0.25) & (v.abs() < 0.1)
    assert (rendered.depth[0][footprint] - 0.55).abs().max() < 1e-6
    assert (rendered.depth[0][~footprint] == 1.0).all()


def test_cylinder_side_matches_formula():
    # axis along world y (rotation by pi/2 about x): depth c_z - sqrt(r^2 - (x - c_x)^2)
    x, y = pixel_grid(40, 40)
    t, _ = raycast_cylinder(x, y, centre=(0.5, 0.5, 0.5), radius=0.2, half_length=0.3,
                            rotation=rotation_matrix((math.pi / 2, 0.0, 0.0)))
    footprint = ((x - 0.5).abs() < 0.2) & ((y - 0.5).abs() < 0.3)
    expected = 0.5 - torch.sqrt(0.04 - (x - 0.5) ** 2)
    assert (t[footprint] - expected[footprint]).abs().max() < 1e-9
    assert torch.isinf(t[~footprint]).all()


def test_torus_sphere_tracing_matches_analytic_depth():
    centre, major, minor = (0.5, 0.45, 0.5), 0.25, 0.1
    x, y = pixel_grid(48, 48)
    t, normal = raycast_torus(x, y, centre=centre, major_radius=major, minor_radius=minor)
    rho = torch.sqrt((x - centre[0]) ** 2 + (y - centre[1]) ** 2)
    ring = (rho - major).abs() < 0.95 * minor
    expected = centre[2] - torch.sqrt(minor**2 - (rho - major) ** 2)
    assert (t[ring] - expected[ring]).abs().max() < 1e-4
    assert torch.isinf(t[(rho - major).abs() > minor]).all()
    assert (normal[ring][:, 2] < 0).all()
    # as an object of a rendered scene
    rendered = render(_scene(SceneObject("torus", {"centre": centre, "major_radius": major,
                                                   "minor_radius": minor})), 48)
    assert (rendered.depth[0].double()[ring] - expected[ring]).abs().max() < 1e-4


@pytest.mark.parametrize("family", ["gdsr", "heldout"])
def test_scenes_are_reproducible_and_in_range(family):
    config = DepthSceneConfig(size=(24, 40), family=family)
    first = render_scene(config, generator=_generator(3))
    again = render_scene(config, generator=_generator(3))
    other = render_scene(config, generator=_generator(4))
    for name in ("depth", "guide", "normals", "objects"):
        assert torch.equal(getattr(first, name), getattr(again, name))
    assert not torch.equal(first.depth, other.depth)
    assert first.depth.shape == (1, 24, 40) and first.depth.dtype == torch.float32
    assert first.guide.shape == (3, 24, 40) and first.guide.dtype == torch.float32
    assert first.normals.shape == (3, 24, 40) and first.objects.shape == (24, 40)
    assert first.objects.dtype == torch.int64
    assert first.depth.min() > 0 and first.depth.max() <= 1
    assert first.guide.min() >= 0 and first.guide.max() <= 1
    assert len(first.objects.unique()) > 3


def test_gdsr_counts_follow_the_recipe():
    for seed in range(5):
        scene = sample_scene(DepthSceneConfig(size=16), generator=_generator(seed))
        kinds = [item.kind for item in scene.objects]
        assert 16 <= kinds.count("box") <= 32 and kinds.count("sphere") <= 4
        assert kinds.count("heightfield") <= 2  # slanted half planes
        assert scene.background.parameters == {"offset": 1.0}
        assert scene.light[2] < 0


def test_heldout_has_the_extra_shapes_and_a_bumpy_background():
    scene = sample_scene(DepthSceneConfig(size=16, family="heldout"), generator=_generator(0))
    kinds = {item.kind for item in scene.objects}
    assert {"torus", "cylinder", "box"} <= kinds
    assert len(scene.objects) >= 20 + 2 + 1 + 2 + 3  # clutter, cylinders, tori, rods, boxes
    assert len(scene.background.parameters["bumps"]) >= 2
    background = render(Scene(scene.background, [], scene.light), 32).depth
    assert background.min() > 0.5 and background.max() <= 1 and background.std() > 1e-3


def test_textured_object_has_guide_edges_where_depth_is_smooth():
    albedo = Albedo("checkerboard", torch.tensor([[0.1, 0.2, 0.3], [0.9, 0.8, 0.7]], dtype=torch.float64),
                    scale=0.07)
    box = SceneObject("box", {"centre": (0.5, 0.5, 0.5), "half_extents": (0.3, 0.3, 0.1)}, albedo)
    rendered = render(_scene(box), 48)
    inner = rendered.objects == 1
    inner = -F.max_pool2d(-inner[None].float(), 3, stride=1, padding=1)[0] > 0.5  # erode by one pixel
    depth_gradient = (rendered.depth[0, :, 1:] - rendered.depth[0, :, :-1]).abs()[inner[:, 1:] & inner[:, :-1]]
    guide_gradient = (rendered.guide[:, :, 1:] - rendered.guide[:, :, :-1]).pow(2).sum(0)
    guide_gradient = guide_gradient[inner[:, 1:] & inner[:, :-1]]
    assert depth_gradient.max() < 1e-6
    assert guide_gradient.mean() > 1e-2


def test_supersampling_averages_finer_rays():
    scene = sample_scene(DepthSceneConfig(size=16), generator=_generator(1))
    coarse = render(scene, 16, supersample=2)
    fine = render(scene, 32)
    assert torch.allclose(coarse.depth, F.avg_pool2d(fine.depth[None], 2)[0], atol=1e-6)
    assert torch.allclose(coarse.guide, F.avg_pool2d(fine.guide[None], 2)[0], atol=1e-6)
    assert torch.equal(coarse.objects, fine.objects[1::2, 1::2])
    config = DepthSceneConfig(size=16, supersample=2)
    assert render_scene(config, generator=_generator(0)).depth.shape == (1, 16, 16)


@pytest.mark.parametrize("field, value", [("family", "lidar"), ("size", 4), ("size", (16, 7)),
                                          ("guide_noise", -0.1), ("textured_fraction", 1.5),
                                          ("supersample", 0), ("ambient", -1.0)])
def test_bad_config_names_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        DepthSceneConfig(**{field: value})


def test_config_round_trip():
    config = DepthSceneConfig(size=(32, 48), family="heldout", guide_noise=0.0)
    assert DepthSceneConfig.from_dict(config.to_dict()) == config
    assert DepthSceneConfig.from_dict({"size": [32, 48]}).shape == (32, 48)
    with pytest.raises(ValueError, match="valid keys"):
        DepthSceneConfig.from_dict({"sizes": 32})


def test_batch_and_pool():
    config = DepthSceneConfig(size=32, guide_noise=0.0)
    depth, guide = depth_scene_batch(config, 2, generator=_generator(0))
    assert depth.shape == (2, 1, 32, 32) and guide.shape == (2, 3, 32, 32)
    pool = DepthScenePool(config, images=2, seed=5)
    assert torch.equal(pool.depth, DepthScenePool(config, images=2, seed=5).depth)
    pool.guide = pool.depth.expand(-1, 3, -1, -1).clone()  # to see that both get the same crop and turn
    patch_depth, patch_guide = pool.sample(6, patch_size=16, generator=_generator(1))
    assert patch_depth.shape == (6, 1, 16, 16) and patch_guide.shape == (6, 3, 16, 16)
    assert torch.equal(patch_guide, patch_depth.expand(-1, 3, -1, -1))
    again, _ = pool.sample(6, patch_size=16, generator=_generator(1))
    assert torch.equal(again, patch_depth)
    with pytest.raises(ValueError, match="patch_size"):
        pool.sample(1, patch_size=33, generator=_generator(1))


@pytest.mark.parametrize("quadratic", [True, False])
def test_depth_noise_statistics(quadratic):
    depth = torch.full((2, 1, 200, 200), 0.8)
    depth[1] = 0.4
    sigma0 = 0.05
    noise = add_depth_noise(depth, sigma0=sigma0, generator=_generator(0), quadratic=quadratic) - depth
    for level, z in ((0, 0.8), (1, 0.4)):
        expected = sigma0 * z**2 if quadratic else sigma0
        sample = noise[level].double()
        assert abs(float(sample.mean())) < 4 * expected / 200  # 4 standard errors
        assert float(sample.std()) == pytest.approx(expected, rel=0.03)
    with pytest.raises(ValueError, match="sigma0"):
        add_depth_noise(depth, sigma0=-1.0, generator=_generator(0))


def test_invalid_mask_fraction_and_edges():
    flat = torch.full((1, 64, 64), 0.7)
    valid = invalid_mask(flat, fraction=0.1, generator=_generator(0), edges=False)
    assert valid.dtype == torch.bool and valid.shape == flat.shape
    assert 0.08 <= 1 - float(valid.float().mean()) <= 0.12
    assert torch.equal(valid, invalid_mask(flat, fraction=0.1, generator=_generator(0), edges=False))
    assert invalid_mask(flat, fraction=0.0, generator=_generator(0)).all()
    step = flat.clone()
    step[..., 32:] = 0.3
    valid = invalid_mask(step, fraction=0.0, generator=_generator(0), edges=True)
    assert not valid[0, :, 31:33].any() and valid[0, :, :31].all() and valid[0, :, 33:].all()
    with pytest.raises(ValueError, match="fraction"):
        invalid_mask(flat, fraction=1.5, generator=_generator(0))
