"""Run a suite: degrade each image per setting, restore with each method, write reports.

Reports go to ``OUT_DIR/SUITE.md`` (table), ``SUITE.json`` (every number, per image)
and ``SUITE.png`` (a crop of each method's output on the first image of each setting).
"""

from __future__ import annotations

import json
import logging
import platform
import statistics
from dataclasses import dataclass
from pathlib import Path

import torch

from learnreg.bench.suites import Setting, Suite, get_suite
from learnreg.data.io import atomic_write_text, read_image
from learnreg.data.samples import sample
from learnreg.metrics import psnr, ssim
from learnreg.physics.spec import Degradation
from learnreg.restore import Problem, restore
from learnreg.restore.methods import get_method

logger = logging.getLogger(__name__)


@dataclass
class Report:
    suite: str
    rows: list[dict]
    markdown_path: Path | None
    json_path: Path | None
    figure_path: Path | None


def load_images(names_or_folder: str | None, suite: Suite, mode: str, size: int) -> list[tuple[str, torch.Tensor]]:
    """The suite's development images, or the given names, or every image of a folder (centre crops)."""
    if names_or_folder and Path(names_or_folder).is_dir():
        paths = sorted(p for p in Path(names_or_folder).iterdir() if p.suffix.lower() in {".png", ".jpg", ".jpeg", ".tif", ".tiff"})
        if not paths:
            raise ValueError(f"no images found in {names_or_folder}")
        images = [(p.stem, _center_crop(read_image(p, mode=mode), size)) for p in paths]
    else:
        names = names_or_folder.split(",") if names_or_folder else (suite.gray_images if mode == "gray" else suite.rgb_images)
        images = [(n, _center_crop(_as_mode(sample(n), mode), size)) for n in names]
    return images


def _as_mode(x: torch.Tensor, mode: str) -> torch.Tensor:
    if mode == "gray" and x.shape[1] == 3:
        return (0.299 * x[:, :1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3])
    if mode == "rgb" and x.shape[1] == 1:
        return x.repeat(1, 3, 1, 1)
    return x


def _center_crop(x: torch.Tensor, size: int) -> torch.Tensor:
    h, w = x.shape[-2:]
    if h < size or w < size:
        raise ValueError(f"image {h}x{w} is smaller than the benchmark crop {size}x{size}")
    top, left = (h - size) // 2, (w - size) // 2
    return x[..., top : top + size, left : left + size].contiguous()


def parse_method(method: str) -> tuple[str, dict]:
    """``"METHOD[@PRIOR][:KEY=VALUE;...]"`` -> (METHOD, params), e.g. ``"denoiser@drunet-rgb"``,
    ``"denoiser:ensemble=8"``; values are read as int, then float, else kept as text."""
    method, _, options = method.partition(":")
    base, _, prior = method.partition("@")
    params: dict = {"prior": prior} if prior else {}
    for item in filter(None, options.split(";")):
        key, equals, value = item.partition("=")
        if not equals or not key:
            raise ValueError(f"method {method!r}: option {item!r} is not KEY=VALUE")
        for kind in (int, float):
            try:
                params[key] = kind(value)
                break
            except ValueError:
                continue
        else:
            params[key] = value
    return base, params


def seeded_problem(operator: str, noise: str, clean: torch.Tensor, seed: int) -> Problem:
    """The problem of degrading ``clean`` (1, C, H, W) by the CLI specs ``operator`` and ``noise``,
    its noise and mask seeded by ``seed`` (as every benchmark and the tuning draw them)."""
    degradation = Degradation.from_strings(operator, noise, shape=tuple(clean.shape[1:]), seed=seed)
    y = degradation.apply(clean, torch.Generator().manual_seed(seed))
    return Problem(y, degradation.build_operator(), sigma=degradation.sigma)


DRAW_STRIDE = 1000  # draw k seeds image i with seed + 1000 k + i (so draws never share a seed below 1000 images)


