"""Conformance of the classical regularizers: grads match autograd, proxes satisfy their optimality conditions."""

import math

import pytest
import torch

from _operators import Dense
from learnreg.physics.gradient import FiniteDifference
from learnreg.physics.operator import LinearOperator, Operator, check_adjoint
from learnreg.regularizers import (
    CapabilityError,
    HyperLaplacian,
    L21Norm,
    L2Data,
    LpNorm,
    SquaredNorm,
    Tikhonov,
    TotalVariation,
    group_soft_threshold,
    lp_prox,
)

SHAPE = (2, 5, 7)  # odd, non-square, two channels
DTYPE = torch.float64


def generator(seed=0):
    return torch.Generator().manual_seed(seed)


def randn(*shape, seed=0):
    return torch.randn(shape, generator=generator(seed), dtype=DTYPE)




class Square(Operator):
    """A nonlinear operator, ``x -> x^2``."""

    def __init__(self, shape):
        super().__init__(shape, shape)

    def _forward(self, x):
        return x * x


def autograd_of(function, x):
    xv = x.detach().clone().requires_grad_(True)
    (gradient,) = torch.autograd.grad(function(xv).sum(), xv)
    return gradient


# -- finite differences --------------------------------------------------------------


def test_finite_difference_adjoint_layout_and_spectrum():
    D = FiniteDifference(SHAPE)
    assert D.out_shape == (4, 5, 7)
    assert check_adjoint(D) < 1e-13
    x = randn(3, *SHAPE)
    u = D(x)
    assert torch.allclose(u[:, :2, :, :-1], x[:, :, :, 1:] - x[:, :, :, :-1])  # d/dx first
    assert torch.allclose(u[:, 2:, :-1, :], x[:, :, 1:, :] - x[:, :, :-1, :])  # then d/dy
    via_fft = torch.fft.irfft2(torch.fft.rfft2(x) * D.normal_fourier(), s=SHAPE[1:])
    assert D.normal_fourier().shape == (1, 5, 4)
    assert torch.allclose(via_fft, D.normal(x), atol=1e-12)
    assert D(torch.ones(1, *SHAPE, dtype=DTYPE)).abs().max() == 0
    assert FiniteDifference((1, 6, 4)).norm() ** 2 == pytest.approx(8.0)
    assert D.norm() ** 2 < 8.0


# -- gradients ----------------------------------------------------------------------------


SMOOTH = {
    "tikhonov": (Tikhonov(), "value"),
    "tikhonov-gradient": (Tikhonov.gradient(SHAPE), "value"),
    "squared-norm": (SquaredNorm(), "value"),
    "tv-smoothed": (TotalVariation(SHAPE, epsilon=0.3), "smoothed_value"),
    "hyper-laplacian-smoothed": (HyperLaplacian(SHAPE, p=0.7, epsilon=0.3), "smoothed_value"),
    "weighted-sum": (2.5 * Tikhonov() + 0.5 * TotalVariation(SHAPE, epsilon=0.3), None),
}


@pytest.mark.parametrize("name", list(SMOOTH))
def test_grad_matches_autograd(name):
    regularizer, value_name = SMOOTH[name]
    x = randn(2, *SHAPE, seed=1)
    if value_name is None:  # the sum of a Tikhonov and a smoothed TV: add the smoothed values by hand
        tv = regularizer.second.base
        function = lambda v: 2.5 * 0.5 * v.flatten(1).pow(2).sum(1) + 0.5 * tv.smoothed_value(v)  # noqa: E731
    else:
        function = getattr(regularizer, value_name)
    assert torch.allclose(regularizer.grad(x), autograd_of(function, x), atol=1e-10)


def test_l2data_grad_and_lipschitz():
    matrix = randn(8, 6, seed=2)
    A = Dense(matrix)
    y = randn(2, 1, 1, 8, seed=3)
    data = L2Data(A, y)
    x = randn(2, 1, 1, 6, seed=4)
    assert torch.allclose(data.grad(x), autograd_of(data.value, x), atol=1e-10)
    assert data.lipschitz == pytest.approx(float(torch.linalg.matrix_norm(matrix, 2)) ** 2, rel=1e-5)
    nonlinear = L2Data(Square((1, 1, 6)), randn(2, 1, 1, 6, seed=5))
    assert torch.allclose(nonlinear.grad(x), autograd_of(nonlinear.value, x), atol=1e-10)
    assert nonlinear.lipschitz is None and not nonlinear.has_prox
    with pytest.raises(CapabilityError, match="gradient solver"):
        nonlinear.prox(x, 1.0)
    with pytest.raises(ValueError, match="measurements must have shape"):
        L2Data(A, randn(2, 1, 1, 7))


