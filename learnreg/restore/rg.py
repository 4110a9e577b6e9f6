"""Restoration with learned regularizing gradients and deep-equilibrium maps: ``rg-gd``, ``rg-fb``.

Willingham et al. (VISAPP 2024) and pnpReG (Fermanian et al., SIIMS 2023) solve

    min_x  1/2 ||A x - y||^2 + s^2 R(x),   s = max(sigma, floor),                 (4)

where only ``G ~ grad R`` is known, a DRUNet without noise map, shipped as the
``gradient`` half of a regularizer pair (``architecture: rg_pair``):

============  =============================================================================
``rg-gd``     gradient descent on (4), ``x <- x - eta (A^T (A x - y) + s^2 G(x))`` (eq. 14),
              by one of four solvers (``solver`` parameter, below)
``rg-fb``     the forward-backward map of eq. (12), ``x <- P(x - eta A^T (A x - y), sqrt(eta) s)``,
              iterated to its fixed point with Anderson acceleration: how an MTDEQ denoiser
              (or the denoiser of a pair trained by RG1 / RERG) was trained to be used
============  =============================================================================

``rg-gd`` solvers, each counting its ``G`` calls in ``History.evaluations``:

* ``anderson`` (default): :class:`~learnreg.solvers.FixedPoint` with Anderson memory ``memory``
  on the gradient step map of eq. (14), 150 evaluations of ``G``: the fixed point that DEQGD and
  RERG were trained for, reached where plain GD needs thousands of iterations (measured in
  ``docs/benchmarks/rg.md``).
* ``adam``: pnpReG's test-time solver, Adam on ``x`` fed ``A^T (A x - y) + s^2 G(x)``,
  learning rate per task family (0.002 SR, 0.004 deblurring and denoising, 0.01 inpainting;
  REFERENCE §2); the paper's protocol is ``solver=adam iterations=1500``. Adam normalises each
  pixel's step, so it moves the missing pixels of a noise-free completion even though the
  prior's weight ``s^2`` is tiny there -- and, as it never settles on a point where ``G`` is not
  exactly zero, it keeps drifting: with our CPU-trained pairs the last of 1,500 iterates is far
  worse than the fixed point (``docs/benchmarks/rg.md``).
* ``gd``: the fixed step ``eta`` of eq. (14).
* ``nesterov``: Nesterov's accelerated gradient with gradient restart, same ``eta``.

Default step (``step = 0``): ``eta = min(0.05, 1 / ||A||^2)``, the step the networks were
trained with (``eta_GD = 0.05``, DEQGD / RERG), capped where the data term alone would make
it unstable (``||A|| > 4.5``, not the case of the paper's operators, all of norm <= 1). The
fixed point does not depend on ``eta``; stability does, through the unknown Lipschitz
constant ``L_G`` of ``G`` (``eta (||A||^2 + s^2 L_G) < 2``). With ``gd``, ``nesterov`` and
``anderson`` the weight ``s^2`` sets the prior's pull on unobserved pixels: on a noise-free
completion (``s = floor = 0.01``) they move slowly, and within 150 evaluations the iterate
stays nearer the start than the fixed point there (see the benchmark).

Start (pnpReG's): bicubic upsampling for SR, ``y`` for deblurring and denoising, and ``y``
with the missing pixels at 0.5 for completion (:func:`rg_initial_estimate`).

Priors: ``prior`` names a shipped ``rg_pair`` (its gradient; :func:`learnreg.hub.list_models`),
the path of a weights ``.json``, or a gradient registered with :func:`register_gradient`;
``auto`` takes the largest shipped pair whose channels match the image. ``rg-fb`` takes any
denoiser :func:`~learnreg.restore.pnp.resolve_prior` knows (a shipped ``drunet`` with noise
map such as MTDEQ, or a pair's denoiser); the ``pnp-*`` methods accept pairs too.
"""

from __future__ import annotations

import functools
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from torch import Tensor

