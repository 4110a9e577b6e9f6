"""NETT regularizers: value, autograd gradient, coercivity, guide handling."""

import pytest
import torch

from learnreg.learned.nets import NETTUNet, NETTUNetConfig, UMSGNet, UMSGNetConfig
from learnreg.regularizers import NETT


def _unet(residual=False):
    torch.manual_seed(0)
    return NETTUNet(NETTUNetConfig(widths=(4, 8), residual=residual)).double()


def test_value_forms_and_grad_match_autograd():
    net = _unet()
    x = torch.rand(2, 1, 12, 10, dtype=torch.float64)
    residual = NETT(net, scheme="residual")
    identity = NETT(net, scheme="identity", coercive=0.5)
    assert torch.allclose(residual.value(x), net(x).flatten(1).pow(2).sum(1))
    expected = (net(x) - x).flatten(1).pow(2).sum(1) + 0.5 * x.flatten(1).pow(2).sum(1)
    assert torch.allclose(identity.value(x), expected)
    for regularizer in (residual, identity):
        leaf = x.clone().requires_grad_(True)
        (reference,) = torch.autograd.grad(regularizer.value(leaf).sum(), leaf)
        with torch.no_grad():
            assert torch.allclose(regularizer.grad(x), reference, atol=1e-12)


def test_grad_is_differentiable_inside_a_graph():
    R = NETT(_unet(), scheme="residual")
    x = torch.rand(1, 1, 8, 8, dtype=torch.float64, requires_grad=True)
    second = torch.autograd.grad(R.grad(x).sum(), x)[0]
    assert second.shape == x.shape and torch.isfinite(second).all()


@pytest.mark.parametrize("scheme,coercive", [("residual", 0.0), ("identity", 0.1)])
def test_coercive_along_random_directions(scheme, coercive):
    """R grows without bound as ||x|| grows along random directions."""
    R = NETT(_unet(), scheme=scheme, coercive=coercive)
    generator = torch.Generator().manual_seed(3)
    for _ in range(5):
        direction = torch.randn(1, 1, 12, 12, generator=generator, dtype=torch.float64)
        with torch.no_grad():
            values = [float(R.value(t * direction)) for t in (1.0, 2.0, 4.0, 8.0, 16.0)]
        assert all(b > a for a, b in zip(values, values[1:]))
        assert values[-1] > 100 * values[0]


def test_guided_network_and_errors():
    torch.manual_seed(0)
    net = UMSGNet(UMSGNetConfig(width=4))
    guide = torch.rand(1, 3, 8, 8)
    R = NETT(net, scheme="identity", guide=guide)
    x = torch.rand(3, 1, 8, 8)
    assert R.value(x).shape == (3,)  # one guide broadcast over a batch
    assert R.grad(x).shape == x.shape
    assert not net.training
    with pytest.raises(ValueError, match="guided network; pass guide="):
        NETT(net)
    with pytest.raises(ValueError, match="takes no guide"):
        NETT(_unet(), guide=guide)
    with pytest.raises(ValueError, match="unknown NETT scheme 'both'"):
        NETT(_unet(), scheme="both")
