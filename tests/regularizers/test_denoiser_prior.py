"""DenoiserPrior: the prox/sigma mapping, colour modes, RED gradient and evaluation counting."""

import math

import pytest
import torch
import torch.nn.functional as F

from learnreg.regularizers.base import CapabilityError
from learnreg.regularizers.denoiser import DenoiserPrior, dihedral, from_opponent, opponent_matrix, to_opponent


def _quadratic(c: float):
    """The exact prox of c/2 ||x||^2 at tau = sigma^2: D(v, sigma) = v / (1 + c sigma^2)."""

    def denoise(x, sigma):
        s = sigma.view(-1, 1, 1, 1) if isinstance(sigma, torch.Tensor) else sigma
        return x / (1 + c * s**2)

    return denoise


def _box_blur(x, sigma):
    """A linear, sigma-independent, mean-preserving spatial filter (circular 3x3 box), any channel count."""
    channels = x.shape[1]
    kernel = torch.full((channels, 1, 3, 3), 1 / 9, dtype=x.dtype)
    return F.conv2d(F.pad(x, (1, 1, 1, 1), mode="circular"), kernel, groups=channels)


class Recorder:
    """A denoiser that records what it is called with and returns its input."""

    def __init__(self):
        self.calls = []

    def __call__(self, x, sigma):
        self.calls.append((x.clone(), sigma.clone() if isinstance(sigma, torch.Tensor) else sigma))
        return x


def _rgb(seed=0, shape=(2, 3, 9, 11)):
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_opponent_transform_is_orthonormal_and_invertible():
    matrix = opponent_matrix(dtype=torch.float64)
    assert torch.allclose(matrix @ matrix.T, torch.eye(3, dtype=torch.float64), atol=1e-15)
    assert torch.allclose(matrix[0], torch.full((3,), 1 / math.sqrt(3), dtype=torch.float64))
    x = _rgb()
    assert torch.allclose(from_opponent(to_opponent(x)), x, atol=1e-14)
    assert torch.allclose(to_opponent(x).pow(2).sum(), x.pow(2).sum())  # norms preserved