from learnreg.learned.deq import DEFAULT_SIGMA_FLOOR, fb_map
from learnreg.learned.hub import list_models
from learnreg.learned.hub import load as load_weights
from learnreg.physics.operator import Operator
from learnreg.regularizers.data import L2Data
from learnreg.regularizers.gradient import RegularizingGradient
from learnreg.restore.baselines import bicubic_upsample, family, observation_mask
from learnreg.restore.methods import Method, Parameter, Problem, register
from learnreg.restore.pnp import resolve_prior
from learnreg.solvers import Adam, Diverged, FixedPoint, GradientDescent, MaxIter, Nesterov, RelativeChange
from learnreg.solvers import gradient_step_map
from learnreg.solvers.base import History, Solver, StopRule

logger = logging.getLogger(__name__)

__all__ = ["ADAM_LR", "ETA_FB", "ETA_GD", "GRADIENTS", "SOLVERS", "available_gradients", "default_step",
           "register_gradient", "resolve_gradient", "rg_initial_estimate", "unregister_gradient"]

#: Training steps of Willingham et al.: GD map (eq. 14) and FB map (eq. 12).
ETA_GD = 0.05
ETA_FB = 0.49
#: pnpReG's Adam learning rates per task family (REFERENCE §2; denoising as deblurring).
ADAM_LR = {"sr": 0.002, "blur": 0.004, "denoise": 0.004, "inpaint": 0.01}
SOLVERS = ("adam", "gd", "nesterov", "anderson")
NO_PAIR_MESSAGE = "no regularizer pair is shipped yet; train one with `learnreg train recipes/rg/pnpreg.yaml`"

GradientField = Callable[[Tensor], Tensor]


@dataclass(frozen=True)
class GradientEntry:
    """A regularizing gradient available by name: ``G(x)`` and its channel count (None: any)."""

    gradient: GradientField
    channels: int | None = None


GRADIENTS: dict[str, GradientEntry] = {}


def register_gradient(name: str, gradient: GradientField, *, channels: int | None = None,
                      replace: bool = False) -> GradientEntry:
    """Make ``gradient`` usable as ``params={"prior": name}`` by ``rg-gd``.

    Parameters
    ----------
    name : str
        Takes precedence over a shipped model of the same name.
    gradient : callable
        ``G``: ``(B, C, H, W) -> (B, C, H, W)``.
    channels : int, optional
        Channels ``G`` takes; ``None`` for any.
    replace : bool
        Allow replacing an entry of the same name.
    """
    if not callable(gradient):
        raise TypeError(f"register_gradient: gradient must be callable G(x), got {type(gradient).__name__}")
    if name in GRADIENTS and not replace:
        raise ValueError(f"gradient {name!r} is already registered; pass replace=True to replace it")
    GRADIENTS[name] = GradientEntry(gradient, channels)
    return GRADIENTS[name]


def unregister_gradient(name: str) -> None:
    """Remove a gradient registered with :func:`register_gradient` (no error if absent)."""
    GRADIENTS.pop(name, None)


def _gradient_config(config: dict[str, Any]) -> dict[str, Any] | None:
    """The config of the ``G`` a record holds: a pair's gradient, a DRUNet without noise map; else None."""
    if config.get("architecture") == "rg_pair":
        return config["gradient"]
    if config.get("architecture") == "drunet" and config.get("noise_map") is False:
        return config
    return None


def _shipped_gradients() -> dict[str, dict[str, Any]]:
    """Shipped models holding a ``G``: name -> record path, channels, parameters."""
    found = {}
    for model in list_models():
        config = _gradient_config(json.loads(Path(model["path"]).read_text(encoding="utf-8"))["config"])
        if config is not None:
            found[model["name"]] = {"path": model["path"], "channels": config.get("channels"),
                                    "parameters": model.get("parameters") or 0}
    return found


