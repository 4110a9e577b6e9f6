"""Plug-and-play methods: closed-form conformance with a quadratic "denoiser", schedules, prior selection."""

import json
import math

import pytest
import torch

from learnreg.learned import hub
from learnreg.learned.nets import DRUNet, DRUNetConfig, network_config
from learnreg.physics.operator import conjugate_gradient
from learnreg.physics.spec import Degradation
from learnreg.regularizers.denoiser import dihedral
from learnreg.restore import Problem, restore
from learnreg.restore.pnp import (HQS_TUNED, available_priors, choose_color, hqs_defaults, register_prior,
                                  unregister_prior)

C = 100.0  # the quadratic prior phi(x) = C/2 ||x||^2
SIGMA = 0.05


pytestmark = pytest.mark.usefixtures("one_thread")


def quadratic(x, sigma):
    """The exact prox of sigma^2 phi: D(v, sigma) = v / (1 + C sigma^2)."""
    s = sigma.view(-1, 1, 1, 1) if isinstance(sigma, torch.Tensor) else sigma
    return x / (1 + C * s**2)


class RecordingQuadratic:
    def __init__(self):
        self.sigmas = []

    def __call__(self, x, sigma):
        self.sigmas.append(float(sigma) if not isinstance(sigma, torch.Tensor) else float(sigma.flatten()[0]))
        return quadratic(x, sigma)


@pytest.fixture()
def priors():
    register_prior("test-quadratic", quadratic)  # the closed-form prox of C/2 ||x||^2
    recorder = RecordingQuadratic()
    register_prior("test-recorder", recorder)
    yield recorder
    unregister_prior("test-quadratic")
    unregister_prior("test-recorder")


@pytest.fixture()
def empty_hub(tmp_path, monkeypatch):
    monkeypatch.setattr(hub, "WEIGHTS_DIRECTORY", tmp_path)
    return tmp_path


def _problem(spec, channels=1, size=(16, 16), sigma=SIGMA):
    degradation = Degradation.from_strings(spec, f"gaussian:{sigma}" if sigma else "none",
                                           shape=(channels, *size), seed=0)
    generator = torch.Generator().manual_seed(0)
    clean = torch.rand(1, channels, *size, generator=generator, dtype=torch.float64)
    y = degradation.apply(clean, generator).double()
    return clean, Problem(y, degradation.build_operator(), sigma=sigma)


def _ridge(problem, weight):
    """argmin 1/2 ||A x - y||^2 + weight/2 ||x||^2, by conjugate gradients in float64."""
    operator = problem.operator
    return conjugate_gradient(lambda v: operator.normal(v) + weight * v, operator.adjoint(problem.y),
                              max_iter=2000, tol=1e-15)


SPECS = ["blur:gaussian:1.0", "sr:2:bicubic", "inpaint:random:0.5"]


@pytest.mark.parametrize("spec", SPECS)
def test_admm_reaches_the_map_minimiser(priors, spec):
    # objective (1): 1/2 ||A x - y||^2 + lambda sigma^2 C/2 ||x||^2, whatever sigma_d (it sets the speed)
    _, problem = _problem(spec)
    lam = 0.7
    result = restore(problem, "pnp-admm", params={"prior": "test-quadratic", "iterations": 150, "tol": 0.0,
                                                   "lambda": lam, "sigma_denoiser": 0.04})
    assert float((result.x - _ridge(problem, lam * SIGMA**2 * C)).abs().max()) < 1e-5
    assert result.history.evaluations[-1] == 150


@pytest.mark.parametrize("spec", SPECS)
def test_admm_continuation_and_tuned_defaults_reach_the_map_minimiser(priors, spec, monkeypatch):
    # a falling level (continuation) changes the path, not the minimiser; lambda = 0 takes the family's tuned value
    from learnreg.restore import pnp
    from learnreg.restore.baselines import family

    _, problem = _problem(spec)
    lam = 0.7
    monkeypatch.setitem(pnp.ADMM_TUNED["gray"], family(problem.operator), (0.03, lam))
    result = restore(problem, "pnp-admm", params={"prior": "test-quadratic", "iterations": 200, "tol": 0.0,
                                                   "sigma_start": 0.2})
    assert float((result.x - _ridge(problem, lam * SIGMA**2 * C)).abs().max()) < 1e-5


