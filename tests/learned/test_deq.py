"""DEQ machinery: the GD and FB maps (eqs. 12, 14), the per-sample forward solve, JFB."""

import functools

import pytest
import torch

from _operators import Dense
from learnreg.learned.deq import DEQStats, deq_fixed_point, fb_map, floored_sigma, gd_map, jfb_step
from learnreg.learned.nets import DRUNet, DRUNetConfig
from learnreg.physics.simple import Identity

DTYPE = torch.float64


def generator(seed):
    return torch.Generator().manual_seed(seed)


# -- the maps -----------------------------------------------------------------------------------


def test_gd_map_with_zero_gradient_is_a_data_gradient_step():
    matrix = torch.randn(5, 7, generator=generator(0), dtype=DTYPE)
    A = Dense(matrix)
    x = torch.randn(2, 1, 1, 7, generator=generator(1), dtype=DTYPE)
    y = torch.randn(2, 1, 1, 5, generator=generator(2), dtype=DTYPE)
    step = gd_map(x, operator=A, y=y, sigma=torch.tensor([0.0, 0.2]), gradient_net=torch.zeros_like, eta=0.05)
    expected = x - 0.05 * ((x.flatten(1) @ matrix.T - y.flatten(1)) @ matrix).view_as(x)
    assert torch.allclose(step, expected, rtol=0, atol=1e-14)


@pytest.mark.parametrize("anderson", [0, 3])
def test_gd_fixed_point_of_a_quadratic_regularizer_is_the_closed_form(anderson):
    # R = c/2 ||x||^2, G = c x, A = I: argmin 1/2||x - y||^2 + s^2 c/2 ||x||^2 = y / (1 + s^2 c).
    c, floor = 40.0, 0.05
    y = torch.rand(3, 2, 5, 4, generator=generator(3), dtype=DTYPE)
    sigma = torch.tensor([0.0, 0.1, 0.3], dtype=DTYPE)  # the first is noise-free: the floor applies
    step = functools.partial(gd_map, operator=Identity((2, 5, 4)), y=y, sigma=sigma,
                             gradient_net=lambda x: c * x, eta=0.2, sigma_floor=floor)
    x_star, info = deq_fixed_point(step, torch.zeros_like(y), anderson=anderson, tol=1e-28, max_iter=2000)
    s = torch.tensor([floor, 0.1, 0.3], dtype=DTYPE).view(-1, 1, 1, 1)
    assert info.status == ("converged",) * 3
    assert torch.allclose(x_star, y / (1 + s**2 * c), rtol=1e-10, atol=1e-12)


def test_fb_map_runs_the_denoiser_at_sqrt_eta_sigma_and_shares_the_gd_fixed_point():
    # P(v, l) = v / (1 + c l^2) is prox_{l^2 R} for R = c/2||x||^2: the FB and GD fixed points coincide.
    c, eta = 40.0, 0.49
    y = torch.rand(2, 1, 4, 4, generator=generator(4), dtype=DTYPE)
    sigma = torch.tensor([0.02, 0.2], dtype=DTYPE)
    levels = []

    def denoiser(v, level):
        levels.append(level)
        return v / (1 + c * level.view(-1, 1, 1, 1) ** 2)

    step = functools.partial(fb_map, operator=Identity((1, 4, 4)), y=y, sigma=sigma, denoiser=denoiser, eta=eta)
    x_star, info = deq_fixed_point(step, torch.zeros_like(y), tol=1e-28, max_iter=2000)
    assert torch.allclose(levels[0], eta**0.5 * sigma)
    assert info.converged.all()
    assert torch.allclose(x_star, y / (1 + c * sigma.view(-1, 1, 1, 1) ** 2), rtol=1e-10)


def test_floored_sigma_checks_its_input():
    x = torch.zeros(3, 1, 2, 2)
    assert floored_sigma(0.0, x, sigma_floor=0.01).tolist() == pytest.approx([0.01] * 3)
    assert floored_sigma(torch.tensor(0.5), x).tolist() == [0.5] * 3
    with pytest.raises(ValueError, match="batch of 3"):
        floored_sigma(torch.zeros(2), x)
    with pytest.raises(ValueError, match=">= 0"):
        floored_sigma(-0.1, x)
    with pytest.raises(ValueError, match="eta must be > 0"):
        gd_map(x, operator=Identity((1, 2, 2)), y=x, sigma=0.1, gradient_net=torch.zeros_like, eta=0.0)


# -- the forward solve: the paper's three stopping rules, per sample ------------------------------


def contraction(x):
    return 0.5 * x + 0.1


def expansion(x):
    return 2.0 * x + 1.0


def rotation(x):
    """(a, b) -> (-b, a) on the last axis: an isometry with fixed point 0 that never settles."""
    return torch.stack([-x[..., 1], x[..., 0]], dim=-1)


@pytest.mark.parametrize(("map_fn", "status"), [(contraction, "converged"), (expansion, "diverged"),
                                                (rotation, "max_iter")])
def test_each_stopping_rule_triggers(map_fn, status):
    x0 = torch.ones(1, 1, 1, 2, dtype=DTYPE)
    x, info = deq_fixed_point(map_fn, x0)
    assert info.status == (status,)
    if status == "converged":
        assert float(info.mean_squared_change[0]) < 1e-7 and int(info.iterations[0]) < 30
        assert torch.allclose(x, torch.full_like(x, 0.2), atol=1e-3)
    elif status == "diverged":
        # 1, 3, 7, ..., 63, then 127 > 100: the last in-range iterate is kept.
        assert int(info.iterations[0]) == 6 and torch.equal(x, torch.full_like(x, 63.0))
    else:
        assert int(info.iterations[0]) == 500 and bool(torch.isfinite(x).all())