def available_gradients() -> list[str]:
    """Names usable as ``rg-gd``'s ``prior``: the registered gradients, then the shipped pairs."""
    return sorted(GRADIENTS) + sorted(set(_shipped_gradients()) - set(GRADIENTS))


@functools.lru_cache(maxsize=4)
def _load_gradient(path: str, sha256: str, device: str, dtype: torch.dtype) -> torch.nn.Module:
    # keyed by the record's hash too, so that retrained weights under the same name are reloaded
    network = load_weights(path, device=device).to(dtype=dtype)
    return network.gradient if hasattr(network, "gradient") else network


def resolve_gradient(name: str, *, image_channels: int, device: torch.device | str = "cpu",
                     dtype: torch.dtype = torch.float32) -> tuple[GradientEntry, str]:
    """The regularizing gradient ``G`` called ``name`` (or chosen for ``"auto"``) and the name it resolved to.

    Parameters
    ----------
    name : str
        A registered gradient, a shipped ``rg_pair`` (its ``gradient`` half), the path of a weights
        ``.json`` of a pair (or of a DRUNet without noise map), or ``"auto"``.
    image_channels : int
        Channels of the images to restore; ``G`` must take as many.

    Raises
    ------
    ValueError
        Nothing shipped for ``"auto"``, an unknown name (the message lists the available ones), a
        model that is not a regularizer pair, or a channel mismatch.
    """
    if name in GRADIENTS:
        entry = GRADIENTS[name]
    else:
        shipped = _shipped_gradients()
        if name == "auto":
            fitting = [n for n, m in shipped.items() if m["channels"] == image_channels]
            if not fitting:
                raise ValueError(NO_PAIR_MESSAGE if not shipped else
                                 f"no shipped regularizer pair takes {image_channels}-channel images; shipped: "
                                 f"{', '.join(sorted(shipped))}")
            name = max(fitting, key=lambda n: (shipped[n]["parameters"], n))
            logger.info("prior auto -> %s", name)
        if name in shipped:
            path = shipped[name]["path"]
        elif name.endswith(".json") and Path(name).is_file():
            path = name
        else:
            listing = ", ".join(available_gradients())
            raise ValueError(f"unknown prior {name!r} for rg-gd; available regularizer pairs: {listing}" if listing
                             else f"unknown prior {name!r} for rg-gd: {NO_PAIR_MESSAGE}")
        record = json.loads(Path(path).read_text(encoding="utf-8"))
        config = _gradient_config(record["config"])
        if config is None:
            listing = ", ".join(available_gradients()) or "none shipped"
            raise ValueError(f"model {name!r} (architecture {record['config'].get('architecture')!r}) holds no "
                             f"regularizing gradient G(x); rg-gd needs a regularizer pair (architecture rg_pair, "
                             f"e.g. from recipes/rg/pnpreg.yaml); available: {listing}")
        network = _load_gradient(str(path), record["sha256"], str(torch.device(device)), dtype)
        entry = GradientEntry(network, config.get("channels"))
    if entry.channels not in (None, image_channels):
        raise ValueError(f"prior {name!r} takes {entry.channels}-channel images, the problem has {image_channels}; "
                         f"use a pair trained with data.channels: {image_channels}")
    return entry, name


class _Counted:
    """A callable that counts its calls (network evaluations)."""

    def __init__(self, function: Callable[..., Tensor]):
        self.function, self.calls = function, 0

    def __call__(self, *args: Any) -> Tensor:
        self.calls += 1
        return self.function(*args)


def rg_initial_estimate(y: Tensor, operator: Operator) -> Tensor:
    """pnpReG's start: bicubic for SR, ``y`` with holes at 0.5 for completion, ``y`` otherwise.

    Parameters
    ----------
    y : Tensor, shape (B, *operator.out_shape)
    operator : Operator
        Linear.

    Returns
    -------
    Tensor, shape (B, *operator.in_shape)
    """
    kind = family(operator)
    if kind == "sr":
        return bicubic_upsample(y, operator)
    if kind == "inpaint":
        mask = observation_mask(operator).to(y)
        return mask * y + 0.5 * (1.0 - mask)
    if tuple(y.shape[1:]) == tuple(operator.in_shape):
        return y
    return operator.adjoint(y)


