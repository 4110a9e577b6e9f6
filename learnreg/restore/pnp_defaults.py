"""Tuned default parameters of the plug-and-play methods, per colour mode and task family.

Each table maps a colour mode (``"gray"``: 1 channel, ``"rgb"``: 3) and a task family
(:func:`learnreg.restore.baselines.family`) to the two parameters that
``python -m learnreg.bench.tune --prior METHOD`` chose on 128x128 crops of the development
images (one grid point per mode and family; the scans are committed as
``docs/benchmarks/tuning-METHOD.json``). A parameter left at 0 by the user takes the tuned value
(:func:`hqs_defaults`, :func:`admm_defaults`, :func:`fb_defaults`, :func:`red_defaults`).
"""

from __future__ import annotations

from typing import Any

from learnreg.restore.baselines import family
from learnreg.restore.methods import Problem

__all__ = ["ADMM_TUNED", "FB_TUNED", "FIXED_LEVEL_MIN", "HQS_DPIR", "HQS_TUNED", "RED_TUNED", "admm_defaults",
           "colour_mode", "fb_defaults", "hqs_defaults", "red_defaults"]

# Fixed-level methods (ADMM, FB, RED) run the denoiser at sigma_d >= 0.05 by default: at the noise
# level itself (0.004-0.03) the 40-100 iterations drift away with an imperfect denoiser (measured with an
# early drunet-gray checkpoint: camera 128, blur 1.6 and SR x2, ADMM fell from 25 to 17 dB; at 0.05 it
# kept 28.6 / 30.2 dB). pnp-admm, pnp-fb and red now take per-family tuned levels (ADMM_TUNED, FB_TUNED,
# RED_TUNED); families without a tuned entry keep this floor.
FIXED_LEVEL_MIN = 0.05

# pnp-hqs's (lambda, iterations) per colour mode ("gray": 1 channel, "rgb": 3) and task family
# (:func:`learnreg.restore.baselines.family`), tuned with the shipped default denoiser and the self-ensemble on 128x128
# crops of the development images (``python -m learnreg.bench.tune --prior pnp-hqs``, docs/benchmarks/tuning-pnp-hqs.json;
# grid lambda 0.015-0.45 x 8-40 iterations, each mode and family keeps the point of best mean PSNR over its settings);
# other families take DPIR's deblurring values. Inpainting chose the grid's corner (0.015, 40 iterations) and RGB SR
# the 40-evaluation budget. Below the corner inpainting is flat: lambda 0.0075 / 0.004 / 0.002 give the same mean PSNR
# to 0.01 dB on the inpainting settings (gray and RGB, 128x128 crops), the exact-projection limit of the data step; and
# moving its schedule (last level 0.01 or 0.02, first level 0.4) costs 0.3-2.9 dB. Gray and RGB differ because a gray
# prior reaches RGB images through the opponent transform.
HQS_TUNED: dict[str, dict[str, tuple[float, int]]] = {
    "gray": {"blur": (0.12, 8), "sr": (0.12, 24), "inpaint": (0.015, 40)},
    "rgb": {"blur": (0.12, 8), "sr": (0.12, 40), "inpaint": (0.015, 40)}}
HQS_DPIR = (0.23, 8)
# pnp-admm's (sigma_d floor, lambda), tuned the same way (``--prior pnp-admm``, 40 iterations,
# docs/benchmarks/tuning-pnp-admm.json; grid sigma_d 0.02-0.07 x lambda 0.25-4); other families keep
# FIXED_LEVEL_MIN and the MAP weight. Every chosen point lies inside the grid.
ADMM_TUNED: dict[str, dict[str, tuple[float, float]]] = {
    "gray": {"blur": (0.05, 0.5), "sr": (0.04, 1.0), "inpaint": (0.03, 2.0)},
    "rgb": {"blur": (0.03, 0.5), "sr": (0.04, 1.0), "inpaint": (0.03, 2.0)}}
# pnp-fb's (sigma_d floor, step as a fraction of 1/L), tuned the same way (``--prior pnp-fb``, 40 iterations,
# docs/benchmarks/tuning-pnp-fb.json; grid sigma_d 0.01-0.05 x step 0.5-1.9); other families keep
# FIXED_LEVEL_MIN and step 1. Deblurring and inpainting take the largest step of the grid (40 iterations
# are few for forward-backward; steps must stay below 2); gray deblurring takes its lowest level, 0.01,
# which is the noise level of its settings, so the level floor max(sigma_n, level) cannot go lower there.
FB_TUNED: dict[str, dict[str, tuple[float, float]]] = {
    "gray": {"blur": (0.01, 1.9), "sr": (0.02, 1.5), "inpaint": (0.015, 1.9)},
    "rgb": {"blur": (0.02, 1.9), "sr": (0.03, 1.5), "inpaint": (0.02, 1.9)}}
