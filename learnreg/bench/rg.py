"""Regularizing gradients (suite ``rg``): Willingham et al. (VISAPP 2024), Tables 1 and 2 at our scale.

``python -m learnreg.bench.rg`` (or ``learnreg bench rg``) restores the RGB development crops
(``motorcycle_right`` and ``retina``, centre crops of 128 x 128, 126 x 126 for x3 SR; they
stand in for Set5) on the paper's settings and reports PSNR / SSIM of the **last** iterate:

* **Table 1**: completion with 80 % and 90 % of the pixels missing (noise-free); Gaussian
  deblurring, sigma_b 1.6 and 2.0, noise 0.01;
* **Table 2**: super-resolution x2 and x3, bicubic and Gaussian (sigma 0.5) kernels, noise
  0 and 0.01;

with the methods of the paper, each run with the shipped weights of ``recipes/rg/``:

================================  ==================================================================
Gauss                             PnP-ADMM with the Gaussian denoiser ``drunet-rgb`` (the denoiser the
                                  pairs start from)
MTDEQ                             PnP-ADMM with the MTDEQ denoiser ``rg-mtdeq`` (as the paper tests it)
MTDEQ, FB fixed point             its trained forward-backward map to its fixed point (``rg-fb``)
NAME, paper protocol              ``rg-gd`` with ``G`` of ``rg-NAME``: Adam on ``x``, 1,500 iterations,
                                  pnpReG's learning rates (the paper's test protocol)
NAME, GD fixed point              the GD map of eq. (14) (eta = 0.05, the training step) to its fixed
                                  point with Anderson acceleration, 150 evaluations of ``G``
================================  ==================================================================

for NAME in pnpReG, RG1, DEQGD, RERG; TV (``tv``, tuned in the classical suite) for
reference. On the first image it also runs, per prior, plain GD on the same map for 1,500
iterations and Nesterov (gradient restart) for 150 evaluations: the **acceleration** table
(Anderson / Nesterov at 150 evaluations against GD at 1,500, and how close each ends to the
fixed point, ``||g(x) - x|| / ||x||``). It draws PSNR against iterations on 90 % completion
(like the paper's Figure 2), crops of every method (like its Figure 1), and measures how
often the forward GD solves of DEQGD training converge on the training distribution, with
and without Anderson acceleration (the paper: about half of the batches).

Noise and masks are seeded per image (seed 0 + image index), as in the other suites;
nothing is tuned on these runs (all parameters are the methods' defaults or the paper's).
Results are cached per run in ``--cache`` so that a killed benchmark resumes.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from learnreg.bench.runner import _as_mode, _center_crop, environment, seeded_problem
from learnreg.data.io import atomic_write_text
from learnreg.data.samples import sample
from learnreg.metrics.image import psnr, ssim
from learnreg.restore.methods import Problem, restore
from learnreg.restore.rg import ETA_GD, resolve_gradient

logger = logging.getLogger(__name__)

__all__ = ["SETTINGS", "PRIORS", "Row", "rows_for", "run", "deqgd_convergence", "main"]

IMAGES = ("motorcycle_right", "retina")
SIZE = 128
PRIORS = {"pnpReG": "rg-pnpreg", "RG1": "rg-rg1", "DEQGD": "rg-deqgd", "RERG": "rg-rerg"}
PAPER_ITERATIONS = 1500
FAST_EVALUATIONS = 150
LONG_STEP_FACTOR = 10  # GD with a 10x step: the same gradient flow time in a tenth of the evaluations


# The paper's numbers on Set5 (Willingham et al. 2024, Tables 1 and 2; Gauss and pnpReG from Fermanian et al.):
# PSNR per setting key, for context only (other images, full-size networks trained on photographs).
PAPER_PSNR = {
    "Gauss": (30.20, 26.20, 32.06, 30.88, 35.20, 33.80, 35.14, 32.74, 31.49, 30.39, 31.45, 29.17),
    "MTDEQ": (30.72, 27.09, 32.82, 31.83, 35.61, 34.43, 35.42, 33.45, 32.10, 31.15, 31.94, 30.17),
    "pnpReG": (30.36, 26.94, 32.51, 31.19, 35.34, 34.29, 35.30, 33.41, 31.75, 31.13, 31.60, 30.39),
    "RG1": (30.58, 27.18, 32.31, 31.67, 35.66, 33.86, 35.57, 32.51, 31.73, 31.21, 31.06, 30.33),
    "DEQGD": (29.59, 24.34, 32.80, 32.03, 35.50, 34.40, 35.40, 33.66, 32.07, 31.31, 31.74, 30.61),
    "RERG": (30.29, 26.86, 32.90, 32.17, 35.61, 34.42, 35.52, 33.69, 32.09, 31.38, 31.67, 30.74),
}


@dataclass(frozen=True)
class BenchSetting:
    """One column of the paper's tables."""

    table: int
    key: str
    label: str
    operator: str
    noise: str

    @property
    def factor(self) -> int:
        return int(self.operator.split(":")[1]) if self.operator.startswith("sr:") else 1