@pytest.mark.parametrize("spec", SPECS)
def test_fb_reaches_the_map_minimiser(priors, spec):
    # weight w = sigma_d^2 / eta with eta = step / ||A||^2: 1/2 ||A x - y||^2 + w C/2 ||x||^2
    _, problem = _problem(spec)
    s, step = 0.03, 0.9
    result = restore(problem, "pnp-fb", params={"prior": "test-quadratic", "iterations": 150, "tol": 0.0,
                                                 "sigma_denoiser": s, "step": step})
    eta = step / problem.operator.norm() ** 2
    assert float((result.x - _ridge(problem, s**2 / eta * C)).abs().max()) < 1e-5
    assert result.history.evaluations[-1] == 150


@pytest.mark.parametrize("spec", SPECS)
def test_red_reaches_its_minimiser(priors, spec):
    # x - D(x, s) = c' x with c' = s^2 C / (1 + s^2 C); lambda_red = lambda sigma^2 / s^2.
    _, problem = _problem(spec)
    s = 0.04
    result = restore(problem, "red", params={"prior": "test-quadratic", "iterations": 250, "tol": 0.0,
                                              "sigma_denoiser": s, "lambda": 1.0})
    weight = SIGMA**2 / s**2 * (s**2 * C / (1 + s**2 * C))
    assert float((result.x - _ridge(problem, weight)).abs().max()) < 1e-5


@pytest.mark.parametrize("spec", SPECS)
def test_hqs_with_a_constant_schedule_reaches_the_penalised_minimiser(priors, spec):
    # HQS at fixed mu minimises 1/2||Ax-y||^2 + w/2 C ||z||^2 + mu/2 ||x - z||^2, w = lambda sigma^2,
    # mu = w / s^2; eliminating z: x* = ridge(w C mu / (mu + w C)), output z* = mu / (mu + w C) x*.
    _, problem = _problem(spec)
    lam, s = 0.5, 0.03
    result = restore(problem, "pnp-hqs", params={"prior": "test-quadratic", "iterations": 150, "lambda": lam,
                                                  "sigma_start": s, "sigma_end": s})
    w = lam * SIGMA**2
    mu = w / s**2
    expected = mu / (mu + w * C) * _ridge(problem, w * C * mu / (mu + w * C))
    assert float((result.x - expected).abs().max()) < 1e-5


def test_dpir_schedule_and_evaluation_budget(priors):
    _, problem = _problem("blur:gaussian:1.0", channels=3)
    result = restore(problem, "pnp-hqs", params={"prior": "test-recorder"})
    iterations = HQS_TUNED["rgb"]["blur"][1]  # the tuned default of the colour mode and task family
    assert result.history.evaluations == list(range(1, iterations + 1))  # one denoiser call each
    assert result.history.evaluations[-1] <= 40
    sigmas = priors.sigmas
    assert sigmas[0] == pytest.approx(0.192) and sigmas[-1] == pytest.approx(SIGMA)
    ratios = [b / a for a, b in zip(sigmas, sigmas[1:])]
    assert ratios == pytest.approx([ratios[0]] * (iterations - 1))  # geometric


