"""Benchmark suites: task x method -> mean PSNR / SSIM and seconds, written under docs/benchmarks/."""

from learnreg.bench.runner import Report, run_suite
from learnreg.bench.suites import SUITES, Setting, Suite

__all__ = ["Report", "SUITES", "Setting", "Suite", "run_suite"]
