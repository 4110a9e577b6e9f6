"""Nesterov with adaptive restart and Anderson on the gradient map reach closed-form minimisers, fast."""

import pytest
import torch

from _operators import Dense
from learnreg.regularizers import L2Data, RegularizingGradient, SquaredNorm
from learnreg.solvers import FixedPoint, GradientDescent, MaxIter, Nesterov, StopInfo, StopRule, gradient_step_map

DTYPE = torch.float64


def generator(seed):
    return torch.Generator().manual_seed(seed)


def quadratic(singular_values, weight, seed=0):
    """``1/2 ||M x - y||^2 + weight/2 ||x||^2`` with ``M`` of the given singular values; returns terms and minimiser."""
    n = len(singular_values)
    g = generator(seed)
    u, _ = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=DTYPE))
    v, _ = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=DTYPE))
    matrix = u @ torch.diag(torch.as_tensor(singular_values, dtype=DTYPE)) @ v.T
    y = torch.randn(2, 1, 1, n, generator=g, dtype=DTYPE)
    x_star = torch.linalg.solve(matrix.T @ matrix + weight * torch.eye(n, dtype=DTYPE), (y.flatten(1) @ matrix).T).T
    return L2Data(Dense(matrix), y), weight * SquaredNorm(), x_star.view(2, 1, 1, n)


def relative_error(x, reference):
    return float((x - reference).norm() / reference.norm())


class CloseTo(StopRule):
    """Stop with ``"converged"`` once ``||x - x*|| / ||x*|| < tol`` (a test-only oracle)."""

    def __init__(self, reference, tol):
        self.reference, self.tol = reference, tol

    def __call__(self, info: StopInfo):
        return "converged" if relative_error(info.x, self.reference) < self.tol else None


@pytest.mark.parametrize("restart", ["gradient", "function", "none"])
def test_nesterov_reaches_the_closed_form_minimiser(restart):
    f, g, x_star = quadratic(torch.linspace(0.3, 1.5, 7), 0.2)
    solver = Nesterov(f, g, restart=restart)
    assert solver.step_size == pytest.approx(1 / (f.lipschitz + 0.2))
    x, history = solver.run(torch.zeros_like(x_star), stop=MaxIter(3000) | CloseTo(x_star, 1e-10))
    assert history.status == "converged" and relative_error(x, x_star) < 1e-10


def test_nesterov_with_a_learned_gradient_field_needs_its_lipschitz_bound():
    f, _, x_star = quadratic(torch.linspace(0.3, 1.5, 7), 0.2)
    field = 0.2 * RegularizingGradient(lambda x: x)  # grad-only, no Lipschitz constant declared
    with pytest.raises(ValueError, match="g_lipschitz="):
        Nesterov(f, field)
    with pytest.raises(ValueError, match="restart='function'"):
        Nesterov(f, field, step=0.1, restart="function")
    with pytest.raises(ValueError, match="unknown restart"):
        Nesterov(f, field, step=0.1, restart="sometimes")
    solver = Nesterov(f, field, g_lipschitz=0.2)
    x, history = solver.run(torch.zeros_like(x_star), stop=MaxIter(3000) | CloseTo(x_star, 1e-10))
    assert history.status == "converged"


@pytest.mark.parametrize("anderson", [0, 5])
def test_gradient_map_under_fixed_point_reaches_the_minimiser(anderson):
    f, g, x_star = quadratic(torch.linspace(0.3, 1.5, 7), 0.2)
    T = gradient_step_map(f, RegularizingGradient(lambda x: 0.2 * x), g_lipschitz=0.2)
    x, history = FixedPoint(T, anderson=anderson).run(torch.zeros_like(x_star),
                                                      stop=MaxIter(3000) | CloseTo(x_star, 1e-10))
    assert history.status == "converged" and relative_error(x, x_star) < 1e-10
    assert torch.allclose(T(x_star), x_star, atol=1e-12)  # the minimiser is the map's fixed point
    with pytest.raises(ValueError, match="pass step="):
        gradient_step_map(f, RegularizingGradient(lambda x: x))


def iterations_to(solver, x_star, tol, cap):
    _, history = solver.run(torch.zeros_like(x_star), stop=MaxIter(cap) | CloseTo(x_star, tol),
                            record_objective=False)
    return history.iterations if history.status == "converged" else None


def test_acceleration_needs_far_fewer_iterations_on_an_ill_conditioned_quadratic():
    # Hessian spectrum in [2e-4, 1 + 1e-4]: condition number ~ 5000.
    f, g, x_star = quadratic(torch.logspace(0, -2, 20), 1e-4, seed=1)
    tol = 1e-6
    nesterov = iterations_to(Nesterov(f, g), x_star, tol, cap=3000)
    anderson = iterations_to(FixedPoint(gradient_step_map(f, g), anderson=8), x_star, tol, cap=3000)
    assert nesterov is not None and anderson is not None
    # Plain gradient descent (same 1/L step) is still far off after ten times Nesterov's count.
    x_gd, _ = GradientDescent(f, g).run(torch.zeros_like(x_star), stop=MaxIter(10 * nesterov), record_objective=False)
    assert relative_error(x_gd, x_star) > 100 * tol