def test_samples_stop_independently():
    def mixed(x):  # one problem per sample
        return torch.cat([contraction(x[:1]), expansion(x[1:2]), rotation(x[2:])])

    x0 = torch.ones(3, 1, 1, 2, dtype=DTYPE)
    x, info = deq_fixed_point(mixed, x0)
    assert info.status == ("converged", "diverged", "max_iter")
    assert info.converged.tolist() == [True, False, False] and info.diverged.tolist() == [False, True, False]
    alone, alone_info = deq_fixed_point(contraction, x0[:1])
    assert torch.equal(x[:1], alone) and int(info.iterations[0]) == int(alone_info.iterations[0])
    assert float(x[1].abs().max()) <= 100
    # Anderson weights are per sample too (and extrapolate the affine expansion to its fixed point -1).
    x_anderson, info_anderson = deq_fixed_point(mixed, x0, anderson=2)
    alone, _ = deq_fixed_point(contraction, x0[:1], anderson=2)
    assert info_anderson.status[:2] == ("converged", "converged") and torch.equal(x_anderson[:1], alone)
    assert torch.allclose(x_anderson[1], torch.full_like(x_anderson[1], -1.0))
    stats = DEQStats.from_info(info)
    assert stats.batch_size == 3 and stats.fraction_converged == pytest.approx(1 / 3)
    assert stats.fraction_diverged == pytest.approx(1 / 3) and stats.max_iterations == 500
    assert set(stats.to_dict()) == {"batch_size", "fraction_converged", "fraction_diverged", "mean_iterations",
                                    "max_iterations", "mean_residual"}


# -- Jacobian-free backpropagation ---------------------------------------------------------------


def contraction_instance(seed, n=6, norm=0.9):
    """``T(x) = W x + theta`` with ``||W||_2 = norm`` (not symmetric) and a target ``t``."""
    g = generator(seed)
    W = torch.randn(n, n, generator=g, dtype=DTYPE)
    W = norm * W / torch.linalg.matrix_norm(W, ord=2)
    theta = torch.randn(n, generator=g, dtype=DTYPE).requires_grad_(True)
    target = torch.randn(n, generator=g, dtype=DTYPE)
    return W, theta, target


def linear_map(W, theta):
    return lambda x: (x.flatten(1) @ W.T + theta).view_as(x)  # (1, 1, 1, n)


def implicit_gradient(W, theta, target):
    """dl/dtheta for l = 1/2 ||x* - t||^2, x* = (I - W)^{-1} theta: (I - W)^{-T} (x* - t)."""
    eye = torch.eye(W.shape[0], dtype=DTYPE)
    x_star = torch.linalg.solve(eye - W, theta.detach())
    return torch.linalg.solve((eye - W).T, x_star - target), x_star


def test_implicit_gradient_reference_matches_unrolled_backpropagation():
    W, theta, target = contraction_instance(0, norm=0.5)
    x = torch.zeros(1, 1, 1, W.shape[0], dtype=DTYPE)
    for _ in range(200):  # backpropagation through the iterations converges to the implicit gradient
        x = linear_map(W, theta)(x)
    (unrolled,) = torch.autograd.grad(0.5 * (x.flatten() - target).pow(2).sum(), theta)
    expected, _ = implicit_gradient(W, theta, target)
    assert torch.allclose(unrolled, expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("seed", range(8))
def test_jfb_gradient_is_a_descent_direction(seed):
    W, theta, target = contraction_instance(seed)
    T = linear_map(W, theta)
    x_star, info = deq_fixed_point(T, torch.zeros(1, 1, 1, W.shape[0], dtype=DTYPE), tol=1e-30, max_iter=5000,
                                   anderson=4)
    true_gradient, x_exact = implicit_gradient(W, theta, target)
    assert info.status == ("converged",) and torch.allclose(x_star.flatten(), x_exact, atol=1e-12)
    value = jfb_step(T, x_star)
    assert value.requires_grad and not x_star.requires_grad
    (jfb_gradient,) = torch.autograd.grad(0.5 * (value.flatten() - target).pow(2).sum(), theta)
    # Here jfb = x* - t and true = (I - W)^{-T}(x* - t): <jfb, true> >= (1 - ||W||) ||true||^2 > 0.
    assert float(jfb_gradient @ true_gradient) > 0
    assert not torch.allclose(jfb_gradient, true_gradient)  # an approximation, not the gradient


def test_jfb_reaches_the_network_and_not_the_fixed_point():
    net = DRUNet(DRUNetConfig(channels=1, widths=(4, 8), blocks=1, noise_map=False)).double()
    y = torch.rand(2, 1, 8, 8, generator=generator(5), dtype=DTYPE)
    step = functools.partial(gd_map, operator=Identity((1, 8, 8)), y=y, sigma=torch.tensor([0.0, 0.1]),
                             gradient_net=net, eta=0.05)
    x_star, info = deq_fixed_point(step, y, max_iter=20)
    assert not x_star.requires_grad and len(info.status) == 2
    x_star.requires_grad_(True)
    jfb_step(step, x_star).pow(2).sum().backward()
    assert x_star.grad is None
    assert all(p.grad is not None and bool(torch.isfinite(p.grad).all()) for p in net.parameters())