@pytest.mark.parametrize("channels, mode", [(1, "gray"), (3, "rgb")])
def test_tuned_defaults_follow_the_colour_mode_and_task_family(priors, channels, mode):
    from learnreg.restore.pnp import ADMM_TUNED, FB_TUNED, RED_TUNED, admm_defaults, fb_defaults, red_defaults

    for operator, fam in (("blur:gaussian:1.0", "blur"), ("sr:2:bicubic", "sr"), ("inpaint:random:0.5", "inpaint")):
        _, problem = _problem(operator, channels=channels)
        chosen = hqs_defaults(problem, {"lambda": 0.0, "iterations": 0})
        assert (chosen["lambda"], chosen["iterations"]) == HQS_TUNED[mode][fam]
        assert hqs_defaults(problem, {"lambda": 0.5, "iterations": 3}) == {"lambda": 0.5, "iterations": 3}
        chosen = admm_defaults(problem, {"lambda": 0.0, "sigma_denoiser": 0.0})
        assert (chosen["sigma_denoiser"], chosen["lambda"]) == ADMM_TUNED[mode][fam]
        assert admm_defaults(problem, {"lambda": 0.5, "sigma_denoiser": 0.02}) == {"lambda": 0.5, "sigma_denoiser": 0.02}
        chosen = fb_defaults(problem, {"step": 0.0, "sigma_denoiser": 0.0})
        assert (chosen["sigma_denoiser"], chosen["step"]) == FB_TUNED[mode][fam]
        assert fb_defaults(problem, {"step": 0.7, "sigma_denoiser": 0.02}) == {"step": 0.7, "sigma_denoiser": 0.02}
        # FISTA needs step <= 1: a tuned step is capped there, a given one is left to the solver's check
        assert fb_defaults(problem, {"step": 0.0, "sigma_denoiser": 0.0, "accelerated": True})["step"] == \
            min(FB_TUNED[mode][fam][1], 1.0)
        chosen = red_defaults(problem, {"lambda": 0.0, "sigma_denoiser": 0.0})
        assert (chosen["sigma_denoiser"], chosen["lambda"]) == RED_TUNED[mode][fam]
        assert red_defaults(problem, {"lambda": 0.5, "sigma_denoiser": 0.02}) == {"lambda": 0.5, "sigma_denoiser": 0.02}
    with pytest.raises(ValueError, match="lambda and iterations must be > 0"):
        restore(problem, "pnp-hqs", params={"prior": "test-recorder", "iterations": -1})


@pytest.mark.parametrize("sigma", [0.01, 0.09])
def test_admm_level_defaults_to_the_tuned_floor_or_the_noise(priors, sigma):
    from learnreg.restore.pnp import ADMM_TUNED

    _, problem = _problem("blur:gaussian:1.0", sigma=sigma)
    restore(problem, "pnp-admm", params={"prior": "test-recorder", "iterations": 2})
    level = max(sigma, ADMM_TUNED["gray"]["blur"][0])
    assert priors.sigmas == pytest.approx([level, level])
    restore(problem, "pnp-admm", params={"prior": "test-recorder", "iterations": 4, "sigma_denoiser": 0.03,
                                         "sigma_start": 0.12})  # continuation: geometric from 0.12 to 0.03
    assert priors.sigmas[2:] == pytest.approx([0.12, 0.12 * 0.25 ** (1 / 3), 0.12 * 0.25 ** (2 / 3), 0.03])


@pytest.mark.parametrize("sigma", [0.005, 0.09])
@pytest.mark.parametrize("method, table, second", [("pnp-fb", "FB_TUNED", "step"), ("red", "RED_TUNED", "lambda")])
def test_fb_and_red_default_to_the_tuned_values(priors, sigma, method, table, second):
    from learnreg.restore import pnp

    _, problem = _problem("blur:gaussian:1.0", sigma=sigma)
    level, value = getattr(pnp, table)["gray"]["blur"]
    restore(problem, method, params={"prior": "test-recorder", "iterations": 2})
    assert priors.sigmas == pytest.approx([max(sigma, level)] * 2)  # the tuned level is a floor under sigma_n
    restore(problem, method, params={"prior": "test-recorder", "iterations": 2, "sigma_denoiser": 0.003})
    assert priors.sigmas[2:] == pytest.approx([0.003] * 2)  # a given level is used as is
    tuned = restore(problem, method, params={"prior": "test-quadratic", "iterations": 5})
    given = restore(problem, method, params={"prior": "test-quadratic", "iterations": 5,
                                             "sigma_denoiser": max(sigma, level), second: value})
    torch.testing.assert_close(tuned.x, given.x, rtol=0, atol=0)
    if method == "red":
        with pytest.raises(ValueError, match="lambda must be > 0"):
            restore(problem, method, params={"prior": "test-quadratic", "lambda": -1})


