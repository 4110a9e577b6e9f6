"""Training objectives of regularizing gradients: pnpReG, RG1, DEQGD, RERG (Willingham et al., VISAPP 2024).

Notation: ``G`` the regularizing gradient (a DRUNet without noise map), ``P(z, l)`` the
denoiser at noise std ``l`` (a DRUNet with noise map), ``x_hat`` the clean image,
``D(x) = A^T (A x - y)``, ``f`` and ``g`` the FB and GD maps of
:mod:`learnreg.learned.deq`, ``x_f`` and ``x_g`` their (detached) fixed points.

=================  ===================================================================
``link_loss``      ``||sigma^2 G(P(z)) - (z - P(z))||^2``                      eq. (7)
``pnpreg_loss``    ``delta ||P(z) - x_hat||_1 + lam L_link``                   eq. (8)
``fb_loss``        ``||f(x_f) - x_hat||^2``                                    eq. (15)
``gd_loss``        ``||g(x_g) - x_hat||^2``                                    eq. (16)
``rg1_loss``       ``0.1 L_link_{eta sigma^2}(x~) + L_FB``                     eq. (28)
``deqgd_loss``     ``L_GD``                                                    eq. (29)
``rerg_loss``      ``L_RG1 + 0.1 L_GD``                                        eq. (30)
=================  ===================================================================

Normalisation, the same for every term: a norm is taken per sample (summed over
channels and pixels), then averaged over the batch (over the samples in ``keep`` when
given). Every term being scaled alike, the weights (``lam``, 0.1) mean what they mean
with per-pixel means (the pnpReG reference code uses ``L1Loss`` and ``MSELoss``); only the
loss's magnitude grows with the image size.

``keep``, a ``(B,)`` bool tensor, drops samples from a loss (those whose forward solve
diverged); with none kept, the loss is a zero that still carries the graph, so every
process of a data-parallel run takes part in the backward pass.
"""

from __future__ import annotations

import functools

import torch
from torch import Tensor

from learnreg.learned.deq import DEFAULT_SIGMA_FLOOR, GradientNet, floored_sigma, gd_map, jfb_step
from learnreg.physics.operator import Operator
from learnreg.regularizers.denoiser import Denoiser

__all__ = [
    "batch_mean", "deqgd_loss", "fb_loss", "gd_loss", "link_loss", "pnpreg_loss", "rerg_loss", "rg1_link_loss",
    "rg1_loss",
]

_SHAPE = (-1, 1, 1, 1)  # (B,) -> (B, 1, 1, 1)


def batch_mean(per_sample_values: Tensor, *, keep: Tensor | None = None) -> Tensor:
    """Mean over the batch of ``per_sample_values`` (B,), over the samples in ``keep`` only if given.

    With no sample kept, returns ``0 * sum(values)``: zero, finite where the values are,
    and connected to the graph.
    """
    if keep is None:
        return per_sample_values.mean()
    keep = keep.to(device=per_sample_values.device, dtype=torch.bool).reshape(-1)
    if keep.numel() != per_sample_values.numel():
        raise ValueError(f"keep must be a ({per_sample_values.numel()},) bool tensor, got {keep.numel()} values")
    if not bool(keep.any()):
        return 0.0 * per_sample_values.nan_to_num(0.0, 0.0, 0.0).sum()
    return per_sample_values[keep].mean()


def _squared_norm(residual: Tensor) -> Tensor:
    return residual.flatten(1).pow(2).sum(1)  # (B, C, H, W) -> (B,)


def _level(sigma: float | Tensor, z: Tensor) -> Tensor:
    return floored_sigma(sigma, z, sigma_floor=0.0)


def _link_residual(gradient_net: GradientNet, z: Tensor, denoised: Tensor, weight: Tensor) -> Tensor:
    """``weight G(P(z)) - (z - P(z))``: eq. (6) says it vanishes when ``P = prox_{weight R}``, ``G = grad R``."""
    return weight.view(_SHAPE) * gradient_net(denoised) - (z - denoised)


def link_loss(gradient_net: GradientNet, denoiser: Denoiser, z: Tensor, sigma: float | Tensor, *,
              keep: Tensor | None = None) -> Tensor:
    """The link loss of eq. (7), ``||sigma^2 G(P(z, sigma)) - (z - P(z, sigma))||^2``.

    Parameters
    ----------
    gradient_net : callable
        ``G``: ``(B, C, H, W) -> (B, C, H, W)``.
    denoiser : callable
        ``P(z, sigma)``, ``sigma`` passed as a ``(B,)`` tensor.
    z : Tensor, shape (B, C, H, W)
        Noisy images.
    sigma : float or Tensor of shape (B,)
        Level of the denoiser and weight of ``G``, [0, 1] scale.
    keep : Tensor of shape (B,), bool, optional
        Samples to average over (module notes).

    Returns
    -------
    Tensor, shape ()
        Per-sample squared norm, averaged over the batch; differentiable in both networks.

    Notes
    -----
    For ``P(z, sigma) = prox_{sigma^2 R}(z)`` and ``G = grad R``, the optimality condition
    of the prox gives ``sigma^2 G(P(z)) = z - P(z)`` (eq. 6), so the loss is 0: e.g.
    ``R = c/2 ||x||^2``, ``P(z, sigma) = z / (1 + c sigma^2)``, ``G(x) = c x``.
    """
    level = _level(sigma, z)
    denoised = denoiser(z, level)
    return batch_mean(_squared_norm(_link_residual(gradient_net, z, denoised, level.pow(2))), keep=keep)


