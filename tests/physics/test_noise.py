"""Noise models: statistics, reproducibility through the explicit generator, specs, errors."""

import math

import pytest
import torch

from learnreg.physics import GaussianNoise, NoNoise, PoissonGaussianNoise, PoissonNoise, parse_noise


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_gaussian_statistics():
    y = torch.full((2, 1, 128, 128), 0.4, dtype=torch.float64)
    noisy = GaussianNoise(0.05)(y, _generator(0))
    residual = noisy - y
    # 32768 samples: std of the mean ~ 3e-4, of the std ~ 2e-4
    assert abs(float(residual.mean())) < 1.5e-3
    assert float(residual.std()) == pytest.approx(0.05, rel=0.02)
    assert noisy.dtype == torch.float64


@pytest.mark.parametrize("level", [0.1, 0.7])
def test_poisson_statistics(level):
    peak = 40.0
    y = torch.full((1, 1, 128, 128), level)
    noisy = PoissonNoise(peak)(y, _generator(1))
    assert noisy.dtype == torch.float32
    assert float(noisy.mean()) == pytest.approx(level, rel=0.02)
    assert float(noisy.var()) == pytest.approx(level / peak, rel=0.05)
    # values are counts / peak
    counts = noisy * peak
    assert torch.allclose(counts, counts.round(), atol=1e-4)


def test_poisson_gaussian_statistics_and_sigma_equivalent():
    noise = PoissonGaussianNoise(100.0, 0.02)
    y = torch.full((1, 1, 128, 128), 0.5, dtype=torch.float64)
    noisy = noise(y, _generator(2))
    assert float(noisy.mean()) == pytest.approx(0.5, abs=2e-3)
    assert float(noisy.std()) == pytest.approx(math.sqrt(0.5 / 100 + 0.02**2), rel=0.03)
    assert noise.sigma_equivalent == pytest.approx(math.sqrt(0.5 / 100 + 0.02**2))
    assert noise.sigma_at(0.0) == pytest.approx(0.02)


def test_sigma_equivalents():
    assert NoNoise().sigma_equivalent == 0.0
    assert GaussianNoise(0.1).sigma_equivalent == 0.1
    assert PoissonNoise(255).sigma_equivalent == pytest.approx(math.sqrt(0.5 / 255))
    assert PoissonNoise(255).sigma_at(1.0) == pytest.approx(math.sqrt(1 / 255))


@pytest.mark.parametrize("noise", [GaussianNoise(0.1), PoissonNoise(30), PoissonGaussianNoise(30, 0.05)])
def test_reproducible_only_through_the_generator(noise):
    y = torch.rand(2, 3, 8, 9, generator=_generator(3))
    state = torch.get_rng_state()
    first, second = noise(y, _generator(5)), noise(y, _generator(5))
    assert torch.equal(first, second)
    assert not torch.equal(first, noise(y, _generator(6)))
    assert torch.equal(state, torch.get_rng_state())  # the global generator is untouched
    with pytest.raises(TypeError, match="torch.Generator"):
        noise(y, 5)


def test_no_noise_and_negative_intensities():
    y = torch.rand(1, 1, 4, 4, generator=_generator(0))
    assert torch.equal(NoNoise()(y, _generator(0)), y)
    assert bool((PoissonNoise(10)(-y, _generator(0)) == 0).all())  # clipped to 0 before sampling


@pytest.mark.parametrize("noise", [NoNoise(), GaussianNoise(25 / 255), PoissonNoise(255),
                                   PoissonGaussianNoise(12.5, 0.01)])
def test_spec_round_trip(noise):
    assert parse_noise(noise.spec) == noise
    assert parse_noise(noise.spec).sigma_equivalent == noise.sigma_equivalent


def test_invalid_parameters_name_the_fix():
    with pytest.raises(ValueError, match=r"\[0, 1\] scale, got 25; for 8-bit levels pass 25/255"):
        GaussianNoise(25)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        GaussianNoise(-0.1)
    with pytest.raises(ValueError, match="peak"):
        PoissonNoise(0)
    with pytest.raises(ValueError, match="peak"):
        PoissonGaussianNoise(float("nan"), 0.1)
