"""Helpers over the terms of an objective ``f + g``: summed values and Lipschitz constants."""

from __future__ import annotations

from torch import Tensor

from learnreg.regularizers.base import Regularizer, Sum, Weighted


def lipschitz_constant(term: Regularizer | None) -> float | None:
    """Lipschitz constant of ``term.grad``, or ``None`` when the term does not declare one.

    A term declares it with a ``lipschitz`` attribute or property (``L2Data``: ``||A||^2``;
    ``Tikhonov``: ``||L||^2``; smoothed TV: ``||D||^2 / epsilon``). Weighted terms scale it
    and sums add it; ``None`` as a term contributes 0.
    """
    if term is None:
        return 0.0
    if isinstance(term, Weighted):
        base = lipschitz_constant(term.base)
        return None if base is None else term.weight * base
    if isinstance(term, Sum):
        first, second = lipschitz_constant(term.first), lipschitz_constant(term.second)
        return None if first is None or second is None else first + second
    value = getattr(term, "lipschitz", None)
    return None if value is None else float(value)


def total_lipschitz(*terms: Regularizer | None) -> float | None:
    """Sum of :func:`lipschitz_constant` over ``terms``; ``None`` if any is unknown."""
    total = 0.0
    for term in terms:
        constant = lipschitz_constant(term)
        if constant is None:
            return None
        total += constant
    return total


def per_sample_value(x: Tensor, *terms: Regularizer | None) -> Tensor | None:
    """``sum_i term_i.value(x)``, shape ``(B,)``; ``None`` when a term has no value."""
    total = None
    for term in terms:
        if term is None:
            continue
        if not term.has_value:
            return None
        value = term.value(x)
        total = value if total is None else total + value
    return total


def objective_value(x: Tensor, *terms: Regularizer | None) -> float:
    """:func:`per_sample_value` summed over the batch, NaN when unavailable."""
    value = per_sample_value(x, *terms)
    return float("nan") if value is None else float(value.sum())


def require(term: Regularizer, capability: str, solver: str) -> None:
    """Raise a clear ``ValueError`` when ``term`` lacks ``has_<capability>``."""
    if not getattr(term, f"has_{capability}"):
        raise ValueError(
            f"{solver} needs {capability}() of {term.name}, which it does not provide; "
            f"choose a solver that uses what {term.name} offers"
        )
