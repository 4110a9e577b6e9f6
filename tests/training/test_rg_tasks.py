"""Training tasks of regularizing gradients: pnpreg, mtdeq, rg (rg1 / deqgd / rerg) and the initialize hook."""

import dataclasses

import pytest
import torch

from learnreg.learned import hub
from learnreg.learned.nets import DRUNet, DRUNetConfig, RegularizerPair, RegularizerPairConfig, network_config
from learnreg.training import TrainConfig, read_log, train
from learnreg.training.config import ConfigError
from learnreg.training.registry import build_model, task_spec
from learnreg.training.rg import RGTask
from learnreg.training.rg_common import batch_operator
from learnreg.training.rg_losses import link_loss
from learnreg.training.tasks import TaskContext

NET = {"channels": 1, "widths": [4, 8], "blocks": 1}
PAIR = {"denoiser": NET, "gradient": NET}
DEQ = {"max_iter": 6, "anderson": 2, "validation_iterations": 3, "degradation": {"blur_sigma_max": 2.0}}


pytestmark = pytest.mark.usefixtures("one_thread")


def _recipe(tmp_path, task, options=None, *, architecture="rg_pair", model=None, **top):
    recipe = {
        "model": {"architecture": architecture, "options": PAIR if model is None else model},
        "data": {"source": "deadleaves", "channels": 1, "patch_size": 16, "batch_size": 3, "validation_size": 2,
                 "pool_images": 4, "pool_image_size": 32},
        "optim": {"lr": 1e-3},
        "task": {"name": task, "options": options or {}},
        "steps": 3, "checkpoint_every": 3, "validate_every": 0, "log_every": 1, "threads": 1,
        "tensorboard": False, "output_dir": str(tmp_path / "run"),
    }
    recipe.update(top)
    return TrainConfig.from_dict(recipe)


def _task(config):
    return task_spec(config.task.name).builder(config, TaskContext(batch_size=3, device=torch.device("cpu")))


def _model(config, seed=0):
    torch.manual_seed(seed)  # nn.Module initialisation draws from the global generator; tests only
    return build_model(config.model.architecture, config.model.options)


def _grads(module):
    """Whether any parameter of ``module`` received a non-zero gradient."""
    return any(p.grad is not None and bool(p.grad.abs().sum() > 0) for p in module.parameters())


def test_recipes_build_and_bad_ones_name_the_fix(tmp_path):
    config = _recipe(tmp_path, "rg", {"objective": "rerg"})
    assert config.task.options["eta_gd"] == 0.05 and config.task.options["eta_fb"] == 0.49
    assert _recipe(tmp_path, "pnpreg").task.options["lam"] == 0.004
    assert _recipe(tmp_path, "mtdeq").task.options["max_iter"] == 500  # the paper's defaults
    with pytest.raises(ConfigError, match="objective: must be one of"):
        _recipe(tmp_path, "rg", {"objective": "rg2"})
    with pytest.raises(ConfigError, match="degradation.*unknown keys"):
        _recipe(tmp_path, "mtdeq", {"degradation": {"blur": 2}})
    with pytest.raises(ConfigError, match="sigma_max: noise levels are on the .0, 1. scale"):
        _recipe(tmp_path, "pnpreg", {"sigma_max": 50})
    with pytest.raises(ValueError, match="set model.architecture: rg_pair"):
        _task(_recipe(tmp_path, "rg", architecture="drunet", model=NET))
    with pytest.raises(ValueError, match="patch_size 18 must be a multiple of 4"):
        _task(_recipe(tmp_path, "mtdeq", DEQ, data={"source": "deadleaves", "channels": 1, "patch_size": 18,
                                                    "pool_images": 2, "pool_image_size": 32}))
    with pytest.raises(ValueError, match="smaller than the blur kernel .25 pixels."):
        _task(_recipe(tmp_path, "mtdeq"))
    with pytest.raises(ValueError, match="runs in one process"):
        task_spec("rg").builder(config, TaskContext(batch_size=3, device=torch.device("cpu"), world_size=2))


