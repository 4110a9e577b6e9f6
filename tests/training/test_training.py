"""Training machinery: configs, exact resume, atomic checkpoints, data-parallel training.

The model and the fast data source are defined here and registered at import
(so spawned processes, which import this module, have them too).
"""

from __future__ import annotations

import dataclasses
import math
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from learnreg.training import (
    CheckpointError,
    ConfigError,
    TaskContext,
    TrainConfig,
    config_to_yaml,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    load_config,
    read_log,
    register_model,
    register_source,
    register_task,
    save_checkpoint,
    save_config,
    train,
)
from learnreg.training import checkpoint as checkpoint_module
from learnreg.training import distributed
from learnreg.training.__main__ import main as cli_main
from learnreg.training.optim import lr_factor
from learnreg.training.sources import DeadLeavesSource, FolderSource, MixedSource
from learnreg.training.tasks import DenoiseTask

HERE = Path(__file__).resolve().parent
TIMING = ("patches_per_s", "wall_s")


class TinyDenoiser(nn.Module):
    """Two convolutions with a dropout between them (to exercise the global RNG)."""

    def __init__(self, *, channels: int = 1, features: int = 4, dropout: float = 0.2):
        super().__init__()
        self.first = nn.Conv2d(channels + 1, features, 3, padding=1)
        self.dropout = nn.Dropout(dropout)
        self.last = nn.Conv2d(features, channels, 3, padding=1)

    def forward(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        level = sigma.view(-1, 1, 1, 1).expand(-1, 1, *x.shape[-2:])
        return x - self.last(self.dropout(torch.relu(self.first(torch.cat([x, level], dim=1)))))


class SmoothSource:
    """Random smooth patches, much faster than dead leaves (for the multi-process tests)."""

    def __init__(self, config):
        self.size, self.channels = config.patch_size, config.channels
        self.description = "smooth random test patches"

    def sample(self, count, *, generator):
        coarse = torch.rand(count, self.channels, 4, 4, generator=generator)
        return F.interpolate(coarse, size=self.size, mode="bilinear", align_corners=False)


register_model("test_tiny", TinyDenoiser, replace=True)
register_source("test_smooth", SmoothSource, replace=True)


def tiny_config(output_dir, **changes) -> TrainConfig:
    data = {"source": "deadleaves", "patch_size": 16, "channels": 1, "batch_size": 4,
            "validation_size": 4, "deadleaves": {"supersample": 1}}
    data.update(changes.pop("data", {}))
    recipe = {
        "model": {"architecture": "test_tiny", "options": {"features": 4}},
        "data": data,
        "optim": {"lr": 3e-3, "grad_clip": 1.0, "warmup_steps": 2},
        "task": {"name": "denoise", "options": {"sigma_max": "50/255", "validation_sigmas": ["25/255"]}},
        "steps": 20, "checkpoint_every": 5, "validate_every": 10, "log_every": 3,
        "seed": 7, "output_dir": str(output_dir), "threads": 1, "tensorboard": False,
    }
    recipe.update(changes)
    return TrainConfig.from_dict(recipe)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# -- configs ---------------------------------------------------------------------------------
def test_config_round_trips_through_yaml_and_json(tmp_path):
    config = tiny_config(tmp_path / "run", optim={"lr": 1e-3, "schedule": "step", "step_size": 5})
    for name in ("recipe.yaml", "recipe.json"):
        path = save_config(config, tmp_path / name)
        assert load_config(path) == config
    assert TrainConfig.from_dict(config.to_dict()) == config
    assert config.task.options["sigma_max"] == pytest.approx(50 / 255)
    assert config.optim.betas == (0.9, 0.999)


def test_yaml_reads_exponents_and_fractions(tmp_path):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("model: {architecture: dncnn, options: {channels: 1, depth: 3}}\n"
                      "optim: {lr: 2e-4}\n"
                      "task: {name: denoise, options: {sigma_min: 0, sigma_max: 25/255}}\n")
    config = load_config(recipe)
    assert config.optim.lr == 2e-4
    assert config.task.options["sigma_max"] == pytest.approx(25 / 255)
    assert "lr: 0.0002" in config_to_yaml(config)


@pytest.mark.parametrize("changes, message", [
    ({"optim": {"lr_rate": 1e-3}}, r"unknown key 'lr_rate' in optim; valid keys: optimizer, lr, .*min_lr; did you mean 'lr'\?"),
    ({"stepz": 3}, r"unknown key 'stepz' at the top level.*valid keys: model, data"),
    ({"optim": {"lr": -1e-3}}, r"optim.lr: must be > 0, got -0.001"),
    ({"task": {"options": {"sigma_max": 25}}},
     r"task.options.sigma_max: 25 is outside \[0, 1\]: noise levels are on the \[0,1\] scale: use 25/255 ≈ 0.098, not 25"),
    ({"steps": "ten"}, r"steps: expected an integer, got 'ten'"),
    ({"optim": {"optimizer": "sgd"}}, r"optim.optimizer: must be one of 'adam', 'adamw'; got 'sgd'"),
    ({"optim": {"schedule": "step"}}, r"optim.step_size: the 'step' schedule needs step_size >= 1"),
    ({"model": {"architecture": "resnet"}}, r"model.architecture: unknown architecture 'resnet'; valid: test_tiny,.*dncnn"),
    ({"model": {"architecture": "dncnn", "options": {"depthh": 3}}}, r"model.options: .*unknown keys \['depthh'\]"),
    ({"data": {"source": "folder"}}, r"data.path: source 'folder' needs the image folder"),
    ({"data": {"source": "imagenet"}}, r"data.source: unknown data source 'imagenet'; valid: deadleaves, folder, mixed"),
    ({"task": {"name": "deblur"}}, r"task.name: unknown task 'deblur'; valid: denoise"),
    ({"task": {"options": {"loss": "l3"}}}, r"task.options.loss: must be one of 'l1', 'l2'"),
    ({"plugins": ["no_such_module_xyz"]}, r"plugins: cannot import 'no_such_module_xyz'"),
    ({"precision": "fp16"}, r"precision: must be one of 'fp32', 'bf16'; got 'fp16'"),
    ({"task": {"options": {"sigma_power": 0}}}, r"task.options.sigma_power: must lie in \(0, 10\] \(1 = uniform"),
])
def test_bad_configs_name_the_key_and_the_fix(tmp_path, changes, message):
    with pytest.raises(ConfigError, match=message):
        tiny_config(tmp_path, **changes)


def test_missing_model_and_bad_file_are_reported_with_the_path(tmp_path):
    with pytest.raises(ConfigError, match="missing key 'model' at the top level"):
        TrainConfig.from_dict({"steps": 3})
    recipe = tmp_path / "bad.yaml"
    recipe.write_text("model: {architecture: dncnn}\noptim: {lr: 0}\n")
    with pytest.raises(ConfigError, match=rf"{recipe}: optim.lr: must be > 0"):
        load_config(recipe)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_config(tmp_path / "missing.yaml")


def test_recipe_format_example_in_readme_is_valid(tmp_path):
    text = (HERE.parents[1] / "recipes" / "README.md").read_text(encoding="utf-8")
    example = text.split("```yaml\n", 1)[1].split("```", 1)[0]
    (tmp_path / "example.yaml").write_text(example)
    config = load_config(tmp_path / "example.yaml")
    assert config.model.architecture == "drunet" and config.ship == "drunet_small_deadleaves"
    defaults = TrainConfig.from_dict({"model": {"architecture": "drunet", "options": config.model.options}})
    differences = {key for key, value in config.to_dict().items() if defaults.to_dict()[key] != value}
    assert differences == {"description", "steps", "output_dir", "ship"}  # the rest shows the defaults


def test_learning_rate_schedules():
    config = tiny_config("unused", optim={"lr": 1e-2, "warmup_steps": 4, "min_lr": 1e-3}).optim
    factors = [lr_factor(step, config, steps=20) for step in range(20)]
    assert factors[:4] == [0.25, 0.5, 0.75, 1.0]
    assert factors[-1] == pytest.approx(0.1) and all(a >= b for a, b in zip(factors[3:], factors[4:]))
    step = tiny_config("unused", optim={"schedule": "step", "step_size": 3, "gamma": 0.5}).optim
    assert [lr_factor(k, step, steps=20) for k in range(1, 8)] == [1, 1, 0.5, 0.5, 0.5, 0.25, 0.25]


# -- exact resume ------------------------------------------------------------------------------
def _parameters(model):
    return {name: value.detach().clone() for name, value in model.state_dict().items()}


def _deterministic_columns(rows):
    return [{key: value for key, value in row.items() if key not in TIMING} for row in rows]


def test_killed_run_resumes_bitwise_identical(tmp_path):
    caller_state = torch.get_rng_state()
    whole = train(tiny_config(tmp_path / "whole"), progress=False)
    assert torch.equal(torch.get_rng_state(), caller_state), "train() must not touch the global RNG"
    assert whole.completed and whole.step == 20 and set(whole.metrics) == {"psnr", "psnr_s25"}

    config = tiny_config(tmp_path / "killed")
    killed = train(config, progress=False, stop_after=8)  # dies after step 8; last checkpoint: 5
    assert not killed.completed and killed.step == 8
    assert latest_checkpoint(tmp_path / "killed" / "checkpoints").name == "step_00000005.pt"
    with pytest.raises(FileExistsError, match="pass resume=True"):
        train(config, progress=False)
    resumed = train(config, resume=True, progress=False)
    assert resumed.completed and resumed.step == 20

    first, second = _parameters(whole.model), _parameters(resumed.model)
    assert first.keys() == second.keys()
    assert all(torch.equal(first[name], second[name]) for name in first)
    assert resumed.metrics == whole.metrics
    rows = read_log(whole.log_path)
    assert [int(row["step"]) for row in rows] == [3, 5, 6, 9, 10, 12, 15, 18, 20]
    assert _deterministic_columns(read_log(resumed.log_path)) == _deterministic_columns(rows)
    assert rows[4]["psnr"] and not rows[3]["psnr"]  # validation at step 10 only (and 20)
    # the last `keep_checkpoints` are kept
    assert [path.name for path in list_checkpoints(tmp_path / "killed" / "checkpoints")] == \
        ["step_00000010.pt", "step_00000015.pt", "step_00000020.pt"]


def test_bf16_channels_last_run_resumes_bitwise_and_ships_plain_weights(tmp_path):
    from learnreg.learned.hub import load

    fast = {"precision": "bf16", "channels_last": True, "steps": 10,
            "model": {"architecture": "dncnn", "options": {"channels": 1, "depth": 3, "features": 8}}}
    whole = train(tiny_config(tmp_path / "whole", ship="fast", ship_dir=str(tmp_path / "w"), **fast),
                  progress=False)
    weight = next(value for value in whole.model.state_dict().values() if value.dim() == 4 and value.shape[1] > 1)
    assert weight.is_contiguous(memory_format=torch.channels_last) and not weight.is_contiguous()
    config = tiny_config(tmp_path / "killed", **fast)
    train(config, progress=False, stop_after=7)
    resumed = train(config, resume=True, progress=False)
    first, second = _parameters(whole.model), _parameters(resumed.model)
    assert all(torch.equal(first[name], second[name]) for name in first)
    shipped = load(whole.shipped)  # stored contiguous, loads into a plain network
    assert all(torch.equal(a, b) for a, b in zip(shipped.state_dict().values(), first.values()))

    # bf16 changes the numbers a little, not the training: close to the float32 run after 10 steps
    exact = train(tiny_config(tmp_path / "fp32", **{**fast, "precision": "fp32", "channels_last": False}),
                  progress=False)
    assert abs(exact.metrics["psnr"] - whole.metrics["psnr"]) < 0.5
    layout = train(tiny_config(tmp_path / "cl", **{**fast, "precision": "fp32"}), progress=False)
    assert layout.metrics["psnr"] == pytest.approx(exact.metrics["psnr"], abs=1e-3)


def test_checkpoints_from_before_the_precision_keys_still_resume(tmp_path):
    config = tiny_config(tmp_path / "run", steps=10)
    train(config, progress=False, stop_after=5)
    path = latest_checkpoint(tmp_path / "run" / "checkpoints")
    state = load_checkpoint(path)
    for key in checkpoint_module.ADDED_KEYS:
        del state["config"][key]  # as written by an older learnreg
    save_checkpoint(state, path.parent, step=5, keep=3)
    assert train(config, resume=True, progress=False).completed
    with pytest.raises(ConfigError, match=r"precision: 'fp32' -> 'bf16'"):
        train(tiny_config(tmp_path / "run", steps=10, precision="bf16"), resume=True, progress=False)


def test_batches_drawn_by_worker_processes_are_the_same(tmp_path):
    config = tiny_config(tmp_path / "main", steps=4, checkpoint_every=4, data={"source": "test_smooth"})
    here = train(config, progress=False)
    workers = train(tiny_config(tmp_path / "workers", steps=4, checkpoint_every=4,
                                data={"source": "test_smooth", "workers": 1}), progress=False)
    assert all(torch.equal(a, b) for a, b in zip(here.model.state_dict().values(),
                                                  workers.model.state_dict().values()))


def test_resume_refuses_a_changed_recipe_and_skips_a_corrupt_checkpoint(tmp_path, caplog):
    config = tiny_config(tmp_path / "run", steps=10)
    train(config, progress=False)
    with pytest.raises(ConfigError, match=r"recipe changed since \(optim.lr: 0.003 -> 0.001\)"):
        train(tiny_config(tmp_path / "run", steps=10, optim={"lr": 1e-3, "warmup_steps": 2,
                                                               "grad_clip": 1.0}), resume=True, progress=False)
    newest = latest_checkpoint(tmp_path / "run" / "checkpoints")
    newest.write_bytes(newest.read_bytes()[:100])  # a truncated file, e.g. after a full disk
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(newest)
    result = train(config, resume=True, progress=False)  # continues from step 5
    assert result.completed and "skipping unreadable checkpoint" in caplog.text


class ShiftTask:
    """A minimal custom task: learn to undo a constant shift (shows the plug-in path)."""

    metric_names = ("error",)
    training_data = "uniform noise"

    def __init__(self, config, context):
        self.shift = config.task.parsed_options().shift
        self.batch_size = context.batch_size

    def make_batch(self, generator):
        clean = torch.rand(self.batch_size, 1, 8, 8, generator=generator)
        return {"input": clean + self.shift, "target": clean}

    def loss(self, model, batch):
        sigma = torch.zeros(batch["input"].shape[0], device=batch["input"].device)
        return (model(batch["input"], sigma) - batch["target"]).square().mean()

    def validate(self, model):
        with torch.no_grad():
            return {"error": float(self.loss(model, self.make_batch(torch.Generator().manual_seed(0))))}


@dataclasses.dataclass(frozen=True)
class ShiftOptions:
    shift: float = 0.1


def test_a_registered_task_plugs_into_the_loop(tmp_path):
    register_task("test_shift", ShiftTask, options=ShiftOptions, replace=True)
    config = tiny_config(tmp_path / "run", steps=3, task={"name": "test_shift", "options": {"shift": 0.2}})
    assert config.task.options == {"shift": 0.2}
    result = train(config, progress=False)
    assert list(result.metrics) == ["error"] and read_log(result.log_path)[-1]["error"]
    with pytest.raises(ConfigError, match="unexpected keyword argument 'shiftt'"):
        tiny_config(tmp_path, task={"name": "test_shift", "options": {"shiftt": 0.2}})


def test_a_diverging_run_stops_with_a_clear_error(tmp_path):
    register_model("test_nan", lambda: _NanModel(), replace=True)
    with pytest.raises(FloatingPointError, match="training loss is nan at step 3; lower optim.lr"):
        train(tiny_config(tmp_path, model={"architecture": "test_nan"}), progress=False)
    assert latest_checkpoint(tmp_path / "checkpoints") is None  # no checkpoint of broken weights


class _NanModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, x, sigma):
        return x * self.scale * float("nan")


