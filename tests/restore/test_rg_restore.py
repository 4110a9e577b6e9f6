"""Restoration with regularizing gradients (rg-gd) and the trained FB map (rg-fb): closed forms, solvers, priors."""

import pytest
import torch

from learnreg.learned import hub
from learnreg.learned.nets import DRUNet, DRUNetConfig, RegularizerPair, RegularizerPairConfig, network_config
from learnreg.physics.blur import Blur
from learnreg.physics.kernels import gaussian_kernel
from learnreg.physics.simple import Identity, Inpaint, random_mask
from learnreg.physics.superres import SuperResolution
from learnreg.restore import Problem, restore
from learnreg.restore.pnp import register_prior, unregister_prior
from learnreg.restore.rg import (
    available_gradients,
    default_step,
    register_gradient,
    rg_initial_estimate,
    unregister_gradient,
)

C = 10.0  # R(x) = C/2 ||x||^2: G(x) = C x, prox_{l^2 R}(v) = v / (1 + C l^2)
SIGMA = 0.1
TINY = {"channels": 1, "widths": [4, 8], "blocks": 1}


pytestmark = pytest.mark.usefixtures("one_thread")


class Linear(torch.nn.Module):
    """The closed-form regularizing gradient G(x) = C x."""

    def forward(self, x):
        return C * x


def quadratic(x, sigma):
    s = sigma.view(-1, 1, 1, 1) if isinstance(sigma, torch.Tensor) else sigma
    return x / (1 + C * s**2)


@pytest.fixture()
def closed_forms():
    register_gradient("test-linear", Linear())
    register_prior("test-quadratic-prox", quadratic)
    yield
    unregister_gradient("test-linear")
    unregister_prior("test-quadratic-prox")


@pytest.fixture()
def empty_hub(tmp_path, monkeypatch):
    monkeypatch.setattr(hub, "WEIGHTS_DIRECTORY", tmp_path)
    return tmp_path


def _random(module, seed=0, scale=0.2):
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.copy_(scale * torch.randn(parameter.shape, generator=generator))
    return module


def _ship_pair(directory, name="tiny-pair", channels=1):
    pair = _random(RegularizerPair(RegularizerPairConfig.from_dict(
        {"denoiser": {**TINY, "channels": channels}, "gradient": {**TINY, "channels": channels}})))
    return hub.save_weights(pair, directory, name, config=network_config(pair), metadata={"recipe": "test"})


def _ship_denoiser(directory, name="tiny-denoiser", task="denoise"):
    network = _random(DRUNet(DRUNetConfig(**TINY)))
    return hub.save_weights(network, directory, name, config=network_config(network),
                            metadata={"recipe": "test", "training_config": {"task": {"name": task}}})


def _identity_problem(size=8):
    y = torch.rand(2, 1, size, size, generator=torch.Generator().manual_seed(3))
    return Problem(y, Identity((1, size, size)), sigma=SIGMA)


@pytest.mark.parametrize("solver", ["gd", "nesterov", "anderson"])
def test_gd_fixed_point_is_the_closed_form(closed_forms, solver):
    problem = _identity_problem()
    result = restore(problem, "rg-gd", params={"prior": "test-linear", "solver": solver, "step": 0.5,
                                                "iterations": 400, "tol": 1e-9})
    expected = problem.y / (1 + SIGMA**2 * C)  # stationary point of 1/2||x - y||^2 + s^2 C/2 ||x||^2
    assert torch.allclose(result.x, expected, atol=1e-5)
    assert result.history.evaluations == list(range(1, result.history.iterations + 1))  # one G call per iteration


def test_adam_gets_close_and_the_floor_weights_a_noise_free_problem(closed_forms):
    problem = _identity_problem()
    result = restore(problem, "rg-gd", params={"prior": "test-linear", "solver": "adam", "iterations": 300,
                                                "lr": 0.01})
    assert result.history.evaluations[-1] == 300
    assert torch.allclose(result.x, problem.y / (1 + SIGMA**2 * C), atol=0.02)
    noise_free = Problem(problem.y, problem.operator, sigma=0.0)  # s = floor = 0.05 here
    result = restore(noise_free, "rg-gd", params={"prior": "test-linear", "solver": "anderson", "step": 0.5,
                                                   "floor": 0.05, "iterations": 200, "tol": 1e-9})
    assert torch.allclose(result.x, problem.y / (1 + 0.05**2 * C), atol=1e-5)


def test_fb_fixed_point_is_the_closed_form(closed_forms):
    problem = _identity_problem()
    result = restore(problem, "rg-fb", params={"prior": "test-quadratic-prox", "iterations": 200, "tol": 1e-9})
    # x = D(x - eta (x - y), sqrt(eta) s) with the exact prox gives the same MAP point
    assert torch.allclose(result.x, problem.y / (1 + SIGMA**2 * C), atol=1e-5)
    assert result.history.evaluations[-1] == result.history.iterations


def _problems(size=16):
    generator = torch.Generator().manual_seed(4)
    clean = torch.rand(1, 1, size, size, generator=generator)
    shape = (1, size, size)
    operators = [Blur(gaussian_kernel(1.0), shape), SuperResolution("bicubic", 2, shape),
                 Inpaint(random_mask((size, size), 0.5, generator), shape)]
    return [Problem(operator(clean) + 0.01 * torch.randn(operator(clean).shape, generator=generator), operator,
                    sigma=0.01) for operator in operators]


