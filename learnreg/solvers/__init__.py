"""Iterative solvers over one contract: ``init_state``, ``step``, ``run(x0, stop=...) -> (x, History)``.

=========================  =========================================================
``GradientDescent``        ``f + g`` by gradients; fixed ``1/L`` step or Armijo
``Nesterov``               accelerated gradient with adaptive restart (``g`` may be grad-only)
``Adam``                   Adam on ``x`` (pnpReG test-time solver)
``ForwardBackward``        proximal gradient; FISTA with ``accelerated=True``
``ADMM``                   two-block ADMM through ``f.prox`` and ``g.prox``
``SplitADMM``              ``1/2||Ax-y||^2 + lambda phi(Lx)``, FFT ``x``-update (TV, Tikhonov)
``HQS``                    half-quadratic splitting with a penalty schedule (DPIR)
``FixedPoint``             ``x <- T(x)`` with Anderson acceleration; ``solve_fixed_point(_per_sample)``
``IncrementalGradient``    data step then regularizer step (NETT)
=========================  =========================================================
"""

from learnreg.solvers.accelerated import Nesterov, NesterovState, gradient_step_map
from learnreg.solvers.admm import ADMM, ADMMState
from learnreg.solvers.base import (
    AnyOf,
    Diverged,
    History,
    MaxIter,
    RelativeChange,
    Solver,
    State,
    StopInfo,
    StopRule,
    default_stop,
)
from learnreg.solvers.fista import ForwardBackward, ForwardBackwardState
from learnreg.solvers.fixed_point import (
    FixedPoint,
    FixedPointInfo,
    FixedPointSampleInfo,
    FixedPointState,
    solve_fixed_point,
    solve_fixed_point_per_sample,
)
from learnreg.solvers.gd import Adam, AdamState, GradientDescent, GradientDescentState
from learnreg.solvers.incremental import IncrementalGradient
from learnreg.solvers.hqs import HQS, HQSState, geometric_schedule
from learnreg.solvers.split_admm import SplitADMM, SplitADMMState
from learnreg.solvers.terms import lipschitz_constant

__all__ = [
    "ADMM",
    "ADMMState",
    "Adam",
    "AdamState",
    "AnyOf",
    "Diverged",
    "IncrementalGradient",
    "FixedPoint",
    "FixedPointInfo",
    "FixedPointSampleInfo",
    "FixedPointState",
    "ForwardBackward",
    "ForwardBackwardState",
    "GradientDescent",
    "GradientDescentState",
    "HQS",
    "HQSState",
    "History",
    "MaxIter",
    "Nesterov",
    "NesterovState",
    "RelativeChange",
    "Solver",
    "SplitADMM",
    "SplitADMMState",
    "State",
    "StopInfo",
    "StopRule",
    "default_stop",
    "geometric_schedule",
    "gradient_step_map",
    "lipschitz_constant",
    "solve_fixed_point",
    "solve_fixed_point_per_sample",
]
