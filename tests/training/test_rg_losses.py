"""Training objectives of regularizing gradients, checked on the quadratic pair where theory is exact.

For R(x) = c/2 ||x||^2: prox_{l^2 R}(z) = z / (1 + c l^2) and grad R(x) = c x, so the
link loss (eq. 7) vanishes and the FB and GD fixed points coincide (Theorem 1 with equality).
"""

import functools

import pytest
import torch
from torch import nn

from _operators import Dense
from learnreg.learned.deq import deq_fixed_point, fb_map, gd_map
from learnreg.training.rg_losses import (
    batch_mean,
    deqgd_loss,
    fb_loss,
    gd_loss,
    link_loss,
    pnpreg_loss,
    rerg_loss,
    rg1_link_loss,
    rg1_loss,
)

DTYPE = torch.float64
C = 30.0


def generator(seed):
    return torch.Generator().manual_seed(seed)


class QuadraticProx(nn.Module):
    """``P(z, l) = z / (1 + c l^2)``, the exact prox of ``l^2 c/2 ||x||^2``."""

    def __init__(self, c):
        super().__init__()
        self.c = nn.Parameter(torch.tensor(c, dtype=DTYPE))

    def forward(self, z, level):
        return z / (1 + self.c * level.view(-1, 1, 1, 1) ** 2)


class QuadraticGradient(nn.Module):
    """``G(x) = c x``, the gradient of ``c/2 ||x||^2``."""

    def __init__(self, c):
        super().__init__()
        self.c = nn.Parameter(torch.tensor(c, dtype=DTYPE))

    def forward(self, x):
        return self.c * x


def scalar(loss):
    return float(loss.detach())


def images(seed, batch=2, shape=(1, 5, 6)):
    return torch.rand(batch, *shape, generator=generator(seed), dtype=DTYPE)


SIGMA = torch.tensor([0.05, 0.2], dtype=DTYPE)


# -- link and pnpReG (eqs. 7, 8) ---------------------------------------------------------------


def test_link_loss_vanishes_for_a_prox_gradient_pair_and_not_otherwise():
    z = images(0)
    exact = link_loss(QuadraticGradient(C), QuadraticProx(C), z, SIGMA)
    assert scalar(exact) < 1e-28 * float(z.pow(2).sum())
    for c_g in (C * 1.01, C * 0.9, 0.0):
        assert scalar(link_loss(QuadraticGradient(c_g), QuadraticProx(C), z, SIGMA)) > 1e-10
    # Value: mean over the batch of per-sample squared norms.
    G, P = QuadraticGradient(2.0 * C), QuadraticProx(C)
    denoised = z / (1 + C * SIGMA.view(-1, 1, 1, 1) ** 2)
    residual = SIGMA.view(-1, 1, 1, 1) ** 2 * 2 * C * denoised - (z - denoised)
    assert torch.allclose(link_loss(G, P, z, SIGMA), residual.pow(2).sum((1, 2, 3)).mean())


def test_link_loss_trains_both_networks_towards_the_pair():
    G, P = QuadraticGradient(C * 1.5), QuadraticProx(C)
    link_loss(G, P, images(1), SIGMA).backward()
    assert float(G.c.grad) > 0  # G's c is too large: the gradient pushes it down
    assert float(P.c.grad) != 0


def test_pnpreg_loss_is_denoising_l1_plus_weighted_link():
    x_clean = images(2)
    z = x_clean + SIGMA.view(-1, 1, 1, 1) * torch.randn(x_clean.shape, generator=generator(3), dtype=DTYPE)
    G, P = QuadraticGradient(2 * C), QuadraticProx(C)
    l1 = (P(z, SIGMA) - x_clean).abs().sum((1, 2, 3)).mean()
    link = link_loss(G, P, z, SIGMA)
    loss = pnpreg_loss(G, P, x_clean, z, SIGMA, delta=1.0, lam=0.004)
    assert torch.allclose(loss, l1 + 0.004 * link)
    assert torch.allclose(pnpreg_loss(G, P, x_clean, z, SIGMA, delta=0.0, lam=0.004), 0.004 * link)
    assert torch.allclose(pnpreg_loss(QuadraticGradient(C), P, x_clean, z, SIGMA, delta=1.0, lam=0.004), l1)
    with pytest.raises(ValueError, match=">= 0"):
        pnpreg_loss(G, P, x_clean, z, SIGMA, delta=1.0, lam=-1.0)


# -- reconstruction losses and the keep mask -----------------------------------------------------


def test_fb_and_gd_losses_are_batch_means_of_squared_errors_and_keep_drops_samples():
    value, x_clean = images(4), images(5)
    per_sample = (value - x_clean).pow(2).sum((1, 2, 3))
    assert torch.allclose(fb_loss(value, x_clean), per_sample.mean())
    assert torch.allclose(gd_loss(value, x_clean), per_sample.mean())
    keep = torch.tensor([False, True])
    assert torch.allclose(gd_loss(value, x_clean, keep=keep), per_sample[1])
    value.requires_grad_(True)
    nothing = fb_loss(value, x_clean, keep=torch.tensor([False, False]))
    assert scalar(nothing) == 0.0 and nothing.requires_grad
    with pytest.raises(ValueError, match="keep"):
        batch_mean(per_sample, keep=torch.tensor([True]))


# -- RG1, DEQGD, RERG (eqs. 28-31) ---------------------------------------------------------------