def run_setting(setting: Setting, images, methods, *, seed: int, progress: bool = False) -> list[dict]:
    """Every (image, method) result of one setting."""
    results = []
    for index, (name, clean) in enumerate(images):
        problem = seeded_problem(setting.operator, setting.noise, clean, seed + index)
        y, operator = problem.y, problem.operator
        for method in methods:
            base, params = parse_method(method)
            chosen = get_method(base)
            if not chosen.applies(operator):
                continue
            try:
                # the first image records PSNR along iterations, for the curves (never to pick an iterate)
                result = restore(problem, base, params=params or None, reference=clean if index == 0 else None)
            except ImportError as error:  # optional method (e.g. bm3d) not installed
                logger.warning("skipping %s: %s", method, error)
                continue
            x = result.x.clamp(0, 1)
            results.append({
                "image": name, "method": method, "status": result.status,
                "psnr": float(psnr(x, clean)), "ssim": float(ssim(x, clean)), "seconds": result.seconds,
                "iterations": None if result.history is None else result.history.iterations,
                "output": x if index == 0 else None, "clean": clean if index == 0 else None,
                "measurements": y if index == 0 else None, "operator": operator if index == 0 else None,
                "curve": result.history.psnr if (index == 0 and result.history is not None) else None,
            })
            if progress:
                print(f"  {setting.label:32s} {name:18s} {method:15s} {results[-1]['psnr']:6.2f} dB "
                      f"{result.seconds:6.2f} s", flush=True)
    return results


def run_suite(name: str, *, images: str | None = None, methods: list[str] | None = None,
              out_dir: str | Path = "docs/benchmarks", quick: bool = False, progress: bool = False) -> Report:
    """Run a suite and write its reports; returns where they are."""
    if name == "timing":
        from learnreg.bench.timing import run_timing

        return run_timing(out_dir=out_dir, progress=progress)
    suite = get_suite(name)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    all_rows, figure_rows = [], []
    settings = suite.settings[::4] if quick else suite.settings
    for setting in settings:
        size = suite.size - suite.size % setting.factor
        chosen = images.split(",")[:1] if (quick and images) else images
        setting_images = load_images(chosen, suite, setting.mode, size)
        if quick:
            setting_images = setting_images[:1]
        setting_methods = tuple(methods) if methods else setting.methods
        draws = 1 if quick else setting.draws
        results = []
        for draw in range(draws):  # draw 0 is the single-draw benchmark; later draws shift every seed
            for r in run_setting(setting, setting_images, setting_methods, seed=suite.seed + DRAW_STRIDE * draw,
                                 progress=progress):
                r["draw"] = draw
                if draw:
                    r["output"] = None  # crops and curves show draw 0
                results.append(r)
        for method in setting_methods:
            rows = [r for r in results if r["method"] == method]
            if rows:
                all_rows.append(_summary_row(setting, method, rows, draws))
        firsts = [r for r in results if r["output"] is not None]
        if firsts:
            figure_rows.append((setting, firsts))
    report = Report(name, all_rows, out_dir / f"{name}.md", out_dir / f"{name}.json", out_dir / f"{name}.png")
    atomic_write_text(report.json_path, json.dumps({"suite": name, "environment": environment(), "rows": all_rows}, indent=1))
    atomic_write_text(report.markdown_path, markdown(suite, all_rows))
    _figure(report.figure_path, figure_rows)
    _curves(out_dir, name, figure_rows)
    return report


def _summary_row(setting: Setting, method: str, rows: list[dict], draws: int) -> dict:
    """One table row: means over every (image, draw), per-image means over the draws, per-draw means."""
    images = list(dict.fromkeys(r["image"] for r in rows))
    per_image = []
    for image in images:
        mine = [r for r in rows if r["image"] == image]
        first = mine[0]
        entry = {"image": image, "psnr": statistics.fmean(r["psnr"] for r in mine),
                 "ssim": statistics.fmean(r["ssim"] for r in mine),
                 "seconds": statistics.median(r["seconds"] for r in mine),
                 "iterations": first["iterations"],
                 "status": "diverged" if any(r["status"] == "diverged" for r in mine) else first["status"]}
        if draws > 1:
            entry["psnr_draws"] = [r["psnr"] for r in mine]
        per_image.append(entry)
    row = {
        "task": setting.task, "setting": setting.label, "operator": setting.operator, "noise": setting.noise,
        "method": method, "images": images,
        "psnr": statistics.fmean(r["psnr"] for r in rows), "ssim": statistics.fmean(r["ssim"] for r in rows),
        "median_seconds": statistics.median(r["seconds"] for r in rows),
        "diverged": sum(r["status"] == "diverged" for r in rows),
        "per_image": per_image,
    }
    if draws > 1:
        row["draws"] = draws
        row["psnr_draws"] = [statistics.fmean(r["psnr"] for r in rows if r["draw"] == d) for d in range(draws)]
    return row


