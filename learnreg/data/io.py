"""Reading and writing images and depth maps, safely.

Images come back as ``(1, C, H, W)`` float32 tensors in ``[0, 1]`` (``C`` = 1
or 3), depth maps as ``(1, 1, H, W)`` float32 in the file's own units.

===========  ==========================================  ===========================
extension    images                                      depth maps
===========  ==========================================  ===========================
.png         8/16-bit grey or RGB (alpha dropped)        16-bit grey, integer / scale
.jpg .jpeg   8-bit grey or RGB (lossy; read and write)   not supported (lossy)
.tif .tiff   8/16-bit integer or float, first page       float (or integer) raw values
.npy         ints scaled by dtype max, floats as is      raw values
.pfm         float grey or RGB, as is                    float grey, raw values
===========  ==========================================  ===========================

Writers are safe by construction:

* atomic: the data goes to a temporary file in the target directory, which
  :func:`os.replace` then moves over the target, so a crash never leaves a
  half-written file (:func:`atomic_path`, :func:`atomic_write_bytes`, reused
  by reports and checkpoints);
* an existing file is overwritten only with ``force=True``;
* a path listed in ``protect`` (the inputs of a command) is never
  overwritten, even with ``force=True``.
"""

from __future__ import annotations

import io
import logging
import warnings
from pathlib import Path
from typing import Iterable

import numpy as np
import torch
from torch import Tensor

from learnreg.data import _codecs
from learnreg.data._files import (
    OverwriteError,
    PathLike,
    atomic_path,
    atomic_write_bytes,
    atomic_write_text,
    check_output_path,
)

logger = logging.getLogger(__name__)

__all__ = [
    "DEPTH_EXTENSIONS", "IMAGE_EXTENSIONS", "ImageFileError", "OverwriteError",
    "atomic_path", "atomic_write_bytes", "atomic_write_text", "check_output_path",
    "read_depth", "read_image", "write_depth", "write_image",
]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".npy", ".pfm")
DEPTH_EXTENSIONS = (".png", ".tif", ".tiff", ".npy", ".pfm")
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R BT.601, as Pillow's "L"


class ImageFileError(ValueError):
    """A file cannot be read or written as an image or depth map."""


# -- helpers -------------------------------------------------------------------------------
def _extension(path: Path, supported: tuple[str, ...], what: str) -> str:
    extension = path.suffix.lower()
    if extension not in supported:
        raise ImageFileError(
            f"unsupported extension {extension or '(none)'!r} for {what} {path}; "
            f"supported: {', '.join(supported)}"
        )
    return extension


def _existing(path: PathLike, supported: tuple[str, ...], what: str) -> tuple[Path, str]:
    source = Path(path)
    extension = _extension(source, supported, what)
    if not source.is_file():
        raise FileNotFoundError(f"no such file: {source}; check the path")
    return source, extension


def _corrupt(path: Path, extension: str, reason: object) -> ImageFileError:
    return ImageFileError(
        f"cannot read {path} as {extension.lstrip('.').upper()}: {reason}; the file is corrupt "
        "or not in the format its extension says; re-export it or fix the extension"
    )


def _read_pillow(path: Path, extension: str) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # e.g. odd EXIF/ICC metadata
            with Image.open(path) as image:
                image.load()
                if image.mode == "I":  # 32-bit container; 16-bit PNG samples in some versions
                    array = np.asarray(image)
                    if array.size and array.min() >= 0 and array.max() <= 65535:
                        return array.astype(np.uint16)
                    return array
                if image.mode in ("I;16", "I;16B", "I;16L", "F", "L", "RGB"):
                    return np.asarray(image)
                if image.mode in ("LA", "1"):
                    return np.asarray(image.convert("L"))
                return np.asarray(image.convert("RGB"))  # P, RGBA, CMYK, YCbCr...
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise _corrupt(path, extension, error) from None


def _read_png(path: Path) -> np.ndarray:
    data = path.read_bytes()
    try:
        header = _codecs.png_header(data)
        if header[2] == 16 and not header[4]:  # 16-bit, not interlaced: Pillow would truncate
            return _codecs.decode_png(data)
    except _codecs.CodecError as error:
        raise _corrupt(path, ".png", error) from None
    if header[2] == 16 and header[3] != 0:
        raise ImageFileError(
            f"cannot read {path}: interlaced 16-bit colour PNG is not supported; "
            "re-save it non-interlaced or as TIFF"
        )
    return _read_pillow(path, ".png")