def pnpreg_loss(gradient_net: GradientNet, denoiser: Denoiser, x_clean: Tensor, z_noisy: Tensor,
                sigma: float | Tensor, *, delta: float, lam: float, keep: Tensor | None = None) -> Tensor:
    """pnpReG's objective, eq. (8): ``delta ||P(z~, sigma) - x_hat||_1 + lam L_link_sigma(z~)``.

    Parameters
    ----------
    gradient_net, denoiser : callable
        ``G`` and ``P`` as in :func:`link_loss`.
    x_clean : Tensor, shape (B, C, H, W)
        ``x_hat``.
    z_noisy : Tensor, shape (B, C, H, W)
        ``z~ = x_hat + noise`` of std ``sigma_0``.
    sigma : float or Tensor of shape (B,)
        Level given to ``P`` and in the link term; ``delta = 1`` iff it equals ``sigma_0``
        (pnpReG alternates a matched and a mismatched level).
    delta : float
        Weight of the denoising term (1 or 0).
    lam : float
        Weight of the link term (0.004 for pnpReG).
    keep : Tensor of shape (B,), bool, optional

    Returns
    -------
    Tensor, shape ()
    """
    if lam < 0 or delta < 0:
        raise ValueError(f"delta and lam must be >= 0, got delta={delta}, lam={lam}")
    level = _level(sigma, z_noisy)
    denoised = denoiser(z_noisy, level)
    l1 = (denoised - x_clean).flatten(1).abs().sum(1)  # (B,)
    link = _squared_norm(_link_residual(gradient_net, z_noisy, denoised, level.pow(2)))
    return batch_mean(delta * l1 + lam * link, keep=keep)


def fb_loss(f_value: Tensor, x_clean: Tensor, *, keep: Tensor | None = None) -> Tensor:
    """``L_FB = ||f(x_f) - x_hat||^2``, eq. (15); ``f_value = jfb_step(fb step, x_f)``, shape (B, C, H, W)."""
    return batch_mean(_squared_norm(f_value - x_clean), keep=keep)


def gd_loss(g_value: Tensor, x_clean: Tensor, *, keep: Tensor | None = None) -> Tensor:
    """``L_GD = ||g(x_g) - x_hat||^2``, eq. (16); ``g_value = jfb_step(gd step, x_g)``, shape (B, C, H, W)."""
    return batch_mean(_squared_norm(g_value - x_clean), keep=keep)


def _fb_terms(gradient_net: GradientNet, denoiser: Denoiser, x_f: Tensor, *, operator: Operator, y: Tensor,
              sigma: float | Tensor, eta: float, sigma_floor: float) -> tuple[Tensor, Tensor]:
    """``(f(x_f), per-sample link)`` sharing the one denoiser call ``P(x~) = f(x_f)``."""
    if not eta > 0:
        raise ValueError(f"step eta must be > 0, got {eta}")
    x_f = x_f.detach()
    s = floored_sigma(sigma, x_f, sigma_floor=sigma_floor)
    x_tilde = (x_f - eta * operator.data_grad(x_f, y)).detach()  # x~ = x_f - eta D(x_f), constant (31)
    denoised = denoiser(x_tilde, eta**0.5 * s)  # P(x~) at sqrt(eta) s, = f(x_f) of eq. (12)
    link = _squared_norm(_link_residual(gradient_net, x_tilde, denoised, eta * s.pow(2)))
    return denoised, link


def rg1_link_loss(gradient_net: GradientNet, denoiser: Denoiser, x_f: Tensor, *, operator: Operator, y: Tensor,
                  sigma: float | Tensor, eta: float, sigma_floor: float = DEFAULT_SIGMA_FLOOR,
                  keep: Tensor | None = None) -> Tensor:
    """``L_link_{eta s^2}(x~) = ||eta s^2 G(P(x~)) - (x~ - P(x~))||^2`` at ``x~ = x_f - eta D(x_f)``.

    Parameters
    ----------
    gradient_net, denoiser : callable
        ``G`` and ``P`` (``P``'s level passed as a ``(B,)`` tensor).
    x_f : Tensor, shape (B, C, H, W)
        The FB fixed point (detached here).
    operator, y, sigma, eta, sigma_floor
        As in :func:`~learnreg.learned.deq.fb_map`; ``eta`` is the FB step (0.49).
    keep : Tensor of shape (B,), bool, optional

    Returns
    -------
    Tensor, shape ()

    Notes
    -----
    Eq. (28) writes ``L_link_{sigma^2}``; Theorem 1 (eqs. 19-20) needs the weight
    ``eta sigma^2`` of the prox used in the FB step, so ``P`` runs at ``sqrt(eta) s`` and
    ``G`` is weighted by ``eta s^2`` (REFERENCE.md §2, design reading). At an exact FB fixed
    point ``P(x~) = x_f`` and the loss is ``||eta s^2 G(x_f) + eta D(x_f)||^2`` (eq. 20),
    zero iff ``x_f`` is also a fixed point of the GD map. ``x~`` is held constant (eq. 31);
    gradients flow into both ``G`` and ``P``.
    """
    _, link = _fb_terms(gradient_net, denoiser, x_f, operator=operator, y=y, sigma=sigma, eta=eta,
                        sigma_floor=sigma_floor)
    return batch_mean(link, keep=keep)