def test_degraded_batches_are_deterministic_one_task_each(tmp_path):
    task = _task(_recipe(tmp_path, "mtdeq", DEQ, architecture="drunet", model=NET))
    kinds = set()
    for seed in range(12):
        batch, again = (task.make_batch(torch.Generator().manual_seed(seed)) for _ in range(2))
        for field in dataclasses.fields(batch):
            first, second = getattr(batch, field.name), getattr(again, field.name)
            assert torch.equal(first, second) if isinstance(first, torch.Tensor) else first == second
        kinds.add(batch.kind)
        operator = batch_operator(batch, task.degradation)  # rebuilt from the batch alone
        residual = (batch.y - operator(batch.clean)).flatten(1).pow(2).mean(1).sqrt()
        assert batch.y.shape[1:] == operator.out_shape and batch.x0.shape == batch.clean.shape
        assert torch.all(residual <= 1.3 * batch.sigma + 1e-6)  # noise of std sigma per sample
        assert len(set(batch.sigma.tolist())) == 3  # one operator, a noise level per sample
        if batch.kind == "completion":
            assert torch.all(batch.y[..., ~batch.mask] == 0)
            assert torch.all(batch.x0[..., ~batch.mask] == 0.5)  # pnpReG's start
    assert kinds == {"deblur", "super_resolution", "completion"}


def test_pnpreg_alternates_matched_and_link_only_steps(tmp_path):
    config = _recipe(tmp_path, "pnpreg")
    task, pair = _task(config), _model(config)
    batch = task.make_batch(torch.Generator().manual_seed(0))
    assert task.delta(0) == 1.0 and task.delta(1) == 0.0
    loss = task.loss(pair, batch)  # delta = 1 at sigma_0
    loss.backward()
    assert torch.isfinite(loss) and _grads(pair.denoiser) and _grads(pair.gradient)
    pair.zero_grad()
    loss = task.loss(pair, batch)  # delta = 0: the link term at the mismatched level, no L1
    expected = 0.004 * link_loss(pair.gradient, pair.denoiser, batch.noisy, batch.mismatched)
    assert torch.allclose(loss, expected, rtol=1e-6)
    loss.backward()
    assert _grads(pair.gradient) and _grads(pair.denoiser)
    assert task.state_dict() == {"steps": 2}

    frozen = _task(_recipe(tmp_path, "pnpreg", {"train_denoiser": False}))
    pair.zero_grad(set_to_none=True)
    frozen.loss(pair, batch).backward()
    assert _grads(pair.gradient) and all(p.grad is None for p in pair.denoiser.parameters())
    scores = task.validate(pair)
    assert set(scores) == {"psnr", "link"} and all(torch.isfinite(torch.tensor(list(scores.values()))))


@pytest.mark.parametrize("task_name, options, trained", [
    ("mtdeq", {}, ("denoiser",)),
    ("rg", {"objective": "rg1"}, ("denoiser", "gradient")),
    ("rg", {"objective": "deqgd"}, ("gradient",)),
    ("rg", {"objective": "rerg"}, ("denoiser", "gradient")),
])
def test_deq_losses_reach_the_right_networks(tmp_path, task_name, options, trained):
    config = _recipe(tmp_path, task_name, {**DEQ, **options})
    task, pair = _task(config), _model(config)
    loss = task.loss(pair, task.make_batch(torch.Generator().manual_seed(1)))
    assert loss.dim() == 0 and torch.isfinite(loss)
    loss.backward()
    for part in ("denoiser", "gradient"):
        assert _grads(getattr(pair, part)) == (part in trained), part
    scores = task.validate(pair)
    assert tuple(scores) == task.metric_names and scores["train_iterations_" + task.trained[0]] > 0
    assert f"psnr_{task.validated[0]}_inpaint90" in scores and 0 <= scores[f"deq_converged_{task.validated[0]}"] <= 1


def test_diverged_samples_are_left_out(tmp_path):
    config = _recipe(tmp_path, "rg", {**DEQ, "objective": "rerg"})
    task, pair = _task(config), _model(config)
    seed = next(s for s in range(20) if task.make_batch(torch.Generator().manual_seed(s)).kind == "deblur")
    batch = task.make_batch(torch.Generator().manual_seed(seed))
    y, x0 = batch.y.clone(), batch.x0.clone()
    y[0], x0[0] = 1e4, 1e4  # sample 0 leaves |x| <= 100 at once
    broken = dataclasses.replace(batch, y=y, x0=x0)
    loss = task.loss(pair, broken)
    assert torch.isfinite(loss)
    assert task.meter.summary()["train_diverged_fb"] == pytest.approx(1 / 3)
    rest = dataclasses.replace(batch, clean=batch.clean[1:], y=batch.y[1:], x0=batch.x0[1:], sigma=batch.sigma[1:])
    assert torch.allclose(loss, task.loss(pair, rest), rtol=1e-4)


