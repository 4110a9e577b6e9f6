"""Deep-equilibrium machinery for regularizing gradients (Willingham et al., VISAPP 2024, §3-4).

Two iterations on ``1/2 ||A x - y||^2 + sigma^2 R(x)`` (eq. 4), with the data gradient
``D(x) = A^T (A x - y)`` (eq. 13):

* gradient descent with a regularizing gradient ``G ~ grad R`` (eq. 14),
  :func:`gd_map`: ``g(x) = x - eta (D(x) + s^2 G(x))``;
* forward-backward with a denoiser ``P`` as the prox (eq. 12), :func:`fb_map`:
  ``f(x) = P(x - eta D(x), sqrt(eta) s)``;

where ``s = max(sigma, sigma_floor)`` per sample. Their fixed points are found without
gradients (:func:`deq_fixed_point`, the paper's three stopping rules, applied per sample)
and trained through one differentiable step from the detached fixed point
(:func:`jfb_step`, Jacobian-free backpropagation, Fung et al., AAAI 2022).

Examples
--------
>>> import functools, torch
>>> from learnreg.physics.simple import Identity
>>> y = torch.full((1, 1, 4, 4), 0.5)
>>> step = functools.partial(gd_map, operator=Identity((1, 4, 4)), y=y, sigma=0.1,
...                          gradient_net=lambda x: 0 * x, eta=0.5)
>>> x_star, info = deq_fixed_point(step, torch.zeros_like(y))
>>> info.status, round(float(x_star.mean()), 3)
(('converged',), 0.5)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable

from torch import Tensor

from learnreg.physics.operator import Operator
from learnreg.regularizers.denoiser import Denoiser
from learnreg.solvers.fixed_point import FixedPointSampleInfo, solve_fixed_point_per_sample

__all__ = [
    "DEFAULT_SIGMA_FLOOR", "DEQStats", "deq_fixed_point", "fb_map", "floored_sigma", "gd_map", "jfb_step",
]

GradientNet = Callable[[Tensor], Tensor]
FixedPointMap = Callable[[Tensor], Tensor]

#: Smallest noise level the maps regularize with (on the [0, 1] scale): at ``sigma = 0`` the
#: weight ``sigma^2`` of eq. (14) would switch the prior off, and the denoiser of eq. (12) would
#: run at level 0 (an identity), leaving the data term alone on ill-posed problems. The paper
#: replaces ``sigma^2`` by "a positive weight" at ``sigma = 0`` without giving it.
DEFAULT_SIGMA_FLOOR = 0.01

_SHAPE = (-1, 1, 1, 1)  # (B,) -> (B, 1, 1, 1)


def floored_sigma(sigma: float | Tensor, x: Tensor, *, sigma_floor: float = DEFAULT_SIGMA_FLOOR) -> Tensor:
    """``s = max(sigma, sigma_floor)`` per sample, shape ``(B,)``, dtype and device of ``x``.

    Parameters
    ----------
    sigma : float or Tensor of shape () or (B,)
        Noise std of each problem, on the [0, 1] scale.
    x : Tensor, shape (B, C, H, W)
    sigma_floor : float
        Lower bound, ``>= 0``.
    """
    if sigma_floor < 0:
        raise ValueError(f"sigma_floor must be >= 0, got {sigma_floor}")
    batch = x.shape[0]
    if isinstance(sigma, Tensor):
        sigma = sigma.to(dtype=x.dtype, device=x.device).reshape(-1)
        if sigma.numel() == 1:
            sigma = sigma.expand(batch)
        elif sigma.numel() != batch:
            raise ValueError(f"sigma must be a float or a ({batch},) tensor for a batch of {batch}, "
                             f"got {sigma.numel()} values")
    else:
        sigma = x.new_full((batch,), float(sigma))
    if bool((sigma < 0).any()):
        raise ValueError("sigma must be >= 0 (a noise standard deviation)")
    return sigma.clamp_min(sigma_floor)


def _check_eta(eta: float) -> None:
    if not eta > 0:
        raise ValueError(f"step eta must be > 0, got {eta} (the paper uses 0.05 for GD, 0.49 for FB)")


def gd_map(x: Tensor, *, operator: Operator, y: Tensor, sigma: float | Tensor, gradient_net: GradientNet,
           eta: float, sigma_floor: float = DEFAULT_SIGMA_FLOOR) -> Tensor:
    """One gradient-descent step with a regularizing gradient, eq. (14).

    ``g(x) = x - eta (D(x) + s^2 G(x))``, ``D(x) = A^T (A x - y)``, ``s = max(sigma, sigma_floor)``.

    Parameters
    ----------
    x : Tensor, shape (B, C, H, W)
        Current iterate.
    operator : Operator
        ``A``; its ``data_grad`` gives ``D`` (autograd for a nonlinear one).
    y : Tensor, shape (B, *operator.out_shape)
        Observations.
    sigma : float or Tensor of shape (B,)
        Noise std of each problem, [0, 1] scale.
    gradient_net : callable
        ``G``: ``(B, C, H, W) -> (B, C, H, W)`` (a DRUNet without noise map).
    eta : float
        Step, ``> 0`` (0.05 in the paper's training).
    sigma_floor : float
        See :data:`DEFAULT_SIGMA_FLOOR`.

    Returns
    -------
    Tensor, shape (B, C, H, W)
        Differentiable in the parameters of ``G`` (and in ``x`` for a linear ``A``).

    Notes
    -----
    ``g`` is a step on ``1/2 ||A x - y||^2 + s^2 R(x)`` when ``G = grad R``; its fixed
    points are the stationary points. With ``grad R`` ``L_R``-Lipschitz it is a
    contraction on a strongly convex objective for ``eta < 2 / (||A||^2 + s^2 L_R)``.
    """
    _check_eta(eta)
    s = floored_sigma(sigma, x, sigma_floor=sigma_floor).view(_SHAPE)
    return x - eta * (operator.data_grad(x, y) + s.pow(2) * gradient_net(x))  # eq. (14)


def fb_map(x: Tensor, *, operator: Operator, y: Tensor, sigma: float | Tensor, denoiser: Denoiser,
           eta: float, sigma_floor: float = DEFAULT_SIGMA_FLOOR) -> Tensor:
    """One forward-backward step with a denoiser as the prox, eq. (12).

    ``f(x) = P(x - eta D(x), sqrt(eta) s)``, ``s = max(sigma, sigma_floor)``.

    Parameters
    ----------
    x : Tensor, shape (B, C, H, W)
    operator, y, sigma, eta, sigma_floor : see :func:`gd_map` (the paper's FB step is 0.49).
    denoiser : callable
        ``P(v, level)`` with ``level`` a ``(B,)`` tensor of noise stds (a DRUNet with noise map).

    Returns
    -------
    Tensor, shape (B, C, H, W)

    Notes
    -----
    Eq. (12) writes ``P_{theta, eta sigma^2}`` for the prox of ``eta sigma^2 R``. A Gaussian
    denoiser at level ``l`` approximates ``prox_{l^2 R}``, so this prox is the denoiser at
    ``l = sqrt(eta) s``, the reading used here (and in :class:`DenoiserPrior`:
    ``prox_{tau R} = D(., sqrt(tau))``).
    """
    _check_eta(eta)
    s = floored_sigma(sigma, x, sigma_floor=sigma_floor)
    return denoiser(x - eta * operator.data_grad(x, y), eta**0.5 * s)  # eq. (12)


def deq_fixed_point(map_fn: FixedPointMap, x0: Tensor, *, anderson: int = 0, max_iter: int = 500,
                    tol: float = 1e-7, abs_max: float = 100.0, beta: float = 1.0
                    ) -> tuple[Tensor, FixedPointSampleInfo]:
    """Forward solve of ``x = map_fn(x)`` without gradients, each sample stopped on its own.

    Parameters
    ----------
    map_fn : callable
        ``(B, C, H, W) -> (B, C, H, W)``, e.g. ``functools.partial(gd_map, operator=..., ...)``;
        it must treat samples independently.
    x0 : Tensor, shape (B, C, H, W)
        Initial iterate (``A^T y``, a bicubic upsampling...).
    anderson : int
        Anderson memory (0: plain iteration), see :class:`~learnreg.solvers.FixedPoint`.
    max_iter, tol, abs_max : int, float, float
        The paper's rules, per sample: stop after 500 iterations (``"max_iter"``), once
        ``mean((x_{k+1} - x_k)^2) < 1e-7`` (``"converged"``), or once any ``|x| > 100``
        or a value is not finite (``"diverged"``, keeping the last accepted iterate).
    beta : float
        Relaxation, ``x <- beta T(x) + (1 - beta) x``.

    Returns
    -------
    x_star : Tensor, shape (B, C, H, W)
        Detached fixed-point estimates.
    info : FixedPointSampleInfo
        Per sample: ``status`` (the reason), ``converged`` / ``diverged`` flags,
        ``iterations``, final relative ``residual``; :meth:`DEQStats.from_info` summarises it.

    Examples
    --------
    >>> import torch
    >>> x_star, info = deq_fixed_point(lambda x: 0.5 * x + 1.0, torch.zeros(2, 1, 3, 3), anderson=3)
    >>> info.status, round(float(x_star.mean()), 4)
    (('converged', 'converged'), 2.0)
    """
    return solve_fixed_point_per_sample(map_fn, x0, max_iter=max_iter, tol=tol, abs_max=abs_max,
                                        anderson=anderson, beta=beta)


def jfb_step(map_fn: FixedPointMap, x_star: Tensor) -> Tensor:
    """One differentiable application ``map_fn(x_star.detach())`` (Jacobian-free backpropagation).

    In the implicit gradient ``dl/dx* J^{-1} dT/dtheta`` of eq. (11), ``J = I - dT/dx`` is
    replaced by the identity (Fung et al., AAAI 2022): the gradient of ``l(map_fn(x*))``
    in the parameters, with ``x*`` held constant. It is a descent direction when ``T`` is a
    contraction in ``x`` and ``dT/dtheta`` is well conditioned.

    Parameters
    ----------
    map_fn : callable
        The map whose fixed point ``x_star`` is, with the parameters to train inside it.
    x_star : Tensor, shape (B, C, H, W)
        A fixed point from :func:`deq_fixed_point`.

    Returns
    -------
    Tensor, shape (B, C, H, W)
        ``T(x*)``, with a graph to the parameters of ``map_fn`` (not to ``x_star``).
    """
    return map_fn(x_star.detach())


@dataclass(frozen=True)
class DEQStats:
    """Summary of one batch's forward solve, for training logs.

    Attributes
    ----------
    batch_size : int
    fraction_converged, fraction_diverged : float
        Share of samples that met the change tolerance, that left the box ``|x| <= 100``.
    mean_iterations : float
        Mean evaluations of the map per sample.
    max_iterations : int
    mean_residual : float
        Mean final relative residual ``||T(x) - x|| / ||x||`` over the samples that did
        not diverge (NaN if all diverged).
    """

    batch_size: int
    fraction_converged: float
    fraction_diverged: float
    mean_iterations: float
    max_iterations: int
    mean_residual: float

    @classmethod
    def from_info(cls, info: FixedPointSampleInfo) -> "DEQStats":
        """Summarise :func:`deq_fixed_point`'s per-sample ``info``."""
        batch = len(info.status)
        converged, diverged = info.converged, info.diverged
        kept = info.residual[~diverged.to(info.residual.device)]
        return cls(
            batch_size=batch,
            fraction_converged=float(converged.float().mean()),
            fraction_diverged=float(diverged.float().mean()),
            mean_iterations=float(info.iterations.float().mean()),
            max_iterations=int(info.iterations.max()),
            mean_residual=float(kept.mean()) if kept.numel() else float("nan"),
        )

    def to_dict(self) -> dict[str, float | int]:
        """The fields as a flat, JSON-safe dict."""
        return asdict(self)