def test_noise_free_problems_use_the_floor(priors):
    _, problem = _problem("sr:2:bicubic", sigma=0.0)
    result = restore(problem, "pnp-hqs", params={"prior": "test-recorder"})
    assert priors.sigmas[-1] == pytest.approx(0.004)
    assert bool(torch.isfinite(result.x).all())


@pytest.mark.parametrize("method", ["pnp-hqs", "pnp-admm", "pnp-fb", "red"])
@pytest.mark.parametrize("spec", ["sr:2:bicubic", "inpaint:random:0.5"])
def test_noise_free_output_is_pulled_onto_the_measurements(priors, method, spec):
    clean, problem = _problem(spec, sigma=0.0)
    base = {"prior": "test-quadratic", "iterations": 8}
    free = restore(problem, method, params={**base, "consistency": 0.0}, reference=clean)
    pulled = restore(problem, method, params=base, reference=clean)  # default consistency 1e4
    operator, y, tau = problem.operator, problem.y, 1e4
    # prox optimality of the last step: tau A^T (A x - y) + (x - x_free) = 0
    residual = tau * operator.adjoint(operator(pulled.x) - y) + pulled.x - free.x
    assert float(residual.abs().max()) < 1e-6 * float(free.x.abs().max())
    misfit = lambda x: float((operator(x) - y).norm())  # noqa: E731
    assert misfit(pulled.x) < misfit(free.x) / 100
    # the recorded PSNR of the last iteration is the returned image's
    expected = -10 * math.log10(float((pulled.x.clamp(0, 1) - clean).pow(2).mean()))
    assert pulled.history.psnr[-1] == pytest.approx(expected, abs=1e-9)
    assert pulled.history.psnr[:-1] == pytest.approx(free.history.psnr[:-1], abs=1e-9)


def test_noisy_problems_skip_the_consistency_step(priors):
    _, problem = _problem("sr:2:bicubic")  # sigma = SIGMA > 0
    a = restore(problem, "pnp-hqs", params={"prior": "test-quadratic", "consistency": 0.0}).x
    b = restore(problem, "pnp-hqs", params={"prior": "test-quadratic", "consistency": 1e4}).x
    assert torch.equal(a, b)
    _, free = _problem("sr:2:bicubic", sigma=0.0)
    with pytest.raises(ValueError, match="consistency must be >= 0"):
        restore(free, "pnp-hqs", params={"prior": "test-quadratic", "consistency": -1.0})


def test_unknown_prior_lists_the_available_ones(priors, empty_hub):
    _, problem = _problem("blur:gaussian:1.0")
    with pytest.raises(ValueError, match="unknown prior 'nope'; available priors: test-quadratic, test-recorder"):
        restore(problem, "pnp-hqs", params={"prior": "nope"})


def test_auto_without_shipped_weights_says_how_to_train_one(empty_hub):
    _, problem = _problem("blur:gaussian:1.0")
    with pytest.raises(ValueError, match=r"no learned denoiser is shipped yet; train one with `learnreg train"):
        restore(problem, "pnp-fb")


def _ship(directory, name, channels, noise_map=True):
    torch.manual_seed(0)  # nn.Module initialisation draws from the global generator; tests only
    network = DRUNet(DRUNetConfig.preset("tiny", channels=channels, noise_map=noise_map))
    hub.save_weights(network, directory, name, config=network_config(network), metadata={"recipe": "test"})