def _settings() -> tuple[BenchSetting, ...]:
    settings = [BenchSetting(1, f"completion-{p}", f"completion {p}%", f"inpaint:random:{p / 100}", "none")
                for p in (80, 90)]
    settings += [BenchSetting(1, f"deblur-{b}", f"deblur sigma_b {b}", f"blur:gaussian:{b}:25", "gaussian:0.01")
                 for b in (1.6, 2.0)]
    for factor in (2, 3):
        for kernel, short in (("bicubic", "b"), ("gaussian:0.5", "g")):
            for noise, level in (("none", "0"), ("gaussian:0.01", ".01")):
                settings.append(BenchSetting(2, f"sr{factor}-{short}-{level.lstrip('.') or '0'}",
                                             f"{factor}x {short} {level}", f"sr:{factor}:{kernel}", noise))
    return tuple(settings)


SETTINGS = _settings()


@dataclass(frozen=True)
class Row:
    """One method of the report: a name, a registered method and its parameters."""

    name: str
    method: str
    params: tuple[tuple[str, Any], ...]
    group: str  # "table" (every image) or "acceleration" (first image only)
    prior: str = ""  # paper name of the pair (pnpReG, ...), for the claims
    kind: str = ""  # rg-gd solver: "adam" (paper protocol), "anderson", "gd", "nesterov"

    @property
    def parameters(self) -> dict[str, Any]:
        return dict(self.params)


_ADMM_FIXED = (("sigma_denoiser", 0.05), ("lambda", 1.0), ("consistency", 0.0))


def rows_for(priors: dict[str, str], *, paper_iterations: int = PAPER_ITERATIONS,
             fast_evaluations: int = FAST_EVALUATIONS) -> list[Row]:
    """The methods of the report, given the shipped pairs (paper name -> model name)."""
    rows = [Row("TV", "tv", (), "table"),
            # PnP-ADMM at its former untuned defaults (level max(sigma_n, 0.05) = 0.05 at these noise levels <= 0.01,
            # MAP weight) and without the later noise-free data step (the paper's protocol), as rg.md measured it
            Row("Gauss (PnP-ADMM)", "pnp-admm", (("prior", "drunet-rgb"),) + _ADMM_FIXED, "table"),
            Row("MTDEQ (PnP-ADMM)", "pnp-admm", (("prior", "rg-mtdeq"),) + _ADMM_FIXED, "table"),
            Row("MTDEQ, FB fixed point", "rg-fb", (("prior", "rg-mtdeq"),), "table")]

    def gd(name: str, model: str, label: str, solver: str, iterations: int, group: str) -> Row:
        return Row(f"{name}, {label}", "rg-gd", (("prior", model), ("solver", solver), ("iterations", iterations)),
                   group, name, solver)

    for name, model in priors.items():
        rows.append(gd(name, model, "paper protocol", "adam", paper_iterations, "table"))
        rows.append(gd(name, model, "GD fixed point", "anderson", fast_evaluations, "table"))
    for name, model in priors.items():
        rows.append(gd(name, model, f"GD {paper_iterations}", "gd", paper_iterations, "acceleration"))
        rows.append(gd(name, model, f"Nesterov {fast_evaluations}", "nesterov", fast_evaluations, "acceleration"))
        rows.append(Row(f"{name}, GD step x{LONG_STEP_FACTOR}, {fast_evaluations}", "rg-gd",
                        (("prior", model), ("solver", "gd"), ("iterations", fast_evaluations),
                         ("step", ETA_GD * LONG_STEP_FACTOR)), "acceleration", name, "gd-long"))
    return rows


