"""Depth super-resolution with NETT (suite ``dsrnett``): Gazdieva et al.'s Table 1 and baselines.

``python -m learnreg.bench.depth`` (or ``learnreg bench dsrnett``) renders fixed test
scenes of two families -- ``gdsr`` (the training family, seeds never used in training)
and ``heldout`` (cylinders, tori, rods, bumpy and sloped backgrounds: never trained on)
-- box-downsamples them x4 (noise-free, as in the paper), and reports:

* **Table 1**: one row per shipped prior of ``recipes/nett/`` (scheme x augmentation),
  NETT by incremental gradient descent from the prior's own approximation; the outcome
  class, whether the objective / RMSE_d / RMSE_v decreased, the final RMSE_d and RMSE_v
  against the initial approximation and the network alone, and the correlation of the
  objective with RMSE_d and RMSE_v along the iterations;
* **baselines** on both families: bicubic, bilinear, TV upsampling, the guided filter,
  each network alone, NETT;
* **beyond the paper**: configurations that start from the network's output and keep
  the measurements exact (step ``1/||F||^2``), with NETT steps on top.

The outcome class follows fixed rules on the final iterate ``x_K`` against the initial
``x_0`` (the rule, not a look at the pictures, decides; ``E(u)`` is the mean squared
Laplacian of ``u``, a measure of high-frequency content)::

    same as input   RMS(x_K - x_0) < 0.1 RMSE_d(x_0)
    noisy           E(x_K) > 1.5 E(x_gt)              (more texture than the truth)
    over-smoothed   E(x_K) < 0.5 E(x_gt)  and  RMSE_v(x_K) >= RMSE_v(x_0)
    OK              RMSE_d(x_K) < RMSE_d(x_0)  and  RMSE_v(x_K) < RMSE_v(x_0)
    worse           otherwise
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

logger = logging.getLogger(__name__)

TEST_SEEDS = {"gdsr": 900_000, "heldout": 910_000}
TUNING_SEED = 800_000  # scenes for choosing alpha: gdsr family, never test scenes
FACTOR = 4


@dataclass(frozen=True)
class TableRow:
    """A row of the paper's Table 1 and the shipped prior that reproduces it."""

    prior: str
    network: str
    scheme: str
    augmentation: str
    family: str  # the test family: gdsr (paper: GDSR -> GDSR) or heldout (paper: -> SimGeo)
    paper: str  # the paper's outcome class


TABLE1 = (
    TableRow("nett-unet-s1", "U-Net", "1", "none", "gdsr", "Noisy"),
    TableRow("nett-unet-s1-noise", "U-Net", "1", "Gaussian noise sigma 0.05", "gdsr", "OK"),
    TableRow("nett-umsg-s2", "U-MSG-Net", "2", "none", "heldout", "Noisy"),
    TableRow("nett-umsg-s2-noise", "U-MSG-Net", "2", "sigma 0.03", "heldout", "Over-smoothed"),
    TableRow("nett-umsg-s2-decay", "U-MSG-Net", "2", "sigma 0.03, x0.7 every 250 steps", "heldout",
             "Over-smoothed"),
    TableRow("nett-umsg-s2-gtnoise", "U-MSG-Net", "2", "(+) GT + noise, sigma = MSE(GT, approx.)", "heldout",
             "Same as input"),
    TableRow("nett-umsg-s2-noisytarget", "U-MSG-Net", "2", "+ GT + e, target e/10", "heldout", "Same as input"),
    TableRow("nett-umsg-s2-interp", "U-MSG-Net", "2", "+ interpolation GT-approx.", "heldout", "Noisy"),
    TableRow("nett-umsg-s2-onestep", "U-MSG-Net", "2", "+ after one optimisation step", "heldout",
             "Same as input"),
)


# Beyond the paper: priors trained with refine samples (recipes/nett/*-refine.yaml).
BEYOND_PRIORS = ("nett-unet-s1-refine", "nett-umsg-s2-refine")


# -- scenes and metrics --------------------------------------------------------------------


def evaluation_scenes(family: str, count: int, size: int, *, seed: int | None = None) -> list[tuple[Tensor, Tensor]]:
    """``count`` (depth (1, 1, S, S), guide (1, 3, S, S)) pairs, scene ``i`` from seed ``seed + i``."""
    from learnreg.data.depthscenes import DepthSceneConfig, render_scene

    first = TEST_SEEDS[family] if seed is None else seed
    config = DepthSceneConfig(size=size, family=family)
    scenes = []
    for i in range(count):
        scene = render_scene(config, generator=torch.Generator().manual_seed(first + i))
        scenes.append((scene.depth[None], scene.guide[None]))
    return scenes


