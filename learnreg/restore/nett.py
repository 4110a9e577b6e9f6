"""NETT depth super-resolution (Gazdieva et al., VISAPP 2022): the ``nett`` and ``nett-network`` methods.

``nett`` minimises ``1/2 ||F x - y||^2 + alpha R(x)`` with a shipped NETT regularizer
(:class:`~learnreg.regularizers.nett.NETT`) by the paper's incremental gradient descent
(or GD / Adam). The paper starts from the upsampled measurements (``init=auto``); the
defaults are the best configuration of our study (docs/benchmarks/dsrnett.md): start
from the network's output, regularizer step ``s alpha = 0.3``, 30 iterations, priors
trained with refine samples. ``nett-network`` is the network
alone applied once to the same upsampled input, the baseline NETT must beat.

Depth units: the priors are trained on unit-cube scenes whose far plane is at depth 1;
measurements are divided by ``depth_scale`` (default: their maximum, which maps the
far plane to 1) before the solve and multiplied back after.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from learnreg.learned.hub import list_models, load as load_weights, read_record
from learnreg.physics.operator import Operator
from learnreg.regularizers import L2Data, NETT
from learnreg.restore.baselines import bicubic_upsample, family
from learnreg.restore.methods import Method, Parameter, Problem, register
from learnreg.solvers import Adam, Diverged, GradientDescent, History, IncrementalGradient, MaxIter

logger = logging.getLogger(__name__)

__all__ = ["NETTPrior", "nett_priors", "load_nett_prior", "upsample_depth", "SOLVERS"]

SOLVERS = ("incremental", "gd", "adam")
ARCHITECTURES = ("nett_unet", "umsgnet")
APPROXIMATIONS = ("auto", "bicubic", "bilinear", "box-pinv")
INITS = (*APPROXIMATIONS, "network")
# The best configuration of docs/benchmarks/dsrnett.md ("beyond the paper"), chosen on gdsr tuning scenes:
# priors trained with refine samples, NETT started from the network's output, s·alpha = 0.3 (s = 1/||F||^2).
DEFAULT_PRIORS = {"guided": "nett-umsg-s2-refine", "unguided": "nett-unet-s1-refine"}
DEFAULT_REGULARIZER_STEP = 0.3


@dataclass(frozen=True)
class NETTPrior:
    """A shipped NETT network with how it was trained (read from its weights record)."""

    name: str
    network: nn.Module
    scheme: str
    approximation: str
    guided: bool


def nett_priors() -> list[str]:
    """Names of the shipped NETT depth priors."""
    return [model["name"] for model in list_models() if model.get("architecture") in ARCHITECTURES]


@functools.lru_cache(maxsize=8)
def _network(name: str, sha256: str) -> nn.Module:
    return load_weights(name)


def load_nett_prior(name: str, *, guided: bool | None = None) -> NETTPrior:
    """Load the NETT prior ``name``; ``"auto"`` picks a shipped one (guided if ``guided``)."""
    if name == "auto":
        names = nett_priors()
        if not names:
            raise ValueError("no NETT depth prior is shipped; train one with "
                             "`learnreg train recipes/nett-umsg-s2-noise.yaml`")
        records = {n: read_record(n) for n in names}
        wanted = [n for n in names if (records[n]["config"]["architecture"] == "umsgnet") == bool(guided)]
        preferred = DEFAULT_PRIORS["guided" if guided else "unguided"]
        name = preferred if preferred in wanted else (wanted or names)[0]
    record = read_record(name)
    architecture = record["config"].get("architecture")
    if architecture not in ARCHITECTURES:
        raise ValueError(f"model {name!r} ({architecture}) is not a NETT depth prior; "
                         f"available: {', '.join(nett_priors()) or 'none'}")
    options = record.get("training_config", {}).get("task", {}).get("options", {})
    return NETTPrior(name=name, network=_network(name, record["sha256"]),
                     scheme=options.get("scheme", "identity"),
                     approximation=options.get("approximation", "bicubic"),
                     guided=architecture == "umsgnet")


def upsample_depth(y: Tensor, operator: Operator, approximation: str) -> Tensor:
    """``F^+ y``: ``bicubic``, ``bilinear`` or ``box-pinv`` (block replication) on ``F``'s grid."""
    from learnreg.restore.depth import bilinear_upsample, box_pseudo_inverse

    if approximation == "bicubic":
        return bicubic_upsample(y, operator)
    if approximation == "bilinear":
        return bilinear_upsample(y, operator)
    if approximation == "box-pinv":
        return box_pseudo_inverse(y, operator)
    raise ValueError(f"unknown approximation {approximation!r}; valid: {', '.join(APPROXIMATIONS[1:])}")


