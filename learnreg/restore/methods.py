"""The method registry: a name, typed parameters with defaults, and a function.

A :class:`Method` declares its parameters (name, type, default, help) so that the
CLI's ``--param k=v`` strings, the benchmark suites and Python callers all go
through the same validation: an unknown method or parameter raises an error that
lists the valid ones.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import Tensor

from learnreg.physics.operator import Operator
from learnreg.solvers.base import History, State


def check_guide(guide: Tensor | None, operator: Operator, *, batch: int | None = None,
                method: str | None = None) -> Tensor:
    """Return ``guide`` if it is a finite ``(1 or batch, 1|3, H, W)`` tensor on ``operator``'s input grid.

    Raises ``ValueError`` naming the fix (``--guide`` with an image of size ``H x W``); a
    missing guide (``None``) is an error only for a ``method`` that needs one.
    """
    _, height, width = operator.in_shape
    fix = f"pass --guide with an RGB image of size {height}x{width} (Problem.guide, shape (B, 3, {height}, {width}))"
    who = f"{method}: " if method else ""
    if guide is None:
        raise ValueError(f"{method or 'this method'} needs a guide image; {fix}")
    if not isinstance(guide, Tensor) or guide.dim() != 4 or guide.shape[1] not in (1, 3):
        shape = tuple(guide.shape) if isinstance(guide, Tensor) else type(guide).__name__
        raise ValueError(f"{who}the guide must have shape (B, 3, H, W) or (B, 1, H, W), got {shape}; {fix}")
    if tuple(guide.shape[-2:]) != (height, width):
        raise ValueError(f"{who}the guide is {guide.shape[-2]}x{guide.shape[-1]} but the restored image (the "
                         f"operator's input) is {height}x{width}; {fix}")
    if batch is not None and guide.shape[0] not in (1, batch):
        raise ValueError(f"{who}the guide holds {guide.shape[0]} images for {batch} measurements; "
                         "pass one guide per measurement, or one for all")
    if not bool(torch.isfinite(guide).all()):
        raise ValueError(f"{who}the guide contains NaN or Inf; clean the guide image first")
    return guide


@dataclass
class Problem:
    """An inverse problem ``y = A(x) + n``.

    Parameters
    ----------
    y : Tensor, shape (B, C, h, w)
        Measurements.
    operator : Operator
        The forward model ``A``; ``operator.in_shape`` is the shape of ``x``.
    sigma : float
        Gaussian-equivalent noise standard deviation on the [0, 1] scale (0 for noise-free).
    guide : Tensor, optional
        A guide image (e.g. RGB for depth super-resolution), shape (B or 1, 3, H, W) (or one
        channel), on the operator's input grid ``(H, W) = operator.in_shape[1:]``.
    """

    y: Tensor
    operator: Operator
    sigma: float = 0.0
    guide: Tensor | None = None

    def __post_init__(self):
        if self.y.dim() != 4 or tuple(self.y.shape[1:]) != self.operator.out_shape:
            raise ValueError(
                f"measurements have shape {tuple(self.y.shape)} but the operator {self.operator.name} "
                f"produces (B, {', '.join(map(str, self.operator.out_shape))}); check the spec matches the file"
            )
        if not bool(torch.isfinite(self.y).all()):
            raise ValueError("measurements contain NaN or Inf; clean the input (e.g. replace invalid pixels) first")
        if self.sigma < 0:
            raise ValueError(f"noise level must be >= 0, got {self.sigma}")
        if self.guide is not None:
            check_guide(self.guide, self.operator, batch=self.y.shape[0])


@dataclass
class Restoration:
    """What a method returns: the image, its run history, and how it was obtained."""

    x: Tensor
    method: str
    params: dict[str, Any]
    seconds: float
    history: History | None = None

    @property
    def status(self) -> str:
        return "done" if self.history is None else self.history.status


@dataclass(frozen=True)
class Parameter:
    type: type
    default: Any
    help: str


@dataclass(frozen=True)
class Method:
    """A restoration method.

    ``run(problem, params, reference, callback) -> (x, history | None)``; ``applies``
    says whether the method handles an operator, and ``why_not`` explains otherwise.
    """

    name: str
    summary: str
    run: Callable[..., tuple[Tensor, History | None]]
    parameters: dict[str, Parameter] = field(default_factory=dict)
    applies: Callable[[Operator], bool] = lambda operator: True
    requirement: str = ""


METHODS: dict[str, Method] = {}


def register(method: Method) -> Method:
    if method.name in METHODS:
        raise ValueError(f"method {method.name!r} registered twice")
    METHODS[method.name] = method
    return method


def _ensure_loaded() -> None:
    # Importing registers the methods; kept lazy so that importing the registry is cheap.
    from learnreg.restore import baselines, classical, depth, external  # noqa: F401
    from learnreg.restore import nett, pnp, rg  # noqa: F401


def get_method(name: str) -> Method:
    _ensure_loaded()
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; valid methods: {', '.join(sorted(METHODS))}")
    return METHODS[name]


def describe_methods() -> str:
    _ensure_loaded()
    lines = []
    for name in sorted(METHODS):
        method = METHODS[name]
        options = ", ".join(f"{k}={p.default}" for k, p in method.parameters.items())
        lines.append(f"  {name:16s} {method.summary}" + (f" [{options}]" if options else ""))
    return "\n".join(lines)


def parse_params(method: Method, items: list[str] | dict[str, Any] | None) -> dict[str, Any]:
    """Validate ``k=v`` strings (or a dict) against ``method.parameters``; fill defaults."""
    values = {name: p.default for name, p in method.parameters.items()}
    if not items:
        return values
    pairs = items.items() if isinstance(items, dict) else (_split_pair(item) for item in items)
    for key, raw in pairs:
        if key not in method.parameters:
            valid = ", ".join(method.parameters) or "none"
            raise ValueError(f"method {method.name!r} has no parameter {key!r}; valid parameters: {valid}")
        kind = method.parameters[key].type
        try:
            if kind is bool and isinstance(raw, str):
                if raw.lower() not in {"1", "0", "true", "false", "yes", "no"}:
                    raise ValueError
                values[key] = raw.lower() in {"1", "true", "yes"}
            else:
                values[key] = kind(raw)
        except (TypeError, ValueError):
            expected = "true or false (also 1/0, yes/no)" if kind is bool else f"a {kind.__name__}"
            raise ValueError(f"parameter {key}={raw!r} of method {method.name!r} must be {expected}") from None
    return values


def _split_pair(item: str) -> tuple[str, str]:
    if "=" not in item:
        raise ValueError(f"--param expects key=value, got {item!r}")
    key, value = item.split("=", 1)
    return key.strip(), value.strip()


def restore(
    problem: Problem,
    method: str,
    *,
    params: dict[str, Any] | list[str] | None = None,
    reference: Tensor | None = None,
    callback: Callable[[State, History], None] | None = None,
) -> Restoration:
    """Restore ``problem`` with the named method.

    Parameters
    ----------
    problem : Problem
    method : str
        A name from :data:`METHODS` (``learnreg restore --help`` lists them).
    params : dict or list of "k=v", optional
        Method parameters; unknown ones raise.
    reference : Tensor, optional
        Ground truth, only to record PSNR along iterations (never used to pick an iterate).
    callback : callable, optional
        Called after each solver iteration, e.g. to drive a progress bar.

    Returns
    -------
    Restoration
        ``x`` is the last iterate. If the solver diverged, ``status == "diverged"``.
    """
    chosen = get_method(method)
    if not chosen.applies(problem.operator):
        raise ValueError(f"method {method!r} does not apply to {problem.operator.name}: {chosen.requirement}")
    values = parse_params(chosen, params)
    start = time.perf_counter()
    # no_grad rather than inference_mode: nonlinear operators take their gradient by autograd.
    with torch.no_grad():
        x, history = chosen.run(problem, values, reference=reference, callback=callback)
    seconds = time.perf_counter() - start
    return Restoration(x=x, method=method, params=values, seconds=seconds, history=history)