def box_problem(depth: Tensor, guide: Tensor):
    """The paper's degradation: box averaging x4, noise-free."""
    from learnreg.physics.superres import SuperResolution
    from learnreg.restore.methods import Problem

    operator = SuperResolution("box", FACTOR, tuple(depth.shape[1:]))
    return Problem(operator(depth), operator, 0.0, guide)


def depth_errors(x: Tensor, gt: Tensor) -> dict[str, float]:
    """RMSE_d (scene units, far plane = 1) and RMSE_v (grey levels of 255, pixel pitch 1/W)."""
    from learnreg.metrics.depth import rmse, rmse_v

    return {"rmse_d": float(rmse(x, gt).mean()), "rmse_v": float(rmse_v(x, gt).mean())}


def laplacian_energy(x: Tensor) -> float:
    """Mean squared 5-point Laplacian (interior pixels): high-frequency content."""
    lap = (x[..., 1:-1, :-2] + x[..., 1:-1, 2:] + x[..., :-2, 1:-1] + x[..., 2:, 1:-1]
           - 4 * x[..., 1:-1, 1:-1])
    return float(lap.pow(2).mean())


def classify(x_final: Tensor, x_initial: Tensor, gt: Tensor) -> str:
    """The outcome class of the module docstring."""
    start, end = depth_errors(x_initial, gt), depth_errors(x_final, gt)
    moved = float((x_final - x_initial).pow(2).mean().sqrt())
    if moved < 0.1 * start["rmse_d"]:
        return "same as input"
    energy, truth = laplacian_energy(x_final), laplacian_energy(gt)
    if energy > 1.5 * truth:
        return "noisy"
    if energy < 0.5 * truth and end["rmse_v"] >= start["rmse_v"]:
        return "over-smoothed"
    if end["rmse_d"] < start["rmse_d"] and end["rmse_v"] < start["rmse_v"]:
        return "OK"
    return "worse"


def _pearson(a: list[float], b: list[float]) -> float:
    a_t, b_t = torch.tensor(a, dtype=torch.float64), torch.tensor(b, dtype=torch.float64)
    a_t, b_t = a_t - a_t.mean(), b_t - b_t.mean()
    denominator = float(a_t.norm() * b_t.norm())
    return float((a_t * b_t).sum()) / denominator if denominator > 0 else float("nan")


# -- runs ------------------------------------------------------------------------------------


def nett_trajectory(prior: str, depth: Tensor, guide: Tensor, *, params: dict[str, Any]) -> dict[str, Any]:
    """Run ``nett`` on one scene, recording objective, RMSE_d and RMSE_v at every iteration."""
    from learnreg.regularizers import L2Data, NETT
    from learnreg.restore.methods import restore
    from learnreg.restore.nett import load_nett_prior, upsample_depth

    problem = box_problem(depth, guide)
    loaded = load_nett_prior(prior)
    params = {"init": "auto", **params, "depth_scale": 1.0}  # the paper's start; scenes in the priors' unit
    scale = 1.0
    regularizer = NETT(loaded.network, scheme=loaded.scheme, coercive=params.get("coercive", 0.0),
                       guide=guide if loaded.guided else None)
    data = L2Data(problem.operator, problem.y / scale)
    alpha = params["alpha"]
    curves: dict[str, list[float]] = {"objective": [], "rmse_d": [], "rmse_v": []}

    def record(x_scaled: Tensor) -> None:
        with torch.no_grad():
            curves["objective"].append(float(data.value(x_scaled).sum() + alpha * regularizer.value(x_scaled).sum()))
        for key, value in depth_errors(x_scaled * scale, depth).items():
            curves[key].append(value)

    approximation = loaded.approximation if params["init"] == "auto" else params["init"]
    initial = upsample_depth(problem.y, problem.operator, approximation)  # the solver's x_0 (depth_scale 1)
    record(initial / scale)
    result = restore(problem, "nett", params=params, callback=lambda state, history: record(state.x))
    network = restore(problem, "nett-network", params={"prior": prior, "depth_scale": 1.0}).x
    return {"x": result.x, "initial": initial, "network": network, "curves": curves,
            "status": result.status, "seconds": result.seconds}


def _mean(values: list[float]) -> float:
    return math.fsum(values) / len(values) if values else float("nan")


