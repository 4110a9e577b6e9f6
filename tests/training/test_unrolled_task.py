"""Task unrolled_hqs: the unrolled iteration is pnp-hqs's, gradients reach the denoiser, bad recipes name the fix."""

import pytest
import torch

from learnreg.physics.blur import Blur
from learnreg.physics.kernels import bicubic_kernel, gaussian_kernel
from learnreg.physics.superres import SuperResolution
from learnreg.regularizers.denoiser import DenoiserPrior
from learnreg.restore import restore
from learnreg.restore.methods import Problem
from learnreg.restore.pnp import register_prior, trained_schedule, unregister_prior
from learnreg.solvers.hqs import geometric_schedule
from learnreg.training import TrainConfig, read_log, train
from learnreg.training.config import ConfigError
from learnreg.training.registry import build_model, task_spec
from learnreg.training.tasks import TaskContext
from learnreg.training.unrolled import hqs_levels, unrolled_hqs

NET = {"channels": 1, "widths": [4, 8], "blocks": 1, "noise_map": True}


pytestmark = pytest.mark.usefixtures("one_thread")


def _recipe(tmp_path, options=None, *, model=None, channels=1, patch_size=16, **top):
    recipe = {
        "model": {"architecture": "drunet", "options": NET if model is None else model},
        "data": {"source": "deadleaves", "channels": channels, "patch_size": patch_size, "batch_size": 2,
                 "validation_size": 2, "pool_images": 4, "pool_image_size": 32},
        "optim": {"lr": 1e-3},
        "task": {"name": "unrolled_hqs", "options": {"iterations": 2, "blur_sigma_max": 1.0, **(options or {})}},
        "steps": 3, "checkpoint_every": 3, "validate_every": 3, "log_every": 1, "threads": 1,
        "tensorboard": False, "output_dir": str(tmp_path / "run"),
    }
    recipe.update(top)
    return TrainConfig.from_dict(recipe)


def _task(config):
    return task_spec(config.task.name).builder(config, TaskContext(batch_size=2, device=torch.device("cpu")))


def shrink(x, sigma):
    """prox of 2 ||x||^2 at tau = sigma^2: an exact, closed-form 'denoiser'."""
    sigma = sigma.view(-1, 1, 1, 1) if isinstance(sigma, torch.Tensor) else sigma
    return x / (1 + 4.0 * sigma**2)


def test_levels_are_the_geometric_schedule_per_sample():
    sigma_n = torch.tensor([0.004, 0.01, 0.3], dtype=torch.float64)
    levels = hqs_levels(sigma_n, iterations=5, sigma_start=0.192, sigma_end=0.018)
    for b, s in enumerate(sigma_n.tolist()):
        last = max(s, 0.018)
        expected = geometric_schedule(max(0.192, last), last, 5)
        torch.testing.assert_close(levels[:, b], torch.tensor(expected, dtype=torch.float64))
    assert hqs_levels(sigma_n, iterations=1, sigma_start=0.192, sigma_end=0.0).tolist() == [sigma_n.tolist()]


def soft(x, sigma):
    """prox of ||x||^2 / 2 at tau = sigma^2: a second closed-form 'denoiser' (the finisher)."""
    sigma = sigma.view(-1, 1, 1, 1) if isinstance(sigma, torch.Tensor) else sigma
    return x / (1 + sigma**2)


@pytest.mark.parametrize("finish", [0, 2])
@pytest.mark.parametrize("operator", [SuperResolution(bicubic_kernel(2), 2, (1, 16, 16)),
                                      Blur(gaussian_kernel(1.2), (1, 16, 16))], ids=["sr2", "blur"])
def test_unrolled_iteration_is_pnp_hqs(operator, finish):
    """The training iteration reproduces `pnp-hqs` (same levels, data steps, ensemble turns and finisher)."""
    from learnreg.restore.classical import initial_estimate

    g = torch.Generator().manual_seed(0)
    x = torch.rand(1, 1, 16, 16, generator=g, dtype=torch.float64)
    y = operator(x) + 0.02 * torch.randn(operator(x).shape, generator=g, dtype=torch.float64)
    problem = Problem(y, operator, sigma=0.02)
    register_prior("test-shrink", shrink, channels=1)
    register_prior("test-soft", soft, channels=1)
    try:
        params = {"prior": "test-shrink", "iterations": 4, "lambda": 0.2, "sigma_end": 0.03}
        if finish:
            params.update(finish_prior="test-soft", finish_iterations=finish)
        expected = restore(problem, "pnp-hqs", params=params).x
    finally:
        unregister_prior("test-shrink")
        unregister_prior("test-soft")
    got = unrolled_hqs(DenoiserPrior(shrink, self_ensemble=True), operator, y, initial_estimate(problem),
                       torch.tensor([0.02], dtype=torch.float64), iterations=4, lam=0.2, sigma_start=0.192,
                       sigma_end=0.03, finisher=DenoiserPrior(soft, self_ensemble=True) if finish else None,
                       finish_iterations=finish)
    torch.testing.assert_close(got.double(), expected.double(), atol=1e-6, rtol=1e-5)
    if finish:  # the finisher matters: without it the result differs
        plain = unrolled_hqs(DenoiserPrior(shrink, self_ensemble=True), operator, y, initial_estimate(problem),
                             torch.tensor([0.02], dtype=torch.float64), iterations=4, lam=0.2, sigma_start=0.192,
                             sigma_end=0.03)
        assert (plain - got).abs().max() > 1e-4


