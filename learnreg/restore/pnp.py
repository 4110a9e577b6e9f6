"""Plug-and-play restoration with a learned Gaussian denoiser: ``pnp-hqs``, ``pnp-admm``, ``pnp-fb``, ``red``.

Every method solves, for a linear operator ``A`` and noise level ``sigma_n``, the
problem whose MAP form is

    min_x  1/2 ||A x - y||^2 + lambda sigma_n^2 phi(x),                        (1)

where the denoiser is read as a prox, ``D(v, sigma) ~= prox_{sigma^2 phi}(v)``
(:class:`~learnreg.regularizers.denoiser.DenoiserPrior`, ``sigma = sqrt(tau)``), so
that ``lambda = 1`` is the Bayesian MAP weight. With an exact prox (e.g. the
closed-form ``D(v, sigma) = v / (1 + c sigma^2)`` of ``phi = c/2 ||x||^2``) ADMM,
forward-backward and RED converge to the minimiser of (1) (RED of its
``x - D(x)`` form), HQS at a fixed ``sigma`` to that of its penalised version; this is
what ``tests/restore/test_pnp.py`` checks.

============  ==================================================  =====================
method        denoiser level                                      default budget
============  ==================================================  =====================
``pnp-hqs``   geometric, ``0.192`` (49/255) down to ``sigma_n``   tuned per task family
``pnp-admm``  fixed ``sigma_d = max(sigma_n, level)``, tuned        40
``pnp-fb``    fixed ``sigma_d = max(sigma_n, level)``, tuned;     40
              sets ``lambda`` (see run_fb)
``red``       fixed ``sigma_d = max(sigma_n, level)``, tuned        100
============  ==================================================  =====================

The noise level is floored, ``sigma_n = max(problem.sigma, sigma_floor)``
(``sigma_floor = 0.004``, about 1/255, by default): a noise-free problem is solved as a nearly
noise-free one, which keeps every step size finite and the last denoising step mild. The
network's output still misses exact measurements slightly, so a noise-free problem ends with
one data step ``x <- prox_{tau f}(x)`` (``consistency = tau = 1e4``; 0 turns it off): on the
noise-free SR settings of the classical suite it gained 1.7-2.7 dB on the smooth retina crop and
0.03 dB on the motorcycle crop.

``self_ensemble`` (on by default for ``pnp-hqs``) is DPIR's periodic geometric self-ensemble:
denoiser call ``k`` sees the image under the ``(k mod 8)``-th rotation / reflection and turns its
output back, at no extra cost. On the RGB settings of the classical suite (256x256 development
crops, the previously tuned parameters) it gained pnp-hqs 0.09-0.28 dB on each of the six settings
tried (with HQS_TUNED then refit for it, 0.07-0.45 dB over all 12, docs/benchmarks/pnp.md); for pnp-admm
it was mixed (+0.3 dB at 90 % inpainting, -0.18 dB at x2 SR), so there it is off by default.

Priors come from :func:`register_prior` (any callable ``D(x, sigma)``; what tests and
Python users plug in) or from the shipped weights (:func:`learnreg.hub.list_models`);
``prior="auto"`` takes ``drunet-gray`` when it is shipped, for gray images and for RGB ones
(through the opponent transform, which measured better than ``drunet-rgb`` on the RGB
development crops): the tuned defaults are fitted to it, and the larger
``drunet-gray-wide`` is 1.7x slower for 0.08-0.09 dB. Otherwise it takes the largest shipped
denoiser whose channels match the image, else the largest gray one. A shipped
regularizer pair (``rg_pair``: pnpReG, RG1, RERG) serves its denoiser, and a denoiser trained
by another task than ``denoise`` (MTDEQ) serves as is, both by name only.
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

from learnreg.learned.hub import list_models, read_record
from learnreg.learned.hub import load as load_weights
from learnreg.learned.precision import PRECISIONS, reduced_precision
from learnreg.learned.tiling import tiled
from learnreg.physics.operator import Operator
from learnreg.regularizers.data import L2Data
from learnreg.regularizers.denoiser import COLOR_MODES, DenoiserPrior
from learnreg.restore.baselines import family
from learnreg.restore.classical import initial_estimate
from learnreg.restore.methods import Method, Parameter, Problem, register
from learnreg.restore.pnp_defaults import (ADMM_TUNED, FB_TUNED, FIXED_LEVEL_MIN, HQS_DPIR, HQS_TUNED,  # noqa: F401
                                           RED_TUNED, admm_defaults, colour_mode, fb_defaults, hqs_defaults,
                                           red_defaults)
from learnreg.solvers import ADMM, HQS, Diverged, ForwardBackward, GradientDescent, MaxIter, RelativeChange
from learnreg.solvers.base import History, Solver, State, StopRule, clipped_psnr
from learnreg.solvers.hqs import geometric_schedule

logger = logging.getLogger(__name__)

__all__ = ["PRIORS", "PriorEntry", "available_priors", "choose_color", "register_prior", "resolve_prior",
           "trained_schedule", "unregister_prior"]

NO_PRIOR_MESSAGE = "no learned denoiser is shipped yet; train one with `learnreg train recipes/denoiser-gray.yaml`"


@dataclass(frozen=True)
class PriorEntry:
    """A denoiser available by name: the callable ``D(x, sigma)`` and its channel count (None: any)."""

    denoiser: Callable[[Tensor, "float | Tensor"], Tensor]
    channels: int | None = None


PRIORS: dict[str, PriorEntry] = {}


def register_prior(name: str, denoiser: Callable[[Tensor, "float | Tensor"], Tensor], *,
                   channels: int | None = None, replace: bool = False) -> PriorEntry:
    """Make ``denoiser`` usable as ``params={"prior": name}`` by the methods of this module.

    Parameters
    ----------
    name : str
        The name; it takes precedence over a shipped model of the same name.
    denoiser : callable
        ``D(x, sigma)``, ``x`` of shape ``(N, channels, H, W)``, ``sigma`` a float or an
        ``(N,)`` tensor on the ``[0, 1]`` scale.
    channels : int, optional
        Channels the denoiser takes; ``None`` for one that takes any (pointwise ones).
    replace : bool
        Allow replacing an entry of the same name.
    """
    if not callable(denoiser):
        raise TypeError(f"register_prior: denoiser must be callable D(x, sigma), got {type(denoiser).__name__}")
    if name in PRIORS and not replace:
        raise ValueError(f"prior {name!r} is already registered; pass replace=True to replace it")
    PRIORS[name] = PriorEntry(denoiser, channels)
    return PRIORS[name]


def unregister_prior(name: str) -> None:
    """Remove a prior registered with :func:`register_prior` (no error if absent)."""
    PRIORS.pop(name, None)


def _denoiser_config(config: dict[str, Any]) -> dict[str, Any]:
    """The config of the network a prior runs: a regularizer pair (``rg_pair``) serves its denoiser."""
    return config["denoiser"] if config.get("architecture") == "rg_pair" else config


def _shipped_models() -> dict[str, dict[str, Any]]:
    """Shipped models: name -> record path, channels, parameters, whether it takes a noise level, and
    whether ``auto`` may choose it: a plain Gaussian denoiser, not a regularizer pair nor a network
    trained by another task than ``denoise`` (an MTDEQ denoiser); those serve by name."""
    found = {}
    for model in list_models():
        record = json.loads(Path(model["path"]).read_text(encoding="utf-8"))
        config = _denoiser_config(record["config"])
        task = (record.get("training_config") or {}).get("task", {}).get("name", "denoise")
        found[model["name"]] = {"path": model["path"], "channels": config.get("channels"),
                                "parameters": model.get("parameters") or 0, "denoiser": bool(config.get("noise_map")),
                                "auto": record["config"].get("architecture") != "rg_pair" and task == "denoise"}
    return found


def _shipped_denoisers() -> dict[str, dict[str, Any]]:
    """Shipped models that are denoisers ``D(x, sigma)`` (they take a noise map)."""
    return {name: model for name, model in _shipped_models().items() if model["denoiser"]}


def available_priors() -> list[str]:
    """Names usable as ``prior``: the registered priors, then the shipped denoisers."""
    return sorted(PRIORS) + sorted(set(_shipped_denoisers()) - set(PRIORS))


@functools.lru_cache(maxsize=4)
def _load_network(path: str, sha256: str, device: str, dtype: torch.dtype) -> torch.nn.Module:
    # keyed by the record's hash too, so that retrained weights under the same name are reloaded
    return load_weights(path, device=device).to(dtype=dtype)


# auto takes drunet-gray whenever it is shipped, for gray and RGB images: the PnP defaults are tuned for it;
# on the RGB development crops it beats the RGB-trained drunet-rgb through the opponent transform by
# 1.2-1.4 dB, and the larger drunet-gray-wide (by name) gains 0.08-0.09 dB in gray denoising at 1.7x the
# time (docs/benchmarks/denoising.md).
PREFERRED_PRIOR = "drunet-gray"


def resolve_prior(name: str, *, image_channels: int, device: torch.device | str = "cpu",
                  dtype: torch.dtype = torch.float32) -> tuple[PriorEntry, str]:
    """The denoiser called ``name`` (or chosen for ``"auto"``) and the name it resolved to.

    Raises
    ------
    ValueError
        Nothing shipped for ``"auto"`` (the message says how to train a denoiser), or an
        unknown name (the message lists the available priors).
    """
    if name in PRIORS:
        return PRIORS[name], name
    models = _shipped_models()
    shipped = {n: m for n, m in models.items() if m["denoiser"]}
    if name == "auto":
        plain = {n: m for n, m in shipped.items() if m["auto"]}  # pairs and DEQ denoisers only by name
        if not plain:
            raise ValueError(NO_PRIOR_MESSAGE)
        fitting = [n for n, m in plain.items() if m["channels"] == image_channels] or \
                  [n for n, m in plain.items() if m["channels"] == 1]
        if not fitting:
            raise ValueError(f"no shipped denoiser takes {image_channels}-channel images (nor gray ones); "
                             f"shipped: {', '.join(sorted(shipped))}")
        name = max(fitting, key=lambda n: (shipped[n]["parameters"], n))
        if PREFERRED_PRIOR in plain:
            name = PREFERRED_PRIOR
        logger.info("prior auto -> %s", name)
    if name in models:
        path = models[name]["path"]
    elif name.endswith(".json") and Path(name).is_file():
        path = name  # a weights record given by path
    else:
        listing = ", ".join(available_priors())
        raise ValueError(f"unknown prior {name!r}; available priors: {listing}" if listing
                         else f"unknown prior {name!r}: {NO_PRIOR_MESSAGE}")
    record = json.loads(Path(path).read_text(encoding="utf-8"))
    config = _denoiser_config(record["config"])
    if not config.get("noise_map"):
        raise ValueError(f"model {name!r} takes no noise level (noise_map false): it is not a denoiser D(x, sigma)")
    network = _load_network(str(path), record["sha256"], str(torch.device(device)), dtype)
    if record["config"].get("architecture") == "rg_pair":
        network = network.denoiser  # P(x, sigma) of a regularizer pair (pnpReG, RG1, RERG)
    return PriorEntry(network, config.get("channels")), name


def choose_color(color: str, prior_channels: int | None, image_channels: int) -> str:
    """Resolve ``color`` (``auto`` or a mode of :data:`COLOR_MODES`) for a prior and an image.

    ``auto``: ``native`` when the prior takes the image's channels (or any), ``opponent``
    for a gray prior on RGB, ``per_channel`` for a gray prior on other channel counts.
    """
    if color not in ("auto", *COLOR_MODES):
        raise ValueError(f"unknown color mode {color!r}; valid: auto, {', '.join(COLOR_MODES)}")
    gray_prior = prior_channels in (None, 1)
    if color == "auto":
        if prior_channels in (None, image_channels):
            return "native"
        if prior_channels == 1:
            return "opponent" if image_channels == 3 else "per_channel"
    elif color == "native" and prior_channels in (None, image_channels):
        return color
    elif color == "opponent" and gray_prior and image_channels == 3:
        return color
    elif color == "per_channel" and gray_prior:
        return color
    raise ValueError(f"color={color!r} cannot apply a {prior_channels}-channel denoiser to "
                     f"{image_channels}-channel images; a gray denoiser serves any image (opponent, per_channel)")


# -- shared setup ---------------------------------------------------------------
def _build_prior(problem: Problem, params: dict[str, Any], *, red_sigma: float | None = None) -> DenoiserPrior:
    channels = problem.operator.in_shape[0]
    entry, _ = resolve_prior(params["prior"], image_channels=channels, device=problem.y.device, dtype=problem.y.dtype)
    color = choose_color(params["color"], entry.channels, channels)
    tile = params["tile"]
    if tile < 0:
        raise ValueError(f"tile must be >= 0 (0 = automatic), got {tile}")
    network = reduced_precision(entry.denoiser, params.get("precision", "float32"))
    denoiser = tiled(network) if tile == 0 else tiled(network, tile=tile, overlap=min(32, tile // 4),
                                                      threshold=tile * tile)
    return DenoiserPrior(denoiser, color=color, scale=params["scale"], red_sigma=red_sigma,
                         self_ensemble=params.get("self_ensemble", False), ensemble=params.get("ensemble", 1))


def _noise_level(problem: Problem, params: dict[str, Any]) -> float:
    """``sigma_n = max(sigma, sigma_floor * scale)``, in the units of the data."""
    for key in ("scale", "sigma_floor", "lambda"):
        if key in params and not params[key] > 0:
            raise ValueError(f"parameter {key} must be > 0, got {params[key]}")
    for key in ("sigma_denoiser", "sigma_start", "sigma_end"):
        if key in params and params[key] < 0:
            raise ValueError(f"parameter {key} must be >= 0 (0 = automatic), got {params[key]}")
    if params["iterations"] < 1:
        raise ValueError(f"parameter iterations must be >= 1, got {params['iterations']}")
    if params.get("consistency", 0) < 0:
        raise ValueError(f"parameter consistency must be >= 0 (0 = off), got {params['consistency']}")
    return max(problem.sigma, params["sigma_floor"] * params["scale"])


def _stop(params: dict[str, Any]) -> StopRule:
    rule = MaxIter(params["iterations"]) | Diverged(abs_max=100.0 * params["scale"])
    return rule | RelativeChange(params["tol"]) if params["tol"] > 0 else rule


def _squared_norm(operator: Operator) -> float:
    return operator.norm() ** 2  # type: ignore[attr-defined]


def _check_step(step: float) -> None:
    if not 0 < step < 2:
        raise ValueError(f"parameter step must lie in (0, 2) (a fraction of 1/L), got {step}")


def _run(solver: Solver, prior: DenoiserPrior, problem: Problem, params: dict[str, Any], reference, callback
         ) -> tuple[Tensor, History]:
    solver.evaluations = lambda state: prior.evaluations  # type: ignore[method-assign]  # network calls, not iterations
    x, history = solver.run(initial_estimate(problem), stop=_stop(params), reference=reference, callback=callback,
                            record_objective=False)
    return _consistent(x, history, problem, params, reference)


def _consistent(x: Tensor, history: History, problem: Problem, params: dict[str, Any], reference
                ) -> tuple[Tensor, History]:
    """For noise-free measurements (``problem.sigma == 0``), a last data step ``prox_{tau f}(x)``.

    ``f = 1/2 ||A x - y||^2`` and ``tau = params["consistency"]`` (0: off). The network's output
    never fits exact data exactly; with ``tau`` large this step moves ``x`` onto the measurements
    along the directions the operator sees well (every direction for downsampling and masks,
    frequencies with ``|H|^2 >> 1 / tau`` for blurs) and leaves the rest as the prior made it.
    Noisy data is left alone: fitting the noise would undo the denoising. The recorded PSNR of
    the last iteration is that of the returned image (the step costs no network call).
    """
    tau = params["consistency"]
    if tau == 0 or problem.sigma > 0 or history.diverged:
        return x, history
    x = L2Data(problem.operator, problem.y).prox(x, tau)
    if reference is not None and history.psnr:
        history.psnr[-1] = clipped_psnr(x, reference)
    return x, history


# -- the methods ----------------------------------------------------------------
def _denoiser_level(params: dict[str, Any], sigma_n: float, *, floor: bool) -> float:
    """``sigma_d`` in data units; a tuned level (``floor``) is a floor under ``sigma_n``, a given one is used as is."""
    sigma_d = params["sigma_denoiser"] * params["scale"]
    return max(sigma_d, sigma_n) if floor else sigma_d


def run_hqs(problem: Problem, params: dict[str, Any], *, reference=None, callback=None) -> tuple[Tensor, History]:
    """DPIR (Zhang et al., TPAMI 2021): HQS with a decreasing denoiser level.

    Notes
    -----
    With ``sigma_k`` geometric from ``sigma_start`` to ``sigma_end`` (default ``sigma_n``)
    over ``K = iterations`` steps and ``alpha_k = lambda sigma_n^2 / sigma_k^2``, DPIR's
    iteration is::

        x_k = argmin_x ||y - A x||^2 + alpha_k ||x - z_{k-1}||^2 = prox_data(z_{k-1}, y, tau = 1 / alpha_k)
        z_k = D(x_k, sigma_k)

    (divide the first objective by ``2 alpha_k`` to read off ``tau``). This is
    :class:`~learnreg.solvers.HQS` on ``f = 1/2 ||A x - y||^2`` and ``g = w DenoiserPrior``
    with ``w = lambda sigma_n^2`` and penalties ``mu_k = alpha_k``: its prior step
    ``prox_{g / mu_k}`` runs the denoiser at ``sqrt(w / mu_k) = sigma_k``. ``lambda = 0.23``
    is DPIR's value for deblurring; ``K = 8`` and ``sigma_start = 0.192`` (49/255) are DPIR's.
    By default (``lambda = iterations = 0``) both come from :data:`HQS_TUNED` for the colour
    mode and task family. The output is ``z_K``, one denoiser call per iteration.
    """
    if params["lambda"] < 0 or params["iterations"] < 0:
        raise ValueError(f"parameters lambda and iterations must be > 0 (0 = tuned for the task), "
                         f"got {params['lambda']} and {params['iterations']}")
    params = hqs_defaults(problem, {**params, **trained_schedule(params)})
    sigma_n = _noise_level(problem, params)
    scale = params["scale"]
    sigma_end = params["sigma_end"] * scale if params["sigma_end"] > 0 else sigma_n
    sigma_start = max(params["sigma_start"] * scale, sigma_end)
    sigmas = geometric_schedule(sigma_start, sigma_end, params["iterations"])
    weight = params["lambda"] * sigma_n**2
    prior = _build_prior(problem, params)
    if params["finish_prior"]:
        finish = params["finish_iterations"] or 1
        if not 1 <= finish <= params["iterations"]:
            raise ValueError(f"parameter finish_iterations must lie in [1, iterations = {params['iterations']}], "
                             f"got {finish}")
        finisher = _build_prior(problem, {**params, "prior": params["finish_prior"]})
        prior = _FinishedPrior(prior, finisher, switch_after=params["iterations"] - finish)
    solver = HQS(L2Data(problem.operator, problem.y), weight * prior,
                 schedule=[weight / sigma**2 for sigma in sigmas])
    return _run(solver, prior, problem, params, reference, callback)


class _FinishedPrior(DenoiserPrior):
    """``first``'s denoiser for the first ``switch_after`` calls, then ``finisher``'s (pnp-hqs's ``finish_prior``).

    Both keep their colour mode and ensemble; the evaluation count (and so the periodic ensemble's
    turn) runs on across the switch.
    """

    def __init__(self, first: DenoiserPrior, finisher: DenoiserPrior, *, switch_after: int):
        super().__init__(first.denoiser, color=first.color, scale=first.scale, self_ensemble=first.self_ensemble,
                         ensemble=first.ensemble)
        self.first, self.finisher, self.switch_after, self.calls = first, finisher, switch_after, 0

    def denoise(self, x: Tensor, sigma: "float | Tensor") -> Tensor:
        chosen = self.first if self.calls < self.switch_after else self.finisher
        self.calls += 1
        chosen.evaluations = self.evaluations
        out = chosen.denoise(x, sigma)
        self.evaluations = chosen.evaluations
        return out


def trained_schedule(params: dict[str, Any]) -> dict[str, Any]:
    """The HQS schedule a prior was trained through (task ``unrolled_hqs``), for the parameters left at 0.

    A denoiser fine-tuned inside unrolled HQS (:mod:`learnreg.training.unrolled`) learned to
    serve that iteration: its ``iterations``, ``lambda``, ``sigma_end`` and finishing denoiser
    (``finish_prior``, ``finish_iterations``) become ``pnp-hqs``'s defaults for it (a value the
    user sets is kept). Any other prior: ``{}``.
    """
    name = params["prior"]
    if name in PRIORS or name == "auto":
        return {}
    try:
        record = read_record(name)
    except (ValueError, OSError):
        return {}  # not a shipped model: resolve_prior reports it
    task = (record.get("training_config") or {}).get("task", {})
    if task.get("name") != "unrolled_hqs":
        return {}
    options = task.get("options", {})
    trained = {"iterations": int(options.get("iterations", 5)), "lambda": float(options.get("lam", 0.1)),
               "sigma_end": float(options.get("sigma_end", 0.0)), "finish_prior": options.get("finish_denoiser", "")}
    if trained["finish_prior"]:
        trained["finish_iterations"] = int(options.get("finish_iterations", 1))
    return {key: value for key, value in trained.items() if value and not params.get(key)}


class _DenoisedADMM(ADMM):
    """ADMM reporting ``z``, the denoiser's output, instead of ``x``.

    Both agree at convergence, but ``x_1 = prox_data(x_0)`` equals ``x_0`` whenever the start
    already fits the data (inpainting from a harmonic fill), which would stop a run on
    relative change after one iteration.
    """

    def output(self, state: State) -> Tensor:
        return state.z  # type: ignore[attr-defined]


def run_admm(problem: Problem, params: dict[str, Any], *, reference=None, callback=None) -> tuple[Tensor, History]:
    """PnP-ADMM (Venkatakrishnan et al. 2013; Chan et al. 2017) at a fixed denoiser level.

    Notes
    -----
    :class:`~learnreg.solvers.ADMM` on ``f = 1/2 ||A x - y||^2`` and ``g = w DenoiserPrior``,
    ``w = lambda sigma_n^2`` (objective (1) of the module), with ``rho = w / sigma_d^2`` so that
    the prior step ``prox_{g / rho}`` is ``D(., sigma_d)``::

        x = prox_data(z - u, y, tau = 1 / rho);  z = D(x + u, sigma_d);  u = u + x - z

    ``sigma_d`` sets only the speed for an exact prox; for a network it also sets how strongly
    each step denoises, and too low a level lets the iterations drift. By default
    (``sigma_denoiser = lambda = 0``) ``sigma_d = max(sigma_n, level)`` and ``lambda`` come from
    :data:`ADMM_TUNED` for the colour mode and task family (else ``level =`` :data:`FIXED_LEVEL_MIN`, ``lambda = 1``).
    ``sigma_start > 0`` turns on continuation: the level falls geometrically from
    ``sigma_start`` to ``sigma_d`` over the iterations (``rho_k = w / sigma_k^2``, the scaled
    dual rescaled at each change). The output is ``z`` (``= x`` at convergence).
    """
    tuned_level = params["sigma_denoiser"] == 0
    params = admm_defaults(problem, params)
    sigma_n = _noise_level(problem, params)
    sigma_d = _denoiser_level(params, sigma_n, floor=tuned_level)
    weight = params["lambda"] * sigma_n**2
    prior = _build_prior(problem, params)
    rho: float | tuple[float, ...] = weight / sigma_d**2
    if params["sigma_start"] > 0:  # continuation: the level falls geometrically to sigma_d over the iterations
        sigmas = geometric_schedule(max(params["sigma_start"] * params["scale"], sigma_d), sigma_d,
                                    params["iterations"])
        rho = tuple(weight / sigma**2 for sigma in sigmas)
    solver = _DenoisedADMM(L2Data(problem.operator, problem.y), weight * prior, rho=rho)
    return _run(solver, prior, problem, params, reference, callback)


def run_fb(problem: Problem, params: dict[str, Any], *, reference=None, callback=None) -> tuple[Tensor, History]:
    """PnP forward-backward: ``x <- D(x - eta A^T (A x - y), sigma_d)``.

    Notes
    -----
    :class:`~learnreg.solvers.ForwardBackward` on ``f = 1/2 ||A x - y||^2`` and
    ``g = w DenoiserPrior`` with step ``eta = step / ||A||^2`` (``||A||`` by power iteration;
    ``0 < step < 2``, FISTA needs ``step <= 1``) and ``w = sigma_d^2 / eta``, so that the prior
    step ``prox_{eta g}`` runs the denoiser at ``sigma_d``.
    The objective is (1) with ``lambda = sigma_d^2 / (eta sigma_n^2)``: in forward-backward the
    denoiser level and the weight are one parameter. By default (``sigma_denoiser = step = 0``)
    ``sigma_d = max(sigma_n, level)`` and the step come from :data:`FB_TUNED` for the colour mode
    and task family (else ``level =`` :data:`FIXED_LEVEL_MIN`, step 1).
    """
    tuned_level = params["sigma_denoiser"] == 0
    params = fb_defaults(problem, params)
    sigma_n = _noise_level(problem, params)
    sigma_d = _denoiser_level(params, sigma_n, floor=tuned_level)
    _check_step(params["step"])
    eta = params["step"] / _squared_norm(problem.operator)
    prior = _build_prior(problem, params)
    solver = ForwardBackward(L2Data(problem.operator, problem.y), (sigma_d ** 2 / eta) * prior,
                             step=eta, accelerated=params["accelerated"])
    return _run(solver, prior, problem, params, reference, callback)


def run_red(problem: Problem, params: dict[str, Any], *, reference=None, callback=None) -> tuple[Tensor, History]:
    """RED (Romano et al. 2017) by gradient descent on ``1/2 ||A x - y||^2 + lambda_red (x - D(x))``.

    Notes
    -----
    The gradient is ``A^T (A x - y) + lambda_red (x - D(x, sigma_d))``, with ``sigma_d``
    and ``lambda_red = lambda sigma_n^2 / sigma_d^2``: by Tweedie,
    ``x - D(x, sigma_d) ~= sigma_d^2 grad phi(x)``, so this matches objective (1). Step
    ``eta = step / (||A||^2 + lambda_red)``, assuming ``x - D(x)`` is 1-Lipschitz (a
    denoiser with symmetric Jacobian of spectrum in ``[0, 1]``). One denoiser call per iteration.
    By default (``sigma_denoiser = lambda = 0``) ``sigma_d = max(sigma_n, level)`` and ``lambda``
    come from :data:`RED_TUNED` for the colour mode and task family (else ``level =``
    :data:`FIXED_LEVEL_MIN`, ``lambda = 1``).
    """
    tuned_level = params["sigma_denoiser"] == 0
    params = red_defaults(problem, params)
    sigma_n = _noise_level(problem, params)
    _check_step(params["step"])
    sigma_d = _denoiser_level(params, sigma_n, floor=tuned_level)
    weight = params["lambda"] * sigma_n**2 / sigma_d**2
    prior = _build_prior(problem, params, red_sigma=sigma_d)
    solver = GradientDescent(L2Data(problem.operator, problem.y), weight * prior,
                             step=params["step"] / (_squared_norm(problem.operator) + weight))
    return _run(solver, prior, problem, params, reference, callback)


def _linear(operator: Operator) -> bool:
    return operator.linear


def _parameters(*, iterations: int, lam: float | None, tol: float, extra: dict[str, Parameter],
                self_ensemble: bool = False) -> dict[str, Parameter]:
    tuned = " (0 = tuned for the task family)" if iterations == 0 or lam == 0 else ""
    weight = {} if lam is None else {"lambda": Parameter(float, lam, "regularization weight relative to sigma_n^2 "
                                                                      "(1 = MAP)" + tuned)}
    return {
        "prior": Parameter(str, "auto", "denoiser: a shipped model (`learnreg models`), a weights .json path, or a "
                                        "name from register_prior; auto = drunet-gray (else the largest shipped one "
                                        "fitting the image)"),
        "iterations": Parameter(int, iterations,
                                "iterations (one denoiser call each, of `ensemble` evaluations)" + tuned),
        **weight,
        **extra,
        "sigma_floor": Parameter(float, 0.004, "floor on the noise level sigma_n (about 1/255, [0, 1] scale)"),
        "consistency": Parameter(float, 1e4, "noise-free problems (sigma = 0) only: tau of a last data step "
                                             "prox_{tau f}, pulling the output onto the measurements; 0 = off"),
        "color": Parameter(str, "auto", "auto | native | opponent | per_channel (gray denoiser on colour images)"),
        "self_ensemble": Parameter(bool, self_ensemble, "periodic geometric self-ensemble (DPIR): denoiser call k "
                                                        "sees the image rotated / reflected by the (k mod 8)-th grid "
                                                        "symmetry; no extra cost"),
        "ensemble": Parameter(int, 1, "geometric self-ensemble inside each denoiser call: the mean over 1, 2, 4 or 8 "
                                      "rotations / reflections (that many evaluations per call)"),
        "precision": Parameter(str, "float32", f"network arithmetic: {' | '.join(PRECISIONS)} (autocast on the "
                                               "rounded input; 2.2-2.6x faster on CPUs with AVX-512 BF16)"),
        "tile": Parameter(int, 0, "tile side for large images; 0 = whole up to 512x512 pixels, else 256 tiles"),
        "scale": Parameter(float, 1.0, "intensity range of x (1 for images in [0, 1]; the range of depth maps)"),
        "tol": Parameter(float, tol, "stop when the relative change falls below this (0 = run all iterations)"),
    }


_STEP = Parameter(float, 1.0, "step as a fraction of 1/L, in (0, 2)")
_TUNED_LEVEL = Parameter(float, 0.0, "denoiser level sigma_d ([0, 1] scale); 0 = max(sigma_n, level tuned for "
                                     "the colour mode and task family)")
_REQUIREMENT = "plug-and-play methods need a linear operator"

register(Method("pnp-hqs", "DPIR: HQS with a learned denoiser at decreasing noise levels (8-40 evaluations)",
                run_hqs, _parameters(iterations=0, lam=0.0, tol=0.0, self_ensemble=True, extra={
                    "sigma_start": Parameter(float, 0.192, "first denoiser level (~49/255 as in DPIR, [0, 1] scale)"),
                    "sigma_end": Parameter(float, 0.0, "last denoiser level; 0 = the noise level sigma_n"),
                    "finish_prior": Parameter(str, "", "a denoiser for the last finish_iterations iterations (the "
                                                       "lowest levels); empty = prior throughout (a prior trained "
                                                       "with one names it)"),
                    "finish_iterations": Parameter(int, 0, "iterations run by finish_prior; 0 = 1 (or as trained)")}),
                _linear, _REQUIREMENT))
register(Method("pnp-admm", "plug-and-play ADMM with a learned denoiser at a fixed level", run_admm,
                _parameters(iterations=40, lam=0.0, tol=1e-5, extra={
                    "sigma_denoiser": _TUNED_LEVEL,
                    "sigma_start": Parameter(float, 0.0, "first denoiser level of a geometric continuation down to "
                                                         "sigma_d ([0, 1] scale); 0 = fixed level sigma_d")}),
                _linear, _REQUIREMENT))
register(Method("pnp-fb", "plug-and-play forward-backward (proximal gradient) with a learned denoiser", run_fb,
                _parameters(iterations=40, lam=None, tol=1e-5, extra={
                    "sigma_denoiser": _TUNED_LEVEL,
                    "step": Parameter(float, 0.0, "step as a fraction of 1/L, in (0, 2); 0 = tuned for the colour "
                                                  "mode and task family"),
                    "accelerated": Parameter(bool, False, "FISTA momentum (needs step <= 1)")}),
                _linear, _REQUIREMENT))
register(Method("red", "regularization by denoising: gradient descent with x - D(x) as prior gradient", run_red,
                _parameters(iterations=100, lam=0.0, tol=1e-5, extra={
                    "sigma_denoiser": _TUNED_LEVEL,
                    "step": _STEP}),
                _linear, _REQUIREMENT))


def run_denoiser(problem: Problem, params: dict[str, Any], *, reference=None, callback=None) -> tuple[Tensor, None]:
    """Gaussian denoising: the learned denoiser at the noise level (``y = x + n``).

    ``ensemble = k > 1`` averages the denoiser over the first ``k`` of the 8 rotations and
    reflections of the image (self-ensemble; ``k`` times the cost, typically +0.1-0.2 dB:
    docs/benchmarks/denoising.md).
    """
    prior = _build_prior(problem, params)
    sigma = max(problem.sigma, params["sigma_floor"] * params["scale"])
    return prior.denoise(problem.y, sigma), None


def _denoising(operator: Operator) -> bool:
    return family(operator) == "denoise"


_DENOISER_PARAMETERS = {k: v for k, v in _parameters(iterations=1, lam=None, tol=0.0, extra={}).items()
                        if k not in ("iterations", "tol", "consistency", "self_ensemble")}
register(Method("denoiser", "one pass of the learned Gaussian denoiser at the noise level (denoising)", run_denoiser,
                _DENOISER_PARAMETERS, _denoising, "the denoiser method applies to denoising (operator identity)"))
