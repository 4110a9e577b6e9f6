"""Periodic finite differences: the discrete gradient behind TV, Tikhonov and hyper-Laplacian priors."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from learnreg.physics.operator import LinearOperator, _as_shape


class FiniteDifference(LinearOperator):
    """Forward differences with periodic (circular) boundary, ``(C, H, W) -> (2C, H, W)``.

    Parameters
    ----------
    shape : tuple of int
        Per-sample shape ``(C, H, W)`` of the image.

    Notes
    -----
    Layout of the output ``u = D x``, shape ``(B, 2C, H, W)``: the first ``C``
    channels are the horizontal differences (along columns, ``d/dx``)
    ``u[:, c, i, j] = x[:, c, i, j+1] - x[:, c, i, j]`` and the next ``C`` the
    vertical ones (along rows, ``d/dy``) ``u[:, C+c, i, j] = x[:, c, i+1, j] - x[:, c, i, j]``,
    indices taken modulo ``W`` and ``H``.

    The adjoint is the negative backward divergence,
    ``(D^T u)[i, j] = u_x[i, j-1] - u_x[i, j] + u_y[i-1, j] - u_y[i, j]``.
    ``D^T D`` is the periodic negative Laplacian, diagonal in the Fourier basis with
    eigenvalues ``4 sin^2(pi k / W) + 4 sin^2(pi l / H)`` (:meth:`normal_fourier`),
    so ``||D||^2 = max eigenvalue``, which is 8 when ``H`` and ``W`` are even (at most 8
    otherwise). Constant images are the kernel of ``D``.

    Examples
    --------
    >>> import torch
    >>> D = FiniteDifference((1, 4, 5))
    >>> D(torch.ones(2, 1, 4, 5)).abs().max().item()
    0.0
    """

    def __init__(self, shape: tuple[int, ...]):
        shape = _as_shape(shape, "shape")
        channels, height, width = shape
        super().__init__(shape, (2 * channels, height, width))

    def _forward(self, x: Tensor) -> Tensor:
        dx = torch.roll(x, shifts=-1, dims=-1) - x
        dy = torch.roll(x, shifts=-1, dims=-2) - x
        return torch.cat((dx, dy), dim=1)  # (B, 2C, H, W)

    def _adjoint(self, y: Tensor) -> Tensor:
        channels = self.in_shape[0]
        ux, uy = y[:, :channels], y[:, channels:]
        return (torch.roll(ux, shifts=1, dims=-1) - ux) + (torch.roll(uy, shifts=1, dims=-2) - uy)

    def normal_fourier(self) -> Tensor:
        """Eigenvalues of ``D^T D`` (periodic negative Laplacian) on the ``rfft2`` grid.

        Returns
        -------
        Tensor, shape (1, H, W // 2 + 1), float64
            ``4 sin^2(pi k / W) + 4 sin^2(pi l / H)`` for row frequency ``l`` and column frequency ``k``.
        """
        _, height, width = self.in_shape
        rows = torch.arange(height, dtype=torch.float64)
        columns = torch.arange(width // 2 + 1, dtype=torch.float64)
        along_y = 4.0 * torch.sin(math.pi * rows / height).pow(2)
        along_x = 4.0 * torch.sin(math.pi * columns / width).pow(2)
        return (along_y[:, None] + along_x[None, :]).unsqueeze(0)

    def norm(self, *, iterations: int = 100, tol: float = 1e-6, generator: torch.Generator | None = None) -> float:
        """Exact operator norm, the square root of the largest Laplacian eigenvalue (``sqrt(8)`` for even sizes)."""
        return math.sqrt(float(self.normal_fourier().max()))
