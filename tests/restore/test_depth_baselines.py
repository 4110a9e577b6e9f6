"""Depth SR baselines: box pseudo-inverse against the dense pinv, bilinear, guided filter, registry."""

import pytest
import torch

from learnreg.metrics.depth import rmse
from learnreg.physics.spec import Degradation
from learnreg.physics.superres import SuperResolution
from learnreg.restore import Problem, restore
from learnreg.restore.depth import (
    bilinear_upsample,
    box_filter,
    box_pseudo_inverse,
    guided_filter,
    guided_filter_upsample,
    is_box_downsampling,
)


def _operator(spec: str, size: int = 32, channels: int = 1):
    return Degradation.from_strings(spec, "none", shape=(channels, size, size), seed=0).build_operator()


def _scene(size: int = 32):
    """Boxes on a slanted plane (unit-cube depth) and an RGB guide with one colour per object."""
    u = torch.linspace(0, 1, size, dtype=torch.float64)
    rows, cols = torch.meshgrid(u, u, indexing="ij")
    depth = 0.6 + 0.2 * cols + 0.1 * rows
    label = torch.zeros(size, size, dtype=torch.long)
    q = size // 8  # edges off the 4-pixel block grid
    boxes = [(q + 1, 4 * q + 2, q - 1, 4 * q + 1, 0.3), (5 * q + 2, 7 * q + 1, 2 * q + 3, 6 * q + 2, 0.45)]
    for k, (r0, r1, c0, c1, z) in enumerate(boxes, 1):
        depth[r0:r1, c0:c1] = z
        label[r0:r1, c0:c1] = k
    colours = torch.tensor([[0.6, 0.6, 0.5], [0.9, 0.2, 0.2], [0.2, 0.3, 0.9]], dtype=torch.float64)
    return depth[None, None], colours[label].permute(2, 0, 1)[None].contiguous()


