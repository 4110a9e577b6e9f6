"""The dsrnett benchmark's rules: outcome classes, correlation, test scenes apart from training."""

import pytest
import torch

from learnreg.bench.depth import TABLE1, TEST_SEEDS, TUNING_SEED, _pearson, classify, laplacian_energy, evaluation_scenes


def _ramp(size=32):
    y, x = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    return (0.3 + 0.2 * x + 0.1 * (y > 0.5).float())[None, None]


def test_outcome_classes_follow_their_rules():
    gt = _ramp()
    initial = gt + 0.005 * torch.sin(torch.arange(32.0) / 2).view(1, 1, 1, -1)
    assert classify(initial + 1e-4, initial, gt) == "same as input"
    noise = 0.2 * torch.randn(gt.shape, generator=torch.Generator().manual_seed(0))
    assert classify(gt + noise, initial, gt) == "noisy"
    assert classify(gt + 0.01 * (initial - gt), initial, gt) == "OK"
    flat = torch.full_like(gt, float(gt.mean()))
    assert laplacian_energy(flat) == 0 and classify(flat, initial, gt) == "over-smoothed"


def test_pearson_and_scene_seeds():
    assert _pearson([1, 2, 3], [2, 4, 6]) == pytest.approx(1.0)
    assert _pearson([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    seeds = {TUNING_SEED, *TEST_SEEDS.values(), 20240102}
    assert len(seeds) == 4  # tuning, two test families and the training pool never share a seed
    (depth, guide), = evaluation_scenes("heldout", 1, 32)
    assert depth.shape == (1, 1, 32, 32) and guide.shape == (1, 3, 32, 32)
    assert {row.family for row in TABLE1} == {"gdsr", "heldout"} and len(TABLE1) == 9
