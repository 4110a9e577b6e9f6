"""Classical variational methods: TV, Tikhonov, hyper-Laplacian, and direct baselines.

Every variational method minimises ``1/2 ||A x - y||^2 + weight * R(x)`` with the
fastest solver for the operator: split ADMM whose ``x``-update is one FFT pair
(identity and circular blur) or that handles the data term through its closed-form
prox (masks, blur + decimation). The default ``weight`` comes from
:func:`default_weight`: a per-family constant times the noise level, tuned once on
the development images (``learnreg/bench/tune.py``) and fixed.
"""

from __future__ import annotations

import math
from typing import Any

from torch import Tensor

from learnreg.physics.operator import Operator
from learnreg.regularizers import HyperLaplacian, L2Data, Tikhonov, TotalVariation
from learnreg.restore import baselines
from learnreg.restore.methods import Method, Parameter, Problem, register
from learnreg.solvers import Diverged, MaxIter, RelativeChange, SplitADMM
from learnreg.solvers.base import History

# weight = sqrt(C) * (slope * sigma + offset) (/ factor for SR) per operator family, fitted by `python -m learnreg.bench.tune --prior P`
# on the development images (docs/benchmarks/tuning-P.json): offset from the noise-free settings,
# slope from the noisy ones.
DEFAULT_WEIGHTS: dict[str, dict[str, tuple[float, float]]] = {
    # (slope, offset) from docs/benchmarks/tuning-tv.json; inpainting and noise-free SR want the
    # smallest weight of the grid (the iterations, started from harmonic / bicubic, do the rest).
    "tv": {"denoise": (0.917, 9.2e-4), "blur": (0.109, 1.1e-4), "sr": (0.388, 2.4e-5), "inpaint": (0.0, 1e-5)},
    # not tuned separately: Tikhonov and the hyper-Laplacian reuse the TV weights' shape
    "tikhonov": {"denoise": (1.2, 1e-3), "blur": (0.109, 1.1e-4), "sr": (0.388, 2.4e-5), "inpaint": (0.0, 1e-5)},
    "hyperlaplacian": {"denoise": (0.917, 9.2e-4), "blur": (0.109, 1.1e-4), "sr": (0.388, 2.4e-5), "inpaint": (0.0, 1e-5)},
}


def default_weight(prior: str, operator: Operator, sigma: float) -> float:
    """The tuned default weight: ``sqrt(C) (slope sigma + offset)``, divided by the factor for SR."""
    family = baselines.family(operator)
    slope, offset = DEFAULT_WEIGHTS[prior][family]
    factor = operator.in_shape[1] / operator.out_shape[1] if family == "sr" else 1.0
    return math.sqrt(operator.in_shape[0]) * (slope * sigma + offset) / factor


def initial_estimate(problem: Problem) -> Tensor:
    """A cheap start in image space: bicubic for SR, harmonic fill for masks, ``y`` otherwise."""
    family = baselines.family(problem.operator)
    if family == "sr":
        return baselines.bicubic_upsample(problem.y, problem.operator)
    if family == "inpaint":
        return baselines.harmonic_fill(problem.y, problem.operator, iterations=50)
    if problem.y.shape[1:] == problem.operator.in_shape:
        return problem.y
    return problem.operator.adjoint(problem.y)


def _variational(prior: str):
    def run(problem: Problem, params: dict[str, Any], *, reference=None, callback=None) -> tuple[Tensor, History]:
        shape = problem.operator.in_shape
        if prior == "tv":
            regularizer = TotalVariation(shape)
        elif prior == "tikhonov":
            regularizer = Tikhonov.gradient(shape)
        else:
            regularizer = HyperLaplacian(shape, p=params["p"])
        weight = params["weight"] if params["weight"] > 0 else default_weight(prior, problem.operator, problem.sigma)
        solver = SplitADMM(L2Data(problem.operator, problem.y), regularizer, weight=weight, rho=params["rho"] or None)
        stop = MaxIter(params["iterations"]) | RelativeChange(params["tol"]) | Diverged(abs_max=100.0)
        return solver.run(initial_estimate(problem), stop=stop, reference=reference, callback=callback,
                          record_objective=False)

    return run


def _linear_only(operator: Operator) -> bool:
    return operator.linear


_COMMON = {
    "weight": Parameter(float, 0.0, "regularization weight; 0 = tuned default for the operator and noise level"),
    "iterations": Parameter(int, 150, "maximum ADMM iterations"),
    "tol": Parameter(float, 1e-5, "stop when the relative change of x falls below this"),
    "rho": Parameter(float, 0.0, "ADMM penalty; 0 = default from the weight"),
}

register(Method("tv", "isotropic total variation, split ADMM (FFT x-update or closed-form data prox)",
                _variational("tv"), dict(_COMMON), _linear_only, "needs a linear operator"))
register(Method("tikhonov", "Tikhonov on image gradients (Wiener-like), split ADMM",
                _variational("tikhonov"), dict(_COMMON), _linear_only, "needs a linear operator"))
register(Method("hyperlaplacian", "hyper-Laplacian |grad x|^p prior (Krishnan & Fergus), split ADMM",
                _variational("hyperlaplacian"), {**_COMMON, "p": Parameter(float, 0.8, "exponent in (0, 1]")},
                _linear_only, "needs a linear operator"))