@pytest.mark.parametrize("solver", ["adam", "gd", "nesterov", "anderson"])
def test_every_solver_runs_with_a_shipped_pair(tmp_path, solver):
    record = _ship_pair(tmp_path)
    for problem in _problems():
        result = restore(problem, "rg-gd", params={"prior": str(record), "solver": solver, "iterations": 4})
        assert result.x.shape == (1, *problem.operator.in_shape) and bool(torch.isfinite(result.x).all())
        assert result.history.evaluations == [1, 2, 3, 4]


def test_fb_and_pnp_take_the_denoiser_of_a_pair(tmp_path):
    record = _ship_pair(tmp_path)
    problem = _problems()[2]
    result = restore(problem, "rg-fb", params={"prior": str(record), "iterations": 3, "tol": 0})
    assert result.history.evaluations == [1, 2, 3] and result.x.shape == (1, 1, 16, 16)
    result = restore(problem, "pnp-fb", params={"prior": str(record), "iterations": 3})
    assert result.history.evaluations[-1] == 3
    denoiser = _ship_denoiser(tmp_path)  # an MTDEQ-like lone DRUNet with noise map
    assert restore(problem, "rg-fb", params={"prior": str(denoiser), "iterations": 2}).history.evaluations[-1] == 2


def test_auto_picks_a_pair_for_rg_gd_but_never_for_pnp(empty_hub):
    with pytest.raises(ValueError, match="no regularizer pair is shipped yet; train one with `learnreg train "
                                         "recipes/rg/pnpreg.yaml`"):
        restore(_problems()[0], "rg-gd")
    _ship_pair(empty_hub, "tiny-pair")
    _ship_pair(empty_hub, "rgb-pair", channels=3)
    assert available_gradients() == ["rgb-pair", "tiny-pair"]
    result = restore(_problems()[0], "rg-gd", params={"iterations": 2})
    assert result.history.evaluations == [1, 2]
    _ship_denoiser(empty_hub, "tiny-mtdeq", task="mtdeq")
    with pytest.raises(ValueError, match="no learned denoiser is shipped yet"):
        restore(_problems()[0], "pnp-fb")  # a pair's denoiser and an MTDEQ network serve by name only
    assert restore(_problems()[0], "pnp-fb", params={"prior": "tiny-mtdeq", "iterations": 2}).x.shape == (1, 1, 16, 16)
    with pytest.raises(ValueError, match="takes 3-channel images, the problem has 1"):
        restore(_problems()[0], "rg-gd", params={"prior": "rgb-pair", "iterations": 2})


def test_errors_name_the_fix(tmp_path, empty_hub, closed_forms):
    problem = _identity_problem()
    with pytest.raises(ValueError, match="unknown solver 'lbfgs' for rg-gd; valid: adam, gd, nesterov, anderson"):
        restore(problem, "rg-gd", params={"prior": "test-linear", "solver": "lbfgs"})
    denoiser = _ship_denoiser(empty_hub)
    with pytest.raises(ValueError, match="holds no regularizing gradient G.x.; rg-gd needs a regularizer pair "
                                         r"\(architecture rg_pair"):
        restore(problem, "rg-gd", params={"prior": str(denoiser)})
    with pytest.raises(ValueError, match="unknown prior 'nope' for rg-gd; available regularizer pairs: test-linear"):
        restore(problem, "rg-gd", params={"prior": "nope"})
    with pytest.raises(ValueError, match="step = 2.5 is too large"):
        restore(problem, "rg-fb", params={"prior": "test-quadratic-prox", "step": 2.5})
    with pytest.raises(ValueError, match="lr must be >= 0"):
        restore(problem, "rg-gd", params={"prior": "test-linear", "lr": -1})


def test_initial_estimate_and_default_step():
    size = 8
    y = torch.rand(1, 1, size, size, generator=torch.Generator().manual_seed(5))
    mask = random_mask((size, size), 0.5, torch.Generator().manual_seed(6))
    inpaint = Inpaint(mask, (1, size, size))
    start = rg_initial_estimate(inpaint(y), inpaint)
    assert torch.equal(start[0, 0][~mask], torch.full((int((~mask).sum()),), 0.5))
    assert torch.equal(start[0, 0][mask], y[0, 0][mask])
    sr = SuperResolution("bicubic", 2, (1, size, size))
    assert rg_initial_estimate(sr(y), sr).shape == y.shape
    blur = Blur(gaussian_kernel(1.0), (1, size, size))
    assert torch.equal(rg_initial_estimate(y, blur), y)
    assert default_step(blur) == pytest.approx(0.05)


def test_regression_case_of_a_shipped_pair_measures_its_denoiser(empty_hub):
    from learnreg.bench.regression import default_case, measure

    _ship_pair(empty_hub, "rgb-pair", channels=3)
    case = default_case("rgb-pair")
    assert case["kind"] == "denoiser" and case["image"] == "motorcycle_right"
    assert torch.isfinite(torch.tensor(measure("rgb-pair", dict(case, size=32))))