def test_loss_reaches_the_denoiser_and_batches_repeat(tmp_path):
    config = _recipe(tmp_path)
    task = _task(config)
    torch.manual_seed(0)
    model = build_model("drunet", config.model.options)
    first = task.make_batch(torch.Generator().manual_seed(3))
    again = task.make_batch(torch.Generator().manual_seed(3))
    assert torch.equal(first[0].y, again[0].y) and first[1] == again[1]
    loss = task.loss(model, first)
    assert loss.dim() == 0 and torch.isfinite(loss)
    loss.backward()
    assert any(p.grad is not None and bool(p.grad.abs().sum() > 0) for p in model.parameters())


def test_rgb_patches_through_a_gray_denoiser_and_three_steps(tmp_path):
    """Three steps on RGB patches; the shipped record brings its schedule to pnp-hqs."""
    config = _recipe(tmp_path, {"lam": 0.3, "iterations": 3}, channels=3, ship="tiny-unrolled",
                     ship_dir=str(tmp_path / "weights"))
    result = train(config)
    assert result.step == 3 and float(read_log(result.log_path)[-1]["step"]) == 3
    assert set(result.metrics) == {"psnr", "psnr_inpaint90", "psnr_blur2", "psnr_sr2"}
    assert 0 < result.metrics["psnr"] < 60
    record = str(tmp_path / "weights" / "tiny-unrolled.json")
    unset = {"prior": record, "iterations": 0, "lambda": 0.0, "sigma_end": 0.0}
    assert trained_schedule(unset) == {"iterations": 3, "lambda": 0.3}  # sigma_end 0 stays 0 (= sigma_n)
    assert trained_schedule({**unset, "iterations": 7}) == {"lambda": 0.3}  # what the user sets is kept
    assert trained_schedule({**unset, "prior": "auto"}) == {}
    operator = SuperResolution(bicubic_kernel(2), 2, (3, 16, 16))
    x = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    restored = restore(Problem(operator(x), operator, sigma=0.01), "pnp-hqs", params={"prior": record})
    assert restored.history.iterations == 3


def test_bad_recipes_name_the_fix(tmp_path):
    with pytest.raises(ConfigError, match="iterations: must lie in .1, 40."):
        _recipe(tmp_path, {"iterations": 0})
    with pytest.raises(ConfigError, match="lam: must be > 0"):
        _recipe(tmp_path, {"lam": 0})
    with pytest.raises(ConfigError, match="noise_max: noise levels are on the .0, 1. scale"):
        _recipe(tmp_path, {"noise_max": 50})
    with pytest.raises(ConfigError, match="sigma_start: .* lies below"):
        _recipe(tmp_path, {"sigma_start": 0.01, "sigma_end": 0.02})
    with pytest.raises(ValueError, match="patch_size 18 must be divisible by every SR factor"):
        _task(_recipe(tmp_path, patch_size=18))
    with pytest.raises(ValueError, match="noise_map: true"):
        _task(_recipe(tmp_path, model={**NET, "noise_map": False}))
    with pytest.raises(ValueError, match="cannot restore 1-channel patches"):
        _task(_recipe(tmp_path, model={**NET, "channels": 3}))
    with pytest.raises(ValueError, match="init_denoiser"):
        _task(_recipe(tmp_path, {"init_denoiser": "no-such-model"}))
    with pytest.raises(ConfigError, match=r"finish_iterations: must lie in \[1, iterations - 1 = 1\]"):
        _recipe(tmp_path, {"finish_denoiser": "drunet-gray", "finish_iterations": 2})
    with pytest.raises(ValueError, match="finish_denoiser"):
        _task(_recipe(tmp_path, {"finish_denoiser": "no-such-model"}))
    with pytest.raises(ValueError, match="'drunet-rgb' is not a 1-channel denoiser"):
        _task(_recipe(tmp_path, {"finish_denoiser": "drunet-rgb"}))


def test_finish_prior_errors_name_the_fix():
    operator = Blur(gaussian_kernel(1.0), (1, 16, 16))
    problem = Problem(operator(torch.rand(1, 1, 16, 16)), operator, sigma=0.01)
    register_prior("test-soft", soft, channels=1)
    try:
        with pytest.raises(ValueError, match=r"finish_iterations must lie in \[1, iterations = 4\], got 5"):
            restore(problem, "pnp-hqs", params={"prior": "test-soft", "iterations": 4, "finish_prior": "test-soft",
                                                "finish_iterations": 5})
        with pytest.raises(ValueError, match="unknown prior 'nope'"):
            restore(problem, "pnp-hqs", params={"prior": "test-soft", "finish_prior": "nope"})
    finally:
        unregister_prior("test-soft")


def test_killed_run_with_a_finisher_resumes_bitwise(tmp_path):
    options = {"iterations": 3, "finish_denoiser": "drunet-gray", "finish_iterations": 1}
    top = {"steps": 4, "checkpoint_every": 2, "validate_every": 0}
    whole = train(_recipe(tmp_path / "whole", options, **top), progress=False)
    config = _recipe(tmp_path / "killed", options, **top)
    train(config, progress=False, stop_after=3)  # killed after step 3; resumes from step 2
    resumed = train(config, resume=True, progress=False)
    assert resumed.completed
    first, second = whole.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(first[name], second[name]) for name in first)
