"""Data-parallel training against one process: same recipe, same total batch, validation PSNR.

``python -m learnreg.bench.ddp_check`` trains ``recipes/ddp-check.yaml`` once in one process
and once with ``torchrun --nproc_per_node=2`` (gloo), then writes ``docs/benchmarks/ddp.md``
with both validation PSNRs, wall times and throughputs. The two runs see different random
patches (each rank draws its own stream), so they agree statistically, not bitwise.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from learnreg.data.io import atomic_write_text


def _last_row(log: Path) -> dict:
    with open(log, newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if row.get("psnr")]
    return rows[-1]


def _run(command: list[str], env: dict) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, env=env)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipe", default="recipes/ddp-check.yaml")
    parser.add_argument("--out", default="docs/benchmarks/ddp.md")
    args = parser.parse_args(argv)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    results = {}
    for label, launcher in (("1 process", [sys.executable, "-m", "learnreg.training"]),
                            ("2 processes (torchrun, gloo)", [sys.executable, "-m", "torch.distributed.run",
                                                              "--nproc_per_node=2", "-m", "learnreg.training"])):
        out_dir = Path("runs") / ("ddp-check-" + label.split()[0])
        if out_dir.exists():
            import shutil

            shutil.rmtree(out_dir)
        seconds = _run(launcher + [args.recipe, "--output-dir", str(out_dir), "--quiet", "--no-ship"], env)
        row = _last_row(out_dir / "log.csv")
        results[label] = {"seconds": seconds, "psnr": float(row["psnr"]), "patches_per_s": float(row["patches_per_s"])}
    values = list(results.values())
    gap = abs(values[0]["psnr"] - values[1]["psnr"])
    lines = ["# Data-parallel training check", "",
             f"Recipe `{args.recipe}` (total batch 16; each of 2 processes draws 8), measured with "
             "`python -m learnreg.bench.ddp_check` on the 2-core CPU machine, 1 thread per process.", "",
             "| run | validation PSNR (dB) | wall s | patches/s |", "|---|---|---|---|"]
    lines += [f"| {k} | {v['psnr']:.3f} | {v['seconds']:.0f} | {v['patches_per_s']:.1f} |" for k, v in results.items()]
    lines += ["", f"Gap: {gap:.3f} dB (target ≤ 0.1 dB): {'met' if gap <= 0.1 else 'NOT met'}.", ""]
    atomic_write_text(args.out, "\n".join(lines))
    atomic_write_text(Path(args.out).with_suffix(".json"), json.dumps(results, indent=1))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
