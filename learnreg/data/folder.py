"""Training patches from any folder of images (BSD, DIV2K, CelebA, your own...).

:class:`ImageFolder` finds PNG, JPEG and TIFF files recursively, checks their
headers once (so a broken or too small file fails at construction, not hours
into a training run) and serves square patches: a random crop, then one of the
eight flips/90° rotations. All randomness comes from a generator seeded by
``(seed, epoch, index)``, so a given item is the same in every run, whichever
DataLoader worker draws it.
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path
from typing import Union

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from learnreg.data.io import ImageFileError, read_image

logger = logging.getLogger(__name__)

__all__ = ["FOLDER_EXTENSIONS", "ImageFolder", "find_images"]

PathLike = Union[str, "os.PathLike[str]"]
FOLDER_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff")


def find_images(root: PathLike) -> list[Path]:
    """Image files (:data:`FOLDER_EXTENSIONS`, any case) under ``root``, recursively, sorted.

    Raises
    ------
    FileNotFoundError
        ``root`` does not exist.
    NotADirectoryError
        ``root`` is a file.
    ValueError
        No image file under ``root``.
    """
    folder = Path(root)
    if not folder.exists():
        raise FileNotFoundError(f"image folder {folder} does not exist; check the path")
    if not folder.is_dir():
        raise NotADirectoryError(f"{folder} is a file; ImageFolder needs a folder of images")
    paths = sorted(path for path in folder.rglob("*")
                   if path.suffix.lower() in FOLDER_EXTENSIONS and path.is_file())
    if not paths:
        raise ValueError(f"no images ({', '.join(FOLDER_EXTENSIONS)}) found under {folder}")
    return paths


def _image_size(path: Path) -> tuple[int, int]:
    """``(height, width)`` from the file header, without decoding the pixels."""
    try:
        if path.suffix.lower() in (".tif", ".tiff"):
            import tifffile

            with tifffile.TiffFile(path) as tiff:
                page = tiff.pages[0]
                return int(page.imagelength), int(page.imagewidth)
        from PIL import Image

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # odd EXIF/ICC metadata is not our concern here
            with Image.open(path) as image:
                width, height = image.size
        return int(height), int(width)
    except Exception as error:  # any decoder failure means the same thing to the user
        raise ImageFileError(
            f"cannot read {path} as an image: {error}; the file is corrupt or not in the "
            "format its extension says; fix or remove it"
        ) from None


class ImageFolder(Dataset):
    """Square patches from the images under a folder.

    Parameters
    ----------
    root : str or PathLike
        Folder searched recursively for ``.png``, ``.jpg``, ``.jpeg``, ``.tif``
        and ``.tiff`` files (any case).
    patch_size : int
        Side of the square patches.
    channels : {1, 3}
        Output channels: grey images are repeated to RGB, RGB images converted
        to grey by ITU-R BT.601 luma.
    augment : bool
        Apply one of the 8 flips/90° rotations, uniformly.
    crop : {'random', 'center'}
        Where the patch is cut; ``'center'`` with ``augment=False`` gives fixed
        evaluation patches.
    patches_per_image : int
        Items per image in one epoch.
    seed : int
        Seed of the crops and flips; item ``i`` of epoch ``e`` uses a generator
        seeded by ``(seed, e, i)``.
    cache : bool
        Keep decoded images in memory (fast, memory-hungry; for small folders).

    Notes
    -----
    Items are Tensors of shape (C, patch_size, patch_size), float32, values as
    :func:`learnreg.data.io.read_image` gives them ([0, 1] for integer files).

    Raises
    ------
    FileNotFoundError, NotADirectoryError, ValueError
        Missing folder, a file instead of a folder, no images, bad arguments.
    ImageFileError
        An unreadable image, or one smaller than ``patch_size`` (names the file).

    Examples
    --------
    >>> patches = ImageFolder("data/BSD500/train", patch_size=64, channels=3)  # doctest: +SKIP
    >>> patches[0].shape  # doctest: +SKIP
    torch.Size([3, 64, 64])
    """

    def __init__(self, root: PathLike, *, patch_size: int, channels: int, augment: bool = True,
                 crop: str = "random", patches_per_image: int = 1, seed: int = 0,
                 cache: bool = False):
        super().__init__()
        if channels not in (1, 3):
            raise ValueError(f"ImageFolder: channels must be 1 (grey) or 3 (RGB), got {channels}")
        if patch_size < 1 or patches_per_image < 1:
            raise ValueError(f"ImageFolder: patch_size and patches_per_image must be >= 1, "
                             f"got {patch_size} and {patches_per_image}")
        if crop not in ("random", "center"):
            raise ValueError(f"ImageFolder: crop must be 'random' or 'center', got {crop!r}")
        self.root = Path(root)
        self.paths = find_images(self.root)
        for path in self.paths:
            height, width = _image_size(path)
            if min(height, width) < patch_size:
                raise ImageFileError(
                    f"image {path} is {height} x {width}, smaller than patch_size {patch_size}; "
                    "remove it from the folder or lower patch_size"
                )
        logger.info("ImageFolder: %d images under %s", len(self.paths), self.root)
        self.patch_size = int(patch_size)
        self.channels = int(channels)
        self.augment = bool(augment)
        self.crop = crop
        self.patches_per_image = int(patches_per_image)
        self.seed = int(seed)
        self.cache = bool(cache)
        self.epoch = 0
        self._images: dict[int, Tensor] = {}

    def set_epoch(self, epoch: int) -> None:
        """Draw other crops and flips in each epoch."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.paths) * self.patches_per_image

    def image(self, number: int) -> Tensor:
        """The whole image ``number`` (index into :attr:`paths`), shape (C, H, W)."""
        if number in self._images:
            return self._images[number]
        image = read_image(self.paths[number], mode="gray" if self.channels == 1 else "rgb")[0]
        if min(image.shape[-2:]) < self.patch_size:  # a header that lied
            raise ImageFileError(f"image {self.paths[number]} is {image.shape[-2]} x "
                                 f"{image.shape[-1]}, smaller than patch_size {self.patch_size}")
        if self.cache:
            self._images[number] = image
        return image

    def patch(self, number: int, *, generator: torch.Generator) -> Tensor:
        """A patch of image ``number``, shape (C, P, P), drawn with ``generator``."""
        image = self.image(number)
        height, width = image.shape[-2:]
        size = self.patch_size
        if self.crop == "center":
            top, left = (height - size) // 2, (width - size) // 2
        else:
            top = int(torch.randint(height - size + 1, (), generator=generator))
            left = int(torch.randint(width - size + 1, (), generator=generator))
        patch = image[:, top:top + size, left:left + size]
        if self.augment:
            transform = int(torch.randint(8, (), generator=generator))
            if transform >= 4:
                patch = patch.flip(-1)
            patch = torch.rot90(patch, transform % 4, dims=(-2, -1))
        return patch.contiguous()

    def __getitem__(self, index: int) -> Tensor:
        if not -len(self) <= index < len(self):
            raise IndexError(f"ImageFolder: index {index} out of range for {len(self)} items")
        index %= len(self)
        state = np.random.SeedSequence([self.seed, self.epoch, index]).generate_state(1, np.uint64)
        generator = torch.Generator().manual_seed(int(state[0]))
        return self.patch(index // self.patches_per_image, generator=generator)