def table1(*, count: int, size: int, iterations: int, alpha: float, priors: list[str]) -> tuple[list[dict], dict]:
    """Table 1 rows and, per row, the first scene's images and curves (for the figures)."""
    rows, figures = [], {}
    for row in TABLE1:
        if row.prior not in priors:
            logger.warning("prior %s is not shipped; Table 1 row skipped (train recipes/nett/)", row.prior)
            continue
        scenes = evaluation_scenes(row.family, count, size)
        per_scene = []
        for index, (depth, guide) in enumerate(scenes):
            run = nett_trajectory(row.prior, depth, guide,
                                  params={"prior": row.prior, "alpha": alpha, "iterations": iterations})
            curves = run["curves"]
            per_scene.append({
                "class": classify(run["x"], run["initial"], depth),
                "objective_decreased": curves["objective"][-1] < curves["objective"][0],
                "rmse_d_decreased": curves["rmse_d"][-1] < curves["rmse_d"][0],
                "rmse_v_decreased": curves["rmse_v"][-1] < curves["rmse_v"][0],
                "initial": depth_errors(run["initial"], depth), "network": depth_errors(run["network"], depth),
                "final": depth_errors(run["x"], depth),
                "corr_d": _pearson(curves["objective"], curves["rmse_d"]),
                "corr_v": _pearson(curves["objective"], curves["rmse_v"]),
                "status": run["status"], "seconds": run["seconds"],
            })
            if index == 0:
                figures[row.prior] = {"depth": depth, **run}
        classes = [s["class"] for s in per_scene]
        majority = max(set(classes), key=classes.count)
        rows.append({
            "prior": row.prior, "network": row.network, "scheme": row.scheme, "augmentation": row.augmentation,
            "family": row.family, "paper": row.paper, "class": majority,
            "classes": {c: classes.count(c) for c in sorted(set(classes))},
            **{key: sum(s[key] for s in per_scene) for key in
               ("objective_decreased", "rmse_d_decreased", "rmse_v_decreased")},
            "scenes": len(per_scene),
            **{f"{stage}_{metric}": _mean([s[stage][metric] for s in per_scene])
               for stage in ("initial", "network", "final") for metric in ("rmse_d", "rmse_v")},
            "corr_d": _mean([s["corr_d"] for s in per_scene]), "corr_v": _mean([s["corr_v"] for s in per_scene]),
            "diverged": sum(s["status"] == "diverged" for s in per_scene),
            "seconds": _mean([s["seconds"] for s in per_scene]),
        })
    return rows, figures


def baselines(*, family: str, count: int, size: int, methods: list[tuple[str, str, dict]]) -> list[dict]:
    """Mean RMSE_d / RMSE_v of each (label, method, params) on the family's test scenes."""
    from learnreg.restore.methods import restore

    scenes = evaluation_scenes(family, count, size)
    rows = []
    for label, method, params in methods:
        errors, seconds, diverged = [], [], 0
        for depth, guide in scenes:
            result = restore(box_problem(depth, guide), method, params=params)
            errors.append(depth_errors(result.x, depth))
            seconds.append(result.seconds)
            diverged += result.status == "diverged"
        rows.append({"family": family, "label": label, "method": method, "params": params,
                     "rmse_d": _mean([e["rmse_d"] for e in errors]), "rmse_v": _mean([e["rmse_v"] for e in errors]),
                     "seconds": _mean(seconds), "diverged": diverged})
    return rows


BEYOND_GRID = (0.0, 1e-3, 1e-2, 3e-2, 0.1, 0.3)  # regularizer steps s·alpha, s = 16


def _scene_errors(scenes, method: str, params: dict) -> list[dict[str, float]]:
    from learnreg.restore.methods import restore

    return [depth_errors(restore(box_problem(depth, guide), method, params=params).x, depth)
            for depth, guide in scenes]