def _read_tiff(path: Path) -> np.ndarray:
    import tifffile

    try:
        with tifffile.TiffFile(path) as tiff:
            if len(tiff.pages) > 1:
                logger.info("%s has %d pages; reading the first", path, len(tiff.pages))
            array = tiff.pages[0].asarray()
    except (tifffile.TiffFileError, OSError, ValueError, KeyError) as error:
        raise _corrupt(path, ".tif", error) from None
    if array.ndim == 3 and array.shape[-1] not in (1, 3, 4) and array.shape[0] in (1, 3, 4):
        array = np.moveaxis(array, 0, -1)  # planar (C, H, W) -> (H, W, C)
    return array


def _read_npy(path: Path) -> np.ndarray:
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as error:
        raise _corrupt(path, ".npy", error) from None
    if not isinstance(array, np.ndarray):
        raise ImageFileError(f"{path} holds {type(array).__name__}, not one array; save a single array")
    if array.ndim == 4 and array.shape[0] == 1:
        array = array[0]  # (1, C, H, W) tensor layout
    if array.ndim == 3 and array.shape[-1] not in (1, 3, 4) and array.shape[0] in (1, 3, 4):
        array = np.moveaxis(array, 0, -1)  # (C, H, W) -> (H, W, C)
    return array


def _read_array(path: Path, extension: str) -> np.ndarray:
    if extension == ".png":
        return _read_png(path)
    if extension in (".jpg", ".jpeg"):
        return _read_pillow(path, extension)
    if extension in (".tif", ".tiff"):
        return _read_tiff(path)
    if extension == ".npy":
        return _read_npy(path)
    try:
        return _codecs.decode_pfm(path.read_bytes())
    except _codecs.CodecError as error:
        raise _corrupt(path, extension, error) from None


def _to_float(array: np.ndarray, path: Path, *, scale_integers: bool) -> np.ndarray:
    if array.dtype == np.bool_:
        return array.astype(np.float32)
    if np.issubdtype(array.dtype, np.integer):
        if not scale_integers:
            return array.astype(np.float32)
        return array.astype(np.float32) / float(np.iinfo(array.dtype).max)
    if np.issubdtype(array.dtype, np.floating):
        return array.astype(np.float32)
    raise ImageFileError(
        f"{path} holds {array.dtype} data; images and depth maps must be integer or float arrays"
    )


def _to_tensor(array: np.ndarray) -> Tensor:
    """(H, W) or (H, W, C) -> (1, C, H, W) float32, contiguous."""
    if array.ndim == 2:
        array = array[..., None]
    return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))[None]


# -- reading -------------------------------------------------------------------------------
def read_image(path: PathLike, *, mode: str | None = None) -> Tensor:
    """Read an image as a float32 tensor in ``[0, 1]``.

    Parameters
    ----------
    path : str or PathLike
        A ``.png``, ``.jpg``/``.jpeg``, ``.tif``/``.tiff``, ``.npy`` or ``.pfm`` file.
    mode : {'gray', 'rgb', None}, optional
        Convert to one channel (ITU-R BT.601 luma, as Pillow) or three
        (grey repeated); ``None`` keeps the file's channels.

    Returns
    -------
    Tensor, shape (1, C, H, W), float32
        ``C`` is 1 or 3; an alpha channel is dropped. Integer data is divided
        by its type's maximum (255, 65535...); float data (TIFF, ``.npy``,
        ``.pfm``) is kept as is.

    Raises
    ------
    FileNotFoundError, ImageFileError
        Missing, unreadable or unsupported file, NaN/inf values, or an array
        that is not an image.
    """
    if mode not in (None, "gray", "rgb"):
        raise ValueError(f"read_image: mode must be 'gray', 'rgb' or None, got {mode!r}")
    source, extension = _existing(path, IMAGE_EXTENSIONS, "image")
    array = _to_float(_read_array(source, extension), source, scale_integers=True)
    if array.ndim == 3 and array.shape[-1] in (2, 4):
        array = array[..., :-1]  # drop alpha
    if not (array.ndim == 2 or (array.ndim == 3 and array.shape[-1] in (1, 3))):
        raise ImageFileError(
            f"{source} holds an array of shape {array.shape}; an image must be (H, W), "
            "(H, W, 1|3) or (1|3, H, W)"
        )
    if not np.isfinite(array).all():
        raise ImageFileError(
            f"{source} contains NaN or inf values; an image must be finite "
            "(for depth maps with holes use read_depth)"
        )
    image = _to_tensor(array)
    if mode == "gray" and image.shape[1] == 3:
        image = torch.einsum("bchw,c->bhw", image, torch.from_numpy(_LUMA))[:, None]
    elif mode == "rgb" and image.shape[1] == 1:
        image = image.expand(-1, 3, -1, -1).contiguous()
    return image


