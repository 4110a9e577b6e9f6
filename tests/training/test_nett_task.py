"""The NETT pre-training task: targets of each scheme, sample kinds, noise schedule, validation."""

import pytest
import torch

from learnreg.learned.nets import NETTUNet, NETTUNetConfig, UMSGNet, UMSGNetConfig
from learnreg.training import TrainConfig
from learnreg.training.config import ConfigError
from learnreg.training.nett import NETTTask, approximate, sample_kinds, training_targets
from learnreg.training.tasks import TaskContext


class StepSource:
    """Deterministic depth + guide patches: a step edge on a slope, (N, 4, P, P)."""

    description = "test steps"

    def __init__(self, size=16):
        self.size = size

    def sample(self, count, *, generator):
        offsets = torch.rand(count, generator=generator)
        ramp = torch.linspace(0.3, 0.6, self.size).view(1, 1, 1, -1)
        depth = ramp + 0.2 * (torch.arange(self.size) >= self.size // 2).float().view(1, 1, -1, 1)
        depth = depth + 0.1 * offsets.view(-1, 1, 1, 1)
        guide = torch.rand(count, 3, self.size, self.size, generator=generator)
        return torch.cat([depth.expand(count, 1, -1, -1), guide], dim=1)


def _config(**options):
    return TrainConfig.from_dict({
        "model": {"architecture": "nett_unet", "options": {"widths": [4, 8]}},
        "data": {"source": "depthscenes", "channels": 4, "patch_size": 16, "batch_size": 6,
                 "validation_size": 4},
        "task": {"name": "nett", "options": options},
        "steps": 10, "output_dir": "unused", "tensorboard": False,
    })


def _task(batch_size=6, **options):
    return NETTTask(_config(**options), TaskContext(batch_size=batch_size, device=torch.device("cpu")),
                    source=StepSource())


def test_targets_of_each_scheme_on_a_tiny_example():
    clean = torch.tensor([[[[0.0, 1.0], [2.0, 3.0]]]])
    approximation = torch.full_like(clean, 1.5)  # the box-downsampled block replicated
    assert torch.equal(approximate(torch.cat([clean] * 1), factor=2, kernel="box", approximation="box-pinv"),
                       approximation)
    # scheme 1: the artifact input - x, zero on a clean input
    assert torch.equal(training_targets("residual", approximation, clean), approximation - clean)
    assert torch.equal(training_targets("residual", clean, clean), torch.zeros_like(clean))
    # scheme 2: the ground truth, i.e. the identity on a clean input
    assert torch.equal(training_targets("identity", approximation, clean), clean)
    assert torch.equal(training_targets("identity", clean, clean), clean)


def test_kinds_in_equal_shares_and_batches_reproducible():
    kinds = sample_kinds(12, ("clean", "approximation", "interpolation"), generator=torch.Generator().manual_seed(0))
    assert sorted(kinds) == sorted(["clean"] * 4 + ["approximation"] * 4 + ["interpolation"] * 4)
    task = _task(interpolation=True, gt_noise=True)
    batch = task.make_batch(torch.Generator().manual_seed(1))
    again = task.make_batch(torch.Generator().manual_seed(1))
    assert torch.equal(batch.inputs, again.inputs) and batch.inputs.shape == (6, 1, 16, 16)
    clean_rows = [(batch.inputs[i] == batch.clean[i]).all() for i in range(6)]
    assert sum(bool(c) for c in clean_rows) == 2  # one third clean
    assert torch.equal(batch.targets, batch.clean)


def test_noisy_target_samples_and_noise_schedule():
    task = _task(input_noise=0.05, noisy_target=True, noise_decay=0.5, noise_decay_every=3)
    batch = task.make_batch(torch.Generator().manual_seed(2))
    noisy = ~batch.noise_mask
    assert int(noisy.sum()) == 2
    error = batch.inputs[noisy] - batch.clean[noisy]
    assert torch.allclose(batch.targets[noisy] - batch.clean[noisy], error / 10, atol=1e-7)
    assert [task.noise_level(step) for step in (0, 2, 3, 6)] == pytest.approx([0.05, 0.05, 0.025, 0.0125])
    model = NETTUNet(NETTUNetConfig(widths=(4, 8)))
    task.loss(model, batch)
    assert task.state_dict() == {"steps": 1}


def test_loss_one_step_refine_and_validation_with_a_guided_network():
    torch.manual_seed(0)
    task = _task(one_step=True, refine=True, approximation="bilinear")
    model = UMSGNet(UMSGNetConfig(width=4, levels=2))
    loss = task.loss(model, task.make_batch(torch.Generator().manual_seed(3)))
    loss.backward()
    assert torch.isfinite(loss) and all(p.grad is not None for p in model.parameters())
    scores = task.validate(model)
    assert set(scores) == {"rmse_approximation", "rmse_network"} and scores["rmse_approximation"] > 0


def test_bad_options_name_the_fix():
    with pytest.raises(ConfigError, match="noisy_target"):
        _config(noisy_target=True)
    with pytest.raises(ConfigError, match="box-pinv is the pseudo-inverse"):
        _config(kernel="nearest", approximation="box-pinv")
    with pytest.raises(ValueError, match="not a multiple of factor 4"):
        NETTTask(TrainConfig.from_dict({**_config().to_dict(), "data": {**_config().data.to_dict(), "patch_size": 18}}),
                 TaskContext(batch_size=2, device=torch.device("cpu")), source=StepSource())