# -- checkpoints -------------------------------------------------------------------------------
def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    directory = tmp_path / "checkpoints"
    good = {"format": checkpoint_module.CHECKPOINT_FORMAT, "step": 1, "weights": torch.arange(4.0)}
    save_checkpoint(good, directory, step=1)

    def failing_save(state, path):
        Path(path).write_bytes(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint_module.torch, "save", failing_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint({**good, "step": 2}, directory, step=2, keep=1)
    monkeypatch.undo()
    assert [path.name for path in directory.iterdir()] == ["step_00000001.pt"]  # no temporary left
    assert latest_checkpoint(directory).name == "step_00000001.pt"
    assert torch.equal(load_checkpoint(directory / "step_00000001.pt")["weights"], torch.arange(4.0))


def test_checkpoint_refuses_objects_weights_only_cannot_load(tmp_path):
    with pytest.raises(TypeError, match=r"state\['rng'\] is a Generator"):
        save_checkpoint({"format": 1, "rng": torch.Generator()}, tmp_path, step=0)
    assert latest_checkpoint(tmp_path) is None


# -- task and sources --------------------------------------------------------------------------
def test_denoise_task_batches_and_fixed_validation(tmp_path):
    config = tiny_config(tmp_path, task={"options": {"sigma_min": "10/255", "sigma_max": "20/255"}})
    task = DenoiseTask(config, TaskContext(batch_size=3, device=torch.device("cpu")))
    batch = task.make_batch(torch.Generator().manual_seed(0))
    again = task.make_batch(torch.Generator().manual_seed(0))
    assert batch.noisy.shape == (3, 1, 16, 16) and torch.equal(batch.noisy, again.noisy)
    assert ((batch.sigma >= 10 / 255) & (batch.sigma <= 20 / 255)).all()
    model = TinyDenoiser(dropout=0.0)
    scores = task.validate(model)
    task.make_batch(torch.Generator().manual_seed(1))  # training draws do not move the validation set
    other = DenoiseTask(config, TaskContext(batch_size=2, device=torch.device("cpu")))
    assert other.validate(model) == pytest.approx(scores) and set(scores) == set(task.metric_names)
    assert model.training


def test_sigma_power_skews_the_levels_towards_sigma_min(tmp_path):
    levels = {}
    for power in (1, 2):
        config = tiny_config(tmp_path, task={"options": {"sigma_min": "10/255", "sigma_max": "50/255",
                                                         "sigma_power": power}})
        task = DenoiseTask(config, TaskContext(batch_size=4000, device=torch.device("cpu")))
        generator = torch.Generator().manual_seed(0)
        levels[power] = task.make_batch(generator).sigma * 255
        # u ~ U[0, 1] drawn the same way for every power: sigma - sigma_min is (sigma_1 - sigma_min)^p, rescaled
        assert ((levels[power] >= 10 - 1e-4) & (levels[power] <= 50 + 1e-4)).all()
    assert torch.allclose(levels[2] - 10, (levels[1] - 10) ** 2 / 40, atol=1e-3)
    assert float((levels[1] < 20).float().mean()) == pytest.approx(0.25, abs=0.03)  # uniform: P = 10/40
    assert float((levels[2] < 20).float().mean()) == pytest.approx(0.5, abs=0.03)  # u^2 < 1/4 iff u < 1/2


def test_init_denoiser_starts_a_fresh_run_from_saved_weights(tmp_path):
    from learnreg import hub
    from learnreg.learned.nets import DRUNet, DRUNetConfig, network_config

    net = {"channels": 1, "widths": [4, 8], "blocks": 1}
    torch.manual_seed(3)
    source = DRUNet(DRUNetConfig(**net))
    path = hub.save_weights(source, tmp_path, "start", config=network_config(source), metadata={"recipe": "t"})
    model = {"architecture": "drunet", "options": net}
    task = {"options": {"init_denoiser": str(path), "validation_sigmas": ["25/255"]}}
    fresh = train(tiny_config(tmp_path / "a", model=model, task=task), progress=False, stop_after=0)
    assert all(torch.equal(a, b) for a, b in zip(fresh.model.state_dict().values(), source.state_dict().values()))
    wrong = {"architecture": "drunet", "options": {**net, "widths": [4, 16]}}
    with pytest.raises(ValueError, match="make model.options match it"):
        train(tiny_config(tmp_path / "b", model=wrong, task=task), progress=False, stop_after=0)
    typo = {"options": {"init_denoiser": "drunet-grey", "validation_sigmas": ["25/255"]}}
    with pytest.raises(ValueError, match=r"task.options.init_denoiser: unknown model 'drunet-grey'; available in "
                                         r".*drunet-gray"):
        DenoiseTask(tiny_config(tmp_path / "c", model=model, task=typo), TaskContext(batch_size=2, device="cpu"),
                    source=None)


def test_folder_and_mixed_sources_are_deterministic(tmp_path):
    from learnreg.data.io import write_image

    for index in range(2):
        write_image(tmp_path / f"image{index}.png", torch.rand(1, 3, 24, 20, generator=torch.Generator().manual_seed(index)))
    folder = FolderSource(str(tmp_path), patch_size=8, channels=1)
    mixed = MixedSource(folder, DeadLeavesSource(patch_size=8, channels=1, options={"supersample": 1}),
                        fraction=0.5)
    for source in (folder, mixed):
        first = source.sample(5, generator=torch.Generator().manual_seed(3))
        second = source.sample(5, generator=torch.Generator().manual_seed(3))
        assert first.shape == (5, 1, 8, 8) and torch.equal(first, second)


# -- export and command line -------------------------------------------------------------------
def test_ship_exports_hub_weights_with_metadata(tmp_path):
    from learnreg.learned.hub import load

    recipe = tmp_path / "recipe.yaml"
    config = tiny_config(tmp_path / "run", steps=2, ship="tiny_dncnn", ship_dir=str(tmp_path / "weights"),
                         model={"architecture": "dncnn", "options": {"channels": 1, "depth": 2, "features": 4}})
    save_config(config, recipe)
    result = train(recipe, progress=False)
    record = __import__("json").loads(result.shipped.read_text())
    assert record["recipe"] == str(recipe) and record["training"]["steps"] == 2
    assert record["quality"]["validation"] == result.metrics and "dead leaves" in record["training_data"]
    network = load(result.shipped)
    assert all(torch.equal(a, b) for a, b in zip(network.state_dict().values(), result.model.state_dict().values()))
    with pytest.raises(ConfigError, match="only networks of learnreg.learned.nets can be exported"):
        train(tiny_config(tmp_path / "other", ship="tiny"), progress=False)


def test_command_line_overrides_steps_and_output(tmp_path, capsys):
    recipe = save_config(tiny_config(tmp_path / "ignored"), tmp_path / "recipe.yaml")
    assert cli_main([str(recipe), "--steps", "3", "--output-dir", str(tmp_path / "out"), "--quiet"]) == 0
    assert [row["step"] for row in read_log(tmp_path / "out" / "log.csv")] == ["3"]
    assert cli_main([str(tmp_path / "missing.yaml")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_a_steps_override_is_a_trial_that_keeps_shipped_weights(tmp_path, capsys):
    weights = tmp_path / "weights"
    model = {"architecture": "dncnn", "options": {"channels": 1, "depth": 2, "features": 4}}
    recipe = save_config(tiny_config(tmp_path / "run", steps=4, ship="tiny", ship_dir=str(weights), model=model),
                         tmp_path / "recipe.yaml")
    assert cli_main([str(recipe), "--steps", "3", "--output-dir", str(tmp_path / "trial"), "--quiet"]) == 0
    assert not (weights / "tiny.json").exists()
    assert "not replaced; pass --ship" in capsys.readouterr().err
    assert cli_main([str(recipe), "--steps", "3", "--output-dir", str(tmp_path / "forced"), "--quiet", "--ship"]) == 0
    assert __import__("json").loads((weights / "tiny.json").read_text())["training"]["steps"] == 3
    assert cli_main([str(recipe), "--output-dir", str(tmp_path / "full"), "--quiet"]) == 0  # the recipe as written
    assert __import__("json").loads((weights / "tiny.json").read_text())["training"]["steps"] == 4
    assert cli_main([str(recipe), "--ship", "--no-ship"]) == 2
    assert "contradict" in capsys.readouterr().err


# -- data parallel -----------------------------------------------------------------------------
def _ddp_worker(rank: int, port: int, directory: str) -> None:
    """One of two processes: DDP gradients on half a batch, then training and exact resume."""
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2",
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    import torch.distributed as dist

    dist.init_process_group("gloo", rank=rank, world_size=2)
    context = distributed.environment_context()
    torch.manual_seed(0)  # this process's own global state, in a test
    model = distributed.wrap_model(TinyDenoiser(dropout=0.0), context, device=torch.device("cpu"))
    batch = torch.rand(4, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    sigma = torch.full((4,), 0.1)
    half = slice(2 * rank, 2 * rank + 2)
    loss = (model(batch[half] + 0.1, sigma[half]) - batch[half]).abs().mean()
    loss.backward()
    if rank == 0:
        torch.save({name: p.grad for name, p in model.module.named_parameters()}, f"{directory}/ddp_grads.pt")

    recipe = {"steps": 6, "checkpoint_every": 2, "data": {"source": "test_smooth"}}
    whole = train(tiny_config(f"{directory}/whole", **recipe), progress=False)
    config = tiny_config(f"{directory}/killed", **recipe)
    train(config, progress=False, stop_after=3)  # killed after step 3; resumes from step 2
    resumed = train(config, resume=True, progress=False)
    for name, result in (("whole", whole), ("resumed", resumed)):
        torch.save(result.model.state_dict(), f"{directory}/{name}_rank{rank}.pt")
    dist.destroy_process_group()


def test_data_parallel_training_two_processes(tmp_path):
    torch.multiprocessing.start_processes(_ddp_worker, args=(free_port(), str(tmp_path)), nprocs=2,
                                          join=True, start_method="spawn")
    # DDP averages the gradients of the two halves: the gradient of the whole batch
    torch.manual_seed(0)
    model = TinyDenoiser(dropout=0.0)
    batch = torch.rand(4, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    (model(batch + 0.1, torch.full((4,), 0.1)) - batch).abs().mean().backward()
    grads = torch.load(tmp_path / "ddp_grads.pt", weights_only=True)
    for name, parameter in model.named_parameters():
        torch.testing.assert_close(grads[name], parameter.grad, rtol=0, atol=1e-6)

    states = {name: torch.load(tmp_path / f"{name}.pt", weights_only=True)
              for name in ("whole_rank0", "whole_rank1", "resumed_rank0", "resumed_rank1")}
    initial = TinyDenoiser()
    for key, value in states["whole_rank0"].items():
        assert all(torch.equal(value, state[key]) for state in states.values())
    assert not torch.equal(states["whole_rank0"]["first.weight"], initial.state_dict()["first.weight"])
    rows = read_log(tmp_path / "whole" / "log.csv")
    assert [row["step"] for row in rows] == ["2", "3", "4", "6"] and math.isfinite(float(rows[-1]["loss"]))
    assert _deterministic_columns(read_log(tmp_path / "killed" / "log.csv")) == _deterministic_columns(rows)
    assert len(load_checkpoint(tmp_path / "whole" / "checkpoints" / "step_00000006.pt")["rng"]) == 2


def test_torchrun_entry_point(tmp_path):
    recipe = save_config(tiny_config(tmp_path / "run", steps=3, checkpoint_every=2,
                                     data={"source": "test_smooth"}, plugins=["test_training"]),
                         tmp_path / "recipe.yaml")
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
                   "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
               "--master_addr=127.0.0.1", f"--master_port={free_port()}",
               "-m", "learnreg.training", str(recipe), "--quiet"]
    finished = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=120)
    assert finished.returncode == 0, finished.stderr[-3000:]
    assert [row["step"] for row in read_log(tmp_path / "run" / "log.csv")] == ["2", "3"]
    assert load_checkpoint(tmp_path / "run" / "checkpoints" / "step_00000003.pt")["world_size"] == 2
