"""Recorded quality of shipped weights: a fixed case per model, measured once and checked by the tests.

``python -m learnreg.bench.regression NAME`` measures the model on its fixed case and
stores the result in the model's JSON record under ``"regression"`` (the sha256 of
the safetensors file is unchanged); ``tests/learned/test_shipped_weights.py``
recomputes it and fails if the weights or the code drift.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from learnreg.data.io import atomic_write_text
from learnreg.data.samples import sample
from learnreg.hub import list_models
from learnreg.metrics import psnr
from learnreg.physics.spec import Degradation
from learnreg.restore import Problem, restore

# Denoisers: camera, 128x128 centre crop, Gaussian noise 25/255 with seed 0, gray or RGB as the model takes.
DENOISER_CASE = {"image": "camera", "size": 128, "sigma": 25 / 255, "seed": 0}


def measure(name: str, case: dict | None = None) -> float:
    """PSNR (dB) of shipped denoiser ``name`` on its fixed case."""
    case = dict(DENOISER_CASE if case is None else case)
    clean = sample(case["image"], size=case["size"])
    degradation = Degradation.from_strings("identity", f"gaussian:{case['sigma']}", shape=tuple(clean.shape[1:]),
                                           seed=case["seed"])
    y = degradation.apply(clean, torch.Generator().manual_seed(case["seed"]))
    result = restore(Problem(y, degradation.build_operator(), sigma=degradation.sigma), "denoiser",
                     params={"prior": name})
    return float(psnr(result.x.clamp(0, 1), clean))


def record(name: str) -> dict:
    """Measure ``name`` and write the case and PSNR into its JSON record."""
    models = {m["name"]: m for m in list_models()}
    if name not in models:
        raise ValueError(f"unknown model {name!r}; shipped: {', '.join(sorted(models)) or 'none'}")
    path = Path(models[name]["path"])
    data = json.loads(path.read_text())
    entry = dict(DENOISER_CASE, psnr=round(measure(name), 4))
    data["regression"] = entry
    atomic_write_text(path, json.dumps(data, indent=1))
    return entry


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="record the fixed-case quality of a shipped model")
    parser.add_argument("name")
    args = parser.parse_args(argv)
    print(record(args.name))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