# -- box pseudo-inverse ----------------------------------------------------------------------
@pytest.mark.parametrize("factor,offset", [(2, None), (4, None), (3, None), (4, (3, 0)), (3, (0, 2))])
def test_box_pseudo_inverse_is_the_moore_penrose_inverse(factor, offset):
    n = 12
    operator = SuperResolution("box", factor, (1, n, n), offset=offset)
    y = torch.randn(2, 1, n // factor, n // factor, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    x = box_pseudo_inverse(y, operator)
    assert torch.allclose(operator(x), y, atol=1e-12)  # A A^+ y = y
    dense = operator(torch.eye(n * n, dtype=torch.float64).reshape(n * n, 1, n, n)).reshape(n * n, -1).T
    expected = (y.reshape(2, -1) @ torch.linalg.pinv(dense).T).reshape(x.shape)
    assert torch.allclose(x, expected, atol=1e-10)
    assert torch.allclose(x, factor**2 * operator.adjoint(y), atol=1e-12)


def test_box_is_recognised_from_a_saved_spec(tmp_path):
    spec = Degradation.from_strings("sr:4:box", "none", shape=(1, 16, 16))
    spec.save(tmp_path / "y.json")
    operator = Degradation.load(tmp_path / "y.json").build_operator()
    assert operator.kernel_name is None and is_box_downsampling(operator)
    for other in ("sr:4:nearest", "sr:2:bicubic", "sr:3:gaussian:0.8"):
        assert not is_box_downsampling(_operator(other, size=24))


def test_box_pinv_refuses_other_kernels():
    operator = _operator("sr:4:nearest")
    y = torch.zeros(1, *operator.out_shape)
    with pytest.raises(ValueError, match="box downsampling"):
        box_pseudo_inverse(y, operator)
    with pytest.raises(ValueError, match="does not apply .*sr:FACTOR:box"):
        restore(Problem(y, operator), "box-pinv")


# -- bilinear --------------------------------------------------------------------------------
@pytest.mark.parametrize("spec", ["sr:4:box", "sr:2:box", "sr:4:nearest", "sr:3:box", "sr:2:bicubic"])
def test_bilinear_reproduces_affine_ramps_and_does_not_overshoot(spec):
    n = 48
    ramp = torch.linspace(0, 1, n, dtype=torch.float64)
    x = (0.3 * ramp[:, None] + 0.5 * ramp[None, :]).expand(1, 1, n, n).contiguous()
    operator = _operator(spec, size=n)
    up = bilinear_upsample(operator(x), operator)
    inner = slice(12, -12)
    assert torch.allclose(up[..., inner, inner], x[..., inner, inner], atol=1e-9)
    step = (torch.arange(n) >= n // 2).to(torch.float64).expand(1, 1, n, n).contiguous()
    y = operator(step)
    up = bilinear_upsample(y, operator)
    assert float(up.min()) >= float(y.min()) - 1e-12 and float(up.max()) <= float(y.max()) + 1e-12


def test_replicate_boundary_avoids_the_wrap_around_ramp():
    n = 32
    ramp = torch.linspace(0, 1, n, dtype=torch.float64).expand(1, 1, n, n).contiguous()
    operator = _operator("sr:4:box", size=n)
    y = operator(ramp)
    periodic = (bilinear_upsample(y, operator, boundary="periodic") - ramp).abs().max()
    replicate = (bilinear_upsample(y, operator, boundary="replicate") - ramp).abs().max()
    assert float(replicate) < 0.1 < float(periodic)  # 2/32 (flat half block) against a 0.5 jump
    guide = ramp.expand(1, 3, n, n)
    periodic = (guided_filter_upsample(y, operator, guide, boundary="periodic") - ramp).abs().max()
    replicate = (guided_filter_upsample(y, operator, guide, boundary="replicate") - ramp).abs().max()
    assert float(replicate) < float(periodic)


def test_bilinear_interpolates_nearest_samples_exactly():
    operator = _operator("sr:4:nearest")
    y = torch.rand(1, *operator.out_shape, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(operator(bilinear_upsample(y, operator)), y, atol=1e-12)


# -- guided filter ---------------------------------------------------------------------------
def test_box_filter_matches_a_direct_window_mean():
    x = torch.rand(2, 3, 9, 11, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    radius = 2
    direct = torch.empty_like(x)
    for i in range(9):
        for j in range(11):
            window = x[..., max(0, i - radius):i + radius + 1, max(0, j - radius):j + radius + 1]
            direct[..., i, j] = window.mean(dim=(-2, -1))
    assert torch.allclose(box_filter(x, radius), direct, atol=1e-12)
    assert torch.allclose(box_filter(x, 0), x, atol=1e-12)
    with pytest.raises(ValueError, match="radius"):
        box_filter(x, -1)


def test_guided_filter_with_a_constant_guide_is_a_double_box_filter():
    p = torch.rand(1, 1, 16, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    for guide in (torch.full((1, 1, 16, 16), 0.4, dtype=torch.float64),
                  torch.full((1, 3, 16, 16), 0.7, dtype=torch.float64)):
        out = guided_filter(p, guide, radius=2, eps=1e-4)
        assert torch.allclose(out, box_filter(box_filter(p, 2), 2), atol=1e-10)


def test_guided_filter_with_itself_as_guide_is_nearly_the_identity():
    p, _ = _scene(32)
    out = guided_filter(p, p, radius=3, eps=1e-8)
    assert float((out - p).abs().max()) < 1e-3
    assert float((guided_filter(p, p, radius=3, eps=1.0) - p).abs().max()) > 1e-2  # large eps smooths


def test_guided_filter_upsample_shape_dtype_and_beats_interpolation():
    depth, guide = _scene(32)
    operator = _operator("sr:4:box", size=32)
    for dtype in (torch.float32, torch.float64):
        y = operator(depth).to(dtype)
        out = guided_filter_upsample(y, operator, guide.to(torch.float32))
        assert out.shape == depth.shape and out.dtype == dtype and out.device == y.device
    y = operator(depth)
    guided = float(rmse(guided_filter_upsample(y, operator, guide), depth))
    assert guided < float(rmse(bilinear_upsample(y, operator), depth))
    assert guided < float(rmse(box_pseudo_inverse(y, operator), depth))
    gray = float(rmse(guided_filter_upsample(y, operator, guide, color=False), depth))
    assert torch.isfinite(torch.tensor(gray))
    with pytest.raises(ValueError, match="valid boundaries: periodic, replicate"):
        guided_filter_upsample(y, operator, guide, boundary="mirror")


def test_guided_filter_upsample_batches_with_one_guide():
    depth, guide = _scene(32)
    operator = _operator("sr:4:box", size=32)
    y = operator(torch.cat([depth, 2 * depth]))
    out = guided_filter_upsample(y, operator, guide)
    assert out.shape == (2, 1, 32, 32)
    assert torch.allclose(out[1], 2 * out[0], atol=1e-10)  # linear in the depth


def test_guide_missing_or_mismatched_names_the_fix():
    depth, guide = _scene(32)
    operator = _operator("sr:4:box", size=32)
    y = operator(depth)
    with pytest.raises(ValueError, match="needs a guide image; pass --guide with an RGB image of size 32x32"):
        restore(Problem(y, operator), "guided-filter")
    with pytest.raises(ValueError, match="guide is 16x16 .* 32x32; pass --guide with an RGB image of size 32x32"):
        Problem(y, operator, guide=guide[..., :16, :16])
    with pytest.raises(ValueError, match="guide is 16x16"):
        guided_filter_upsample(y, operator, guide[..., :16, :16])
    with pytest.raises(ValueError, match="shape"):
        Problem(y, operator, guide=guide[:, :2])


# -- registered methods ----------------------------------------------------------------------
@pytest.mark.parametrize("method,params", [("bilinear", {}), ("box-pinv", {}), ("guided-filter", {}),
                                           ("guided-filter", {"radius": 4, "eps": 1e-3, "color": False}),
                                           ("bilinear", {"boundary": "replicate"}),
                                           ("tv", {"iterations": 30})])
def test_methods_run_on_a_depth_map(method, params):
    depth, guide = _scene(32)
    depth, guide = depth.float(), guide.float()
    operator = _operator("sr:4:box", size=32)
    y = operator(depth)
    result = restore(Problem(y, operator, guide=guide), method, params=params)
    assert result.x.shape == depth.shape and result.x.dtype == torch.float32
    assert float(rmse(result.x, depth)) < 0.15  # box-pinv 0.10, guided filter 0.03 to 0.06
