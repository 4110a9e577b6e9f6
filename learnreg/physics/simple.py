"""Identity, masking (inpainting) and user-supplied linear operators; mask builders."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import Tensor

from learnreg.physics.kernels import read_array_file
from learnreg.physics.operator import LinearOperator, _as_shape, _check_input, check_adjoint, per_sample

__all__ = ["Identity", "Inpaint", "LinearFromCallables", "random_mask", "box_mask", "load_mask"]


class Identity(LinearOperator):
    """``A x = x`` (denoising).

    Parameters
    ----------
    shape : tuple of int
        Per-sample shape ``(C, H, W)``.

    Notes
    -----
    Data prox ``(v + tau y) / (1 + tau)``; ``normal_fourier()`` is all ones; ``||A|| = 1``.
    """

    prox_data_closed_form = True

    def __init__(self, shape: tuple[int, ...]):
        shape = _as_shape(shape, "shape")
        super().__init__(shape, shape)

    def _forward(self, x: Tensor) -> Tensor:
        return x

    def _adjoint(self, y: Tensor) -> Tensor:
        return y

    def normal(self, x: Tensor) -> Tensor:
        return x

    def normal_fourier(self) -> Tensor:
        """Ones, float64, shape ``(1, H, W // 2 + 1)``."""
        _, height, width = self.in_shape
        return torch.ones((1, height, width // 2 + 1), dtype=torch.float64)

    def norm(self, *, iterations: int = 100, tol: float = 1e-6, generator: torch.Generator | None = None) -> float:
        return 1.0

    def prox_data(self, v: Tensor, y: Tensor, tau: float | Tensor) -> Tensor:
        """``(v + tau y) / (1 + tau)``; ``tau``: float or (B,) tensor."""
        _check_input(v, self.in_shape, self.name, "v")
        _check_input(y, self.out_shape, self.name, "y")
        tau = per_sample(tau, v)
        return (v + tau * y) / (1 + tau)


def _as_mask(mask, size: tuple[int, int], what: str = "mask") -> Tensor:
    """A bool ``(H, W)`` tensor from bool or 0/1 data; True = observed."""
    if isinstance(mask, Tensor):
        array = mask.detach().cpu().numpy()
    else:
        array = np.asarray(mask)
    if array.ndim != 2 or tuple(array.shape) != tuple(size):
        raise ValueError(
            f"{what} must have shape (H, W) = {tuple(size)} like the image, got {tuple(array.shape)}; "
            "one mask serves every channel"
        )
    if array.dtype != np.bool_:
        if not np.isin(array, (0, 1)).all():
            raise ValueError(f"{what} values must be 0 or 1 (or bool; 1 = observed); "
                             "threshold it first, e.g. mask > 0.5")
        array = array != 0
    return torch.from_numpy(np.array(array, dtype=np.bool_, copy=True))


class Inpaint(LinearOperator):
    """Pixel masking ``y = m * x`` (inpainting / completion).

    Parameters
    ----------
    mask : array or Tensor, shape (H, W), bool or 0/1
        True (1) where a pixel is observed; the same mask for every channel.
    shape : tuple of int
        Per-sample shape ``(C, H, W)``.

    Notes
    -----
    ``y`` keeps the full image size, with zeros at the missing pixels. ``A`` is
    diagonal and self-adjoint, so the data prox is pointwise:
    ``x = (v + tau m y) / (1 + tau m)`` (``v`` at missing pixels, the weighted mean
    of ``v`` and ``y`` elsewhere). ``||A|| = 1`` unless nothing is observed.

    Examples
    --------
    >>> import torch
    >>> mask = random_mask((8, 8), 0.5, torch.Generator().manual_seed(0))
    >>> A = Inpaint(mask, (3, 8, 8))
    >>> int((A(torch.ones(1, 3, 8, 8)) == 0).sum())
    96
    """

    prox_data_closed_form = True

    def __init__(self, mask, shape: tuple[int, ...]):
        shape = _as_shape(shape, "shape")
        super().__init__(shape, shape)
        self.mask = _as_mask(mask, shape[1:])  # bool (H, W), True = observed
        self._casts: dict[tuple[torch.dtype, torch.device], Tensor] = {}

    def _weights(self, like: Tensor) -> Tensor:
        key = (like.dtype, like.device)
        if key not in self._casts:
            self._casts[key] = self.mask.to(device=like.device, dtype=like.dtype)[None, None]  # (1, 1, H, W)
        return self._casts[key]

    @property
    def observed_fraction(self) -> float:
        return float(self.mask.double().mean())

    def _forward(self, x: Tensor) -> Tensor:
        return x * self._weights(x)

    _adjoint = _forward

    def normal(self, x: Tensor) -> Tensor:
        return x * self._weights(x)

    def norm(self, *, iterations: int = 100, tol: float = 1e-6, generator: torch.Generator | None = None) -> float:
        return 1.0 if bool(self.mask.any()) else 0.0

    def prox_data(self, v: Tensor, y: Tensor, tau: float | Tensor) -> Tensor:
        """``(v + tau m y) / (1 + tau m)``; ``tau``: float or (B,) tensor."""
        _check_input(v, self.in_shape, self.name, "v")
        _check_input(y, self.out_shape, self.name, "y")
        weights = per_sample(tau, v) * self._weights(v)
        return (v + weights * y) / (1 + weights)


def random_mask(shape_hw: tuple[int, int], missing_fraction: float, generator: torch.Generator) -> Tensor:
    """Mask with exactly ``round(missing_fraction * H * W)`` missing pixels, drawn uniformly.

    Parameters
    ----------
    shape_hw : (int, int)
        ``(H, W)``.
    missing_fraction : float
        In ``[0, 1)``.
    generator : torch.Generator
        The only source of randomness (``torch.randperm``).

    Returns
    -------
    Tensor, bool, shape (H, W)
        True = observed.
    """
    height, width = _size(shape_hw)
    missing_fraction = float(missing_fraction)
    if not 0 <= missing_fraction < 1:
        raise ValueError(f"missing fraction must be in [0, 1), got {missing_fraction}; 0.8 means 80% of pixels missing")
    count = height * width
    missing = torch.randperm(count, generator=generator, device=generator.device)[: round(missing_fraction * count)]
    mask = torch.ones(count, dtype=torch.bool, device=generator.device)
    mask[missing] = False
    return mask.view(height, width).cpu()


def box_mask(shape_hw: tuple[int, int], fraction: float) -> Tensor:
    """Mask with a centred missing box of ``round(fraction H) x round(fraction W)`` pixels.

    ``fraction = 0.33`` removes a box a third of the image side in each direction
    (about 11% of the pixels). The box starts at row ``(H - h) // 2`` and column ``(W - w) // 2``.

    Returns
    -------
    Tensor, bool, shape (H, W)
        True = observed.
    """
    height, width = _size(shape_hw)
    fraction = float(fraction)
    if not 0 <= fraction < 1:
        raise ValueError(f"box fraction must be in [0, 1) (side of the box over the image side), got {fraction}")
    box_h, box_w = round(fraction * height), round(fraction * width)
    top, left = (height - box_h) // 2, (width - box_w) // 2
    mask = torch.ones((height, width), dtype=torch.bool)
    mask[top:top + box_h, left:left + box_w] = False
    return mask


def load_mask(path: str | Path) -> Tensor:
    """Read a mask from ``.npy``, ``.txt``/``.csv`` or an image; nonzero = observed.

    For colour images a pixel is observed when any colour channel is nonzero (alpha is ignored).

    Returns
    -------
    Tensor, bool, shape (H, W)
    """
    array = read_array_file(path, "mask", gray_image=False)
    if array.ndim == 3:
        array = array[..., :3].any(axis=-1)
    if array.ndim != 2 or array.size == 0:
        raise ValueError(f"mask in {path} must be a 2-D (H, W) array, got shape {array.shape}")
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        raise ValueError(f"mask in {path} contains NaN or Inf")
    return torch.from_numpy(np.ascontiguousarray(array != 0))


def _size(shape_hw) -> tuple[int, int]:
    if len(shape_hw) != 2 or any(int(s) < 1 for s in shape_hw):
        raise ValueError(f"mask size must be (H, W) with positive sizes, got {tuple(shape_hw)}")
    return int(shape_hw[0]), int(shape_hw[1])


class LinearFromCallables(LinearOperator):
    """A linear operator from the user's own ``forward`` and ``adjoint`` functions.

    Parameters
    ----------
    forward : callable
        ``x (B, *in_shape) -> y (B, *out_shape)``, linear.
    adjoint : callable
        ``y (B, *out_shape) -> x (B, *in_shape)``, the exact transpose of ``forward``.
    in_shape, out_shape : tuple of int
        Per-sample shapes ``(C, H, W)``.
    check : bool
        Run :func:`~learnreg.physics.operator.check_adjoint` (float64) now and raise a
        ``ValueError`` when the relative error exceeds ``1e-5``.
    name : str
        Shown in messages.

    Notes
    -----
    The data prox uses conjugate gradients; the norm, power iteration.

    Examples
    --------
    >>> import torch
    >>> A = LinearFromCallables(lambda x: 2 * x, lambda y: 2 * y, (1, 4, 4), (1, 4, 4), check=True)
    >>> round(A.norm(), 6)
    2.0
    """

    def __init__(self, forward: Callable[[Tensor], Tensor], adjoint: Callable[[Tensor], Tensor],
                 in_shape: tuple[int, ...], out_shape: tuple[int, ...], *, check: bool = False,
                 name: str = "LinearFromCallables"):
        if not callable(forward) or not callable(adjoint):
            raise TypeError("LinearFromCallables needs callable forward and adjoint functions")
        super().__init__(in_shape, out_shape)
        self._forward_function, self._adjoint_function = forward, adjoint
        self._name = str(name)
        if check:
            error = check_adjoint(self)
            if not error <= 1e-5:
                raise ValueError(
                    f"{self._name}: adjoint does not match forward (relative error {error:.2e} > 1e-05 in "
                    "float64); make adjoint the exact transpose of forward, e.g. derive it with "
                    "torch.autograd.functional.vjp"
                )

    @property
    def name(self) -> str:
        return self._name

    def _forward(self, x: Tensor) -> Tensor:
        return self._checked(self._forward_function(x), x.shape[0], self.out_shape, "forward")

    def _adjoint(self, y: Tensor) -> Tensor:
        return self._checked(self._adjoint_function(y), y.shape[0], self.in_shape, "adjoint")

    def _checked(self, out, batch: int, shape: tuple[int, int, int], which: str) -> Tensor:
        if not isinstance(out, Tensor) or tuple(out.shape) != (batch, *shape):
            got = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
            raise ValueError(f"{self._name}: {which} returned {got}, expected {(batch, *shape)}")
        return out