def test_auto_picks_a_shipped_gray_denoiser_for_rgb_through_opponent_colour(empty_hub):
    _ship(empty_hub, "drunet-gray", channels=1)
    _ship(empty_hub, "gradient-field", channels=3, noise_map=False)  # not a denoiser: never chosen
    assert available_priors() == ["drunet-gray"]
    clean, problem = _problem("blur:gaussian:1.0", channels=3, size=(24, 20))
    result = restore(Problem(problem.y.float(), problem.operator, sigma=SIGMA), "pnp-hqs")
    assert result.x.shape == clean.shape and bool(torch.isfinite(result.x).all())
    assert result.history.evaluations[-1] == 8
    with pytest.raises(ValueError, match="noise_map false"):
        restore(problem, "pnp-hqs", params={"prior": "gradient-field"})
    record = empty_hub / "drunet-gray.json"
    assert json.loads(record.read_text())["config"]["channels"] == 1
    result = restore(problem, "red", params={"prior": str(record), "iterations": 3})  # a record path, float64 input
    assert result.history.evaluations == [1, 2, 3]


def test_random_drunet_through_every_method(empty_hub):
    # Smoke test: a randomly initialised gray DRUNet, a tiled run, opponent colour; finite output.
    torch.manual_seed(0)
    register_prior("test-drunet", DRUNet(DRUNetConfig.preset("tiny", channels=1)).eval(), channels=1)
    try:
        _, problem = _problem("inpaint:random:0.3", channels=3, size=(40, 36))
        problem = Problem(problem.y.float(), problem.operator, sigma=SIGMA)
        for method in ("pnp-hqs", "pnp-admm", "pnp-fb", "red"):
            result = restore(problem, method, params={"prior": "test-drunet", "iterations": 3, "tile": 16})
            assert bool(torch.isfinite(result.x).all()) and result.history.evaluations[-1] == 3
    finally:
        unregister_prior("test-drunet")


def test_color_modes():
    assert choose_color("auto", 3, 3) == "native"
    assert choose_color("auto", None, 3) == "native"
    assert choose_color("auto", 1, 3) == "opponent"
    assert choose_color("auto", 1, 4) == "per_channel"
    assert choose_color("per_channel", 1, 3) == "per_channel"
    with pytest.raises(ValueError, match="cannot apply a 3-channel denoiser to 1-channel"):
        choose_color("auto", 3, 1)
    with pytest.raises(ValueError, match="unknown color mode"):
        choose_color("lab", 1, 3)


def test_bad_parameters_are_refused(priors):
    _, problem = _problem("blur:gaussian:1.0")
    with pytest.raises(ValueError, match="step must lie in"):
        restore(problem, "pnp-fb", params={"prior": "test-quadratic", "step": 2.5})
    with pytest.raises(ValueError, match="no parameter 'lambda'"):
        restore(problem, "pnp-fb", params={"prior": "test-quadratic", "lambda": 1.0})
    with pytest.raises(ValueError, match="lambda must be > 0"):
        restore(problem, "pnp-admm", params={"prior": "test-quadratic", "lambda": -1})
    with pytest.raises(ValueError, match="color"):
        restore(problem, "pnp-hqs", params={"prior": "test-quadratic", "color": "lab"})


def test_cli_passes_the_prior(priors, tmp_path, capsys):
    from learnreg.cli.main import main
    from learnreg.data.io import write_image

    clean, y, spec, out = (tmp_path / name for name in ("clean.png", "y.png", "y.json", "x.png"))
    write_image(clean, torch.rand(1, 1, 24, 24, generator=torch.Generator().manual_seed(0)))
    assert main(["degrade", str(clean), "--operator", "blur:gaussian:1.0", "--noise", "gaussian:0.02",
                 "--out", str(y), "--spec", str(spec)]) == 0
    assert main(["restore", str(y), "--spec", str(spec), "--method", "pnp-hqs", "--prior", "test-recorder",
                 "--out", str(out), "--quiet"]) == 0
    assert len(priors.sigmas) == 8 and out.is_file()
    assert main(["restore", str(y), "--spec", str(spec), "--method", "tv", "--prior", "test-recorder",
                 "--out", str(tmp_path / "tv.png"), "--quiet"]) == 2
    assert "--prior applies to methods with a learned prior" in capsys.readouterr().err


