"""bfloat16 network calls: the rounded input, float32 outputs, and quality against float32."""

import pytest
import torch

from learnreg.hub import load
from learnreg.learned.precision import PRECISIONS, ReducedPrecision, reduced_precision
from learnreg.metrics import psnr


def test_float32_returns_the_network_itself():
    network = torch.nn.Identity()
    assert reduced_precision(network, "float32") is network
    assert isinstance(reduced_precision(network, "bfloat16"), ReducedPrecision)


def test_unknown_precision_names_the_valid_ones():
    with pytest.raises(ValueError, match="unknown precision 'fp8'; valid: float32, bfloat16"):
        reduced_precision(lambda x, s: x, "fp8")
    with pytest.raises(TypeError, match="callable"):
        reduced_precision("drunet", "bfloat16")
    assert PRECISIONS == ("float32", "bfloat16")


def test_network_sees_the_bfloat16_rounded_input_and_output_keeps_the_dtype():
    seen = {}

    def identity(x, sigma):  # a global-residual network with h = 0
        seen["x"] = x
        return x

    x = torch.rand(2, 1, 9, 7, dtype=torch.float64)
    out = ReducedPrecision(identity)(x, 0.1)
    assert out.dtype == torch.float64
    rounded = x.to(torch.bfloat16).to(torch.float64)
    assert torch.equal(seen["x"], rounded)
    assert torch.equal(out, rounded)  # the residual path adds the rounded image, not the exact one
    assert (out - x).abs().max() <= 2.0**-8  # bfloat16 keeps 8 significant bits; x < 1


def test_convolutions_run_in_bfloat16():
    conv = torch.nn.Conv2d(1, 1, 3, padding=1, bias=False)
    dtypes = []
    conv.register_forward_hook(lambda module, inputs, output: dtypes.append(output.dtype))
    out = ReducedPrecision(lambda x, s: conv(x))(torch.rand(1, 1, 8, 8), 0.1)
    assert dtypes == [torch.bfloat16] and out.dtype == torch.float32


def test_a_device_without_native_bfloat16_is_warned_once(monkeypatch, caplog):
    import learnreg.learned.precision as precision

    monkeypatch.setattr(precision, "bfloat16_fast", lambda device_type="cpu": False)
    wrapped = ReducedPrecision(lambda x, s: x)
    with caplog.at_level("WARNING", logger="learnreg.learned.precision"):
        wrapped(torch.rand(1, 1, 4, 4), 0.1)
        wrapped(torch.rand(1, 1, 4, 4), 0.1)
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and "emulated and slower than float32; use precision=float32" in warnings[0]


def test_bfloat16_fast_answers_for_any_device():
    from learnreg.learned.precision import bfloat16_fast

    assert isinstance(bfloat16_fast("cpu"), bool) and bfloat16_fast("meta") is False


def test_gradients_pass_through():
    x = torch.rand(1, 1, 8, 8, requires_grad=True)
    ReducedPrecision(lambda v, s: 2.0 * v)(x, 0.1).sum().backward()
    assert torch.allclose(x.grad, torch.full_like(x, 2.0))


def test_shipped_denoiser_in_bfloat16_is_within_0_05_db_of_float32():
    torch.manual_seed(0)
    network = load("drunet-gray").eval()
    clean = torch.rand(1, 1, 8, 8).repeat_interleave(12, -1).repeat_interleave(12, -2)  # piecewise constant, 96x96
    noisy = clean + 15 / 255 * torch.randn_like(clean)
    with torch.no_grad():
        exact = psnr(network(noisy, 15 / 255).clamp(0, 1), clean)
        reduced = psnr(ReducedPrecision(network)(noisy, 15 / 255).clamp(0, 1), clean)
    assert abs(float(reduced) - float(exact)) < 0.05
