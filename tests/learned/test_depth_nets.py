"""The NETT U-Net and the guided U-MSG-Net: shapes, homogeneity, guide handling, sizes."""

import pytest
import torch

from learnreg.learned.nets import NETTUNet, NETTUNetConfig, UMSGNet, UMSGNetConfig
from learnreg.learned.nets.msgnet import gaussian_lowpass, luminance


def _count(net):
    return sum(p.numel() for p in net.parameters())


def test_default_sizes_fit_a_cpu():
    assert 0.1e6 < _count(NETTUNet(NETTUNetConfig())) < 0.15e6
    assert 0.1e6 < _count(UMSGNet(UMSGNetConfig())) < 0.2e6


@pytest.mark.parametrize("shape", [(2, 1, 16, 16), (1, 1, 17, 23), (1, 1, 9, 30)])
def test_any_size(shape):
    torch.manual_seed(0)
    x = torch.rand(shape)
    assert NETTUNet(NETTUNetConfig(widths=(4, 8, 16)))(x).shape == x.shape
    guide = torch.rand(shape[0], 3, *shape[2:])
    assert UMSGNet(UMSGNetConfig(width=4))(x, guide).shape == x.shape


def test_unet_is_positively_homogeneous_without_bias():
    torch.manual_seed(0)
    net = NETTUNet(NETTUNetConfig(widths=(4, 8, 16))).double()
    x = torch.rand(2, 1, 16, 20, dtype=torch.float64)
    for t in (0.3, 2.0, 7.5):
        assert torch.allclose(net(t * x), t * net(x), atol=1e-12)
    torch.manual_seed(1)
    plain = NETTUNet(NETTUNetConfig(widths=(4, 8))).double()
    residual = NETTUNet(NETTUNetConfig(widths=(4, 8), residual=True)).double()
    residual.load_state_dict(plain.state_dict())
    assert torch.allclose(residual(x), x + plain(x), atol=1e-12)
    with pytest.raises(ValueError, match="negative_slope"):
        NETTUNetConfig(negative_slope=0.0)


def test_msgnet_skip_and_high_pass():
    torch.manual_seed(0)
    net = UMSGNet(UMSGNetConfig(width=4))
    torch.nn.init.zeros_(net.head.weight)
    x, guide = torch.rand(1, 1, 16, 16), torch.rand(1, 3, 16, 16)
    assert torch.equal(net(x, guide), x)  # input-output skip: a zero head is the identity
    constant = torch.full((1, 1, 12, 12), 0.7)
    assert torch.allclose(gaussian_lowpass(constant, 2.0), constant, atol=1e-6)
    depth_high, _ = net.high_pass(constant, guide[..., :12, :12])
    assert depth_high.abs().max() < 1e-6
    assert torch.allclose(luminance(torch.ones(1, 3, 2, 2)), torch.ones(1, 1, 2, 2))
    with pytest.raises(ValueError, match="does not match depth"):
        net(x, torch.rand(1, 3, 8, 8))
    with pytest.raises(ValueError, match="expects 3"):
        net(x, torch.rand(1, 1, 16, 16))