@pytest.mark.parametrize("task_name, options, architecture, model", [
    ("pnpreg", {}, "rg_pair", PAIR),
    ("mtdeq", DEQ, "drunet", NET),
    ("rg", {**DEQ, "objective": "rg1"}, "rg_pair", PAIR),
    ("rg", {**DEQ, "objective": "deqgd"}, "rg_pair", PAIR),
    ("rg", {**DEQ, "objective": "rerg"}, "rg_pair", PAIR),
])
def test_three_steps_of_training(tmp_path, task_name, options, architecture, model):
    config = _recipe(tmp_path, task_name, options, architecture=architecture, model=model, ship="tiny",
                     ship_dir=str(tmp_path / "weights"))
    result = train(config, progress=False)
    assert result.completed and result.step == 3 and set(result.metrics) == set(_task(config).metric_names)
    assert [int(row["step"]) for row in read_log(result.log_path)] == [1, 2, 3]
    assert hub.read_record(result.shipped)["config"]["architecture"] == architecture


def _save(module, directory, name):
    return str(hub.save_weights(module, directory, name, config=network_config(module), metadata={"recipe": "t"}))


def test_pretrained_starts_load_on_fresh_runs_only(tmp_path, monkeypatch):
    torch.manual_seed(1)
    pair = RegularizerPair(RegularizerPairConfig.from_dict(PAIR))
    denoiser = DRUNet(DRUNetConfig(**NET))
    pair_path, denoiser_path = _save(pair, tmp_path, "pnpreg-pair"), _save(denoiser, tmp_path, "mtdeq-net")
    options = {**DEQ, "objective": "rerg", "init_gradient": pair_path, "init_denoiser": denoiser_path}
    fresh = train(_recipe(tmp_path, "rg", options), progress=False, stop_after=0)  # initialised, no step
    state = fresh.model.state_dict()
    assert all(torch.equal(state[f"gradient.{k}"], v) for k, v in pair.gradient.state_dict().items())
    assert all(torch.equal(state[f"denoiser.{k}"], v) for k, v in denoiser.state_dict().items())

    calls = []
    original = RGTask.initialize
    monkeypatch.setattr(RGTask, "initialize", lambda self, model: calls.append(1) or original(self, model))
    config = _recipe(tmp_path / "b", "rg", options, steps=4, checkpoint_every=2)
    whole = train(_recipe(tmp_path / "a", "rg", options, steps=4, checkpoint_every=2), progress=False)
    killed = train(config, progress=False, stop_after=3)  # last checkpoint: step 2
    resumed = train(config, resume=True, progress=False)
    assert calls == [1, 1]  # the resumed session starts from the checkpoint, not from the pretrained weights
    assert not killed.completed and resumed.completed
    assert all(torch.equal(a, b) for a, b in zip(whole.model.state_dict().values(),
                                                  resumed.model.state_dict().values()))
    assert resumed.metrics == whole.metrics  # the forward-solve statistics are checkpointed too


def test_pretrained_start_errors_name_the_fix(tmp_path):
    torch.manual_seed(2)
    wide = _save(DRUNet(DRUNetConfig(channels=1, widths=(4, 16), blocks=1)), tmp_path, "wide")
    gradient_only = _save(DRUNet(DRUNetConfig(**NET, noise_map=False)), tmp_path, "gradient-only")
    config = _recipe(tmp_path, "rg", {**DEQ, "init_denoiser": wide})
    with pytest.raises(ValueError, match="make model.options match it"):
        _task(config).initialize(_model(config))
    config = _recipe(tmp_path, "mtdeq", {**DEQ, "init_denoiser": gradient_only}, architecture="drunet", model=NET)
    with pytest.raises(ValueError, match=r"init_denoiser: '.*gradient-only.json' holds no denoiser \(a DRUNet with "
                                         r"noise map\); name an rg_pair or such a DRUNet"):
        _task(config).initialize(_model(config))
