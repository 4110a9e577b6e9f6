"""Run a denoiser ``D(x, sigma)`` on large images in overlapping, smoothly blended tiles.

A U-Net's memory grows with the image area; beyond a size the image is cut into
``tile x tile`` pieces that overlap by ``overlap`` pixels, each piece is denoised,
and the pieces are blended with a separable raised-cosine window over the overlaps
(weights normalised to sum to one at every pixel), so there is no visible seam.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import Tensor

__all__ = ["TiledDenoiser", "tiled", "tile_starts", "tile_window"]

Denoiser = Callable[[Tensor, "float | Tensor"], Tensor]


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles of size ``min(tile, length)`` covering ``[0, length)``.

    Consecutive tiles overlap by at least ``overlap``; the last one is aligned to the
    end, so every tile has the same size and sizes need not divide.

    Examples
    --------
    >>> tile_starts(300, 128, 32)
    [0, 96, 172]
    >>> tile_starts(100, 128, 32)
    [0]
    """
    if length <= tile:
        return [0]
    step = tile - overlap
    return list(range(0, length - tile, step)) + [length - tile]


def tile_window(size: int, overlap: int, *, first: bool, last: bool,
                dtype: torch.dtype = torch.float32, device: torch.device | str | None = None) -> Tensor:
    """1-D blending weights of one tile, shape ``(size,)``, all > 0.

    A raised-cosine ramp ``(1 - cos(pi (i + 1/2) / overlap)) / 2`` over the first and
    last ``overlap`` samples, flat 1 elsewhere; no ramp on a side that touches the
    image border (``first`` / ``last``), where no other tile takes over.
    """
    weights = torch.ones(size, dtype=torch.float64)
    ramp_length = min(overlap, size // 2)
    if ramp_length > 0:
        ramp = 0.5 - 0.5 * torch.cos(math.pi * (torch.arange(ramp_length, dtype=torch.float64) + 0.5) / ramp_length)
        if not first:
            weights[:ramp_length] = ramp
        if not last:
            weights[size - ramp_length:] = ramp.flip(0)
    return weights.to(dtype=dtype, device=device)


class TiledDenoiser:
    """``D(x, sigma)`` that runs ``network`` whole on small images and in tiles on large ones.

    Build it with :func:`tiled`. Attributes ``network``, ``tile``, ``overlap`` and
    ``threshold`` are the construction arguments.
    """

    def __init__(self, network: Denoiser, *, tile: int, overlap: int, threshold: int):
        if not callable(network):
            raise TypeError(f"tiled needs a callable network(x, sigma), got {type(network).__name__}")
        if tile < 1 or overlap < 0 or 2 * overlap >= tile:
            raise ValueError(f"tiled needs tile >= 1 and 0 <= overlap < tile / 2, got tile={tile}, overlap={overlap}")
        if threshold < 0:
            raise ValueError(f"threshold must be >= 0 pixels, got {threshold}")
        self.network, self.tile, self.overlap, self.threshold = network, int(tile), int(overlap), int(threshold)

    def __repr__(self) -> str:
        return (f"TiledDenoiser({type(self.network).__name__}, tile={self.tile}, overlap={self.overlap}, "
                f"threshold={self.threshold})")

    def __call__(self, x: Tensor, sigma: float | Tensor) -> Tensor:
        """Denoise ``x``.

        Parameters
        ----------
        x : Tensor, shape (B, C, H, W)
        sigma : float or Tensor
            A float, a ``(B,)`` tensor, or a ``(B, 1, H, W)`` noise map (cropped per tile).

        Returns
        -------
        Tensor, shape (B, C, H, W)
            Under ``torch.inference_mode`` when gradients are disabled; the result is an
            ordinary tensor either way (usable later in autograd).
        """
        if x.dim() != 4:
            raise ValueError(f"tiled denoiser: x must be (B, C, H, W), got {tuple(x.shape)}")
        if torch.is_grad_enabled():
            return self._run(x, sigma)
        with torch.inference_mode():
            out = self._run(x, sigma)
        return out.clone()  # a clone made outside inference mode is an ordinary tensor

    def _run(self, x: Tensor, sigma: float | Tensor) -> Tensor:
        height, width = x.shape[-2:]
        if height * width <= self.threshold or (height <= self.tile and width <= self.tile):
            return self.network(x, sigma)
        rows = tile_starts(height, self.tile, self.overlap)
        cols = tile_starts(width, self.tile, self.overlap)
        tile_height, tile_width = min(self.tile, height), min(self.tile, width)
        window_rows = [tile_window(tile_height, self.overlap, first=r == 0, last=r + tile_height == height,
                                   dtype=x.dtype, device=x.device) for r in rows]
        window_cols = [tile_window(tile_width, self.overlap, first=c == 0, last=c + tile_width == width,
                                   dtype=x.dtype, device=x.device) for c in cols]
        out: Tensor | None = None
        total = x.new_zeros(1, 1, height, width)
        for r, window_row in zip(rows, window_rows):
            for c, window_col in zip(cols, window_cols):
                rows_slice, cols_slice = slice(r, r + tile_height), slice(c, c + tile_width)
                piece = self.network(x[..., rows_slice, cols_slice], _crop_sigma(sigma, rows_slice, cols_slice))
                if out is None:
                    out = x.new_zeros(x.shape[0], piece.shape[1], height, width)
                weight = window_row[:, None] * window_col[None, :]  # separable (h, w) window
                out[..., rows_slice, cols_slice] += weight * piece
                total[..., rows_slice, cols_slice] += weight
        assert out is not None
        return out / total


def _crop_sigma(sigma: float | Tensor, rows: slice, cols: slice) -> float | Tensor:
    if isinstance(sigma, Tensor) and sigma.dim() == 4 and sigma.shape[-1] > 1:
        return sigma[..., rows, cols]  # a per-pixel (B, 1, H, W) noise map
    return sigma


def tiled(network: Denoiser, *, tile: int = 256, overlap: int = 32, threshold: int = 512 * 512) -> TiledDenoiser:
    """Wrap a denoiser so that large images are processed in blended tiles.

    Parameters
    ----------
    network : callable
        ``network(x, sigma) -> Tensor`` of the shape of ``x``, e.g. a
        :class:`~learnreg.learned.nets.DRUNet`; fully convolutional (any ``H, W``).
    tile : int
        Tile side in pixels. Images whose sides are both at most ``tile`` run whole.
    overlap : int
        Overlap of neighbouring tiles; the raised-cosine blending ramp spans it.
        ``0 <= overlap < tile / 2``. It should exceed the network's effective
        receptive-field radius for seam-free output (32 suits DRUNet).
    threshold : int
        Images of at most this many pixels (``H * W``) run whole, bit for bit.

    Returns
    -------
    TiledDenoiser
        A callable ``D(x, sigma)``; runs under ``torch.inference_mode`` when
        gradients are disabled (e.g. inside ``torch.no_grad()``).

    Notes
    -----
    Output at pixel ``p``: ``sum_t w_t(p) D(x_t, sigma)(p) / sum_t w_t(p)`` over the
    tiles ``t`` covering ``p``, with ``w_t`` the outer product of two 1-D windows
    (:func:`tile_window`). Tiles are all the same size; the last tile of a row or
    column is aligned to the image border, so any size works.

    Examples
    --------
    >>> import torch
    >>> smooth = tiled(lambda x, sigma: x, tile=64, overlap=16, threshold=0)
    >>> x = torch.rand(2, 3, 100, 150)
    >>> bool(torch.allclose(smooth(x, 0.1), x))
    True
    """
    return TiledDenoiser(network, tile=tile, overlap=overlap, threshold=threshold)