# red's (sigma_d floor, lambda), tuned the same way (``--prior red``, 100 iterations,
# docs/benchmarks/tuning-red.json; grid sigma_d 0.01-0.03 x lambda 0.25-4); other families keep
# FIXED_LEVEL_MIN and the MAP weight. Against the former defaults (0.05, 1) the first, 3x3 grid (sigma_d 0.015-0.05 x
# lambda 0.5-2) changed the 24 settings by -0.09 to +1.25 dB (mean +0.46); its gray choices lay at a corner, and
# the wider grid moved them (gray blur and SR to lambda 0.25, gray inpainting to sigma_d 0.01): -0.15 to +0.16 dB on
# the 12 gray settings (mean +0.05; RGB unchanged). Gray blur and SR still take the smallest lambda and gray inpainting
# the lowest level; RGB blur and SR take sigma_d 0.03, the top of this grid (0.05 lost in the first one).
RED_TUNED: dict[str, dict[str, tuple[float, float]]] = {
    "gray": {"blur": (0.015, 0.25), "sr": (0.015, 0.25), "inpaint": (0.01, 2.0)},
    "rgb": {"blur": (0.03, 1.0), "sr": (0.03, 1.0), "inpaint": (0.015, 2.0)}}


def colour_mode(problem: Problem) -> str:
    """``"rgb"`` for 3-channel images, else ``"gray"`` (the keys of the tuned tables)."""
    return "rgb" if problem.operator.in_shape[0] == 3 else "gray"


def hqs_defaults(problem: Problem, params: dict[str, Any]) -> dict[str, Any]:
    """``params`` with ``lambda`` and ``iterations`` of 0 replaced by the tuned values of the colour mode
    and task family."""
    lam, iterations = HQS_TUNED[colour_mode(problem)].get(family(problem.operator), HQS_DPIR)
    return {**params, "lambda": params["lambda"] or lam, "iterations": params["iterations"] or iterations}


def admm_defaults(problem: Problem, params: dict[str, Any]) -> dict[str, Any]:
    """``params`` with ``sigma_denoiser`` and ``lambda`` of 0 replaced by the tuned values of the colour mode
    and task family (``sigma_denoiser`` as a floor: the level is ``max(sigma_n, sigma_denoiser)``)."""
    return _level_defaults(ADMM_TUNED, problem, params, "lambda")


def _level_defaults(table: dict[str, dict[str, tuple[float, float]]], problem: Problem, params: dict[str, Any],
                    second: str, *, cap: float | None = None) -> dict[str, Any]:
    """``sigma_denoiser`` and ``second`` of 0 replaced from ``table`` (else FIXED_LEVEL_MIN and 1), ``second``
    capped at ``cap``; a negative ``second`` is refused."""
    if params[second] < 0:
        raise ValueError(f"parameter {second} must be > 0 (0 = tuned for the task), got {params[second]}")
    level, value = table[colour_mode(problem)].get(family(problem.operator), (FIXED_LEVEL_MIN, 1.0))
    value = value if cap is None else min(value, cap)
    return {**params, "sigma_denoiser": params["sigma_denoiser"] or level, second: params[second] or value}


def fb_defaults(problem: Problem, params: dict[str, Any]) -> dict[str, Any]:
    """``params`` with ``sigma_denoiser`` and ``step`` of 0 replaced by the tuned values of the colour mode and
    task family (``sigma_denoiser`` as a floor, as for pnp-admm); FISTA (``accelerated``) caps a tuned step at 1."""
    return _level_defaults(FB_TUNED, problem, params, "step", cap=1.0 if params.get("accelerated") else None)


def red_defaults(problem: Problem, params: dict[str, Any]) -> dict[str, Any]:
    """``params`` with ``sigma_denoiser`` and ``lambda`` of 0 replaced by the tuned values of the colour mode and
    task family (``sigma_denoiser`` as a floor, as for pnp-admm)."""
    return _level_defaults(RED_TUNED, problem, params, "lambda")