def read_depth(path: PathLike, *, scale: float | None = None) -> Tensor:
    """Read a depth (or disparity) map in its own units.

    Parameters
    ----------
    path : str or PathLike
        A 16-bit ``.png``, ``.tif``/``.tiff``, ``.npy`` or ``.pfm`` file with
        one channel.
    scale : float, optional
        Integer PNG/TIFF values are divided by ``scale`` (e.g. 1000 for
        millimetres stored as metres); ``None`` keeps the stored numbers.

    Returns
    -------
    Tensor, shape (1, 1, H, W), float32
        Raw values: zeros stay zeros and NaN/inf stay as they are (holes); the
        metrics in :mod:`learnreg.metrics` skip non-finite pixels.
    """
    source, extension = _existing(path, DEPTH_EXTENSIONS, "depth map")
    raw = _read_array(source, extension)
    integer = np.issubdtype(raw.dtype, np.integer)
    array = _to_float(raw, source, scale_integers=False)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim != 2:
        raise ImageFileError(
            f"{source} holds an array of shape {raw.shape}; a depth map must have one channel"
        )
    if scale is not None:
        if not scale > 0:
            raise ValueError(f"read_depth: scale must be positive, got {scale}")
        if integer:
            array = array / np.float32(scale)
        else:
            logger.info("%s holds float data; scale=%s ignored", source, scale)
    return _to_tensor(array)


# -- writing -------------------------------------------------------------------------------
def _as_array(x: Tensor, function: str, *, allow_nonfinite: bool) -> np.ndarray:
    if not isinstance(x, Tensor):
        raise TypeError(f"{function}: expected a torch.Tensor, got {type(x).__name__}")
    if x.dim() == 4:
        if x.shape[0] != 1:
            raise ValueError(
                f"{function}: got a batch of {x.shape[0]} images; write one at a time, x[i:i+1]"
            )
        x = x[0]
    if x.dim() == 2:
        x = x[None]
    if x.dim() != 3 or x.shape[0] not in (1, 3):
        raise ValueError(
            f"{function}: expected shape (1, C, H, W) or (C, H, W) with C = 1 or 3, "
            f"got {tuple(x.shape)}"
        )
    array = x.detach().to("cpu", torch.float32).numpy().transpose(1, 2, 0)
    if not allow_nonfinite and not np.isfinite(array).all():
        raise ValueError(
            f"{function}: data contains NaN or inf; fix the computation that produced it "
            "(or write depth holes to .npy/.pfm)"
        )
    return array[..., 0] if array.shape[-1] == 1 else array


def _quantise(array: np.ndarray, bit_depth: int) -> np.ndarray:
    top = 255 if bit_depth == 8 else 65535
    dtype = np.uint8 if bit_depth == 8 else np.uint16
    return np.round(np.clip(array, 0.0, 1.0) * top).astype(dtype)