def default_step(operator: Operator) -> float:
    """``eta = min(ETA_GD, 1 / ||A||^2)``: the training step, capped by the data term's ``1 / L``."""
    squared = operator.norm() ** 2  # type: ignore[attr-defined]
    return ETA_GD if squared <= 0 else min(ETA_GD, 1.0 / squared)


def _check(params: dict[str, Any], *, positive: tuple[str, ...] = (), non_negative: tuple[str, ...] = ()) -> None:
    for key in positive:
        if not params[key] > 0:
            raise ValueError(f"parameter {key} must be > 0, got {params[key]}")
    for key in non_negative:
        if params[key] < 0:
            raise ValueError(f"parameter {key} must be >= 0 (0 = automatic), got {params[key]}")


def _stop(params: dict[str, Any]) -> StopRule:
    rule = MaxIter(params["iterations"]) | Diverged(abs_max=100.0)
    return rule | RelativeChange(params["tol"]) if params["tol"] > 0 else rule


def _run(solver: Solver, counter: _Counted, x0: Tensor, params: dict[str, Any], reference, callback
         ) -> tuple[Tensor, History]:
    solver.evaluations = lambda state: counter.calls  # type: ignore[method-assign]  # network calls
    return solver.run(x0, stop=_stop(params), reference=reference, callback=callback, record_objective=False)


def run_gd(problem: Problem, params: dict[str, Any], *, reference=None, callback=None) -> tuple[Tensor, History]:
    """Gradient descent with a learned regularizing gradient (module docstring).

    Notes
    -----
    The gradient of (4) is ``A^T (A x - y) + s^2 G(x)``: :class:`~learnreg.regularizers.L2Data`
    plus :class:`~learnreg.regularizers.RegularizingGradient` weighted by ``s^2``,
    ``s = max(sigma, floor)``; each solver calls ``G`` once per iteration.
    """
    solver_name = params["solver"]
    if solver_name not in SOLVERS:
        raise ValueError(f"unknown solver {solver_name!r} for rg-gd; valid: {', '.join(SOLVERS)}")
    _check(params, positive=("iterations",), non_negative=("memory", "step", "lr", "floor", "tol"))
    operator, y = problem.operator, problem.y
    entry, _ = resolve_gradient(params["prior"], image_channels=operator.in_shape[0], device=y.device,
                                dtype=y.dtype)
    counter = _Counted(entry.gradient)
    s = max(problem.sigma, params["floor"])
    data, prior = L2Data(operator, y), RegularizingGradient(counter, weight=s * s)
    eta = params["step"] if params["step"] > 0 else default_step(operator)
    solver: Solver
    if solver_name == "adam":
        lr = params["lr"] if params["lr"] > 0 else ADAM_LR[family(operator)]
        solver = Adam(data, prior, lr=lr)
    elif solver_name == "gd":
        solver = GradientDescent(data, prior, step=eta)
    elif solver_name == "nesterov":
        solver = Nesterov(data, prior, step=eta, restart="gradient")
    else:
        solver = FixedPoint(gradient_step_map(data, prior, step=eta), anderson=params["memory"])
    return _run(solver, counter, rg_initial_estimate(y, operator), params, reference, callback)


