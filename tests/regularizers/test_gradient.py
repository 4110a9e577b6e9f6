"""RegularizingGradient: grad is the network's output (weighted), and nothing else is offered."""

import pytest
import torch

from learnreg.learned.nets import DRUNet, DRUNetConfig
from learnreg.regularizers import CapabilityError, RegularizingGradient


def tiny_gradient_net():
    return DRUNet(DRUNetConfig(channels=1, widths=(4, 8), blocks=1, noise_map=False)).double()


def test_grad_is_the_network_output_and_value_prox_raise():
    net = tiny_gradient_net().train()
    R = RegularizingGradient(net)
    assert not net.training  # put in evaluation mode
    assert R.has_grad and not R.has_value and not R.has_prox
    x = torch.rand(2, 1, 12, 10, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    assert torch.equal(R.grad(x), net(x))
    with pytest.raises(CapabilityError):
        R.value(x)
    with pytest.raises(CapabilityError):
        R.prox(x, 0.1)
    assert "no value" in R.name and "gradient" in R.name


def test_weights_scalar_and_per_sample():
    x = torch.ones(3, 1, 2, 2)
    assert torch.equal(RegularizingGradient(lambda v: 2 * v, weight=0.5).grad(x), x)
    weight = torch.tensor([1.0, 0.0, 2.0])
    grad = RegularizingGradient(lambda v: v, weight=weight).grad(x)
    assert grad.flatten(1)[:, 0].tolist() == [1.0, 0.0, 2.0]
    assert torch.equal((0.5 * RegularizingGradient(lambda v: v)).grad(x), 0.5 * x)  # scalar algebra still works
    with pytest.raises(ValueError, match="batch of 2"):
        RegularizingGradient(lambda v: v, weight=weight).grad(torch.ones(2, 1, 2, 2))
    with pytest.raises(ValueError, match=">= 0"):
        RegularizingGradient(lambda v: v, weight=-1.0)
    with pytest.raises(ValueError, match="same shape"):
        RegularizingGradient(lambda v: v[..., :1]).grad(x)


def test_gradient_solvers_accept_it_and_need_a_step():
    from learnreg.physics.simple import Identity
    from learnreg.regularizers import L2Data
    from learnreg.solvers import GradientDescent

    y = torch.full((1, 1, 3, 3), 0.6, dtype=torch.float64)
    data, prior = L2Data(Identity((1, 3, 3)), y), RegularizingGradient(lambda v: 2.0 * v)
    with pytest.raises(ValueError, match="pass step="):
        GradientDescent(data, prior)
    x, _ = GradientDescent(data, prior, step=0.3).run(torch.zeros_like(y))
    assert torch.allclose(x, y / 3.0, atol=1e-5)  # argmin 1/2||x - y||^2 + ||x||^2
