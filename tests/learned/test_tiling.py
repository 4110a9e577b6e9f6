"""Tiled denoising: exact below the threshold, seam-free blending above it, any size and batch."""

import pytest
import torch
import torch.nn.functional as F

from learnreg.learned.nets import DRUNet, DRUNetConfig
from learnreg.learned.tiling import tile_starts, tile_window, tiled
from learnreg.metrics import psnr


pytestmark = pytest.mark.usefixtures("one_thread")


def _tiny_drunet(channels=1, seed=0):
    torch.manual_seed(seed)  # nn.Module initialisation draws from the global generator; tests only
    return DRUNet(DRUNetConfig.preset("tiny", channels=channels)).eval()


def _image(shape, seed=0):
    """A smooth-ish test image in [0, 1]: blurred uniform noise."""
    x = torch.rand(shape, generator=torch.Generator().manual_seed(seed))
    kernel = torch.full((shape[1], 1, 5, 5), 1 / 25)
    return F.conv2d(F.pad(x, (2, 2, 2, 2), mode="circular"), kernel, groups=shape[1])


def test_tile_layout_covers_every_size():
    for length in (1, 50, 128, 129, 300, 421):
        starts = tile_starts(length, 128, 32)
        size = min(128, length)
        covered = torch.zeros(length, dtype=torch.bool)
        for start in starts:
            covered[start:start + size] = True
        assert bool(covered.all()) and starts[-1] + size == length
        assert all(b - a <= 128 - 32 for a, b in zip(starts, starts[1:]))  # overlaps >= 32
    window = tile_window(128, 32, first=False, last=False, dtype=torch.float64)
    assert bool((window > 0).all()) and window[32:96].eq(1).all()
    assert torch.allclose(window[:32] + window[-32:], torch.ones(32, dtype=torch.float64))  # partition of unity


@pytest.mark.parametrize("shape", [(2, 3, 100, 151), (1, 1, 37, 300), (3, 2, 130, 129)])
def test_identity_network_is_reproduced_exactly(shape):
    # The blending weights are normalised, so an identity "network" must come back bit for bit (up to rounding).
    x = torch.rand(shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    out = tiled(lambda v, sigma: v, tile=64, overlap=16, threshold=0)(x, 0.1)
    assert torch.allclose(out, x, atol=1e-14)


def test_whole_image_below_the_threshold_is_exact():
    network = _tiny_drunet()
    x = _image((2, 1, 60, 70))
    with torch.no_grad():
        expected = network(x, 0.1)
        assert torch.equal(tiled(network, tile=32, overlap=8, threshold=60 * 70)(x, 0.1), expected)
        assert torch.equal(tiled(network)(x, 0.1), expected)  # default threshold 512 x 512


def test_tiles_match_the_whole_image_within_0_05_db():
    network = _tiny_drunet()
    clean = _image((1, 1, 300, 420))
    noisy = clean + 0.1 * torch.randn(clean.shape, generator=torch.Generator().manual_seed(2))

    def trained_like(x, sigma):  # a random DRUNet as a small residual correction: output near the input
        return x - 0.05 * network(x, sigma)

    with torch.no_grad():
        whole = trained_like(noisy, 0.1)
        pieces = tiled(trained_like, tile=128, overlap=32, threshold=0)(noisy, 0.1)
    assert abs(float(psnr(pieces, clean)) - float(psnr(whole, clean))) < 0.05
    assert float(psnr(pieces, whole)) > 50


def test_local_filter_has_no_seams():
    # A filter whose support (5 x 5) is far inside the overlap: tiles equal the whole image nearly everywhere.
    def smooth(x, sigma):
        kernel = torch.full((x.shape[1], 1, 5, 5), 1 / 25, dtype=x.dtype)
        return F.conv2d(F.pad(x, (2, 2, 2, 2), mode="replicate"), kernel, groups=x.shape[1])

    x = _image((2, 3, 150, 210)).double()
    whole = smooth(x, 0.0)
    pieces = tiled(smooth, tile=64, overlap=16, threshold=0)(x, 0.0)
    assert float((pieces - whole).abs().max()) < 1e-3


def test_batches_per_sample_sigma_and_noise_maps():
    def scale_by_sigma(x, sigma):  # output depends on sigma, per sample or per pixel
        return x * (sigma.view(-1, 1, 1, 1) if sigma.dim() == 1 else sigma)

    x = torch.rand(2, 1, 90, 100, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    sigma = torch.tensor([0.5, 2.0], dtype=torch.float64)
    out = tiled(scale_by_sigma, tile=40, overlap=8, threshold=0)(x, sigma)
    assert torch.allclose(out, x * sigma.view(-1, 1, 1, 1))
    noise_map = torch.rand(2, 1, 90, 100, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    assert torch.allclose(tiled(scale_by_sigma, tile=40, overlap=8, threshold=0)(x, noise_map), x * noise_map)


def test_inference_output_is_an_ordinary_tensor_and_gradients_flow_when_enabled():
    network = _tiny_drunet()
    wrapped = tiled(network, tile=32, overlap=8, threshold=0)
    x = _image((1, 1, 50, 60))
    with torch.no_grad():
        out = wrapped(x, 0.1)
    assert not out.is_inference()
    out.requires_grad_(True)  # would raise for an inference tensor
    x.requires_grad_(True)
    wrapped(x, 0.1).sum().backward()
    assert x.grad is not None and bool(torch.isfinite(x.grad).all())


def test_bad_layouts_are_refused():
    with pytest.raises(ValueError, match="overlap < tile / 2"):
        tiled(lambda x, s: x, tile=64, overlap=32)
    with pytest.raises(TypeError, match="callable"):
        tiled("drunet")