def _find(rows: list[Row], prior: str, kind: str) -> Row | None:
    return next((r for r in rows if r.prior == prior and r.kind == kind), None)


def _images(setting: BenchSetting, names: tuple[str, ...], size: int) -> list[tuple[str, torch.Tensor]]:
    crop = size - size % setting.factor
    return [(name, _center_crop(_as_mode(sample(name), "rgb"), crop)) for name in names]


def _problem(setting: BenchSetting, clean: torch.Tensor, index: int) -> Problem:
    """The degraded problem of image number ``index`` (noise and mask seeded by ``index``)."""
    return seeded_problem(setting.operator, setting.noise, clean, index)


def _gd_residual(x: torch.Tensor, problem: Problem, model: str) -> float:
    """``||g(x) - x|| / ||x||`` for the GD map (14) at eta = 0.05 of ``model``'s ``G``."""
    from learnreg.learned.deq import gd_map

    entry, _ = resolve_gradient(model, image_channels=x.shape[1])
    with torch.no_grad():
        step = gd_map(x, operator=problem.operator, y=problem.y, sigma=problem.sigma, gradient_net=entry.gradient,
                      eta=ETA_GD)
    return float((step - x).norm() / x.norm().clamp_min(1e-12))


def _key(setting: BenchSetting, image: str, row: Row) -> str:
    return f"{setting.key}|{image}|{row.name}"


def run(*, images: tuple[str, ...] = IMAGES, size: int = SIZE, cache: Path | None = None,
        settings: tuple[BenchSetting, ...] = SETTINGS, rows: list[Row] | None = None, progress: bool = True
        ) -> dict[str, dict[str, Any]]:
    """Every (setting, image, row) result; first-image runs keep their PSNR curve and output."""
    rows = rows_for(PRIORS) if rows is None else rows
    done: dict[str, dict[str, Any]] = {}
    if cache is not None and cache.is_file():
        done = json.loads(cache.read_text(encoding="utf-8"))
    for setting in settings:
        for index, (name, clean) in enumerate(_images(setting, images, size)):
            problem = _problem(setting, clean, index)
            for row in rows:
                if row.group == "acceleration" and index:
                    continue
                key = _key(setting, name, row)
                if key in done:
                    continue
                result = restore(problem, row.method, params=row.parameters, reference=clean if index == 0 else None)
                x = result.x.clamp(0, 1)
                history = result.history
                entry = {"psnr": float(psnr(x, clean)), "ssim": float(ssim(x, clean)), "status": result.status,
                         "seconds": result.seconds,
                         "evaluations": history.evaluations[-1] if history and history.evaluations else None,
                         "curve": history.psnr if (index == 0 and history is not None) else None}
                if row.method == "rg-gd":
                    entry["residual"] = _gd_residual(result.x, problem, row.parameters["prior"])
                done[key] = entry
                if index == 0 and cache is not None:
                    torch.save(x, _output_path(cache, key))
                if cache is not None:
                    atomic_write_text(cache, json.dumps(done))
                if progress:
                    print(f"  {setting.label:18s} {name:17s} {row.name:30s} {entry['psnr']:6.2f} dB "
                          f"{entry['ssim']:.3f} {result.status:9s} {result.seconds:6.1f} s", flush=True)
    return done


def _output_path(cache: Path, key: str) -> Path:
    """Where the first image's output of run ``key`` is kept, beside the cache (for the crops)."""
    folder = cache.with_suffix(".outputs")
    folder.mkdir(parents=True, exist_ok=True)
    return folder / (key.replace("|", "__").replace(" ", "_").replace(",", "").replace("%", "") + ".pt")


