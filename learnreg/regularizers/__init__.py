"""Regularizers behind one contract: ``value``, ``grad``, ``prox(v, tau)`` with capability flags.

Classical priors (:class:`Tikhonov`, :class:`TotalVariation`, :class:`HyperLaplacian`), the
pointwise penalties they split into (:class:`SquaredNorm`, :class:`L21Norm`,
:class:`LpNorm`), the data term :class:`L2Data` and the learned gradient field
:class:`RegularizingGradient` (grad only).
"""

from learnreg.regularizers.base import CapabilityError, Regularizer, Sum, Weighted
from learnreg.regularizers.data import L2Data
from learnreg.regularizers.gradient import RegularizingGradient
from learnreg.regularizers.nett import NETT
from learnreg.regularizers.hyperlaplacian import HyperLaplacian
from learnreg.regularizers.pointwise import L21Norm, LpNorm, SquaredNorm, group_soft_threshold, lp_prox
from learnreg.regularizers.tikhonov import Tikhonov
from learnreg.regularizers.tv import TotalVariation, TVProx

__all__ = [
    "CapabilityError",
    "HyperLaplacian",
    "L21Norm",
    "L2Data",
    "LpNorm",
    "NETT",
    "Regularizer",
    "RegularizingGradient",
    "SquaredNorm",
    "Sum",
    "TVProx",
    "Tikhonov",
    "TotalVariation",
    "Weighted",
    "group_soft_threshold",
    "lp_prox",
]