def beyond(prior: str, *, count: int, size: int, tuning: int = 3) -> list[dict]:
    """Configurations beyond the paper for one prior, s·alpha tuned on ``gdsr`` tuning scenes.

    * ``network alone`` -- the baseline to beat;
    * ``network + projection`` -- one exact data step ``x + F^+(y - F x)`` on the network's
      output (step ``1/||F||^2``, no regularizer): the measurements become exact;
    * ``NETT from the network`` -- incremental GD started at the network's output;
    * ``NETT from the approximation`` -- the paper's start, with a tuned s·alpha.

    The regularizer step is picked from :data:`BEYOND_GRID` by the mean RMSE_d on
    ``tuning`` scenes of the training family (seeds ``TUNING_SEED + i``), never on test scenes.
    """
    tuning_scenes = evaluation_scenes("gdsr", tuning, size, seed=TUNING_SEED)
    configs = [("network alone", "nett-network", {}, None),
               ("network + projection", "nett", {"init": "network", "alpha": 0.0, "iterations": 1}, None),
               ("NETT from the network", "nett", {"init": "network", "iterations": 30}, BEYOND_GRID[1:]),
               ("NETT from the approximation", "nett", {"init": "auto", "iterations": 60}, BEYOND_GRID[1:])]
    rows = []
    for label, method, params, grid in configs:
        params = {"prior": prior, "depth_scale": 1.0, **params}
        chosen, tuned = None, {}
        if grid:
            for step in grid:
                errors = _scene_errors(tuning_scenes, method, {**params, "alpha": step / 16})
                tuned[step] = _mean([e["rmse_d"] for e in errors])
            chosen = min(tuned, key=tuned.get)
            params = {**params, "alpha": chosen / 16}
        row = {"prior": prior, "label": label, "regularizer_step": chosen,
               "tuning_rmse_d": {f"{k:g}": v for k, v in tuned.items()}}
        for family in ("gdsr", "heldout"):
            errors = _scene_errors(evaluation_scenes(family, count, size), method, params)
            row[f"{family}_rmse_d"] = _mean([e["rmse_d"] for e in errors])
            row[f"{family}_rmse_v"] = _mean([e["rmse_v"] for e in errors])
        rows.append(row)
    base = rows[0]
    for row in rows:
        for family in ("gdsr", "heldout"):
            row[f"{family}_gain"] = 100 * (1 - row[f"{family}_rmse_d"] / base[f"{family}_rmse_d"])
    return rows


def descent_alignment(prior: str, scenes) -> dict[str, float]:
    """Does ``-grad R`` point to the truth? Mean cosine with ``x_gt - x`` in the null space of ``F``.

    Data steps fix the component of ``x`` that ``F`` sees, so only the null-space part of a
    regularizer step can reduce the error; both vectors are projected with
    ``P = I - F^+ F`` (box ``F^+`` = block replication). Measured at the approximation and
    at the network's output.
    """
    from learnreg.regularizers import NETT
    from learnreg.restore.depth import box_pseudo_inverse
    from learnreg.restore.methods import restore
    from learnreg.restore.nett import load_nett_prior, upsample_depth

    loaded = load_nett_prior(prior)
    cosines: dict[str, list[float]] = {"approximation": [], "network": []}
    for depth, guide in scenes:
        problem = box_problem(depth, guide)
        F = problem.operator

        def null(v: Tensor) -> Tensor:
            return v - box_pseudo_inverse(F(v), F)

        regularizer = NETT(loaded.network, scheme=loaded.scheme, guide=guide if loaded.guided else None)
        starts = {"approximation": upsample_depth(problem.y, F, loaded.approximation),
                  "network": restore(problem, "nett-network", params={"prior": prior, "depth_scale": 1.0}).x}
        for name, x in starts.items():
            step, error = null(-regularizer.grad(x)), null(depth - x)
            cosines[name].append(float((step * error).sum() / (step.norm() * error.norm()).clamp_min(1e-20)))
    return {name: _mean(values) for name, values in cosines.items()}