def deqgd_convergence(*, model: str = "rg-deqgd", batches: int = 24, seed: int = 123,
                      recipe: str | Path = "recipes/rg/deqgd.yaml") -> list[dict[str, Any]]:
    """Share of DEQGD's forward GD solves that converge on its training distribution.

    Draws ``batches`` training batches as the recipe does (dead-leaves patches, one random
    problem per batch, noise per patch; a seed never used in training) and solves the GD map
    of ``model``'s ``G`` (eta_GD, sigma floor of the recipe) per sample, with the paper's stopping
    rules, under three solvers: the recipe's (Anderson 5, at most 60 iterations), the paper's
    (plain iteration, at most 500) and Anderson 5 with at most 500.
    """
    import functools

    from learnreg.data.degradations import MultiTaskConfig, MultiTaskDegradation
    from learnreg.learned.deq import DEQStats, deq_fixed_point, gd_map
    from learnreg.training.config import load_config
    from learnreg.training.rg_common import batch_operator, draw_degraded_batch
    from learnreg.training.sources import build_source

    config = load_config(recipe)
    options = config.task.parsed_options()
    source = build_source(config.data)
    degradation = MultiTaskDegradation(MultiTaskConfig.from_dict(options.degradation))
    entry, _ = resolve_gradient(model, image_channels=config.data.channels)
    generator = torch.Generator().manual_seed(seed)
    problems = []
    for _ in range(batches):
        batch = draw_degraded_batch(source.sample(config.data.batch_size, generator=generator), degradation,
                                    generator=generator)
        problems.append((batch, batch_operator(batch, degradation)))
    results = []
    for label, anderson, max_iter in (("Anderson 5, <= 60 (our recipe)", options.anderson, options.max_iter),
                                      ("plain, <= 500 (the paper)", 0, 500),
                                      ("Anderson 5, <= 500", options.anderson, 500)):
        stats, start = [], time.perf_counter()
        for batch, operator in problems:
            step = functools.partial(gd_map, operator=operator, y=batch.y, sigma=batch.sigma,
                                     gradient_net=entry.gradient, eta=options.eta_gd,
                                     sigma_floor=options.sigma_floor)
            with torch.no_grad():
                _, info = deq_fixed_point(step, batch.x0, anderson=anderson, max_iter=max_iter, tol=options.tol,
                                          abs_max=options.abs_max)
            stats.append((batch.kind, DEQStats.from_info(info)))
        samples = sum(s.batch_size for _, s in stats)
        results.append({
            "solver": label, "batches": len(stats), "samples": samples,
            "converged": sum(s.fraction_converged * s.batch_size for _, s in stats) / samples,
            "diverged": sum(s.fraction_diverged * s.batch_size for _, s in stats) / samples,
            "batches_all_converged": sum(s.fraction_converged == 1.0 for _, s in stats) / len(stats),
            "mean_iterations": sum(s.mean_iterations * s.batch_size for _, s in stats) / samples,
            "by_task": {kind: sum(s.fraction_converged * s.batch_size for k, s in stats if k == kind)
                        / max(1, sum(s.batch_size for k, s in stats if k == kind))
                        for kind in sorted({k for k, _ in stats})},
            "seconds": time.perf_counter() - start,
        })
    return results


# -- report --------------------------------------------------------------------------------------
def _mean(values: list[float]) -> float:
    return statistics.fmean(values) if values else float("nan")


def summarise(done: dict[str, dict[str, Any]], rows: list[Row], images: tuple[str, ...],
              settings: tuple[BenchSetting, ...] = SETTINGS) -> dict[str, dict[str, dict[str, float]]]:
    """row name -> setting key -> mean PSNR / SSIM (and failures) over the images it ran on."""
    table: dict[str, dict[str, dict[str, float]]] = {}
    for row in rows:
        chosen = images if row.group == "table" else images[:1]
        for setting in settings:
            entries = [done[k] for k in (_key(setting, i, row) for i in chosen) if k in done]
            if not entries:
                continue
            table.setdefault(row.name, {})[setting.key] = {
                "psnr": _mean([e["psnr"] for e in entries]), "ssim": _mean([e["ssim"] for e in entries]),
                "failed": sum(e["status"] == "diverged" for e in entries), "images": len(entries),
                "seconds": _mean([e["seconds"] for e in entries]),
            }
    return table


