"""``learnreg demo``: degrade a bundled image, restore it with the best available method, draw it."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import torch

from learnreg.data.io import write_image
from learnreg.data.samples import sample
from learnreg.metrics import psnr, ssim
from learnreg.physics.spec import Degradation
from learnreg.restore import Problem, restore
from learnreg.restore.baselines import upsample_for_display

# The best shipped method for the demo task, with a classical fallback for comparison.
DEMO_OPERATOR, DEMO_NOISE = "blur:gaussian:2.0:25", "gaussian:0.01"


def best_method() -> str:
    """The best available restoration method for the demo task: PnP with a shipped denoiser, else TV."""
    from learnreg.restore.pnp import available_priors

    return "pnp-hqs" if available_priors() else "tv"


def run_demo(*, image: str = "camera", out_dir: str | Path = "out/demo", seed: int = 0) -> Iterator[str]:
    """Degrade ``image``, restore it, write ``side_by_side.png`` and the files; yield report lines."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    clean = sample(image, size=256)
    degradation = Degradation.from_strings(DEMO_OPERATOR, DEMO_NOISE, shape=tuple(clean.shape[1:]), seed=seed)
    y = degradation.apply(clean, torch.Generator().manual_seed(seed))
    problem = Problem(y, degradation.build_operator(), sigma=degradation.sigma)
    yield f"{image} 256x256, {degradation.describe()}: measurements {float(psnr(y.clamp(0, 1), clean)):.2f} dB"
    panels = [("measurements", upsample_for_display(y, problem.operator))]
    methods = list(dict.fromkeys([best_method(), "tikhonov", "tv"]))
    for method in methods:
        result = restore(problem, method)
        x = result.x.clamp(0, 1)
        p, s = float(psnr(x, clean)), float(ssim(x, clean))
        yield f"{method:12s} PSNR {p:.2f} dB  SSIM {s:.4f}  {result.seconds:.2f} s  ({result.status})"
        panels.append((f"{method} {p:.2f} dB", x))
        if method == methods[0]:
            write_image(out_dir / "restored.png", x, force=True)
    panels.append(("reference", clean))
    write_image(out_dir / "measurements.png", y.clamp(0, 1), force=True)
    degradation.save(out_dir / "measurements.json", force=True)
    from learnreg.viz import side_by_side

    path = side_by_side(out_dir / "side_by_side.png", panels)
    yield f"wrote {path}"