def test_white_noise_stays_white_with_the_same_sigma():
    sigma = 0.1
    noise = sigma * torch.randn(1, 3, 200, 200, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    channels = to_opponent(noise).reshape(3, -1)
    covariance = channels @ channels.T / channels.shape[1]
    assert torch.allclose(covariance, sigma**2 * torch.eye(3, dtype=torch.float64), atol=0.03 * sigma**2)


def test_prox_is_the_denoiser_at_sigma_sqrt_tau():
    recorder = Recorder()
    prior = DenoiserPrior(recorder)
    v = _rgb()
    prior.prox(v, 0.04)
    assert recorder.calls[-1][1] == pytest.approx(0.2)
    prior.prox(v, torch.tensor([0.04, 0.09], dtype=torch.float64))  # per-sample tau
    assert torch.allclose(recorder.calls[-1][1], torch.tensor([0.2, 0.3], dtype=torch.float64))
    (5.0 * prior).prox(v, 0.002)  # a weight w maps to sigma = sqrt(w tau)
    assert recorder.calls[-1][1] == pytest.approx(0.1)
    assert prior.has_prox and not prior.prox_is_exact and "approximate" in prior.name


def test_quadratic_denoiser_is_the_exact_prox_of_its_penalty():
    # prox_{tau c/2 ||.||^2}(v) = v / (1 + tau c): its optimality condition tau c x + x - v = 0 holds.
    c, tau = 7.0, 0.03
    v = _rgb()
    x = DenoiserPrior(_quadratic(c)).prox(v, tau)
    assert torch.allclose(tau * c * x + x - v, torch.zeros_like(v), atol=1e-14)


def test_per_channel_opponent_and_native_agree_for_a_linear_filter():
    # A sigma-independent, mean-preserving spatial filter commutes with the colour rotation and the
    # affine range maps, so the three colour modes must give the same result.
    x = _rgb()
    native = DenoiserPrior(_box_blur, color="native").prox(x, 0.01)
    per_channel = DenoiserPrior(_box_blur, color="per_channel").prox(x, 0.01)
    opponent = DenoiserPrior(_box_blur, color="opponent").prox(x, 0.01)
    assert torch.allclose(per_channel, native, atol=1e-14)
    assert torch.allclose(opponent, native, atol=1e-14)


def test_opponent_batches_channels_and_matches_sigma_per_channel():
    recorder = Recorder()
    x = _rgb()
    DenoiserPrior(recorder, color="opponent").prox(x, 0.01)
    assert len(recorder.calls) == 1  # one batched call for the three channels
    gray, sigma = recorder.calls[0]
    assert gray.shape == (6, 1, 9, 11)
    luminance, chroma = gray.view(2, 3, 9, 11)[:, 0], gray.view(2, 3, 9, 11)[:, 1:]
    assert torch.allclose(luminance, x.mean(1))  # (R + G + B) / sqrt(3), rescaled to [0, 1]
    assert float(chroma.min()) >= 0.5 - 2 / math.sqrt(6) and float(chroma.max()) <= 0.5 + 2 / math.sqrt(6)
    expected = torch.tensor([1 / math.sqrt(3), 1.0, 1.0], dtype=torch.float64) * 0.1
    assert torch.allclose(sigma, expected.repeat(2))


def test_per_channel_runs_each_channel_as_gray():
    recorder = Recorder()
    x = _rgb(shape=(2, 4, 5, 6))
    out = DenoiserPrior(recorder, color="per_channel").prox(x, torch.tensor([0.01, 0.04], dtype=torch.float64))
    gray, sigma = recorder.calls[0]
    assert gray.shape == (8, 1, 5, 6)
    assert torch.allclose(sigma, torch.tensor([0.1] * 4 + [0.2] * 4, dtype=torch.float64))
    assert torch.equal(out, x)


def test_scale_presents_unit_range_images_to_the_denoiser():
    recorder = Recorder()
    prior = DenoiserPrior(recorder, scale=10.0)
    out = prior.denoise(10.0 * _rgb(), 0.5)
    assert torch.allclose(recorder.calls[0][0], _rgb()) and recorder.calls[0][1] == pytest.approx(0.05)
    assert torch.allclose(out, 10.0 * _rgb())
    quadratic = _quadratic(3.0)
    scaled = DenoiserPrior(quadratic, scale=4.0, color="opponent").denoise(4.0 * _rgb(), 0.4)
    assert torch.allclose(scaled, 4.0 * DenoiserPrior(quadratic, color="opponent").denoise(_rgb(), 0.1))


def test_evaluations_count_denoiser_calls():
    recorder = Recorder()
    prior = DenoiserPrior(recorder, color="opponent", red_sigma=0.05)
    x = _rgb()
    prior.prox(x, 0.01)
    prior.grad(x)
    (2.0 * prior).prox(x, 0.01)
    prior.denoise(x, 0.1)
    assert prior.evaluations == 4 == len(recorder.calls)


def test_geometric_self_ensemble_turns_call_k_by_the_k_mod_8_th_symmetry():
    def shift(v, sigma):  # not rotation-equivariant: moves content one pixel right
        return torch.roll(v, 1, dims=-1) * (1 - sigma)

    x = torch.rand(1, 1, 6, 6, dtype=torch.float64)
    plain, turned = DenoiserPrior(shift), DenoiserPrior(shift, self_ensemble=True)
    for k in range(10):
        expected = dihedral(shift(dihedral(x, k % 8), 0.1), k % 8, inverse=True)
        assert torch.allclose(turned.prox(x, 0.01), expected)
        assert torch.allclose(plain.prox(x, 0.01), shift(x, 0.1))
    assert turned.evaluations == plain.evaluations == 10
    # an equivariant (pointwise) denoiser is unchanged, in every colour mode, on non-square images
    for color in ("native", "opponent", "per_channel"):
        rgb = torch.rand(2, 3, 5, 7)
        def pointwise(v, s):
            return v / (1 + (s.view(-1, 1, 1, 1) if isinstance(s, torch.Tensor) else s))

        shrink = DenoiserPrior(pointwise, color=color, self_ensemble=True)
        reference = DenoiserPrior(pointwise, color=color)
        for _ in range(8):
            assert torch.allclose(shrink.denoise(rgb, 0.2), reference.denoise(rgb, 0.2), atol=1e-6)


def test_ensemble_averages_each_call_over_the_first_k_symmetries_and_counts_k_evaluations():
    def shift(v, sigma):  # not rotation-equivariant
        return torch.roll(v, 1, dims=-1) * (1 - sigma)

    x = torch.rand(1, 1, 6, 6, dtype=torch.float64)
    for k in (2, 4, 8):
        prior = DenoiserPrior(shift, ensemble=k)
        expected = sum(dihedral(shift(dihedral(x, t), 0.1), t, inverse=True) for t in range(k)) / k
        assert torch.allclose(prior.prox(x, 0.01), expected) and prior.evaluations == k
        assert not torch.allclose(expected, shift(x, 0.1))
    # with the periodic self-ensemble the transforms run on with the evaluation count
    turning = DenoiserPrior(shift, ensemble=2, self_ensemble=True)
    for call in range(5):
        turns = [(2 * call + j) % 8 for j in range(2)]
        expected = sum(dihedral(shift(dihedral(x, t), 0.1), t, inverse=True) for t in turns) / 2
        assert torch.allclose(turning.denoise(x, 0.1), expected)
    assert turning.evaluations == 10
    for bad in (0, 3, 16):
        with pytest.raises(ValueError, match="ensemble must be one of 1, 2, 4, 8"):
            DenoiserPrior(shift, ensemble=bad)


def test_red_gradient_is_x_minus_denoised():
    c = 5.0
    prior = DenoiserPrior(_quadratic(c), red_sigma=0.2)
    x = _rgb()
    assert prior.has_grad
    assert torch.allclose(prior.grad(x), x - x / (1 + c * 0.04))
    assert torch.allclose((3.0 * prior).grad(x), 3.0 * (x - x / (1 + c * 0.04)))


def test_missing_red_sigma_raises_a_capability_error():
    prior = DenoiserPrior(_quadratic(1.0))
    assert not prior.has_grad and not prior.has_value
    with pytest.raises(CapabilityError, match="red_sigma"):
        prior.grad(_rgb())
    with pytest.raises(CapabilityError):
        prior.value(_rgb())


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="unknown color mode 'lab'; valid: native, opponent, per_channel"):
        DenoiserPrior(_quadratic(1.0), color="lab")
    with pytest.raises(TypeError, match="callable"):
        DenoiserPrior("drunet")
    with pytest.raises(ValueError, match="red_sigma"):
        DenoiserPrior(_quadratic(1.0), red_sigma=0.0)
    with pytest.raises(ValueError, match="per_channel"):
        DenoiserPrior(_quadratic(1.0), color="opponent").prox(torch.rand(1, 1, 4, 4), 0.01)