def rg1_loss(gradient_net: GradientNet, denoiser: Denoiser, x_f: Tensor, x_clean: Tensor, *, operator: Operator,
             y: Tensor, sigma: float | Tensor, eta: float, sigma_floor: float = DEFAULT_SIGMA_FLOOR,
             link_weight: float = 0.1, keep: Tensor | None = None) -> Tensor:
    """RG1, eq. (28): ``link_weight * L_link_{eta s^2}(x~) + L_FB``, both by JFB at ``x_f``.

    Parameters
    ----------
    gradient_net, denoiser, x_f, operator, y, sigma, eta, sigma_floor
        As in :func:`rg1_link_loss`.
    x_clean : Tensor, shape (B, C, H, W)
        ``x_hat``.
    link_weight : float
        0.1 in the paper.
    keep : Tensor of shape (B,), bool, optional

    Returns
    -------
    Tensor, shape ()

    Notes
    -----
    ``f(x_f) = P(x_f - eta D(x_f)) = P(x~)``: the JFB step of the FB map and the link term
    share one denoiser call.
    """
    f_value, link = _fb_terms(gradient_net, denoiser, x_f, operator=operator, y=y, sigma=sigma, eta=eta,
                              sigma_floor=sigma_floor)
    return batch_mean(link_weight * link + _squared_norm(f_value - x_clean), keep=keep)


def deqgd_loss(gradient_net: GradientNet, x_g: Tensor, x_clean: Tensor, *, operator: Operator, y: Tensor,
               sigma: float | Tensor, eta: float, sigma_floor: float = DEFAULT_SIGMA_FLOOR,
               keep: Tensor | None = None) -> Tensor:
    """DEQGD, eq. (29): ``L_GD = ||g(x_g) - x_hat||^2`` with one JFB step of :func:`~learnreg.learned.deq.gd_map`.

    Parameters
    ----------
    gradient_net : callable
        ``G``.
    x_g : Tensor, shape (B, C, H, W)
        The GD fixed point (detached here).
    x_clean : Tensor, shape (B, C, H, W)
    operator, y, sigma, eta, sigma_floor
        As in :func:`~learnreg.learned.deq.gd_map`; ``eta`` is the GD step (0.05).
    keep : Tensor of shape (B,), bool, optional

    Returns
    -------
    Tensor, shape ()
    """
    step = functools.partial(gd_map, operator=operator, y=y, sigma=sigma, gradient_net=gradient_net, eta=eta,
                             sigma_floor=sigma_floor)
    return gd_loss(jfb_step(step, x_g), x_clean, keep=keep)


def rerg_loss(gradient_net: GradientNet, denoiser: Denoiser, x_f: Tensor, x_g: Tensor, x_clean: Tensor, *,
              operator: Operator, y: Tensor, sigma: float | Tensor, eta_fb: float, eta_gd: float,
              sigma_floor: float = DEFAULT_SIGMA_FLOOR, link_weight: float = 0.1, gd_weight: float = 0.1,
              keep: Tensor | None = None) -> Tensor:
    """RERG, eq. (30): ``L_RG1 + gd_weight * L_GD``.

    Parameters
    ----------
    x_f, x_g : Tensor, shape (B, C, H, W)
        Fixed points of the FB map (step ``eta_fb``, 0.49) and of the GD map (step ``eta_gd``, 0.05).
    gd_weight : float
        0.1 in the paper.
    gradient_net, denoiser, x_clean, operator, y, sigma, sigma_floor, link_weight, keep
        As in :func:`rg1_loss`; ``keep`` should drop samples where either solve diverged.

    Returns
    -------
    Tensor, shape ()
    """
    rg1 = rg1_loss(gradient_net, denoiser, x_f, x_clean, operator=operator, y=y, sigma=sigma, eta=eta_fb,
                   sigma_floor=sigma_floor, link_weight=link_weight, keep=keep)
    gd = deqgd_loss(gradient_net, x_g, x_clean, operator=operator, y=y, sigma=sigma, eta=eta_gd,
                    sigma_floor=sigma_floor, keep=keep)
    return rg1 + gd_weight * gd
