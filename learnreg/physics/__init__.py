"""Forward models ``x -> y``: operators, kernels, masks, noise models and degradation specs.

No solvers and no networks live here (see DESIGN.md). Every operator acts on
``(B, C, H, W)`` tensors with per-sample shapes fixed at construction, in float32
or float64, on any device.
"""

from learnreg.physics.blur import Blur
from learnreg.physics.kernels import bicubic_kernel, box_kernel, gaussian_kernel, load_kernel, uniform_kernel
from learnreg.physics.noise import GaussianNoise, NoNoise, Noise, PoissonGaussianNoise, PoissonNoise
from learnreg.physics.nonlinear import Pointwise, ResponseCurve
from learnreg.physics.operator import (
    LinearOperator,
    Operator,
    ShapeError,
    check_adjoint,
    conjugate_gradient,
)
from learnreg.physics.simple import Identity, Inpaint, LinearFromCallables, box_mask, load_mask, random_mask
from learnreg.physics.spec import Degradation, OperatorSpec, parse_noise, parse_operator
from learnreg.physics.superres import SuperResolution

from learnreg.physics.gradient import FiniteDifference

__all__ = [
    "FiniteDifference", "Operator", "LinearOperator", "ShapeError", "check_adjoint", "conjugate_gradient",
    "Identity", "Blur", "SuperResolution", "Inpaint", "LinearFromCallables", "Pointwise", "ResponseCurve",
    "random_mask", "box_mask", "load_mask",
    "gaussian_kernel", "uniform_kernel", "bicubic_kernel", "box_kernel", "load_kernel",
    "Noise", "NoNoise", "GaussianNoise", "PoissonNoise", "PoissonGaussianNoise",
    "Degradation", "OperatorSpec", "parse_operator", "parse_noise",
]