def _cell(values: dict[str, float] | None, ssim_too: bool) -> str:
    if values is None:
        return "–"
    text = f"{values['psnr']:.2f}" + (f" / {values['ssim']:.3f}" if ssim_too else "")
    return text + (" (diverged)" if values["failed"] else "")


def _table(table, rows: list[Row], settings: tuple[BenchSetting, ...], *, ssim_too: bool) -> list[str]:
    lines = ["| method | " + " | ".join(s.label for s in settings) + " |",
             "|---|" + "---|" * len(settings)]
    for row in rows:
        if row.name in table:
            lines.append(f"| {row.name} | " + " | ".join(_cell(table[row.name].get(s.key), ssim_too)
                                                       for s in settings) + " |")
    columns = [SETTINGS.index(s) for s in settings]
    for name, values in PAPER_PSNR.items():
        lines.append(f"| *paper, Set5: {name}* | " + " | ".join(f"*{values[i]:.2f}*" for i in columns) + " |")
    return lines


def claims(table, settings: tuple[BenchSetting, ...] = SETTINGS) -> list[dict[str, Any]]:
    """Per protocol and setting: RERG against the better of RG1 and DEQGD (the paper's main claim)."""
    out = []
    for protocol in ("paper protocol", "GD fixed point"):
        for setting in settings:
            try:
                rerg, rg1, deqgd = (table[f"{n}, {protocol}"][setting.key]["psnr"] for n in ("RERG", "RG1", "DEQGD"))
            except KeyError:
                continue
            best = max(rg1, deqgd)
            out.append({"protocol": protocol, "setting": setting.label, "rerg": rerg, "rg1": rg1, "deqgd": deqgd,
                        "gap": rerg - best, "holds": rerg >= best - 0.3})
    return out


def acceleration(done: dict[str, dict[str, Any]], rows: list[Row], image: str,
                 settings: tuple[BenchSetting, ...] = SETTINGS) -> list[dict[str, Any]]:
    """First image: GD at the paper's iteration count against Anderson / Nesterov, per prior and setting."""
    out = []
    for name in dict.fromkeys(r.prior for r in rows if r.prior):
        found = {kind: _find(rows, name, kind) for kind in ("gd", "anderson", "nesterov", "adam", "gd-long")}
        for setting in settings:
            runs = {kind: (done.get(_key(setting, image, row)) if row else None) for kind, row in found.items()}
            reference = runs.pop("gd")
            if reference is None or runs["anderson"] is None:
                continue
            entry = {"prior": name, "setting": setting.label, "gd1500": reference["psnr"],
                     "gd1500_residual": reference.get("residual"),
                     "adam1500": None if runs["adam"] is None else runs["adam"]["psnr"]}
            for kind, field in (("anderson", "anderson"), ("nesterov", "nesterov"), ("gd-long", "gd_long")):
                run_ = runs[kind]
                entry[f"{field}150"] = None if run_ is None else run_["psnr"]
                entry[f"{field}150_residual"] = None if run_ is None else run_.get("residual")
                entry[f"{field}_within"] = run_ is not None and abs(run_["psnr"] - reference["psnr"]) <= 0.1
            out.append(entry)
    return out