def _encode(array: np.ndarray, extension: str, *, bit_depth: int) -> bytes:
    """Encode a float (H, W[, 3]) array; integer formats expect [0, 1] data."""
    if extension == ".npy":
        buffer = io.BytesIO()
        np.save(buffer, array.astype(np.float32), allow_pickle=False)
        return buffer.getvalue()
    if extension == ".pfm":
        return _codecs.encode_pfm(array)
    if extension in (".tif", ".tiff"):
        import tifffile

        data = array.astype(np.float32) if bit_depth == 32 else _quantise(array, bit_depth)
        buffer = io.BytesIO()
        tifffile.imwrite(buffer, data, photometric="rgb" if data.ndim == 3 else "minisblack")
        return buffer.getvalue()
    if extension == ".png" and bit_depth == 16:
        return _codecs.encode_png(_quantise(array, 16))
    from PIL import Image

    buffer = io.BytesIO()
    image = Image.fromarray(_quantise(array, 8))
    if extension == ".png":
        image.save(buffer, format="PNG")
    else:
        image.save(buffer, format="JPEG", quality=95, subsampling=0)
    return buffer.getvalue()


def write_image(path: PathLike, x: Tensor, *, bit_depth: int = 8, force: bool = False,
                protect: Iterable[PathLike] = ()) -> Path:
    """Write one image atomically, never over an input.

    Parameters
    ----------
    path : str or PathLike
        Target file; the extension picks the format (see the module table).
    x : Tensor, shape (1, C, H, W) or (C, H, W), C = 1 or 3
        Image in ``[0, 1]``; PNG/TIFF/JPEG clip to ``[0, 1]`` and round to
        ``bit_depth`` bits, ``.npy``/``.pfm`` store float32 unchanged.
    bit_depth : {8, 16}, optional
        Bits per sample for PNG and TIFF (TIFF also takes 32: float32);
        JPEG is always 8.
    force : bool, optional
        Overwrite an existing file.
    protect : iterable of path, optional
        Files never to overwrite, even with ``force`` (a command's inputs).

    Returns
    -------
    Path
        The written path.
    """
    target = Path(path)
    extension = _extension(target, IMAGE_EXTENSIONS, "image")
    allowed = {".jpg": (8,), ".jpeg": (8,), ".tif": (8, 16, 32), ".tiff": (8, 16, 32)}
    if bit_depth not in allowed.get(extension, (8, 16)):
        raise ValueError(
            f"write_image: bit_depth {bit_depth} is not available for {extension}; "
            f"use one of {allowed.get(extension, (8, 16))}"
        )
    array = _as_array(x, "write_image", allow_nonfinite=False)
    check_output_path(target, force=force, protect=protect)
    atomic_write_bytes(target, _encode(array, extension, bit_depth=bit_depth))
    logger.debug("wrote %s", target)
    return target


def write_depth(path: PathLike, depth: Tensor, *, scale: float | None = None, force: bool = False,
                protect: Iterable[PathLike] = ()) -> Path:
    """Write one depth map atomically, never over an input.

    Parameters
    ----------
    path : str or PathLike
        ``.png`` (16-bit integers ``round(depth * scale)``), ``.tif``/``.tiff``,
        ``.npy`` or ``.pfm`` (float32, raw values, NaN/inf holes allowed).
    depth : Tensor, shape (1, 1, H, W), (1, H, W) or (H, W)
        Depth in its own units.
    scale : float, optional
        PNG only: stored integer = depth * scale (1 by default), so that
        ``read_depth(path, scale=scale)`` returns the depth.
    force : bool, optional
        Overwrite an existing file.
    protect : iterable of path, optional
        Files never to overwrite, even with ``force``.

    Returns
    -------
    Path
        The written path.
    """
    target = Path(path)
    extension = _extension(target, DEPTH_EXTENSIONS, "depth map")
    array = _as_array(depth, "write_depth", allow_nonfinite=extension != ".png")
    if array.ndim != 2:
        raise ValueError("write_depth: a depth map must have one channel")
    check_output_path(target, force=force, protect=protect)
    if extension == ".png":
        stored = array * np.float32(1.0 if scale is None else scale)
        if stored.min() < -0.5 or stored.max() > 65535.5:
            raise ValueError(
                f"write_depth: depth * scale spans [{stored.min():g}, {stored.max():g}], outside "
                "the 16-bit range [0, 65535]; choose another scale or write .npy/.pfm"
            )
        data = _codecs.encode_png(np.round(np.clip(stored, 0, 65535)).astype(np.uint16))
    else:
        if scale is not None:
            logger.info("write_depth: scale applies to PNG only; %s stores raw floats", target)
        data = _encode(array, extension, bit_depth=32)
    atomic_write_bytes(target, data)
    logger.debug("wrote %s", target)
    return target