def _beyond_markdown(rows: list[dict]) -> list[str]:
    lines = ["| prior | configuration | s·alpha (tuned on gdsr tuning scenes) | gdsr RMSE_d / RMSE_v | "
             "held-out RMSE_d / RMSE_v | RMSE_d gain over network alone (gdsr / held-out) |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        step = "—" if r["regularizer_step"] is None else f"{r['regularizer_step']:g}"
        lines.append(f"| {r['prior']} | {r['label']} | {step} | {r['gdsr_rmse_d']:.4f} / {r['gdsr_rmse_v']:.2f} | "
                     f"{r['heldout_rmse_d']:.4f} / {r['heldout_rmse_v']:.2f} | "
                     f"{r['gdsr_gain']:+.1f} % / {r['heldout_gain']:+.1f} % |")
    return lines


# -- report ----------------------------------------------------------------------------------


def _renderings(path: Path, figures: dict[str, dict]) -> None:
    """Per Table 1 row: renderings of the ground truth, the approximation, the network, NETT."""
    from learnreg.metrics.depth import render_depth
    from learnreg.viz import side_by_side

    panels = []
    for prior, run in figures.items():
        gt = run["depth"]
        for title, x in (("ground truth", gt), ("approximation", run["initial"]),
                         ("network alone", run["network"]), ("NETT final", run["x"])):
            label = f"{prior}\n{title}" if title == "ground truth" else title
            if title != "ground truth":
                errors = depth_errors(x, gt)
                label += f"\nRMSE_d {errors['rmse_d']:.4f}  RMSE_v {errors['rmse_v']:.1f}"
            panels.append((label, render_depth(x)))
    if panels:
        side_by_side(path, panels, columns=4)


def _table1_markdown(rows: list[dict], *, alpha: float, iterations: int, count: int, size: int) -> list[str]:
    def mark(value: int, total: int) -> str:
        return "✓" if value == total else ("✗" if value == 0 else f"{value}/{total}")

    lines = [
        "## Table 1, reproduced", "",
        f"NETT by incremental gradient descent (data step s = 1/||F||^2 = 16, regularizer step s·alpha = "
        f"{16 * alpha:g}, alpha = {alpha:g}), {iterations} iterations from the prior's approximation, "
        f"{count} test scenes {size}x{size} per row, box x4 noise-free. Class = majority over the scenes "
        "(rules in `learnreg/bench/depth.py`); Opt./RMSE columns: on how many scenes the value decreased "
        "from iteration 0 to the last; RMSE_d in scene units (far plane = 1), RMSE_v in grey levels; "
        "corr = Pearson correlation of the objective with the error along the iterations (mean over scenes).", "",
        "| prior | net | scheme | augmentation | test family | paper | ours (scenes) | Opt. | RMSE_d | RMSE_v | "
        "RMSE_d approx / net / NETT | RMSE_v approx / net / NETT | corr d / v | ours at the paper's s·alpha = 0.001 |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        classes = ", ".join(f"{c} {n}" for c, n in r["classes"].items())
        total = r["scenes"]
        lines.append(
            f"| {r['prior']} | {r['network']} | {r['scheme']} | {r['augmentation']} | {r['family']} | {r['paper']} | "
            f"**{r['class']}** ({classes}) | {mark(r['objective_decreased'], total)} | "
            f"{mark(r['rmse_d_decreased'], total)} | {mark(r['rmse_v_decreased'], total)} | "
            f"{r['initial_rmse_d']:.4f} / {r['network_rmse_d']:.4f} / {r['final_rmse_d']:.4f} | "
            f"{r['initial_rmse_v']:.2f} / {r['network_rmse_v']:.2f} / {r['final_rmse_v']:.2f} | "
            f"{r['corr_d']:+.2f} / {r['corr_v']:+.2f} | {r.get('class_at_paper_step', '—')} |")
    return lines


def _baseline_markdown(rows: list[dict]) -> list[str]:
    lines = ["| family | method | RMSE_d | RMSE_v | s / scene |", "|---|---|---|---|---|"]
    for r in rows:
        flag = f" ({r['diverged']} diverged)" if r["diverged"] else ""
        lines.append(f"| {r['family']} | {r['label']} | {r['rmse_d']:.4f} | {r['rmse_v']:.2f} | "
                     f"{r['seconds']:.2f}{flag} |")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m learnreg.bench.depth", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out-dir", default="docs/benchmarks")
    parser.add_argument("--scenes", type=int, default=6, help="test scenes per family")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--iterations", type=int, default=60)
    parser.add_argument("--alpha", type=float, default=6.25e-4, help="NETT weight (s·alpha = 16 alpha)")
    parser.add_argument("--alpha-paper", type=float, default=6.25e-5,
                        help="second, cheaper Table 1 pass (2 scenes per row) at the paper's s·alpha = 0.001")
    parser.add_argument("--beyond", default="nett-unet-s1-noise,nett-umsg-s2-noise,nett-unet-s1-refine,"
                                            "nett-umsg-s2-refine",
                        help="comma-separated priors for the beyond-the-paper configurations ('' for none)")
    parser.add_argument("--quick", action="store_true", help="2 scenes, 10 iterations: a smoke run")
    args = parser.parse_args(argv)
    if args.quick:
        args.scenes, args.iterations = 2, 10
    from learnreg.restore.nett import nett_priors

    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    priors = nett_priors()
    rows, figures = table1(count=args.scenes, size=args.size, iterations=args.iterations, alpha=args.alpha,
                           priors=priors)
    paper_rows, _ = table1(count=min(2, args.scenes), size=args.size, iterations=args.iterations,
                           alpha=args.alpha_paper, priors=priors)
    for row, paper_row in zip(rows, paper_rows):
        row["class_at_paper_step"] = paper_row["class"]
        row["classes_at_paper_step"] = paper_row["classes"]
    from learnreg.viz import objective_curves

    if figures:
        objective_curves(out / "dsrnett-curves.png",
                         {f"{p} (corr {_pearson(f['curves']['objective'], f['curves']['rmse_d']):+.2f})": f["curves"]
                          for p, f in figures.items()},
                         title="NETT objective against RMSE_d (blue) and RMSE_v (orange), first test scene")
        _renderings(out / "dsrnett-renderings.png", figures)
    methods = [("bicubic", "bicubic", {}), ("bilinear", "bilinear", {}), ("TV", "tv", {}),
               ("guided filter", "guided-filter", {})]
    for prior in [p for p in [r.prior for r in TABLE1] + list(BEYOND_PRIORS) if p in priors]:
        methods.append((f"{prior} network alone", "nett-network", {"prior": prior, "depth_scale": 1.0}))
        if prior in ("nett-unet-s1-noise", "nett-umsg-s2-noise"):  # NETT of every prior: Table 1 and below
            methods.append((f"{prior} NETT", "nett", {"prior": prior, "alpha": args.alpha, "depth_scale": 1.0,
                                                      "iterations": args.iterations, "init": "auto"}))
    baseline_rows = []
    for family in ("gdsr", "heldout"):
        baseline_rows += baselines(family=family, count=args.scenes, size=args.size, methods=methods)
    beyond_rows, alignment = [], {}
    for prior in [p for p in args.beyond.split(",") if p]:
        if prior in priors:
            beyond_rows += beyond(prior, count=args.scenes, size=args.size, tuning=2 if args.quick else 3)
    for prior in [p for p in [r.prior for r in TABLE1] + list(BEYOND_PRIORS) if p in priors]:
        alignment[prior] = {family: descent_alignment(prior, evaluation_scenes(family, args.scenes, args.size))
                            for family in ("gdsr", "heldout")}
    elapsed = time.perf_counter() - start
    lines = ["# Benchmark `dsrnett`: depth super-resolution with NETT regularizers", "",
             f"Measured with `python -m learnreg.bench.depth` in {elapsed / 60:.1f} min (torch {torch.__version__}, "
             f"{torch.get_num_threads()} threads). Test scenes: seeds {TEST_SEEDS} + i, never used in training "
             "(training pools are rendered from seed 20240102).", ""]
    lines += _table1_markdown(rows, alpha=args.alpha, iterations=args.iterations, count=args.scenes, size=args.size)
    lines += ["", "![renderings](dsrnett-renderings.png)", "", "![objective against errors](dsrnett-curves.png)", "",
              "## Baselines, box x4", ""]
    lines += _baseline_markdown(baseline_rows)
    if beyond_rows:
        lines += ["", "## Beyond the paper", "",
                  "Target: NETT optimisation >= 5 % better RMSE_d than the network alone on the held-out family. "
                  "Regularizer steps chosen on gdsr tuning scenes (seeds "
                  f"{TUNING_SEED} + i), then fixed.", ""]
        lines += _beyond_markdown(beyond_rows)
    if alignment:
        lines += ["", "### Does the regularizer's descent direction point to the truth?", "",
                  "Mean cosine between -grad R(x) and the error x_gt - x, both restricted to the null space of F "
                  "(the only part a regularizer step can change once data steps hold F x = y). 1 = straight to the "
                  "truth, 0 = orthogonal (no help), < 0 = away from it.", "",
                  "| prior | gdsr: at approximation | gdsr: at network output | held-out: at approximation | "
                  "held-out: at network output |", "|---|---|---|---|---|"]
        for prior, values in alignment.items():
            lines.append(f"| {prior} | {values['gdsr']['approximation']:+.3f} | {values['gdsr']['network']:+.3f} | "
                         f"{values['heldout']['approximation']:+.3f} | {values['heldout']['network']:+.3f} |")
    (out / "dsrnett.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (out / "dsrnett.json").write_text(json.dumps({"table1": rows, "baselines": baseline_rows, "beyond": beyond_rows, "alignment": alignment,
                                                  "alpha": args.alpha, "iterations": args.iterations,
                                                  "scenes": args.scenes, "size": args.size}, indent=1),
                                      encoding="utf-8")
    print((out / "dsrnett.md").read_text(encoding="utf-8"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