def test_dihedral_transforms_invert_and_ensemble_of_an_equivariant_denoiser_is_itself():
    x = torch.rand(1, 2, 5, 7, dtype=torch.float64)
    images = [dihedral(x, t) for t in range(8)]
    assert all(torch.equal(dihedral(im, t, inverse=True), x) for t, im in enumerate(images))
    assert len({tuple(im.flatten().tolist()) for im in images}) == 8  # all distinct
    # a pointwise denoiser commutes with every transform: the ensemble changes nothing
    register_prior("test-shrink", lambda v, s: v / (1 + 4 * s**2), replace=True)
    try:
        _, problem = _problem("identity", channels=1, size=(12, 10))
        one = restore(problem, "denoiser", params={"prior": "test-shrink"}).x
        eight = restore(problem, "denoiser", params={"prior": "test-shrink", "ensemble": 8}).x
        assert torch.allclose(one, eight, atol=1e-12)
        with pytest.raises(ValueError, match="ensemble must be one of 1, 2, 4, 8"):
            restore(problem, "denoiser", params={"prior": "test-shrink", "ensemble": 3})
    finally:
        unregister_prior("test-shrink")


def test_pnp_hqs_self_ensemble_is_on_by_default_and_turns_the_denoiser_input():
    seen = []

    def shift(v, sigma):  # not equivariant: records the orientation of the image it is given
        seen.append(tuple(v.shape[-2:]))
        return torch.roll(v, 1, dims=-1)

    register_prior("test-shift", shift, replace=True)
    register_prior("test-shrink", lambda v, s: v / (1 + 4 * s**2), replace=True)
    try:
        _, problem = _problem("blur:gaussian:1.0:5", size=(12, 10))
        params = {"prior": "test-shift", "iterations": 4, "lambda": 0.2}
        default = restore(problem, "pnp-hqs", params=params).x
        assert seen == [(12, 10), (10, 12), (12, 10), (10, 12)]  # calls 1 and 3 see the image turned by 90 degrees
        seen.clear()
        plain = restore(problem, "pnp-hqs", params={**params, "self_ensemble": False}).x
        assert seen == [(12, 10)] * 4 and not torch.allclose(default, plain)
        # an equivariant (pointwise) denoiser gives the same result either way
        shrink = {"prior": "test-shrink", "iterations": 4, "lambda": 0.2}
        assert torch.allclose(restore(problem, "pnp-hqs", params=shrink).x,
                              restore(problem, "pnp-hqs", params={**shrink, "self_ensemble": False}).x, atol=1e-12)
        # ensemble = 8: every call averages the whole group (8 evaluations per iteration)
        seen.clear()
        restore(problem, "pnp-hqs", params={**params, "ensemble": 8})
        assert len(seen) == 32
        assert torch.allclose(restore(problem, "pnp-hqs", params={**shrink, "ensemble": 8}).x,
                              restore(problem, "pnp-hqs", params=shrink).x, atol=1e-12)
    finally:
        unregister_prior("test-shift")
        unregister_prior("test-shrink")


def test_precision_bfloat16_rounds_the_denoiser_input_and_unknown_precision_is_refused():
    seen = []

    def recorder(v, sigma):
        seen.append(v.clone())
        return v

    register_prior("test-identity", recorder, replace=True)
    try:
        _, problem = _problem("identity", channels=1, size=(12, 10))
        x = restore(problem, "denoiser", params={"prior": "test-identity", "precision": "bfloat16"}).x
        rounded = problem.y.to(torch.bfloat16).to(problem.y.dtype)
        assert torch.equal(seen[-1], rounded) and torch.equal(x, rounded) and x.dtype == problem.y.dtype
        assert torch.equal(restore(problem, "denoiser", params={"prior": "test-identity"}).x, problem.y)
        with pytest.raises(ValueError, match="unknown precision 'half'; valid: float32, bfloat16"):
            restore(problem, "pnp-hqs", params={"prior": "test-identity", "precision": "half"})
    finally:
        unregister_prior("test-identity")
