"""A Gaussian denoiser ``D(x, sigma)`` as a regularizer: plug-and-play prox and RED gradient.

A denoiser trained for white Gaussian noise of standard deviation ``sigma`` is, to
first order, the proximal operator of ``sigma^2 phi`` with ``phi`` a negative log
prior, so plug-and-play methods use it in place of a prox:

    prox_{tau R}(v) = argmin_x tau R(x) + 1/2 ||x - v||^2  ~=  D(v, sigma = sqrt(tau)).

Regularization by denoising (RED, Romano et al., SIAM J. Imaging Sci. 2017) uses
instead the gradient field ``grad R(x) = x - D(x, sigma_red)`` at a fixed level.

The denoiser is any callable ``D(x, sigma)``: ``x`` of shape ``(B, C, H, W)``,
``sigma`` a float or a ``(B,)`` tensor on the ``[0, 1]`` scale. This module builds
no network; :func:`learnreg.learned.tiling.tiled` wraps one for large images.
"""

from __future__ import annotations

import math
from typing import Callable, Literal

import torch
from torch import Tensor

from learnreg.regularizers.base import CapabilityError, Regularizer

Denoiser = Callable[[Tensor, "float | Tensor"], Tensor]
ColorMode = Literal["native", "opponent", "per_channel"]
COLOR_MODES: tuple[str, ...] = ("native", "opponent", "per_channel")
ENSEMBLES: tuple[int, ...] = (1, 2, 4, 8)  # sizes of a geometric self-ensemble (transforms of the grid averaged)


def opponent_matrix(*, dtype: torch.dtype = torch.float32, device: torch.device | str | None = None) -> Tensor:
    """The orthonormal opponent colour transform, shape ``(3, 3)``, rows = output channels.

    Rows: luminance ``[1, 1, 1] / sqrt(3)``, red-blue ``[1, 0, -1] / sqrt(2)``,
    green-magenta ``[1, -2, 1] / sqrt(6)``. The matrix is orthogonal (``M M^T = I``),
    so white Gaussian noise of level ``sigma`` in RGB stays white with the same
    ``sigma`` in the opponent channels, and the inverse is ``M^T``.

    Examples
    --------
    >>> M = opponent_matrix(dtype=torch.float64)
    >>> bool(torch.allclose(M @ M.T, torch.eye(3, dtype=torch.float64)))
    True
    """
    rows = [[1.0, 1.0, 1.0], [1.0, 0.0, -1.0], [1.0, -2.0, 1.0]]
    matrix = torch.tensor(rows, dtype=torch.float64)
    matrix = matrix / matrix.norm(dim=1, keepdim=True)
    return matrix.to(dtype=dtype, device=device)


def to_opponent(x: Tensor) -> Tensor:
    """RGB ``(B, 3, H, W)`` to opponent channels ``(B, 3, H, W)`` (luminance first)."""
    _check_rgb(x)
    return torch.einsum("kc,bchw->bkhw", opponent_matrix(dtype=x.dtype, device=x.device), x)


def from_opponent(o: Tensor) -> Tensor:
    """Inverse of :func:`to_opponent` (the transpose, the transform being orthonormal)."""
    _check_rgb(o)
    return torch.einsum("kc,bkhw->bchw", opponent_matrix(dtype=o.dtype, device=o.device), o)


# How each opponent channel is presented to a gray denoiser: u = o / gain + offset, at sigma / gain.
# Luminance (range [0, sqrt(3)]) is scaled to [0, 1]; the chroma channels (ranges +-0.71 and +-0.82,
# mostly within +-0.5 for natural images) are centred at 1/2 but not scaled, which would multiply the
# denoiser's own error by sqrt(2) and 1.63 on the way back.
OPPONENT_GAIN = (math.sqrt(3.0), 1.0, 1.0)
OPPONENT_OFFSET = (0.0, 0.5, 0.5)


def dihedral(x: Tensor, index: int, *, inverse: bool = False) -> Tensor:
    """The ``index``-th (0-7) of the 8 rotations / reflections of the grid applied to ``x`` (..., H, W),
    or with ``inverse=True`` its inverse; index 0 is the identity, 4-7 reflect left-right first."""
    turns, flip = index % 4, index >= 4
    if inverse:
        x = torch.rot90(x, -turns, dims=(-2, -1))
        return x.flip(-1) if flip else x
    x = x.flip(-1) if flip else x
    return torch.rot90(x, turns, dims=(-2, -1))


def _check_rgb(x: Tensor) -> None:
    if x.dim() != 4 or x.shape[1] != 3:
        raise ValueError(f"opponent colour needs RGB images of shape (B, 3, H, W), got {tuple(x.shape)}; "
                         "use color='per_channel' for other channel counts")


def _per_sample_sigma(sigma: float | Tensor, batch: int, like: Tensor) -> Tensor:
    """``sigma`` as a ``(batch,)`` tensor like ``like``."""
    if isinstance(sigma, Tensor):
        sigma = sigma.to(dtype=like.dtype, device=like.device).reshape(-1)
        if sigma.numel() == 1:
            return sigma.expand(batch)
        if sigma.numel() != batch:
            raise ValueError(f"sigma must be a float or a ({batch},) tensor, got {sigma.numel()} values")
        return sigma
    return like.new_full((batch,), float(sigma))


