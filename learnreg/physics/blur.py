"""Circular convolution by FFT, with its exact adjoint and closed-form data prox."""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from torch import Tensor

from learnreg.physics.kernels import check_kernel
from learnreg.physics.operator import LinearOperator, _as_shape, _check_input, per_sample

__all__ = ["Blur", "kernel_spectrum"]


def kernel_spectrum(kernel: np.ndarray | Tensor, size: tuple[int, int], *, onesided: bool = True) -> Tensor:
    """Transfer function of circular convolution by ``kernel`` on an ``H x W`` grid.

    The kernel's origin (index ``(kh // 2, kw // 2)``, see :mod:`learnreg.physics.kernels`)
    is moved to pixel ``(0, 0)`` of a zero ``H x W`` image, which is then Fourier
    transformed.

    Parameters
    ----------
    kernel : array, shape (kh, kw)
        With ``kh <= H`` and ``kw <= W``.
    size : (int, int)
        ``(H, W)``.
    onesided : bool
        ``rfft2`` grid ``(H, W // 2 + 1)`` when true, full ``fft2`` grid ``(H, W)`` otherwise.

    Returns
    -------
    Tensor, complex128, shape (H, W // 2 + 1) or (H, W)
    """
    kernel = torch.as_tensor(np.asarray(kernel, dtype=np.float64))
    height, width = size
    kh, kw = kernel.shape
    padded = torch.zeros((height, width), dtype=torch.float64)
    padded[:kh, :kw] = kernel
    padded = torch.roll(padded, shifts=(-(kh // 2), -(kw // 2)), dims=(0, 1))
    return torch.fft.rfft2(padded) if onesided else torch.fft.fft2(padded)


def check_kernel_fits(kernel_shape: tuple[int, int], size: tuple[int, int]) -> None:
    """Raise a ``ValueError`` naming the fix when a kernel is larger than the image."""
    (kh, kw), (height, width) = kernel_shape, size
    if kh > height or kw > width:
        raise ValueError(
            f"kernel {kh}x{kw} is larger than the image {height}x{width}; crop less or use a smaller kernel"
        )


class DeviceCache:
    """Float64 buffers cast once per ``(dtype, device)`` (float32 inputs get complex64 spectra)."""

    def __init__(self, build: Callable[[], dict[str, Tensor]]):
        self._build = build
        self._master: dict[str, Tensor] | None = None
        self._casts: dict[tuple[torch.dtype, torch.device], dict[str, Tensor]] = {}

    def get(self, like: Tensor) -> dict[str, Tensor]:
        key = (like.dtype, like.device)
        found = self._casts.get(key)
        if found is None:
            if self._master is None:
                self._master = self._build()
            complex_dtype = like.dtype.to_complex()
            found = {
                name: value.to(device=like.device, dtype=complex_dtype if value.is_complex() else like.dtype)
                for name, value in self._master.items()
            }
            self._casts[key] = found
        return found


class Blur(LinearOperator):
    """Circular convolution ``y = k * x``, the same 2-D kernel for every channel.

    Parameters
    ----------
    kernel : array or Tensor, shape (kh, kw)
        The point spread function, e.g. :func:`~learnreg.physics.kernels.gaussian_kernel`.
        Used as given (not renormalised); ``kh <= H``, ``kw <= W``.
    shape : tuple of int
        Per-sample shape ``(C, H, W)``; ``in_shape == out_shape == shape``.

    Notes
    -----
    Periodic boundary; the kernel's origin is index ``(kh // 2, kw // 2)``, the centre
    for odd sizes and half a pixel after the geometric centre for even sizes (see
    :mod:`learnreg.physics.kernels`). With ``K`` the transfer function on the ``rfft2``
    grid, ``A x = irfft2(K rfft2(x))``, ``A^T y = irfft2(conj(K) rfft2(y))`` (exact adjoint)
    and the data prox, ``argmin_x tau/2 ||A x - y||^2 + 1/2 ||x - v||^2``, is

        x = irfft2((rfft2(v) + tau conj(K) rfft2(y)) / (1 + tau |K|^2)),

    one FFT pair. ``||A|| = max |K|`` exactly. Spectra are computed once in float64 and
    cached per dtype and device.

    Examples
    --------
    >>> import torch
    >>> from learnreg.physics.kernels import gaussian_kernel
    >>> A = Blur(gaussian_kernel(1.0), (3, 32, 32))
    >>> A(torch.ones(2, 3, 32, 32)).mean().item()  # doctest: +ELLIPSIS
    1.0...
    """

    prox_data_closed_form = True

    def __init__(self, kernel: np.ndarray | Tensor, shape: tuple[int, ...]):
        shape = _as_shape(shape, "shape")
        super().__init__(shape, shape)
        array = check_kernel(kernel)
        check_kernel_fits(array.shape, shape[1:])
        self.kernel = torch.from_numpy(array)  # float64 (kh, kw)
        self._buffers = DeviceCache(self._spectra)

    def _spectra(self) -> dict[str, Tensor]:
        spectrum = kernel_spectrum(self.kernel, self.in_shape[1:])[None, None]  # (1, 1, H, W//2+1)
        return {"spectrum": spectrum, "power": spectrum.abs().pow(2)}

    @property
    def name(self) -> str:
        return f"Blur({self.kernel.shape[0]}x{self.kernel.shape[1]})"

    def _filter(self, x: Tensor, transfer: Tensor) -> Tensor:
        return torch.fft.irfft2(torch.fft.rfft2(x) * transfer, s=x.shape[-2:])

    def _forward(self, x: Tensor) -> Tensor:
        return self._filter(x, self._buffers.get(x)["spectrum"])

    def _adjoint(self, y: Tensor) -> Tensor:
        return self._filter(y, self._buffers.get(y)["spectrum"].conj())

    def normal(self, x: Tensor) -> Tensor:
        return self._filter(x, self._buffers.get(x)["power"])

    def normal_fourier(self) -> Tensor:
        """``|K|^2``, the eigenvalues of ``A^T A`` on the ``rfft2`` grid.

        Returns
        -------
        Tensor, float64, shape (1, H, W // 2 + 1)
        """
        return kernel_spectrum(self.kernel, self.in_shape[1:]).abs().pow(2)[None]

    def norm(self, *, iterations: int = 100, tol: float = 1e-6, generator: torch.Generator | None = None) -> float:
        """Exact operator norm ``max |K|`` (the arguments are ignored)."""
        return float(self.normal_fourier().max().sqrt())

    def prox_data(self, v: Tensor, y: Tensor, tau: float | Tensor) -> Tensor:
        """Closed-form ``argmin_x tau/2 ||A x - y||^2 + 1/2 ||x - v||^2`` (one FFT pair).

        ``v``: (B, C, H, W); ``y``: (B, C, H, W); ``tau``: float or (B,) tensor, ``> 0``.
        """
        _check_input(v, self.in_shape, self.name, "v")
        _check_input(y, self.out_shape, self.name, "y")
        buffers = self._buffers.get(v)
        tau = per_sample(tau, v)
        numerator = torch.fft.rfft2(v) + tau * buffers["spectrum"].conj() * torch.fft.rfft2(y)
        return torch.fft.irfft2(numerator / (1 + tau * buffers["power"]), s=v.shape[-2:])