def run_fb(problem: Problem, params: dict[str, Any], *, reference=None, callback=None) -> tuple[Tensor, History]:
    """The forward-backward map of eq. (12) to its fixed point, with Anderson acceleration.

    Notes
    -----
    ``x <- P(x - eta A^T (A x - y), sqrt(eta) s)``, ``s = max(sigma, floor)``, ``eta = step``
    (0.49, the MTDEQ training step; :func:`~learnreg.learned.deq.fb_map`), from
    :func:`rg_initial_estimate`. Forward-backward needs ``eta ||A||^2 < 2``. One denoiser call
    per iteration.
    """
    _check(params, positive=("iterations", "step"), non_negative=("memory", "floor", "tol"))
    operator, y = problem.operator, problem.y
    channels = operator.in_shape[0]
    entry, name = resolve_prior(params["prior"], image_channels=channels, device=y.device, dtype=y.dtype)
    if entry.channels not in (None, channels):
        raise ValueError(f"prior {name!r} takes {entry.channels}-channel images, the problem has {channels}; "
                         "rg-fb runs the denoiser as trained (no colour transform): use pnp-fb for a gray "
                         "denoiser on colour images")
    eta = params["step"]
    squared = operator.norm() ** 2  # type: ignore[attr-defined]
    if eta * squared >= 2:
        raise ValueError(f"parameter step = {eta} is too large for ||A||^2 = {squared:.3g}: forward-backward needs "
                         f"step < {2 / squared:.3g}")
    counter = _Counted(entry.denoiser)
    step = functools.partial(fb_map, operator=operator, y=y, sigma=problem.sigma, denoiser=counter, eta=eta,
                             sigma_floor=params["floor"])
    solver = FixedPoint(step, anderson=params["memory"])
    return _run(solver, counter, rg_initial_estimate(y, operator), params, reference, callback)


def _linear(operator: Operator) -> bool:
    return operator.linear


_REQUIREMENT = "regularizing-gradient methods need a linear operator"
_FLOOR = Parameter(float, DEFAULT_SIGMA_FLOOR, "floor on the noise level s = max(sigma, floor) ([0, 1] scale); "
                                               "the prior's weight s^2 at sigma = 0")
_TOL = Parameter(float, 0.0, "stop when the relative change falls below this (0 = run all iterations)")

register(Method("rg-gd", "gradient descent with a learned regularizing gradient (pnpReG, RG1, DEQGD, RERG)", run_gd, {
    "prior": Parameter(str, "auto", "regularizer pair: a shipped rg_pair (`learnreg models`), a weights .json path, "
                                    "or a name from register_gradient; auto = largest shipped pair fitting the image"),
    "solver": Parameter(str, "anderson", "anderson (GD map to its fixed point) | adam (pnpReG's test solver) | gd | "
                                         "nesterov (gradient restart)"),
    "iterations": Parameter(int, 150, "iterations (one G evaluation each); the paper: solver=adam iterations=1500"),
    "step": Parameter(float, 0.0, "step eta of gd / nesterov / anderson; 0 = min(0.05, 1 / ||A||^2)"),
    "lr": Parameter(float, 0.0, "Adam learning rate; 0 = pnpReG's: 0.002 SR, 0.004 deblur / denoise, 0.01 inpaint"),
    "memory": Parameter(int, 5, "Anderson memory (solver anderson; 0 = plain iteration of the GD map)"),
    "floor": _FLOOR,
    "tol": _TOL,
}, _linear, _REQUIREMENT))
register(Method("rg-fb", "the trained forward-backward map P(x - eta D(x)) to its fixed point (MTDEQ, Anderson)",
                run_fb, {
    "prior": Parameter(str, "auto", "denoiser: a shipped drunet with noise map (rg-mtdeq) or rg_pair, a weights "
                                    ".json path, or a name from register_prior; auto as pnp-*"),
    "iterations": Parameter(int, 100, "iterations (one denoiser evaluation each)"),
    "step": Parameter(float, ETA_FB, "step eta of eq. (12) (0.49 in training); needs step ||A||^2 < 2"),
    "memory": Parameter(int, 5, "Anderson memory; 0 = plain iteration"),
    "floor": _FLOOR,
    "tol": Parameter(float, 1e-6, "stop when the relative change falls below this (0 = run all iterations)"),
}, _linear, _REQUIREMENT))