class DenoiserPrior(Regularizer):
    """A Gaussian denoiser ``D(x, sigma)`` behind the regularizer contract.

    Parameters
    ----------
    denoiser : callable
        ``D(x, sigma) -> Tensor``: ``x`` of shape ``(N, C', H, W)`` (``C'`` the
        denoiser's channels: the image's for ``"native"``, 1 otherwise), ``sigma`` a
        float or an ``(N,)`` tensor on the ``[0, 1]`` scale; returns the shape of ``x``.
        Any callable works: a network, :func:`~learnreg.learned.tiling.tiled` around
        one, or a closed-form shrinkage for tests. It is called, never modified.
    color : {"native", "opponent", "per_channel"}
        How images meet the denoiser. ``"native"``: as they are (the denoiser has the
        image's channels). ``"opponent"``: RGB through the orthonormal opponent
        transform (:func:`opponent_matrix`), each opponent channel denoised as a gray
        image, then back, so a gray denoiser serves RGB images. ``"per_channel"``: each
        channel as a gray image. The channels of one call are batched into one
        denoiser call: ``(B, C, H, W) -> (B * C, 1, H, W)``.
    scale : float
        Intensity range of ``x``: the denoiser sees ``x / scale`` at level
        ``sigma / scale`` and its output is multiplied back (1 for images in
        ``[0, 1]``; the depth range for depth maps in their own units).
    red_sigma : float, optional
        Level at which :meth:`grad` evaluates the RED gradient; without it the prior
        has no gradient.
    self_ensemble : bool
        Periodic geometric self-ensemble (DPIR, Zhang et al. 2021): evaluation ``k`` sees the
        image under the ``(k mod 8)``-th rotation / reflection of the grid (:func:`dihedral`)
        and the output is turned back. No extra cost; an iterative solver then averages the
        network's orientation-dependent errors over its iterations.
    ensemble : int
        Geometric self-ensemble inside every call: the output is the mean over ``ensemble``
        (1, 2, 4 or 8) rotations / reflections of the image, each turned back, at
        ``ensemble`` times the cost (each counts as an evaluation). With ``self_ensemble`` the
        transforms run on with the evaluation count (evaluation ``n`` sees transform
        ``n mod 8``); with 8 every call sees the whole group.

    Attributes
    ----------
    evaluations : int
        Denoiser calls so far (``ensemble`` per :meth:`prox` or :meth:`grad`, whatever the
        colour mode, as the channels are batched); solvers and benchmarks report it.

    Notes
    -----
    Prox convention ``prox_{tau R}(v) = argmin_x tau R(x) + 1/2 ||x - v||^2``, with the
    mapping ``sigma = sqrt(tau)``: ``prox(v, tau) = D(v, sqrt(tau))``. This is exact
    when ``D(., sigma)`` is the prox of ``sigma^2 phi`` for a fixed ``phi`` (then
    ``R = phi``), e.g. ``D(v, sigma) = v / (1 + c sigma^2)`` for
    ``phi(x) = c/2 ||x||^2``; for a trained network it is an approximation, hence
    ``prox_is_exact = False``. Weighting composes: ``(w * prior).prox(v, tau)`` is
    ``D(v, sqrt(w tau))``.

    RED gradient: ``grad(x) = x - D(x, red_sigma)``. For a denoiser with symmetric
    Jacobian of spectrum in ``[0, 1]`` it is 1-Lipschitz; no ``lipschitz`` is declared,
    so gradient solvers need an explicit step.

    Opponent mode presents channel ``k`` as ``u_k = o_k / gain_k + offset_k`` at level
    ``sigma / gain_k`` (:data:`OPPONENT_GAIN`, :data:`OPPONENT_OFFSET`): the luminance, of range
    ``[0, sqrt(3)]``, is rescaled to ``[0, 1]`` (level ``sigma / sqrt(3)``); the chroma channels
    (ranges ``+-1/sqrt(2)`` and ``+-2/sqrt(6)``, mostly within ``+-1/2`` for natural images) are
    shifted to centre at 1/2 at level ``sigma``. The levels match the noise exactly, for any
    denoiser. A bias-free denoiser is scale-equivariant, ``D(a x, a sigma) = a D(x, sigma)``, so
    the luminance rescaling changes nothing for it, but it is not shift-equivariant, so centring
    the chroma channels inside its training range matters. Rescaling the chroma channels to
    ``[0, 1]`` as well was measured worse (0.1 to 1.2 dB, an early drunet-gray on two RGB images), as it
    multiplies the denoiser's own error by the channel's range on the way back.

    Examples
    --------
    >>> prior = DenoiserPrior(lambda x, sigma: x / (1 + 4.0 * sigma**2))
    >>> float(prior.prox(torch.ones(1, 1, 2, 2), 0.25)[0, 0, 0, 0])
    0.5
    >>> prior.evaluations
    1
    """

    has_prox = True
    prox_is_exact = False

    def __init__(self, denoiser: Denoiser, *, color: ColorMode = "native", scale: float = 1.0,
                 red_sigma: float | None = None, self_ensemble: bool = False, ensemble: int = 1):
        if not callable(denoiser):
            raise TypeError(f"DenoiserPrior needs a callable D(x, sigma), got {type(denoiser).__name__}")
        if color not in COLOR_MODES:
            raise ValueError(f"unknown color mode {color!r}; valid: {', '.join(COLOR_MODES)}")
        if not scale > 0:
            raise ValueError(f"scale must be > 0, got {scale}")
        if red_sigma is not None and not red_sigma > 0:
            raise ValueError(f"red_sigma must be > 0, got {red_sigma}")
        if ensemble not in ENSEMBLES:
            raise ValueError(f"ensemble must be one of {', '.join(map(str, ENSEMBLES))} (transforms averaged "
                             f"per denoiser call), got {ensemble!r}")
        self.denoiser = denoiser
        self.color: str = color
        self.scale = float(scale)
        self.red_sigma = None if red_sigma is None else float(red_sigma)
        self.has_grad = self.red_sigma is not None
        self.self_ensemble = bool(self_ensemble)
        self.ensemble = int(ensemble)
        self.evaluations = 0

    @property
    def name(self) -> str:
        return f"DenoiserPrior(approximate prox by a denoiser, color={self.color})"

    # -- the contract -----------------------------------------------------------
    def prox(self, v: Tensor, tau: float | Tensor) -> Tensor:
        """``D(v, sqrt(tau))``, the denoiser as an approximate ``prox_{tau R}``.

        Parameters
        ----------
        v : Tensor, shape (B, C, H, W)
        tau : float or Tensor of shape (B,)
            ``tau >= 0``; the denoiser runs at ``sigma = sqrt(tau)``.
        """
        sigma = tau.sqrt() if isinstance(tau, Tensor) else math.sqrt(tau)
        return self.denoise(v, sigma)

    def grad(self, x: Tensor) -> Tensor:
        """RED gradient ``x - D(x, red_sigma)``, shape of ``x``."""
        if self.red_sigma is None:
            raise CapabilityError(f"{self.name} has no grad(): pass red_sigma= to use it as a RED gradient, "
                                  "or use a proximal solver (forward-backward, ADMM, HQS)")
        return x - self.denoise(x, self.red_sigma)

    # -- denoising with colour handling ---------------------------------------
    def denoise(self, x: Tensor, sigma: float | Tensor) -> Tensor:
        """``D(x, sigma)`` through the colour mode and intensity scale (and the ensemble); counts
        ``ensemble`` evaluations.

        Parameters
        ----------
        x : Tensor, shape (B, C, H, W)
            Noisy images, values in ``[0, scale]``.
        sigma : float or Tensor of shape (B,)
            Noise standard deviation, in the units of ``x``.

        Returns
        -------
        Tensor, shape (B, C, H, W)
        """
        if x.dim() != 4:
            raise ValueError(f"{self.name}: x must be (B, C, H, W), got {tuple(x.shape)}")
        first = self.evaluations
        self.evaluations += self.ensemble
        turns = [(first + j) % 8 if self.self_ensemble else j for j in range(self.ensemble)]
        outputs = [dihedral(self._denoise(dihedral(x, t), sigma), t, inverse=True) if t else self._denoise(x, sigma)
                   for t in turns]
        return outputs[0] if len(outputs) == 1 else torch.stack(outputs).mean(0)

    def _denoise(self, x: Tensor, sigma: float | Tensor) -> Tensor:
        batch, channels, height, width = x.shape
        x = x / self.scale
        if self.color == "opponent":
            return self.scale * self._opponent(x, _per_sample_sigma(sigma, batch, x) / self.scale)
        sigma = sigma / self.scale  # a float stays a float for the denoiser
        if self.color == "native":
            return self.scale * self.denoiser(x, sigma)
        if isinstance(sigma, Tensor):
            sigma = _per_sample_sigma(sigma, batch, x).repeat_interleave(channels)  # (B*C,), b-major
        out = self.denoiser(x.reshape(batch * channels, 1, height, width), sigma)  # (B, C, H, W) -> (B*C, 1, H, W)
        return self.scale * out.reshape(batch, channels, height, width)

    def _opponent(self, x: Tensor, sigma: Tensor) -> Tensor:
        """Opponent-mode denoising of ``x`` (B, 3, H, W) at per-sample levels ``sigma`` (B,)."""
        batch, _, height, width = x.shape
        gain = x.new_tensor(OPPONENT_GAIN).view(1, 3, 1, 1)
        offset = x.new_tensor(OPPONENT_OFFSET).view(1, 3, 1, 1)
        u = to_opponent(x) / gain + offset  # luminance in [0, 1], chroma around 1/2
        sigmas = (sigma.view(batch, 1) / gain.view(1, 3)).reshape(-1)  # (B*3,), b-major like u below
        out = self.denoiser(u.reshape(batch * 3, 1, height, width), sigmas)  # (B, 3, H, W) -> (3B, 1, H, W)
        return from_opponent((out.reshape(batch, 3, height, width) - offset) * gain)