def _figures(out: Path, done: dict[str, dict[str, Any]], cache: Path, image: str, rows: list[Row]) -> list[str]:
    from learnreg.restore.baselines import upsample_for_display
    from learnreg.viz import psnr_curves, side_by_side

    written = []
    by_name = {row.name: row for row in rows}
    for setting_key, title in (("completion-90", "completion 90%"), ("deblur-2.0", "deblur sigma_b 2.0")):
        setting = next(s for s in SETTINGS if s.key == setting_key)
        for kind, names in (("paper", [r.name for r in rows if r.group == "table" and r.name != "TV"
                                        and r.kind != "anderson"]),
                            ("acceleration", [r.name for p in ("DEQGD", "RERG") for k in
                                              ("gd", "gd-long", "nesterov", "anderson", "adam")
                                              for r in [_find(rows, p, k)] if r is not None])):
            curves = {}
            for name in names:
                entry = done.get(_key(setting, image, by_name[name])) if name in by_name else None
                if entry and entry.get("curve"):
                    curve = entry["curve"]
                    curves[name] = (list(range(1, len(curve) + 1)), curve)
            if curves:
                path = out / f"rg-{kind}-{setting_key}.png"
                psnr_curves(path, curves, xlabel="iteration (one network evaluation each)",
                            title=f"{title}: {image} (PSNR of each iterate, last iterate reported)")
                written.append(path.name)
    panels = []
    shown = ["Gauss (PnP-ADMM)", "MTDEQ (PnP-ADMM)"] + [r.name for r in rows if r.kind == "anderson"]
    for setting in SETTINGS:
        if setting.key not in ("completion-80", "completion-90", "deblur-1.6", "deblur-2.0", "sr2-b-01", "sr3-g-01"):
            continue
        clean = _images(setting, (image,), SIZE)[0][1]
        problem = _problem(setting, clean, 0)
        row = [(f"{setting.label}\ninput", upsample_for_display(problem.y, problem.operator))]
        for name in shown:
            key = _key(setting, image, by_name[name])
            path = _output_path(cache, key)
            if key in done and path.is_file():
                row.append((f"{name.split(' (')[0].split(',')[0]} {done[key]['psnr']:.2f}",
                            torch.load(path, weights_only=True)))
            else:
                row.append(("", None))
        row.append(("reference", clean))
        panels += row
    if panels:
        side_by_side(out / "rg-crops.png", panels, columns=len(shown) + 2)
        written.append("rg-crops.png")
    return written


