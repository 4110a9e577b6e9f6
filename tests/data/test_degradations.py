"""Multi-task degradation sampler."""

from __future__ import annotations

import collections

import pytest
import torch

from learnreg.data.degradations import MultiTaskConfig, MultiTaskDegradation, Task


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture
def physics():
    """Skip until the operators this sampler builds exist (learnreg.physics)."""
    for module in ("blur", "superres", "simple", "kernels"):
        pytest.importorskip(f"learnreg.physics.{module}")


def test_task_distribution_matches_the_paper():
    sampler = MultiTaskDegradation()
    generator = _generator(0)
    tasks = [sampler.sample_task(generator=generator) for _ in range(3000)]
    counts = collections.Counter(task.kind for task in tasks)
    # 1/3 each; 3000 draws: std of a count is about 26, allow 5 std
    assert all(abs(counts[kind] - 1000) < 130 for kind in ("deblur", "super_resolution", "completion"))
    by_kind = collections.defaultdict(list)
    for task in tasks:
        by_kind[task.kind].append(task)
    assert all(0 <= t.parameter <= 4 for t in by_kind["deblur"])
    assert {t.parameter for t in by_kind["super_resolution"]} == {1.0, 2.0, 4.0}
    assert {t.kernel for t in by_kind["super_resolution"]} == {"bicubic", "gaussian"}
    assert all(0 <= t.parameter <= 0.99 for t in by_kind["completion"])
    assert max(t.parameter for t in by_kind["completion"]) > 0.9
    sigmas = torch.tensor([t.sigma for t in tasks])
    assert sigmas.min() >= 0 and sigmas.max() <= 50 / 255 and sigmas.max() > 45 / 255
    assert "noise sigma" in str(tasks[0])


def test_tasks_are_reproducible():
    first = [MultiTaskDegradation().sample_task(generator=_generator(4)) for _ in range(2)]
    assert first[0] == first[1]


def test_config_round_trip_and_errors():
    config = MultiTaskConfig(sr_factors=(2, 3), sr_kernels=("bicubic",))
    assert MultiTaskConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="summing to 1"):
        MultiTaskConfig(probabilities=(0.5, 0.5, 0.5))
    with pytest.raises(ValueError, match="sr_kernels"):
        MultiTaskConfig(sr_kernels=("lanczos",))
    with pytest.raises(ValueError, match="unknown keys"):
        MultiTaskConfig.from_dict({"noise": 0.1})


@pytest.mark.parametrize("task", [
    Task("deblur", 0.0, 0.0), Task("deblur", 1.5, 0.05),
    Task("super_resolution", 1.0, 0.1, "bicubic"), Task("super_resolution", 2.0, 0.0, "bicubic"),
    Task("super_resolution", 4.0, 0.02, "gaussian"), Task("completion", 0.7, 0.1),
])
def test_degraded_samples_with_physics(physics, task):
    sampler = MultiTaskDegradation()
    x = torch.rand(2, 3, 16, 16, generator=_generator(0))
    sample = sampler.degrade(x, task, generator=_generator(1))
    clean, y, operator, sigma = sample
    assert clean.shape == (2, 3, 16, 16) and sigma == task.sigma
    assert y.shape == (2, *operator.out_shape)
    if task.kind == "super_resolution":
        factor = int(task.parameter)
        assert operator.out_shape == (3, 16 // factor, 16 // factor)
    residual = y - operator(x)
    if task.sigma == 0:
        torch.testing.assert_close(residual, torch.zeros_like(residual))
    else:  # noise std close to sigma (on the observed pixels for completion)
        observed = residual[residual != 0] if task.kind == "completion" else residual
        assert abs(float(observed.std()) - task.sigma) < 0.25 * task.sigma
    if task.kind == "completion":
        assert float((operator(torch.ones_like(x)) == 0).float().mean()) == pytest.approx(0.7, abs=0.15)
        assert torch.equal(y == 0, operator(torch.ones_like(x)) == 0)


def test_sr_size_must_divide(physics):
    with pytest.raises(ValueError, match="divisible by 4"):
        MultiTaskDegradation().degrade(torch.rand(1, 3, 18, 18), Task("super_resolution", 4.0, 0.0, "bicubic"),
                                       generator=_generator(0))
