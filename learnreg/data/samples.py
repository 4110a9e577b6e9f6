"""Bundled development images from scikit-image's data module.

A handful of real photographs ship with scikit-image and load offline. They
are the images for development checks (does a method run, does it help on a
real photograph), listed in :data:`DEVELOPMENT_IMAGES`.

Held out
--------
The *other* scikit-image photographs (astronaut, cat, chelsea, coffee,
rocket, ...) and the stereo pair's ground-truth disparity
(``skimage.data.stereo_motorcycle()[2]``) are deliberately **not** served
here: they are held out for users' own judgement of the methods and are never
used to tune anything in this library.
"""

from __future__ import annotations

import functools
import logging
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

logger = logging.getLogger(__name__)


class SampleInfo(NamedTuple):
    """Where a development image comes from.

    Attributes
    ----------
    source : str
        The scikit-image call that provides the pixels.
    mode : str
        ``'gray'`` or ``'rgb'``.
    notes : str
        Content and the region served.
    """

    source: str
    mode: str
    notes: str


# name -> (top, left, height, width) of the region served, in the source's pixels
_REGIONS: dict[str, tuple[int, int, int, int] | None] = {
    "camera": None, "brick": None, "grass": None, "gravel": None, "moon": None,
    "coins": None, "clock": None,
    "retina": (458, 110, 384, 384),
    "motorcycle_right": (100, 200, 384, 384),
}

DEVELOPMENT_IMAGES: dict[str, SampleInfo] = {
    "camera": SampleInfo("skimage.data.camera()", "gray",
                         "512 x 512 cameraman: edges, flat sky, fine grass texture"),
    "brick": SampleInfo("skimage.data.brick()", "gray",
                        "512 x 512 brick wall: regular texture"),
    "grass": SampleInfo("skimage.data.grass()", "gray",
                        "512 x 512 grass: dense stochastic texture"),
    "gravel": SampleInfo("skimage.data.gravel()", "gray",
                         "512 x 512 gravel: stochastic texture"),
    "moon": SampleInfo("skimage.data.moon()", "gray",
                       "512 x 512 lunar surface: low contrast, smooth shading"),
    "coins": SampleInfo("skimage.data.coins()", "gray",
                        "303 x 384 coins on a flat background"),
    "clock": SampleInfo("skimage.data.clock()", "gray",
                        "300 x 400 wall clock, motion-blurred hand"),
    "retina": SampleInfo("skimage.data.retina()", "rgb",
                         "384 x 384 crop of the 1411 x 1411 fundus photograph, rows 458:842, "
                         "cols 110:494: the optic disc and the vessels leaving it"),
    "motorcycle_right": SampleInfo("skimage.data.stereo_motorcycle()[1]", "rgb",
                                   "384 x 384 crop of the 500 x 741 right stereo view, rows "
                                   "100:484, cols 200:584: engine, tank, headlight, front wheel"),
}


@functools.lru_cache(maxsize=None)
def _load(name: str) -> np.ndarray:
    """The served region as a read-only uint8 array (H, W) or (H, W, 3)."""
    import skimage.data

    if name == "motorcycle_right":
        pixels = skimage.data.stereo_motorcycle()[1]
    else:
        pixels = getattr(skimage.data, name)()
    region = _REGIONS[name]
    if region is not None:
        top, left, height, width = region
        pixels = pixels[top:top + height, left:left + width]
    pixels = np.ascontiguousarray(pixels)
    pixels.flags.writeable = False
    return pixels


def _crop_box(name: str, full: tuple[int, int], size: int | tuple[int, int],
              crop: str | tuple[int, int]) -> tuple[int, int, int, int]:
    if isinstance(size, int):
        size = (size, size)
    height, width = (int(s) for s in size)
    if height <= 0 or width <= 0:
        raise ValueError(f"sample: size must be positive, got {size}")
    if height > full[0] or width > full[1]:
        raise ValueError(
            f"sample: size {height} x {width} exceeds {name!r}, which is {full[0]} x {full[1]}; "
            "ask for a smaller size"
        )
    if crop == "center":
        top, left = (full[0] - height) // 2, (full[1] - width) // 2
    elif isinstance(crop, tuple) and len(crop) == 2:
        top, left = int(crop[0]), int(crop[1])
        if not (0 <= top <= full[0] - height and 0 <= left <= full[1] - width):
            raise ValueError(
                f"sample: crop at (top={top}, left={left}) of size {height} x {width} leaves "
                f"{name!r} ({full[0]} x {full[1]}); choose an offset inside the image"
            )
    else:
        raise ValueError(f"sample: crop must be 'center' or a (top, left) tuple, got {crop!r}")
    return top, left, height, width


def sample(name: str, *, size: int | tuple[int, int] | None = None,
           crop: str | tuple[int, int] = "center") -> Tensor:
    """Load a development image.

    Parameters
    ----------
    name : str
        A key of :data:`DEVELOPMENT_IMAGES`: ``camera``, ``brick``, ``grass``,
        ``gravel``, ``moon``, ``coins``, ``clock`` (grey), ``retina``,
        ``motorcycle_right`` (RGB crops, see their notes).
    size : int or (int, int), optional
        Return an ``size x size`` (or ``height x width``) crop; the whole
        served image by default.
    crop : 'center' or (int, int), optional
        Where the crop lies: centred, or at ``(top, left)`` of the served image.

    Returns
    -------
    Tensor, shape (1, C, H, W), float32 in [0, 1]
        ``C`` = 1 for grey images, 3 for RGB; a fresh tensor on each call.

    Examples
    --------
    >>> sample("camera", size=64).shape
    torch.Size([1, 1, 64, 64])
    """
    if name not in DEVELOPMENT_IMAGES:
        raise ValueError(
            f"unknown sample {name!r}; valid names: {', '.join(DEVELOPMENT_IMAGES)}"
        )
    pixels = _load(name)
    if size is not None:
        top, left, height, width = _crop_box(name, pixels.shape[:2], size, crop)
        pixels = pixels[top:top + height, left:left + width]
    elif crop != "center":
        raise ValueError("sample: crop needs a size; pass size=... as well")
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    array = np.ascontiguousarray(pixels.transpose(2, 0, 1), dtype=np.float32) / 255.0  # HWC -> CHW
    return torch.from_numpy(array)[None]
