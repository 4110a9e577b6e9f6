"""Figures: written atomically as PNG, no pyplot state touched."""

from __future__ import annotations

import sys

import pytest
import torch
from PIL import Image

from learnreg import viz


def _ramp(size: int = 24) -> torch.Tensor:
    return torch.linspace(0, 1, size).view(1, 1, 1, size).expand(1, 1, size, size).clone()


def test_figures_are_written_without_leftovers(tmp_path):
    had_pyplot = "matplotlib.pyplot" in sys.modules
    image = _ramp()
    colour = torch.cat([image, 1 - image, image.transpose(-1, -2)], dim=1)
    viz.side_by_side(tmp_path / "row.png", [("ramp, 12.34 dB", image), ("colour", colour)],
                     crop=(2, 3, 16, 16))
    viz.psnr_curves(tmp_path / "curves.png",
                    {"gd": ([0, 1, 2], [20.0, 25.0, float("inf")]), "fista": (range(3), [21, 26, 28])},
                    xlabel="network evaluations")
    depth = _ramp()
    noisy = depth + 0.01 * torch.randn(depth.shape, generator=torch.Generator().manual_seed(0))
    noisy[0, 0, 4, 4] = float("nan")
    viz.depth_panel(tmp_path / "depth.png", [("gt", depth), ("noisy", noisy[0, 0])])
    viz.band_bars(tmp_path / "bands.png", {"crop": {"tv": [1e-5, 3e-4, 0.0], "pnp": [8e-6, 2e-4, 1e-3]}},
                  ["low", "mid", "high"])
    assert sorted(path.name for path in tmp_path.iterdir()) == ["bands.png", "curves.png", "depth.png", "row.png"]
    for path in tmp_path.iterdir():
        with Image.open(path) as figure:
            assert figure.format == "PNG" and figure.size[0] > 100
    assert had_pyplot or "matplotlib.pyplot" not in sys.modules


def test_figure_errors(tmp_path):
    with pytest.raises(ValueError, match="ending in .png"):
        viz.side_by_side(tmp_path / "row.jpg", [("a", _ramp())])
    with pytest.raises(ValueError, match="leaves an image"):
        viz.side_by_side(tmp_path / "row.png", [("a", _ramp())], crop=(0, 0, 64, 64))
    with pytest.raises(ValueError, match="equal-length"):
        viz.psnr_curves(tmp_path / "c.png", {"a": ([1, 2], [3.0])})
    with pytest.raises(ValueError, match="has 2 values for 3 bands"):
        viz.band_bars(tmp_path / "b.png", {"crop": {"tv": [1.0, 2.0]}}, ["low", "mid", "high"])
    assert not any(tmp_path.iterdir())
