"""Restoration methods: registry errors, baselines against closed forms, TV on small problems."""

import pytest
import torch

from learnreg.data.samples import sample
from learnreg.metrics import psnr
from learnreg.physics.spec import Degradation
from learnreg.restore import METHODS, Problem, parse_params, restore
from learnreg.restore.baselines import bicubic_upsample, harmonic_fill
from learnreg.restore.methods import get_method


def _problem(operator: str, noise: str, size: int = 64, mode: str = "gray", seed: int = 0):
    clean = sample("camera" if mode == "gray" else "retina", size=size)
    degradation = Degradation.from_strings(operator, noise, shape=tuple(clean.shape[1:]), seed=seed)
    y = degradation.apply(clean, torch.Generator().manual_seed(seed))
    return clean, Problem(y, degradation.build_operator(), sigma=degradation.sigma)


def test_unknown_method_lists_valid_ones():
    with pytest.raises(ValueError, match="unknown method 'nope'; valid methods: .*tv"):
        get_method("nope")


def test_unknown_parameter_lists_valid_ones():
    with pytest.raises(ValueError, match="no parameter 'lam'; valid parameters: weight"):
        parse_params(get_method("tv"), ["lam=0.1"])
    with pytest.raises(ValueError, match="must be a int"):
        parse_params(get_method("tv"), ["iterations=many"])
    assert parse_params(get_method("pnp-hqs"), ["self_ensemble=no"])["self_ensemble"] is False
    with pytest.raises(ValueError, match=r"self_ensemble='maybe' .* must be true or false"):
        parse_params(get_method("pnp-hqs"), ["self_ensemble=maybe"])


def test_method_that_does_not_apply_says_why():
    _, problem = _problem("blur:gaussian:1.0", "gaussian:0.01")
    with pytest.raises(ValueError, match="does not apply .*super-resolution"):
        restore(problem, "bicubic")


def test_problem_rejects_nan_and_wrong_shape():
    clean, problem = _problem("blur:gaussian:1.0", "none")
    bad = problem.y.clone()
    bad[0, 0, 3, 3] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        Problem(bad, problem.operator)
    with pytest.raises(ValueError, match="shape"):
        Problem(problem.y[..., :-1], problem.operator)


@pytest.mark.parametrize("spec", ["sr:2:bicubic", "sr:4:bicubic", "sr:3:gaussian:0.8", "sr:4:nearest", "sr:2:box"])
def test_bicubic_reproduces_linear_ramps(spec):
    # Keys cubic interpolation is exact for affine signals; check away from the periodic seam.
    n = 96
    ramp = torch.linspace(0, 1, n, dtype=torch.float64)
    x = (0.3 * ramp[:, None] + 0.5 * ramp[None, :]).expand(1, 1, n, n).contiguous()
    operator = Degradation.from_strings(spec, "none", shape=(1, n, n), seed=0).build_operator()
    up = bicubic_upsample(operator(x), operator)
    inner = slice(24, -24)
    assert torch.allclose(up[..., inner, inner], x[..., inner, inner], atol=1e-6)


def test_harmonic_fill_is_harmonic_and_keeps_data():
    clean, problem = _problem("inpaint:random:0.7", "none", size=32)
    filled = harmonic_fill(problem.y, problem.operator, iterations=2000, tol=1e-12)
    mask = problem.operator(torch.ones_like(clean))
    assert torch.allclose(mask * filled, mask * clean, atol=1e-6)
    from learnreg.physics.gradient import FiniteDifference

    laplacian = FiniteDifference((1, 32, 32)).normal(filled)
    assert float(((1 - mask) * laplacian).abs().max()) < 1e-4


@pytest.mark.parametrize("spec,noise,gain", [
    ("identity", "gaussian:0.1", 5.0),
    ("blur:gaussian:1.6", "gaussian:0.01", 1.0),
    ("sr:2:bicubic", "gaussian:0.01", 0.0),
    ("inpaint:random:0.8", "none", 8.0),
])
def test_tv_improves_on_the_measurements(spec, noise, gain):
    clean, problem = _problem(spec, noise, size=64)
    result = restore(problem, "tv")
    assert result.status in {"converged", "max_iter"}
    baseline = problem.y if problem.y.shape == clean.shape else bicubic_upsample(problem.y, problem.operator)
    assert float(psnr(result.x.clamp(0, 1), clean)) > float(psnr(baseline.clamp(0, 1), clean)) + gain


def test_every_method_has_help_and_defaults():
    get_method("tv")
    for method in METHODS.values():
        assert method.summary
        for parameter in method.parameters.values():
            assert parameter.help