CURVE_SETTINGS = {"90% missing": "inpainting-90", "gaussian sigma_b 2.0, noise 0.01": "deblurring-2.0",
                  "x2 bicubic, noise 0.01": "sr-x2-bicubic-0.01"}


def _curves(out_dir: Path, suite: str, figure_rows) -> None:
    """PSNR against iterations on the first image of a few settings (like Willingham et al., Fig. 2)."""
    from learnreg.viz import psnr_curves

    for setting, results in figure_rows:
        if setting.label not in CURVE_SETTINGS:
            continue
        curves = {r["method"]: (list(range(1, len(r["curve"]) + 1)), r["curve"]) for r in results if r["curve"]}
        if curves:
            psnr_curves(out_dir / f"{suite}-curves-{CURVE_SETTINGS[setting.label]}.png", curves,
                        title=f"{setting.task}, {setting.label}: {results[0]['image']}")


def environment() -> dict:
    return {"torch": torch.__version__, "threads": torch.get_num_threads(), "machine": platform.machine(),
            "processor": platform.processor() or platform.machine(), "python": platform.python_version()}


def markdown(suite: Suite, rows: list[dict]) -> str:
    env = environment()
    lines = [f"# Benchmark `{suite.name}`", "", suite.description, "",
             f"Measured with `learnreg bench {suite.name}` — torch {env['torch']}, {env['threads']} threads, "
             f"{env['machine']}. Mean PSNR (dB) / SSIM over the images, median seconds per image.", ""]
    lines += [f"- {note}" for note in suite.notes]
    drawn = sorted({r["draws"] for r in rows if r.get("draws", 1) > 1})
    if drawn:
        lines.append(f"- Rows whose PSNR shows [lowest, highest] average {' or '.join(map(str, drawn))} noise draws "
                     f"per image (draw k seeds image i with {suite.seed} + {DRAW_STRIDE} k + i; draw 0 is the "
                     "single-draw benchmark); the brackets hold the lowest and highest per-draw means. Crops and "
                     "curves show draw 0.")
    lines += ["", "| task | setting | method | PSNR | SSIM | s / image |", "|---|---|---|---|---|---|"]
    for r in rows:
        flag = f" ({r['diverged']} diverged)" if r["diverged"] else ""
        spread = (f" [{min(r['psnr_draws']):.2f}, {max(r['psnr_draws']):.2f}]" if r.get("draws", 1) > 1 else "")
        lines.append(f"| {r['task']} | {r['setting']} | {r['method']} | {r['psnr']:.2f}{spread} | {r['ssim']:.4f} | "
                     f"{r['median_seconds']:.2f}{flag} |")
    lines += ["", f"![crops]({suite.name}.png)", ""]
    lines += [f"![PSNR against iterations]({suite.name}-curves-{key}.png)" for key in CURVE_SETTINGS.values()
              if any(r["setting"] in CURVE_SETTINGS and CURVE_SETTINGS[r["setting"]] == key for r in rows)]
    return "\n".join(lines)


def _figure(path: Path, figure_rows) -> None:
    """One row per setting: measurements, each method, reference (64x64 crop... 128 px centre crop)."""
    from learnreg.restore.baselines import upsample_for_display
    from learnreg.viz import side_by_side

    panels, columns = [], 0
    for setting, results in figure_rows:
        first = results[0]
        row = [(f"{setting.label}\ninput", upsample_for_display(first["measurements"], first["operator"]))]
        row += [(f"{r['method']} {r['psnr']:.2f}", r["output"]) for r in results]
        row.append(("reference", first["clean"]))
        columns = max(columns, len(row))
        panels.append(row)
    flat = []
    for row in panels:
        crop = [(title, _center_crop(img, 128)) for title, img in row]
        flat += crop + [("", None)] * (columns - len(crop))
    if flat:
        side_by_side(path, flat, columns=columns)
