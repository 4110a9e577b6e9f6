"""Where the error of ×3 bicubic SR with noise 0.01 lies, by frequency band (docs/pnp-x3-bicubic.md).

``python -m learnreg.bench.bands`` restores the RGB development crops of the ``classical``
suite's ``x3 bicubic`` settings (noise 0.01 and noise-free, seeded as the benchmark) with TV, the
default ``pnp-hqs``, the best plug-and-play configuration found for it with a Gaussian denoiser
(:data:`BEST`) and ``pnp-hqs`` with the denoiser trained inside unrolled HQS
(:data:`~learnreg.bench.suites.UNROLLED_PNP`), splits
each error with :func:`learnreg.metrics.band_errors` at 1/12, 1/6 (the Nyquist limit of the ×3
samples) and 1/3 cycles per pixel, and writes ``docs/benchmarks/pnp-x3-bands.{json,png}``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from learnreg.bench.runner import load_images, parse_method, seeded_problem
from learnreg.bench.suites import UNROLLED_PNP, get_suite
from learnreg.data.io import atomic_write_text
from learnreg.metrics import band_errors, psnr
from learnreg.restore import restore

EDGES = (0.0, 1 / 12, 1 / 6, 1 / 3, 0.5)
BAND_LABELS = ("[0, 1/12)", "[1/12, 1/6)", "[1/6, 1/3)", "[1/3, 1/2]")
# 40 evaluations: 5 HQS iterations, each averaged over the 8 symmetries (README, docs/pnp-x3-bicubic.md)
BEST = "pnp-hqs:prior=drunet-gray-wide-ft;iterations=5;lambda=0.10;ensemble=8;sigma_end=0.018;precision=bfloat16"
METHODS = ("tv", "pnp-hqs", BEST, UNROLLED_PNP)
SETTINGS = ("x3 bicubic, noise 0.01", "x3 bicubic, noise 0")
SHORT = {BEST: "best", UNROLLED_PNP: "unrolled"}


def measure() -> list[dict]:
    """One row per (setting, crop, method): PSNR and the MSE of each band."""
    suite = get_suite("classical")
    images = load_images(None, suite, "rgb", 255)
    rows = []
    for label in SETTINGS:
        setting = next(s for s in suite.settings if s.label == label)
        for index, (name, clean) in enumerate(images):
            problem = seeded_problem(setting.operator, setting.noise, clean, suite.seed + index)
            for method in METHODS:
                base, params = parse_method(method)
                x = restore(problem, base, params=params or None).x.clamp(0, 1)
                bands = band_errors(x, clean, EDGES)[0]
                rows.append({"setting": label, "image": name, "method": method, "psnr": float(psnr(x, clean)),
                             "band_mse": [float(b) for b in bands]})
                print(f"{label:24s} {name:18s} {SHORT.get(method, method):8s} {rows[-1]['psnr']:6.2f} dB  "
                      + "  ".join(f"{1e6 * b:8.2f}" for b in rows[-1]["band_mse"]), flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out-dir", default="docs/benchmarks")
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    rows = measure()
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "pnp-x3-bands.json", json.dumps(
        {"edges": EDGES, "bands": BAND_LABELS, "best": BEST, "unit": "MSE per pixel", "rows": rows}, indent=1))
    from learnreg.viz import band_bars

    short = {"tv": "TV", "pnp-hqs": "pnp-hqs (default)", BEST: "PnP, Gaussian prior (best found)",
             UNROLLED_PNP: "PnP, unrolled prior"}
    panels: dict = {}
    for row in rows:
        noise = "noise 0.01" if row["setting"].endswith("0.01") else "noise-free"
        if noise == "noise-free" and row["method"] != BEST:
            continue
        panels.setdefault(row["image"], {})[f"{short[row['method']]}, {noise} ({row['psnr']:.2f} dB)"] = row["band_mse"]
    band_bars(out / "pnp-x3-bands.png", panels, BAND_LABELS,
              title="x3 bicubic SR: error by frequency band (the x3 samples resolve up to 1/6)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
