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

# Denoisers: camera (gray) or the motorcycle_right crop (RGB), 128x128 centre crop, Gaussian noise 25/255, seed 0.
DENOISER_CASE = {"kind": "denoiser", "image": "camera", "size": 128, "sigma": 25 / 255, "seed": 0}
# NETT depth priors: one gdsr test scene (64x64), box x4; RMSE_d of the network alone (it depends on every weight)
# and of 5 NETT iterations after it (s alpha = 0.01).
NETT_CASE = {"kind": "nett", "family": "gdsr", "size": 64, "seed": 900_000, "iterations": 5, "alpha": 6.25e-4}
# Regularizer pairs, second case (``regression_gradient``): their G through rg-gd (GD, step 0.5, 30 evaluations;
# not Anderson, whose least-squares steps amplify the last-bit differences between thread counts) on a 90 %
# completion of the motorcycle_right 64x64 crop, noise 0.01, seed 0 -- it depends on every weight of G.
GRADIENT_CASE = {"kind": "gradient", "image": "motorcycle_right", "size": 64, "operator": "inpaint:random:0.9",
                 "sigma": 0.01, "seed": 0, "iterations": 30, "step": 0.5}

# Denoisers trained inside unrolled HQS (task unrolled_hqs): pnp-hqs with the schedule they were trained with on x2
# bicubic SR of the motorcycle_right 64x64 crop, noise 0.01, seed 0.
PNP_CASE = {"kind": "pnp", "image": "motorcycle_right", "size": 64, "operator": "sr:2:bicubic", "sigma": 0.01,
            "seed": 0}


def default_case(name: str) -> dict:
    """The fixed case of shipped model ``name``, chosen from its architecture, channels and training task."""
    record = json.loads(Path({m["name"]: m for m in list_models()}[name]["path"]).read_text())
    config = record["config"]
    if config["architecture"] in ("nett_unet", "umsgnet"):
        return dict(NETT_CASE)
    if (record.get("training_config") or {}).get("task", {}).get("name") == "unrolled_hqs":
        return dict(PNP_CASE)
    if config["architecture"] == "rg_pair":  # a regularizer pair: its denoiser
        config = config["denoiser"]
    return dict(DENOISER_CASE, image="motorcycle_right" if config.get("channels") == 3 else "camera")


def measure(name: str, case: dict | None = None) -> float:
    """The metric of shipped model ``name`` on its fixed case: PSNR (dB) for denoisers, RMSE_d for NETT priors."""
    case = dict(default_case(name) if case is None else case)
    if case.get("kind") == "nett":
        return _measure_nett(name, case)
    gradient = case.get("kind") == "gradient"
    pnp = case.get("kind") == "pnp"
    clean = sample(case["image"], size=case["size"])
    degradation = Degradation.from_strings(case["operator"] if gradient or pnp else "identity", f"gaussian:{case['sigma']}",
                                           shape=tuple(clean.shape[1:]), seed=case["seed"])
    y = degradation.apply(clean, torch.Generator().manual_seed(case["seed"]))
    problem = Problem(y, degradation.build_operator(), sigma=degradation.sigma)
    if gradient:
        result = restore(problem, "rg-gd", params={"prior": name, "solver": "gd", "step": case["step"],
                                                   "iterations": case["iterations"]})
    elif pnp:
        result = restore(problem, "pnp-hqs", params={"prior": name})
    else:
        result = restore(problem, "denoiser", params={"prior": name})
    return float(psnr(result.x.clamp(0, 1), clean))


def _measure_nett(name: str, case: dict) -> float:
    from learnreg.data.depthscenes import DepthSceneConfig, render_scene
    from learnreg.metrics.depth import rmse
    from learnreg.physics.superres import SuperResolution

    scene = render_scene(DepthSceneConfig(size=case["size"], family=case["family"]),
                         generator=torch.Generator().manual_seed(case["seed"]))
    depth, guide = scene.depth[None], scene.guide[None]
    operator = SuperResolution("box", 4, tuple(depth.shape[1:]))
    result = restore(Problem(operator(depth), operator, 0.0, guide), "nett",
                     params={"prior": name, "iterations": case["iterations"], "alpha": case["alpha"],
                             "depth_scale": 1.0, "init": "network"})
    return float(rmse(result.x, depth).mean())


def metric_name(case: dict) -> str:
    return "rmse_d" if case.get("kind") == "nett" else "psnr"


def record(name: str) -> dict:
    """Measure ``name`` and write the case and its metric into its JSON record."""
    models = {m["name"]: m for m in list_models()}
    if name not in models:
        raise ValueError(f"unknown model {name!r}; shipped: {', '.join(sorted(models)) or 'none'}")
    path = Path(models[name]["path"])
    data = json.loads(path.read_text())
    case = default_case(name)
    entry = dict(case, **{metric_name(case): round(measure(name, case), 6)})
    data["regression"] = entry
    if data["config"].get("architecture") == "rg_pair":
        case = dict(GRADIENT_CASE)
        data["regression_gradient"] = dict(case, psnr=round(measure(name, case), 6))
    atomic_write_text(path, json.dumps(data, indent=1))
    return entry


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="record the fixed-case quality of a shipped model")
    parser.add_argument("names", nargs="+", metavar="NAME")
    args = parser.parse_args(argv)
    for name in args.names:
        print(name, record(name))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