@pytest.fixture
def problem():
    matrix = torch.randn(6, 8, generator=generator(6), dtype=DTYPE) / 3
    A = Dense(matrix)
    x_clean = torch.rand(2, 1, 1, 8, generator=generator(7), dtype=DTYPE)
    y = A(x_clean) + SIGMA.view(-1, 1, 1, 1) * torch.randn(2, 1, 1, 6, generator=generator(8), dtype=DTYPE)
    return A, y, x_clean


def fb_fixed_point(A, y, P, eta):
    step = functools.partial(fb_map, operator=A, y=y, sigma=SIGMA, denoiser=P, eta=eta)
    x_f, info = deq_fixed_point(step, torch.zeros(2, 1, 1, 8, dtype=DTYPE), tol=1e-30, max_iter=5000, anderson=4)
    assert info.converged.all()
    return x_f


def test_rg1_link_is_zero_for_the_pair_at_any_point_and_eq20_at_the_fb_fixed_point(problem):
    A, y, _ = problem
    eta = 0.49
    x = images(9, shape=(1, 1, 8))
    # The link at eta s^2 with P at sqrt(eta) s is consistent: zero for the pair, wherever it is evaluated.
    assert scalar(rg1_link_loss(QuadraticGradient(C), QuadraticProx(C), x, operator=A, y=y, sigma=SIGMA,
                                eta=eta)) < 1e-28
    # Eq. (20): at an FB fixed point, P(x~) = x_f, so the link is ||eta s^2 G(x_f) + eta D(x_f)||^2.
    G, P = QuadraticGradient(2 * C), QuadraticProx(C)
    x_f = fb_fixed_point(A, y, P, eta)
    D = A.adjoint(A(x_f) - y)
    expected = (eta * SIGMA.view(-1, 1, 1, 1) ** 2 * G(x_f) + eta * D).pow(2).sum((1, 2, 3)).mean()
    assert torch.allclose(rg1_link_loss(G, P, x_f, operator=A, y=y, sigma=SIGMA, eta=eta), expected, rtol=1e-8)


def test_rg1_is_link_plus_fb_reconstruction_by_jfb(problem):
    A, y, x_clean = problem
    eta = 0.49
    G, P = QuadraticGradient(2 * C), QuadraticProx(C)
    x_f = fb_fixed_point(A, y, P, eta)
    f_value = fb_map(x_f, operator=A, y=y, sigma=SIGMA, denoiser=P, eta=eta)
    link = rg1_link_loss(G, P, x_f, operator=A, y=y, sigma=SIGMA, eta=eta)
    loss = rg1_loss(G, P, x_f, x_clean, operator=A, y=y, sigma=SIGMA, eta=eta)
    assert torch.allclose(loss, 0.1 * link + fb_loss(f_value, x_clean))
    assert torch.allclose(f_value, x_f, atol=1e-12)  # f(x_f) = x_f at the fixed point
    loss.backward()
    assert float(G.c.grad) > 0 and float(P.c.grad) != 0  # G only through the link; P through both
    # With the matched pair the link is zero and G receives no gradient.
    G_exact, P_exact = QuadraticGradient(C), QuadraticProx(C)
    rg1_loss(G_exact, P_exact, x_f, x_clean, operator=A, y=y, sigma=SIGMA, eta=eta).backward()
    assert abs(float(G_exact.c.grad)) < 1e-12


def test_deqgd_and_rerg(problem):
    A, y, x_clean = problem
    eta_fb, eta_gd = 0.49, 0.05
    G, P = QuadraticGradient(2 * C), QuadraticProx(C)
    step = functools.partial(gd_map, operator=A, y=y, sigma=SIGMA, gradient_net=G, eta=eta_gd)
    x_g, info = deq_fixed_point(step, torch.zeros(2, 1, 1, 8, dtype=DTYPE), anderson=4, tol=1e-30, max_iter=5000)
    assert info.converged.all()
    expected_gd = gd_loss(step(x_g), x_clean)
    gd = deqgd_loss(G, x_g, x_clean, operator=A, y=y, sigma=SIGMA, eta=eta_gd)
    assert torch.allclose(gd, expected_gd)
    assert torch.allclose(gd, (x_g - x_clean).pow(2).sum((1, 2, 3)).mean(), rtol=1e-8)
    x_f = fb_fixed_point(A, y, P, eta_fb)
    rg1 = rg1_loss(G, P, x_f, x_clean, operator=A, y=y, sigma=SIGMA, eta=eta_fb)
    rerg = rerg_loss(G, P, x_f, x_g, x_clean, operator=A, y=y, sigma=SIGMA, eta_fb=eta_fb, eta_gd=eta_gd)
    assert torch.allclose(rerg, rg1 + 0.1 * gd)
    keep = torch.tensor([True, False])
    kept = rerg_loss(G, P, x_f, x_g, x_clean, operator=A, y=y, sigma=SIGMA, eta_fb=eta_fb, eta_gd=eta_gd, keep=keep)
    first = rerg_loss(G, P, x_f[:1], x_g[:1], x_clean[:1], operator=A, y=y[:1], sigma=SIGMA[:1], eta_fb=eta_fb,
                      eta_gd=eta_gd)
    assert torch.allclose(kept, first)


def test_quadratic_pair_gives_the_same_fb_and_gd_fixed_points(problem):
    """Theorem 1 with equality: link 0 at x~ means x_f is a fixed point of the GD map."""
    A, y, _ = problem
    x_f = fb_fixed_point(A, y, QuadraticProx(C), 0.49)
    gd_step = gd_map(x_f, operator=A, y=y, sigma=SIGMA, gradient_net=QuadraticGradient(C), eta=0.05)
    assert torch.allclose(gd_step, x_f, atol=1e-12)