def markdown(table, rows: list[Row], claim_rows, accel_rows, convergence, *, images, minutes: float,
             figures: list[str], paper_iterations: int = PAPER_ITERATIONS,
             fast_evaluations: int = FAST_EVALUATIONS) -> str:
    env = environment()
    table1 = tuple(s for s in SETTINGS if s.table == 1)
    table2 = tuple(s for s in SETTINGS if s.table == 2)
    main_rows = [r for r in rows if r.group == "table"]
    lines = ["# Benchmark `rg`: regularizing gradients (Willingham et al., VISAPP 2024)", "",
             f"Measured with `learnreg bench rg`: {minutes:.0f} min of restoration and solver runs (cached per run in "
             f"`--cache`, so a killed benchmark resumes) (torch {env['torch']}, {env['threads']} threads, "
             f"{env['machine']}). Images: RGB development crops {', '.join(images)}, {SIZE}x{SIZE} (126x126 for x3); "
             "they stand in for Set5. Mean PSNR (dB) / SSIM of the **last** iterate, clipped to [0, 1]. Noise and "
             "masks seeded per image. Parameters: the methods' defaults, nothing tuned on these runs.", "",
             "Methods: **Gauss** = PnP-ADMM with `drunet-rgb`; **MTDEQ** = PnP-ADMM with `rg-mtdeq`, and its trained "
             "FB map to the fixed point (`rg-fb`); for each pair `rg-pnpreg`, `rg-rg1`, `rg-deqgd`, `rg-rerg`: "
             f"**paper protocol** = `rg-gd --param solver=adam` for {paper_iterations} iterations (pnpReG's test "
             f"solver and learning rates), **GD fixed point** = `rg-gd --param solver=anderson` ({fast_evaluations} "
             "evaluations of G, the GD map (14) at the training step 0.05 with Anderson acceleration). TV from the "
             "classical suite for reference.", "",
             "## Table 1: completion (noise-free) and deblurring (noise 0.01), PSNR / SSIM", ""]
    lines += _table(table, main_rows, table1, ssim_too=True)
    lines += ["", "## Table 2: super-resolution, kernel b = bicubic, g = Gaussian 0.5; noise 0 or 0.01, PSNR / SSIM",
              ""]
    lines += _table(table, main_rows, table2, ssim_too=True)
    lines += ["", "## The paper's main claim: RERG within 0.3 dB of the better of RG1 and DEQGD", "",
              "| protocol | setting | RERG | RG1 | DEQGD | RERG - better | holds |", "|---|---|---|---|---|---|---|"]
    for c in claim_rows:
        lines.append(f"| {c['protocol']} | {c['setting']} | {c['rerg']:.2f} | {c['rg1']:.2f} | {c['deqgd']:.2f} | "
                     f"{c['gap']:+.2f} | {'yes' if c['holds'] else '**no**'} |")
    for protocol in ("paper protocol", "GD fixed point"):
        chosen = [c for c in claim_rows if c["protocol"] == protocol]
        if chosen:
            lines.append("")
            lines.append(f"- {protocol}: the claim holds on {sum(c['holds'] for c in chosen)} of {len(chosen)} "
                         "settings.")
    lines += ["", f"## Acceleration: {fast_evaluations} evaluations of G against {paper_iterations} GD iterations "
              f"({images[0]})", "",
              f"Same map (eq. 14, eta = 0.05); target: within 0.1 dB of the {paper_iterations}-iteration PSNR. "
              "`res` = ||g(x) - x|| / ||x|| at the returned iterate (how far from the fixed point it is).", "",
              f"| prior | setting | GD {paper_iterations} | res | "
              f"GD step x{LONG_STEP_FACTOR}, {fast_evaluations} | res | Nesterov {fast_evaluations} | res | "
              f"Anderson {fast_evaluations} | res | Adam {paper_iterations} |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]

    def fmt(value, spec):
        return "–" if value is None else format(value, spec)

    def mark(row, name):
        return "" if row[f"{name}_within"] else " ✗"

    for a in accel_rows:
        lines.append(f"| {a['prior']} | {a['setting']} | {a['gd1500']:.2f} | {fmt(a['gd1500_residual'], '.1e')} | "
                     f"{fmt(a['gd_long150'], '.2f')}{mark(a, 'gd_long')} | {fmt(a['gd_long150_residual'], '.1e')} | "
                     f"{fmt(a['nesterov150'], '.2f')}{mark(a, 'nesterov')} | {fmt(a['nesterov150_residual'], '.1e')} | "
                     f"{a['anderson150']:.2f}{mark(a, 'anderson')} | {fmt(a['anderson150_residual'], '.1e')} | "
                     f"{fmt(a['adam1500'], '.2f')} |")
    if accel_rows:
        count = len(accel_rows)
        lines += ["", f"Within 0.1 dB of GD {paper_iterations} (✗ = not within), of {count} (prior, setting) pairs: "
                      f"GD with a {LONG_STEP_FACTOR}x step {sum(a['gd_long_within'] for a in accel_rows)}, "
                      f"Nesterov {sum(a['nesterov_within'] for a in accel_rows)}, "
                      f"Anderson {sum(a['anderson_within'] for a in accel_rows)}."]
    if convergence:
        lines += ["", "## Does DEQGD's forward solve converge? (training distribution, `rg-deqgd`)", "",
                  "| forward solver | samples | converged | diverged | batches fully converged | mean iterations | "
                  "converged by task |", "|---|---|---|---|---|---|---|"]
        for c in convergence:
            by_task = ", ".join(f"{k} {v:.0%}" for k, v in c["by_task"].items())
            lines.append(f"| {c['solver']} | {c['samples']} | {c['converged']:.0%} | {c['diverged']:.0%} | "
                         f"{c['batches_all_converged']:.0%} | {c['mean_iterations']:.1f} | {by_task} |")
        lines += ["", "Training batches drawn as `recipes/rg/deqgd.yaml` draws them (seed 123, never used in "
                      "training), the shipped `rg-deqgd`. The paper's rule calls a solve converged once the mean "
                      "squared change of one step falls below 1e-7: a property of the step `eta (D + s^2 G)`, "
                      "which at eta = 0.05 can be small far from the fixed point (compare `res` above). "
                      "`recipes/rg/deqgd-plain.yaml` logs the same statistics during training without Anderson."]
    lines += [""] + [f"![{name}]({name})" for name in figures]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m learnreg.bench.rg", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out-dir", default=None,
                        help="report folder (default docs/benchmarks; out/bench-rg-quick with --quick, so that a smoke "
                             "run never overwrites the committed report)")
    parser.add_argument("--cache", default="runs/bench-rg.json",
                        help="per-run results, reused by a later call (delete it to start over)")
    parser.add_argument("--images", default=",".join(IMAGES))
    parser.add_argument("--convergence-batches", type=int, default=24,
                        help="training batches for the DEQGD convergence measurement (0: skip)")
    parser.add_argument("--quick", action="store_true", help="one image, two settings, short runs: a smoke run")
    args = parser.parse_args(argv)
    images = tuple(i for i in args.images.split(",") if i)
    from learnreg.learned.hub import list_models

    shipped = {m["name"] for m in list_models()}
    priors = {name: model for name, model in PRIORS.items() if model in shipped}
    missing = sorted(set(PRIORS.values()) - shipped)
    if missing:
        print(f"not shipped, left out: {', '.join(missing)} (train them with make rg-priors)")
    paper, fast = PAPER_ITERATIONS, FAST_EVALUATIONS
    rows = rows_for(priors)
    settings = SETTINGS
    cache = Path(args.cache)
    if args.out_dir is None:
        args.out_dir = "out/bench-rg-quick" if args.quick else "docs/benchmarks"
    if args.quick:
        images, settings = images[:1], (SETTINGS[1], SETTINGS[6])
        paper, fast = 30, 10
        rows = rows_for(priors, paper_iterations=paper, fast_evaluations=fast)
        cache = cache.with_name(cache.stem + "-quick.json")
        args.convergence_batches = min(args.convergence_batches, 2)
    cache.parent.mkdir(parents=True, exist_ok=True)
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    done = run(images=images, size=SIZE, cache=cache, settings=settings, rows=rows)
    table = summarise(done, rows, images, settings)
    convergence: list[dict[str, Any]] = []
    stored = cache.with_suffix(".convergence.json")
    if stored.is_file() and json.loads(stored.read_text(encoding="utf-8"))["batches"] == args.convergence_batches:
        convergence = json.loads(stored.read_text(encoding="utf-8"))["results"]
    elif args.convergence_batches and "DEQGD" in priors:
        convergence = deqgd_convergence(batches=args.convergence_batches)
        atomic_write_text(stored, json.dumps({"batches": args.convergence_batches, "results": convergence}))
    claim_rows = claims(table, settings)
    accel_rows = acceleration(done, rows, images[0], settings)
    figures = _figures(out, done, cache, images[0], rows) if not args.quick else []
    # compute time of every run, also of those a previous call cached, and of the convergence measurement
    minutes = (sum(e["seconds"] for e in done.values()) + sum(c["seconds"] for c in convergence)) / 60
    logger.info("report written %.1f s after the start", time.perf_counter() - start)
    text = markdown(table, rows, claim_rows, accel_rows, convergence, images=images, minutes=minutes,
                    figures=figures, paper_iterations=paper, fast_evaluations=fast)
    atomic_write_text(out / "rg.md", text)
    atomic_write_text(out / "rg.json", json.dumps({
        "suite": "rg", "environment": environment(), "images": list(images), "size": SIZE,
        "table": table, "claims": claim_rows, "acceleration": accel_rows, "deqgd_convergence": convergence,
        "runs": {k: {f: v for f, v in e.items() if f != "curve"} for k, e in done.items()},
    }, indent=1, default=lambda o: None if isinstance(o, float) and math.isnan(o) else str(o)))
    print(text)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
