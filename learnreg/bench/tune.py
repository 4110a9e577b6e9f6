"""Tune the classical methods' default regularization weights on the development images.

The default weight of a variational method is affine in the noise level and
grows with the square root of the channel count (the vectorial TV of ``C``
correlated channels is about ``sqrt(C)`` times the gray one),
``weight = sqrt(C) * (slope[family] * sigma + offset[family])``: ``offset`` keeps a little
regularization on noise-free problems (it fills the operator's null space) and
``slope`` follows the noise. For every setting of the ``classical`` suite this
script scans weights on a log grid, keeps the one with the best mean PSNR over the
development images, and fits slope and offset per operator family by least
squares in log-space-free form (offset from the noise-free settings, slope from
the noisy ones). Run with ``python -m learnreg.bench.tune [--prior tv]``; the result
is copied by hand into ``learnreg/restore/classical.py`` and committed with
``docs/benchmarks/tuning-PRIOR.json``.

``--prior pnp-hqs`` tunes DPIR's two knobs instead, the weight ``lambda`` and the
number of iterations (= denoiser evaluations, at most 40), with the shipped
default denoiser: every pair of the grid runs on every classical setting, gray
and RGB, and each colour mode and task family keeps the pair with the best mean
PSNR over its settings (one pair per mode and family, not per setting, so the defaults do not chase
single cases). The result is copied by hand into ``HQS_TUNED`` of
``learnreg/restore/pnp_defaults.py``. ``--prior pnp-admm`` does the same for PnP-ADMM's denoiser
level ``sigma_denoiser`` and weight ``lambda`` (40 iterations), copied into ``ADMM_TUNED``;
``--prior pnp-fb`` for PnP forward-backward's denoiser level and step (40 iterations), copied into
``FB_TUNED``; ``--prior red`` for RED's denoiser level and weight (100 iterations), copied into
``RED_TUNED``.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from dataclasses import replace
from pathlib import Path

import torch

from learnreg.bench.runner import load_images, seeded_problem
from learnreg.bench.suites import get_suite
from learnreg.data.io import atomic_write_text
from learnreg.metrics import psnr
from learnreg.restore import restore
from learnreg.restore.baselines import family


def scan(prior: str, *, size: int = 128, points: int = 11, iterations: int = 150) -> dict:
    suite = get_suite("classical")
    results = {}
    settings = [replace(setting, mode=mode) for setting in suite.settings for mode in ("gray", "rgb")]
    for setting in settings:
        if prior not in setting.methods:
            continue
        # tune on 128x128 centre crops of the 256x256 benchmark crops (4x cheaper, same statistics)
        problems = _problems(setting, suite, size)
        sigma = problems[0][1].sigma
        channels = problems[0][1].operator.in_shape[0]
        center = math.sqrt(channels) * (0.25 * sigma if sigma > 0 else 2e-4)
        grid = [center * 4.0 ** ((k - points // 2) / 2) for k in range(points)]
        scores = []
        for weight in grid:
            values = [float(psnr(restore(p, prior, params={"weight": weight, "iterations": iterations}).x.clamp(0, 1), c))
                      for c, p in problems]
            scores.append(statistics.fmean(values))
        best = max(range(points), key=scores.__getitem__)
        results[f"{setting.label}, {setting.mode}"] = {
                                  "family": family(problems[0][1].operator), "sigma": sigma, "channels": channels,
                                  "factor": setting.factor,
                                  "normalised_best": grid[best] / math.sqrt(channels), "grid": grid,
                                  "psnr": scores, "best_weight": grid[best], "best_psnr": scores[best],
                                  "edge_of_grid": best in (0, points - 1)}
        print(f"{setting.label + ', ' + setting.mode:42s} best weight {grid[best]:.5f} ({scores[best]:.2f} dB)"
              + ("  [edge of grid]" if best in (0, points - 1) else ""), flush=True)
    return results


HQS_LAMBDAS = (0.015, 0.03, 0.06, 0.12, 0.23, 0.45)
HQS_ITERATIONS = (8, 16, 24, 40)
# pnp-admm: the denoiser level sigma_d and the weight lambda (relative to the MAP weight), 40 iterations
ADMM_LEVELS = (0.02, 0.03, 0.04, 0.05, 0.07)
ADMM_LAMBDAS = (0.25, 0.5, 1.0, 2.0, 4.0)
# pnp-fb: the denoiser level sigma_d (which also sets the weight) and the step (fraction of 1/L), 40 iterations
FB_LEVELS = (0.01, 0.015, 0.02, 0.03, 0.05)
FB_STEPS = (0.5, 1.0, 1.5, 1.9)
# red: the denoiser level sigma_d and the weight lambda (relative to the MAP weight), 100 iterations
RED_LEVELS = (0.01, 0.015, 0.03)
RED_LAMBDAS = (0.25, 0.5, 1.0, 2.0, 4.0)
# per tuned method: the two parameters scanned, their grids
PNP_GRIDS = {"pnp-hqs": (("lambda", HQS_LAMBDAS), ("iterations", HQS_ITERATIONS)),
             "pnp-admm": (("sigma_denoiser", ADMM_LEVELS), ("lambda", ADMM_LAMBDAS)),
             "pnp-fb": (("sigma_denoiser", FB_LEVELS), ("step", FB_STEPS)),
             "red": (("sigma_denoiser", RED_LEVELS), ("lambda", RED_LAMBDAS))}


def _problems(setting, suite, size: int) -> list:
    """(clean, Problem) on ``size``-squared centre crops of the benchmark crops (seeded as the bench)."""
    crop = size - size % setting.factor
    images = load_images(None, suite, setting.mode, 256)
    start = (256 - crop) // 2
    images = [(n, im[..., start : start + crop, start : start + crop].contiguous()) for n, im in images]
    problems = []
    for index, (_, clean) in enumerate(images):
        problems.append((clean, seeded_problem(setting.operator, setting.noise, clean, index)))
    return problems


def scan_pnp(method: str = "pnp-hqs", *, size: int = 128) -> dict:
    """PSNR of ``method`` for every point of its grid (:data:`PNP_GRIDS`) on every classical setting, gray and RGB."""
    suite = get_suite("classical")
    (first, values_a), (second, values_b) = PNP_GRIDS[method]
    grid = [(a, b) for a in values_a for b in values_b]
    results = {}
    for setting in (replace(s, mode=mode) for s in suite.settings if s.task != "denoising"
                    for mode in ("gray", "rgb")):
        problems = _problems(setting, suite, size)
        scores = [statistics.fmean(
            float(psnr(restore(p, method, params={first: a, second: b}).x.clamp(0, 1), c))
            for c, p in problems) for a, b in grid]
        best = max(range(len(grid)), key=scores.__getitem__)
        results[f"{setting.label}, {setting.mode}"] = {
            "family": family(problems[0][1].operator), "parameters": [first, second], "grid": grid,
            "psnr": scores, "best": grid[best], "best_psnr": scores[best]}
        print(f"{setting.label + ', ' + setting.mode:42s} best {first} {grid[best][0]}, {second} {grid[best][1]} "
              f"({scores[best]:.2f} dB)", flush=True)
    return results


def fit_pnp(results: dict, method: str = "pnp-hqs") -> dict:
    """Per colour mode (gray, rgb) and task family, the grid point with the best mean PSNR over its settings.

    ``edge_of_grid`` names the parameters whose chosen value is the first or last of its grid
    (a wider grid may find more; for pnp-hqs the largest iteration count is the 40-evaluation budget).
    """
    (first, values_a), (second, values_b) = PNP_GRIDS[method]
    fitted: dict = {}
    for mode in ("gray", "rgb"):
        in_mode = {k: r for k, r in results.items() if k.endswith(f", {mode}")}
        fitted[mode] = {}
        for fam in sorted({r["family"] for r in in_mode.values()}):
            rows = [r for r in in_mode.values() if r["family"] == fam]
            grid = [tuple(g) for g in rows[0]["grid"]]
            means = [statistics.fmean(r["psnr"][i] for r in rows) for i in range(len(grid))]
            best = max(range(len(grid)), key=means.__getitem__)
            edges = [name for name, value, values in ((first, grid[best][0], values_a), (second, grid[best][1], values_b))
                     if value in (values[0], values[-1])]
            fitted[mode][fam] = {first: grid[best][0], second: grid[best][1], "mean_psnr": means[best],
                                 "edge_of_grid": edges}
    return fitted


def fit(results: dict) -> dict:
    """Per family, on weights normalised by sqrt(C) / factor: offset = geometric mean of the
    noise-free best weights, slope = mean of (w - offset) / sigma over the noisy settings.

    The SR factor enters because the best weight falls roughly as 1/factor (x2 -> x3 on every
    development set), which lets a fit on x2 and x3 serve x4 and beyond.
    """
    fitted = {}
    for key, r in results.items():
        factor = r.get("factor", 1) if r["family"] == "sr" else 1
        r["normalised_best"] = r["best_weight"] * factor / math.sqrt(r["channels"])
    for fam in sorted({r["family"] for r in results.values()}):
        rows = [r for r in results.values() if r["family"] == fam]
        clean = [r["normalised_best"] for r in rows if r["sigma"] == 0]
        offset = math.exp(statistics.fmean(map(math.log, clean))) if clean else 0.0
        noisy = [r for r in rows if r["sigma"] > 0]
        slope = statistics.fmean(max(r["normalised_best"] - offset, 0.0) / r["sigma"] for r in noisy) if noisy else 0.0
        if not clean:  # no noise-free setting in this family: keep a weight of a noise level of 1e-3
            offset = slope * 1e-3
        fitted[fam] = {"slope": slope, "offset": offset}
    return fitted


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prior", default="tv", choices=["tv", "tikhonov", "hyperlaplacian", *PNP_GRIDS])
    parser.add_argument("--out-dir", default="docs/benchmarks")
    parser.add_argument("--refit", action="store_true", help="refit from the saved scan instead of scanning again")
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    saved = Path(args.out_dir) / f"tuning-{args.prior}.json"
    if args.refit:
        results = json.loads(saved.read_text())["settings"]
        for label, r in results.items():  # scans saved before "factor" was recorded
            r.setdefault("factor", int(label[1]) if label.startswith("x") else 1)
    else:
        results = scan_pnp(args.prior) if args.prior in PNP_GRIDS else scan(args.prior)
    fitted = fit_pnp(results, args.prior) if args.prior in PNP_GRIDS else fit(results)
    print(json.dumps(fitted, indent=1))
    Path(args.out_dir).mkdir(parents=True, exist_ok=True)
    atomic_write_text(saved,
                      json.dumps({"prior": args.prior, "fitted": fitted, "settings": results}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