def _setup(problem: Problem, params: dict[str, Any]) -> tuple[NETTPrior, float, Tensor, Tensor | None]:
    prior = load_nett_prior(params["prior"], guided=problem.guide is not None)
    if prior.guided and problem.guide is None:
        raise ValueError(f"prior {prior.name!r} is guided: pass the RGB guide (--guide RGB.png)")
    scale = params["depth_scale"] or float(problem.y.max())
    if scale <= 0:
        raise ValueError(f"depth_scale must be > 0 (the far-plane depth), got {scale:g}")
    if params["init"] not in INITS:
        raise ValueError(f"unknown init {params['init']!r}; valid: {', '.join(INITS)}")
    approximation = prior.approximation if params["init"] in ("auto", "network") else params["init"]
    x0 = upsample_depth(problem.y / scale, problem.operator, approximation)
    guide = problem.guide if prior.guided else None
    if params["init"] == "network":
        x0 = _network_alone(prior, x0, guide)
    return prior, scale, x0, guide


def _network_alone(prior: NETTPrior, x0: Tensor, guide: Tensor | None) -> Tensor:
    with torch.inference_mode():
        out = prior.network(x0, guide) if prior.guided else prior.network(x0)
    return (x0 - out if prior.scheme == "residual" else out).clone()


def run_nett(problem: Problem, params: dict[str, Any], *, reference=None, callback=None
             ) -> tuple[Tensor, History]:
    if params["solver"] not in SOLVERS:
        raise ValueError(f"unknown solver {params['solver']!r} for nett; valid: {', '.join(SOLVERS)}")
    if params["iterations"] < 1:
        raise ValueError(f"nett needs iterations >= 1, got {params['iterations']}")
    prior, scale, x0, guide = _setup(problem, params)
    regularizer = NETT(prior.network, scheme=prior.scheme, coercive=params["coercive"], guide=guide)
    data = L2Data(problem.operator, problem.y / scale)
    step = params["step"] or 1.0 / problem.operator.norm() ** 2
    alpha = params["alpha"] if params["alpha"] >= 0 else DEFAULT_REGULARIZER_STEP / step
    if params["solver"] == "incremental":
        solver = IncrementalGradient(data, regularizer, step=step, weight=alpha)
    elif params["solver"] == "gd":
        solver = GradientDescent(data, alpha * regularizer, step=step)
    else:
        solver = Adam(data, alpha * regularizer, lr=params["lr"])
    stop = MaxIter(params["iterations"]) | Diverged(abs_max=100.0)
    x, history = solver.run(x0, stop=stop, callback=callback, record_objective=params["record_objective"])
    return x * scale, history


def run_network(problem: Problem, params: dict[str, Any], *, reference=None, callback=None
                ) -> tuple[Tensor, None]:
    prior, scale, x0, guide = _setup(problem, {**params, "init": "auto"})
    return _network_alone(prior, x0, guide) * scale, None


def _is_sr(operator: Operator) -> bool:
    return operator.linear and family(operator) == "sr"


_COMMON = {
    "prior": Parameter(str, "auto", "shipped NETT depth prior (`learnreg models`); auto: guided when a guide is given"),
    "depth_scale": Parameter(float, 0.0, "depth of the far plane (the prior's unit); 0: the maximum of y"),
}

register(Method(
    "nett", "NETT learned regularizer for depth super-resolution (incremental GD from the upsampled input)",
    run_nett,
    {**_COMMON,
     "init": Parameter(str, "network", "start: network (the network's output on the prior's approximation), "
                                       "auto (that approximation, as in the paper), bicubic, bilinear, box-pinv"),
     "alpha": Parameter(float, -1.0, "regularization weight alpha (regularizer step = step * alpha); "
                                     "negative: step * alpha = 0.3, the tuned default"),
     "step": Parameter(float, 0.0, "data step s; 0: 1 / ||F||^2"),
     "iterations": Parameter(int, 30, "iterations (one network gradient each)"),
     "solver": Parameter(str, "incremental", "incremental, gd or adam"),
     "lr": Parameter(float, 1e-3, "Adam learning rate (solver=adam)"),
     "coercive": Parameter(float, 0.0, "weight of the added ||x||^2 (coercivity)"),
     "record_objective": Parameter(bool, False, "evaluate the NETT objective each iteration (costs a forward pass)"),
     },
    _is_sr, "nett applies to super-resolution operators (sr:...) on depth maps"))

register(Method(
    "nett-network", "the NETT prior's network applied once to the upsampled depth (baseline)", run_network,
    dict(_COMMON), _is_sr, "nett-network applies to super-resolution operators (sr:...) on depth maps"))
