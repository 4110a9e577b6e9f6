"""Every solver reaches closed-form minimisers; divergence, NaN and stopping rules behave."""

import math

import pytest
import torch

from _operators import Dense
from learnreg.physics.gradient import FiniteDifference
from learnreg.physics.operator import LinearOperator, per_sample
from learnreg.regularizers import L2Data, Regularizer, SquaredNorm, Tikhonov, TotalVariation
from learnreg.solvers import (
    ADMM,
    HQS,
    Adam,
    AnyOf,
    Diverged,
    FixedPoint,
    ForwardBackward,
    GradientDescent,
    MaxIter,
    RelativeChange,
    SplitADMM,
    StopInfo,
    default_stop,
    geometric_schedule,
    solve_fixed_point,
)

DTYPE = torch.float64
LAMBDA = 0.7


def generator(seed=0):
    return torch.Generator().manual_seed(seed)




class Identity(LinearOperator):
    def __init__(self, shape):
        super().__init__(shape, shape)

    def _forward(self, x):
        return x

    def _adjoint(self, y):
        return y

    def normal_fourier(self):
        return torch.ones(1, self.in_shape[1], self.in_shape[2] // 2 + 1, dtype=DTYPE)


class CircularBlur(LinearOperator):
    """Periodic convolution with a small kernel, diagonal in the Fourier basis."""

    def __init__(self, shape, kernel):
        super().__init__(shape, shape)
        padded = torch.zeros(shape[1:], dtype=DTYPE)
        padded[: kernel.shape[0], : kernel.shape[1]] = kernel
        padded = torch.roll(padded, (-(kernel.shape[0] // 2), -(kernel.shape[1] // 2)), (0, 1))
        self.spectrum = torch.fft.rfft2(padded)[None]  # (1, H, W // 2 + 1)

    def _apply(self, x, spectrum):
        return torch.fft.irfft2(torch.fft.rfft2(x) * spectrum, s=x.shape[-2:])

    def _forward(self, x):
        return self._apply(x, self.spectrum)

    def _adjoint(self, y):
        return self._apply(y, self.spectrum.conj())

    def normal_fourier(self):
        return self.spectrum.abs().pow(2)

    prox_data_closed_form = True

    def prox_data(self, v, y, tau):
        # (I + tau A^T A)^{-1} (v + tau A^T y), diagonal in the Fourier basis
        tau = per_sample(tau, v)
        numerator = torch.fft.rfft2(v) + tau * self.spectrum.conj() * torch.fft.rfft2(y)
        return torch.fft.irfft2(numerator / (1 + tau * self.normal_fourier()), s=v.shape[-2:])


def blur_kernel():
    r = torch.arange(5, dtype=DTYPE) - 2
    g = torch.exp(-(r**2) / 2.0)
    kernel = g[:, None] * g[None, :]
    return kernel / kernel.sum()


@pytest.fixture(scope="module")
def quadratic():
    """``1/2 ||A x - y||^2 + LAMBDA/2 ||x||^2`` and its minimiser, batch of 2."""
    matrix = torch.randn(9, 6, generator=generator(1), dtype=DTYPE) / 3
    A = Dense(matrix)
    y = torch.randn(2, 1, 1, 9, generator=generator(2), dtype=DTYPE)
    system = matrix.T @ matrix + LAMBDA * torch.eye(6, dtype=DTYPE)
    x_star = torch.linalg.solve(system, (y.flatten(1) @ matrix).T).T.reshape(2, 1, 1, 6)
    return A, y, x_star


def relative_error(x, reference):
    return float((x - reference).norm() / reference.norm())


TIGHT = MaxIter(3000) | RelativeChange(1e-13) | Diverged(100)


def test_gradient_descent_fixed_and_backtracking(quadratic):
    A, y, x_star = quadratic
    f, g = L2Data(A, y), LAMBDA * SquaredNorm()
    x0 = torch.zeros_like(x_star)
    x, history = GradientDescent(f, g).run(x0, stop=TIGHT)
    assert relative_error(x, x_star) < 1e-6 and history.status == "converged"
    x, history = GradientDescent(f, g, backtracking=True).run(x0, stop=TIGHT)
    assert relative_error(x, x_star) < 1e-6
    objective = torch.tensor(history.objective)
    assert bool((objective[1:] <= objective[:-1] + 1e-12).all())  # Armijo: monotone


def test_adam_reaches_minimiser(quadratic):
    A, y, x_star = quadratic
    solver = Adam(L2Data(A, y), LAMBDA * SquaredNorm(), lr=0.05, amsgrad=True)
    x, _ = solver.run(torch.zeros_like(x_star), stop=MaxIter(3000) | RelativeChange(1e-14))
    assert relative_error(x, x_star) < 1e-6
    x, _ = Adam(L2Data(A, y), LAMBDA * SquaredNorm(), lr=0.01).run(torch.zeros_like(x_star), stop=MaxIter(1500))
    assert relative_error(x, x_star) < 1e-2  # plain Adam hovers at a distance ~lr


@pytest.mark.parametrize("accelerated", [False, True])
def test_forward_backward_and_fista(quadratic, accelerated):
    A, y, x_star = quadratic
    solver = ForwardBackward(L2Data(A, y), LAMBDA * SquaredNorm(), accelerated=accelerated)
    x, _ = solver.run(torch.zeros_like(x_star), stop=TIGHT)
    assert relative_error(x, x_star) < 1e-6


def test_admm(quadratic):
    A, y, x_star = quadratic
    x, _ = ADMM(L2Data(A, y), LAMBDA * SquaredNorm(), rho=1.0).run(torch.zeros_like(x_star), stop=TIGHT)
    assert relative_error(x, x_star) < 1e-6


@pytest.mark.parametrize("rho", [(0.01, 0.1, 1.0, 3.0), lambda k: 0.05 * 1.2 ** min(k, 30)])
def test_admm_with_a_penalty_schedule(quadratic, rho):
    # continuation (increasing rho, the dual rescaled to keep the multiplier) still reaches the minimiser
    A, y, x_star = quadratic
    solver = ADMM(L2Data(A, y), LAMBDA * SquaredNorm(), rho=rho)
    x, _ = solver.run(torch.zeros_like(x_star), stop=TIGHT)
    assert relative_error(x, x_star) < 1e-6
    assert solver.penalty(100) == (3.0 if isinstance(rho, tuple) else pytest.approx(0.05 * 1.2**30))


def test_admm_keeps_its_fixed_point_when_rho_changes(quadratic):
    # at the solution the multiplier rho u is fixed; rescaling u when rho jumps keeps every iterate there
    A, y, x_star = quadratic
    converged, _ = ADMM(L2Data(A, y), LAMBDA * SquaredNorm(), rho=1.0).run(torch.zeros_like(x_star), stop=TIGHT)
    solver = ADMM(L2Data(A, y), LAMBDA * SquaredNorm(), rho=lambda k: 1.0 if k < 400 else 7.0)
    state = solver.init_state(converged)
    for _ in range(400):
        state = solver.step(state)
    assert state.rho == 1.0
    state = solver.step(state)  # rho jumps from 1 to 7
    assert state.rho == 7.0 and relative_error(state.x, x_star) < 1e-6 and relative_error(state.z, x_star) < 1e-6


def test_admm_rejects_bad_penalties():
    with pytest.raises(ValueError, match="rho must be > 0"):
        ADMM(SquaredNorm(), SquaredNorm(), rho=0.0)
    with pytest.raises(ValueError, match="all > 0"):
        ADMM(SquaredNorm(), SquaredNorm(), rho=(1.0, -1.0))


@pytest.mark.parametrize("adaptive", [False, True])
def test_split_admm_prox_mode(quadratic, adaptive):
    A, y, x_star = quadratic
    prior = Tikhonov(operator=Identity((1, 1, 6)))
    solver = SplitADMM(L2Data(A, y), prior, weight=LAMBDA, rho=1.0, adaptive=adaptive)
    assert solver.data_step == "prox"
    x, _ = solver.run(torch.zeros_like(x_star), stop=TIGHT)
    assert relative_error(x, x_star) < 1e-6


def test_hqs_fixed_penalty_and_schedule(quadratic):
    A, y, x_star = quadratic
    f, g = L2Data(A, y), LAMBDA * SquaredNorm()
    mu = 2.0
    # At a fixed mu, HQS converges to z with (A^T A + lambda' I) x = A^T y, lambda' = lambda mu / (lambda + mu),
    # and z = mu / (lambda + mu) x.
    shrunk = LAMBDA * mu / (LAMBDA + mu)
    matrix = A.matrix
    x_mu = torch.linalg.solve(matrix.T @ matrix + shrunk * torch.eye(6, dtype=DTYPE), (y.flatten(1) @ matrix).T).T
    z_mu = (mu / (LAMBDA + mu) * x_mu).reshape(x_star.shape)
    z, _ = HQS(f, g, schedule=[mu]).run(torch.zeros_like(x_star), stop=TIGHT)
    assert relative_error(z, z_mu) < 1e-6
    # An increasing schedule approaches the minimiser of f + g (slowly: the iterate lags the path).
    z_fixed, _ = HQS(f, g, schedule=[0.5]).run(torch.zeros_like(x_star), stop=MaxIter(100))
    z, _ = HQS(f, g, schedule=geometric_schedule(0.5, 100.0, 100)).run(torch.zeros_like(x_star), stop=MaxIter(100))
    assert relative_error(z, x_star) < min(0.02, relative_error(z_fixed, x_star) / 20)
    assert HQS(f, g, schedule=lambda k: 2.0**k).penalty(3) == 8.0


@pytest.mark.parametrize("anderson", [0, 4])
def test_fixed_point_on_gradient_map(quadratic, anderson):
    A, y, x_star = quadratic
    f, g = L2Data(A, y), LAMBDA * SquaredNorm()
    eta = 1.0 / (f.lipschitz + LAMBDA)
    solver = FixedPoint(lambda x: x - eta * (f.grad(x) + g.grad(x)), anderson=anderson)
    x, history = solver.run(torch.zeros_like(x_star) + 0.1, stop=TIGHT)
    assert relative_error(x, x_star) < 1e-6
    assert history.objective[-1] < 1e-10  # the recorded relative residual ||T(x) - x|| / ||x||


# -- FFT problems ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def blurred():
    shape = (1, 11, 10)
    A = CircularBlur(shape, blur_kernel())
    x_true = torch.rand(2, *shape, generator=generator(3), dtype=DTYPE)
    y = A(x_true) + 0.01 * torch.randn(x_true.shape, generator=generator(4), dtype=DTYPE)
    return A, y, x_true


def test_split_admm_tikhonov_gradient_matches_fft_closed_form(blurred):
    A, y, _ = blurred
    weight = 0.05
    prior = Tikhonov.gradient(A.in_shape)
    spectrum = A.spectrum
    closed = torch.fft.irfft2(
        spectrum.conj() * torch.fft.rfft2(y) / (spectrum.abs().pow(2) + weight * prior.operator.normal_fourier()),
        s=y.shape[-2:],
    )
    for adaptive in (False, True):
        solver = SplitADMM(L2Data(A, y), prior, weight=weight, adaptive=adaptive)
        assert solver.data_step == "fourier"
        x, history = solver.run(y, stop=MaxIter(2000) | RelativeChange(1e-13))
        assert relative_error(x, closed) < 1e-6
        assert history.objective[-1] == pytest.approx(float((L2Data(A, y).value(x) + weight * prior.value(x)).sum()))


def test_split_admm_tv_modes_agree_and_beat_fista(blurred):
    A, y, x_true = blurred
    tv = TotalVariation(A.in_shape, prox_iterations=100)
    stop = MaxIter(800) | RelativeChange(1e-12)
    x_fourier, h_fourier = SplitADMM(L2Data(A, y), tv, weight=0.02).run(y, stop=stop)
    x_prox, _ = SplitADMM(L2Data(A, y), 0.02 * tv, weight=1.0, data_step="prox").run(y, stop=stop)
    assert relative_error(x_prox, x_fourier) < 1e-4
    _, h_fista = ForwardBackward(L2Data(A, y), 0.02 * tv, accelerated=True).run(y, stop=MaxIter(40))
    assert h_fourier.objective[-1] <= h_fista.objective[-1] + 1e-9
    x32, _ = SplitADMM(L2Data(A, y.float()), tv, weight=0.02).run(y.float(), stop=MaxIter(300))
    assert x32.dtype == torch.float32 and relative_error(x32.double(), x_fourier) < 1e-3


def test_split_admm_errors(blurred):
    A, y, _ = blurred
    with pytest.raises(ValueError, match="split"):
        SplitADMM(L2Data(A, y), SquaredNorm(), weight=1.0)
    with pytest.raises(ValueError, match="circulant"):
        SplitADMM(L2Data(Dense(torch.eye(3, dtype=DTYPE)), torch.zeros(1, 1, 1, 3, dtype=DTYPE)),
                  Tikhonov(operator=Identity((1, 1, 3))), weight=1.0, data_step="fourier")


# -- divergence, NaN, stopping rules, history -----------------------------------------------------


def test_divergence_is_detected_and_last_finite_iterate_returned(quadratic):
    A, y, x_star = quadratic
    f, g = L2Data(A, y), LAMBDA * SquaredNorm()
    step = 10.0 / (f.lipschitz + LAMBDA)
    x, history = GradientDescent(f, g, step=step).run(torch.zeros_like(x_star), stop=default_stop(max_iter=1000))
    assert history.status == "diverged" and history.diverged
    assert bool(torch.isfinite(x).all()) and float(x.abs().max()) <= 100


class NaNAfter(Regularizer):
    """A regularizer whose gradient turns NaN from its ``n``-th call on."""

    has_value = has_grad = True

    def __init__(self, n):
        self.n, self.calls = n, 0

    def value(self, x):
        return x.flatten(1).pow(2).sum(1)

    def grad(self, x):
        self.calls += 1
        return torch.full_like(x, float("nan")) if self.calls >= self.n else 2 * x


def test_nan_is_detected(quadratic):
    A, y, x_star = quadratic
    x, history = GradientDescent(L2Data(A, y), NaNAfter(4), step=0.1).run(torch.zeros_like(x_star))
    assert history.status == "diverged" and history.iterations == 4
    assert bool(torch.isfinite(x).all())


def test_stopping_rules_compose():
    x = torch.ones(1, 1, 2, 2)
    rule = MaxIter(3) | RelativeChange(1e-3) | Diverged(100.0)
    assert isinstance(rule, AnyOf) and len(rule.rules) == 3
    assert rule(StopInfo(1, x, 0.5, 0.0)) is None
    assert rule(StopInfo(3, x, 0.5, 0.0)) == "max_iter"
    assert rule(StopInfo(1, x, 1e-4, 0.0)) == "converged"
    assert rule(StopInfo(3, x * float("nan"), 1e-4, 0.0)) == "diverged"  # divergence wins
    assert rule(StopInfo(1, x, 0.5, float("inf"))) == "diverged"
    with pytest.raises(ValueError):
        MaxIter(0)


def test_history_records_psnr_with_reference(quadratic):
    A, y, x_star = quadratic
    solver = GradientDescent(L2Data(A, y), LAMBDA * SquaredNorm())
    _, history = solver.run(torch.zeros_like(x_star), stop=MaxIter(7), reference=x_star.clamp(0, 1))
    assert history.status == "max_iter" and history.iterations == 7
    assert len(history.psnr) == len(history.objective) == len(history.time) == 7
    assert all(math.isfinite(p) for p in history.psnr)
    _, without = solver.run(torch.zeros_like(x_star), stop=MaxIter(3))
    assert without.psnr == []


def test_step_size_needs_a_lipschitz_constant(quadratic):
    A, y, _ = quadratic
    with pytest.raises(ValueError, match="step="):
        GradientDescent(L2Data(A, y), NaNAfter(10))
    with pytest.raises(ValueError, match="prox"):
        ForwardBackward(L2Data(A, y), NaNAfter(10))


# -- fixed point and Anderson -------------------------------------------------------------------


def linear_contraction(rate=0.97, n=40):
    """``T(x) = M x + b`` with symmetric ``M``, spectrum in ``[0, rate]``; fixed point ``(I - M)^{-1} b``."""
    q, _ = torch.linalg.qr(torch.randn(n, n, generator=generator(5), dtype=DTYPE))
    M = q @ torch.diag(torch.linspace(0, rate, n, dtype=DTYPE)) @ q.T
    b = torch.randn(1, 1, 1, n, generator=generator(6), dtype=DTYPE)
    x_star = torch.linalg.solve(torch.eye(n, dtype=DTYPE) - M, b.flatten()).view(1, 1, 1, n)
    return (lambda x: (x.flatten(1) @ M.T).view_as(x) + b), x_star


def test_anderson_accelerates_a_linear_contraction():
    T, x_star = linear_contraction()
    x0 = torch.zeros_like(x_star)
    x_plain, plain = solve_fixed_point(T, x0, tol=1e-20, max_iter=2000)
    x_anderson, anderson = solve_fixed_point(T, x0, tol=1e-20, max_iter=2000, anderson=5)
    assert plain.status == anderson.status == "converged"
    assert anderson.iterations < plain.iterations / 4
    assert relative_error(x_anderson, x_star) < 1e-8 and relative_error(x_plain, x_star) < 1e-8


def test_solve_fixed_point_stopping_rules():
    x0 = torch.ones(1, 1, 2, 2, dtype=DTYPE)
    x, info = solve_fixed_point(lambda x: 0.5 * x, x0)
    assert info.status == "converged" and info.mean_squared_change < 1e-7 and info.iterations < 30
    x, info = solve_fixed_point(lambda x: 2.0 * x + 1.0, x0)
    assert info.status == "diverged" and float(x.abs().max()) <= 100 and bool(torch.isfinite(x).all())
    x, info = solve_fixed_point(lambda x: -x, x0, max_iter=20)
    assert info.status == "max_iter" and info.iterations == 20
    x, info = solve_fixed_point(lambda x: x * float("nan"), x0)
    assert info.status == "diverged" and torch.equal(x, x0)
    assert solve_fixed_point(lambda x: 0.9 * x, x0, max_iter=500, tol=0.0)[1].iterations == 500


def test_steps_are_autograd_friendly(blurred):
    """One differentiable step: gradients flow to the input through every solver's step."""
    A, y, _ = blurred
    data, prior = L2Data(A, y), 0.01 * Tikhonov.gradient(A.in_shape)
    solvers = [
        GradientDescent(data, prior),
        ForwardBackward(data, prior, accelerated=True),
        ADMM(data, prior, rho=1.0),
        HQS(data, prior, schedule=[1.0]),
        SplitADMM(data, Tikhonov.gradient(A.in_shape), weight=0.01),
        FixedPoint(lambda v: v - 0.5 * data.grad(v), anderson=2),
    ]
    for solver in solvers:
        x0 = y.clone().requires_grad_(True)
        state = solver.step(solver.step(solver.init_state(x0)))
        (gradient,) = torch.autograd.grad(solver.output(state).sum(), x0)
        assert bool(torch.isfinite(gradient).all()), solver.name
    assert isinstance(FiniteDifference((1, 3, 3)).norm(), float)


def test_incremental_gradient_reaches_its_closed_form_fixed_point():
    """f = 1/2||x - a||^2, R = 1/2||x||^2: the sweep's fixed point is (1 - s alpha) s a / (1 - (1 - s alpha)(1 - s))."""
    from learnreg.regularizers import L2Data, SquaredNorm
    from learnreg.physics.simple import Identity
    from learnreg.solvers import IncrementalGradient, MaxIter, RelativeChange

    a = torch.randn(1, 1, 4, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    data = L2Data(Identity((1, 4, 5)), a)
    for step, weight in ((0.5, 1.0), (0.05, 0.3)):
        solver = IncrementalGradient(data, SquaredNorm(), step=step, weight=weight)
        x, history = solver.run(torch.zeros_like(a), stop=MaxIter(5000) | RelativeChange(1e-14))
        shrink = 1 - step * weight
        expected = shrink * step * a / (1 - shrink * (1 - step))
        assert torch.allclose(x, expected, atol=1e-10)
    # small steps approach the minimiser of f + alpha R, a / (1 + alpha)
    assert torch.allclose(x, a / 1.3, atol=0.02)
    with pytest.raises(ValueError, match="step must be > 0"):
        IncrementalGradient(data, SquaredNorm(), step=0.0, weight=1.0)