# -- closed-form proxes -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "regularizer",
    [
        Tikhonov(),
        Tikhonov.gradient(SHAPE),
        SquaredNorm(),
        Tikhonov(operator=FiniteDifference(SHAPE).T @ FiniteDifference(SHAPE)),
    ],
    ids=["identity", "gradient-fft", "squared-norm", "laplacian-cg"],
)
def test_smooth_prox_optimality(regularizer):
    """``(p - v) / tau + grad R(p) = 0``, with a per-sample ``tau``."""
    v = randn(2, *SHAPE, seed=6)
    tau = torch.tensor([0.3, 2.0], dtype=DTYPE)
    p = regularizer.prox(v, tau)
    residual = (p - v) / tau.view(-1, 1, 1, 1) + regularizer.grad(p)
    assert residual.abs().max() < 1e-7


def test_l2data_prox_optimality():
    A = Dense(randn(8, 6, seed=7))
    data = L2Data(A, randn(2, 1, 1, 8, seed=8))
    v = randn(2, 1, 1, 6, seed=9)
    p = data.prox(v, 0.7)
    assert ((p - v) / 0.7 + data.grad(p)).abs().max() < 1e-8


def test_group_soft_threshold_subgradient_and_brute_force():
    v = randn(3, 4, 6, 5, seed=10)
    tau = 1.5
    p = group_soft_threshold(v, tau)
    norm_v = v.pow(2).sum(1, keepdim=True).sqrt()
    norm_p = p.pow(2).sum(1, keepdim=True).sqrt()
    shrunk = (norm_v > tau).expand_as(v)
    # Nonzero groups: (v - p) / tau = p / ||p||; zero groups: ||v|| <= tau.
    assert torch.allclose(((v - p) / tau)[shrunk], (p / norm_p.clamp_min(1e-300))[shrunk], atol=1e-12)
    assert bool((p[~shrunk] == 0).all())
    # The minimiser lies on the ray of v: a 1-D search along it finds no lower energy.
    direction = v / norm_v
    s = torch.linspace(0, 6, 60001, dtype=DTYPE)
    energy = tau * s + 0.5 * (s - norm_v.flatten()[:, None]).pow(2)  # (groups, grid)
    best = energy.min(1).values
    ours = (tau * norm_p + 0.5 * (p - v).pow(2).sum(1, keepdim=True)).flatten()
    assert bool((ours <= best + 1e-12).all())
    assert torch.allclose(p, norm_p * direction)


@pytest.mark.parametrize("p", [0.5, 2 / 3, 0.8, 0.3, 1.0])
@pytest.mark.parametrize("tau", [0.1, 0.6, 1.4])
def test_lp_prox_is_global_minimiser(p, tau):
    v = (torch.rand(1, 1, 1, 120, generator=generator(11), dtype=DTYPE) * 2 - 1) * 4
    w = lp_prox(v, tau, p)
    grid = torch.linspace(-5, 5, 40001, dtype=DTYPE)
    energy = tau * grid.abs().pow(p)[None] + 0.5 * (grid[None] - v.flatten()[:, None]).pow(2)
    ours = tau * w.flatten().abs().pow(p) + 0.5 * (w.flatten() - v.flatten()).pow(2)
    assert bool((ours <= energy.min(1).values + 1e-10).all())
    nonzero = w != 0
    stationary = (w - v)[nonzero] + tau * p * torch.sign(w[nonzero]) * w[nonzero].abs().pow(p - 1)
    assert stationary.abs().max() < 1e-8


def test_lp_prox_per_sample_tau_and_float32():
    v = torch.randn(2, 1, 4, 4, generator=generator(12))
    tau = torch.tensor([0.2, 1.0])
    for p in (0.5, 2 / 3, 0.8):
        w = lp_prox(v, tau, p)
        assert w.dtype == torch.float32 and bool(torch.isfinite(w).all())
        assert torch.allclose(w[1:], lp_prox(v[1:], 1.0, p))
    with pytest.raises(ValueError, match="0 < p <= 1"):
        LpNorm(1.5)


# -- total variation ---------------------------------------------------------------------------


def tv_energy(tv, x, v, tau):
    return tau * tv.value(x) + 0.5 * (x - v).flatten(1).pow(2).sum(1)


def test_tv_prox_certificate_and_variational_inequality():
    tv = TotalVariation(SHAPE, prox_iterations=3000, prox_tol=0.0)
    v = randn(2, *SHAPE, seed=13)
    tau = 0.4
    result = tv.prox_certified(v, tau)
    x, dual = result.x, result.dual
    D = tv.operator
    # dual feasibility, and v - x = tau D^T p with <D x, p> = TV(x): D^T p is a subgradient of TV at x
    assert dual.pow(2).sum(1).sqrt().max() <= 1 + 1e-12
    assert torch.allclose(v - x, tau * D.adjoint(dual), atol=1e-12)
    assert result.gap.max() < 1e-9
    assert torch.allclose((D(x) * dual).flatten(1).sum(1), tv.value(x), atol=1e-8)
    # F(x) <= F(x + t d) for random small directions
    base = tv_energy(tv, x, v, tau)
    for seed in range(5):
        d = randn(2, *SHAPE, seed=100 + seed)
        for t in (1e-2, 1e-4):
            assert bool((tv_energy(tv, x + t * d, v, tau) >= base - 1e-10).all())


def test_tv_prox_budget_gap_bounds_the_error():
    v = torch.rand(2, *SHAPE, generator=generator(14), dtype=DTYPE)
    exact = TotalVariation(SHAPE, prox_iterations=3000, prox_tol=0.0).prox_certified(v, 0.2)
    short = TotalVariation(SHAPE, prox_iterations=20, prox_tol=0.0).prox_certified(v, 0.2)
    assert short.iterations == 20
    error = (short.x - exact.x).flatten(1).norm(dim=1)
    assert bool((error <= (2 * short.gap).sqrt() + (2 * exact.gap).sqrt() + 1e-12).all())
    early = TotalVariation(SHAPE, prox_iterations=3000, prox_tol=1e-3).prox_certified(v, 0.2)
    assert early.iterations < 3000
    assert bool(((2 * early.gap / v[0].numel()).sqrt() <= 1e-3).all())


def test_tv_prox_flags_per_sample_tau_and_zero():
    tv = TotalVariation(SHAPE)
    assert not tv.prox_is_exact and "approximate" in tv.name
    v = randn(2, *SHAPE, seed=15)
    p = tv.prox(v, torch.tensor([0.0, 0.5], dtype=DTYPE))
    assert torch.equal(p[0], v[0])
    assert tv.value(p[1:]) < tv.value(v[1:])
    assert torch.equal(tv.prox(v, 0.0), v)


# -- splits and algebra -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "regularizer",
    [TotalVariation(SHAPE), Tikhonov.gradient(SHAPE), HyperLaplacian(SHAPE, p=0.5)],
    ids=["tv", "tikhonov-gradient", "hyper-laplacian"],
)
def test_split_reproduces_value(regularizer):
    L, phi = regularizer.split()
    x = randn(2, *SHAPE, seed=16)
    assert isinstance(L, LinearOperator) and phi.has_prox
    assert torch.allclose(phi.value(L(x)), regularizer.value(x))


def test_split_phis():
    assert isinstance(TotalVariation(SHAPE).split()[1], L21Norm)
    assert isinstance(HyperLaplacian(SHAPE, p=0.6).split()[1], LpNorm)
    with pytest.raises(CapabilityError, match="Identity"):
        Tikhonov().split()


def test_weighted_and_sum_algebra():
    tv = TotalVariation(SHAPE, prox_iterations=30)
    v = randn(2, *SHAPE, seed=17)
    weighted = 3.0 * tv
    assert torch.allclose(weighted.prox(v, 0.1), tv.prox(v, 0.3))
    assert torch.allclose(weighted.value(v), 3 * tv.value(v))
    assert not weighted.prox_is_exact
    total = tv + 2 * Tikhonov()
    assert torch.allclose(total.value(v), tv.value(v) + v.flatten(1).pow(2).sum(1))
    assert not total.has_prox
    with pytest.raises(CapabilityError):
        total.prox(v, 1.0)
    with pytest.raises(ValueError, match=">= 0"):
        -1.0 * tv
    assert HyperLaplacian(SHAPE).has_prox is False
    with pytest.raises(CapabilityError):
        HyperLaplacian(SHAPE).prox(v, 1.0)


def test_lipschitz_constants():
    assert Tikhonov().lipschitz == 1.0
    assert Tikhonov.gradient((1, 4, 6)).lipschitz == pytest.approx(8.0)
    assert TotalVariation((1, 4, 6), epsilon=0.1).lipschitz == pytest.approx(80.0)
    assert HyperLaplacian((1, 4, 6), p=0.5, epsilon=0.01).lipschitz == pytest.approx(8 * 0.5 * 0.01**-1.5)
    assert math.isclose(SquaredNorm().lipschitz, 1.0)
