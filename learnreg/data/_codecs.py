"""Small file codecs that the usual libraries lack: PFM and 16-bit colour PNG.

Pillow reads and writes 16-bit *grey* PNG but silently truncates 16-bit
colour PNG to 8 bits and cannot write it, so PNG files with 16-bit samples go
through the minimal codec here (non-interlaced; the five PNG row filters are
undone with a vectorised anti-diagonal sweep). PFM is the Middlebury float
format: a text header ``PF`` (RGB) or ``Pf`` (grey), ``width height``, and a
scale whose sign gives the byte order (negative = little-endian), followed by
float32 rows stored **bottom to top**.

Functions here raise :class:`CodecError` with a short reason; the public
readers in :mod:`learnreg.data.io` add the path and the fix.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_CHANNELS = {0: 1, 2: 3, 4: 2, 6: 4}  # colour type -> samples per pixel


class CodecError(ValueError):
    """A file's bytes do not follow its format."""


def png_header(data: bytes) -> tuple[int, int, int, int, int]:
    """Parse the IHDR chunk: (width, height, bit_depth, colour_type, interlace)."""
    if data[:8] != PNG_SIGNATURE:
        raise CodecError("not a PNG file (bad signature)")
    if len(data) < 33 or data[12:16] != b"IHDR":
        raise CodecError("PNG header (IHDR) missing or truncated")
    width, height, bit_depth, colour_type, _, _, interlace = struct.unpack(">IIBBBBB", data[16:29])
    return width, height, bit_depth, colour_type, interlace


def _png_chunks(data: bytes):
    position = 8
    while position + 8 <= len(data):
        (length,) = struct.unpack(">I", data[position:position + 4])
        kind = data[position + 4:position + 8]
        body = data[position + 8:position + 8 + length]
        crc = data[position + 8 + length:position + 12 + length]
        if len(body) != length or len(crc) != 4:
            raise CodecError(f"PNG chunk {kind!r} truncated")
        if struct.unpack(">I", crc)[0] != zlib.crc32(kind + body):
            raise CodecError(f"PNG chunk {kind!r} fails its checksum (file corrupt)")
        yield kind, body
        if kind == b"IEND":
            return
        position += 12 + length
    raise CodecError("PNG file truncated (no IEND chunk)")


def _paeth(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    p = a + b - c
    pa, pb, pc = np.abs(p - a), np.abs(p - b), np.abs(p - c)
    return np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))


def _unfilter(raw: np.ndarray, filters: np.ndarray, height: int, width: int, bpp: int) -> np.ndarray:
    """Undo PNG row filters; raw is (H, W, bpp) uint8, returns the same shape.

    Pixel (r, c) depends on its left, upper and upper-left neighbours only, so
    all pixels on one anti-diagonal r + c = k are decoded together.
    """
    if np.any(filters > 4):
        raise CodecError("PNG row filter type out of range (file corrupt)")
    if np.all(filters == 0):
        return raw
    # one row and one column of zero padding: out[r + 1, c + 1] is pixel (r, c)
    out = np.zeros((height + 1, width + 1, bpp), dtype=np.int32)
    rows_all = np.arange(height)
    for k in range(height + width - 1):
        rows = rows_all[max(0, k - width + 1):min(height, k + 1)]
        cols = k - rows
        x = raw[rows, cols].astype(np.int32)
        a = out[rows + 1, cols]      # left
        b = out[rows, cols + 1]      # up
        c = out[rows, cols]          # upper-left
        kind = filters[rows][:, None]
        predictor = np.select(
            [kind == 1, kind == 2, kind == 3, kind == 4],
            [a, b, (a + b) >> 1, _paeth(a, b, c)],
            default=0,
        )
        out[rows + 1, cols + 1] = (x + predictor) & 0xFF
    return out[1:, 1:].astype(np.uint8)


def decode_png(data: bytes) -> np.ndarray:
    """Decode a non-interlaced grey/RGB/grey+alpha/RGBA PNG of 8 or 16 bits.

    Returns
    -------
    ndarray, shape (H, W) or (H, W, channels), dtype uint8 or uint16
    """
    width, height, bit_depth, colour_type, interlace = png_header(data)
    if colour_type not in _PNG_CHANNELS or bit_depth not in (8, 16):
        raise CodecError(f"PNG colour type {colour_type} / bit depth {bit_depth} not handled here")
    if interlace:
        raise CodecError("interlaced PNG not handled here")
    channels = _PNG_CHANNELS[colour_type]
    bpp = channels * bit_depth // 8
    compressed = b"".join(body for kind, body in _png_chunks(data) if kind == b"IDAT")
    try:
        stream = zlib.decompress(compressed)
    except zlib.error as error:
        raise CodecError(f"PNG image data corrupt ({error})") from None
    stride = width * bpp + 1
    if len(stream) < stride * height:
        raise CodecError("PNG image data truncated")
    rows = np.frombuffer(stream, dtype=np.uint8, count=stride * height).reshape(height, stride)
    pixels = _unfilter(rows[:, 1:].reshape(height, width, bpp), rows[:, 0].copy(), height, width, bpp)
    dtype = np.dtype(">u2") if bit_depth == 16 else np.dtype(np.uint8)
    image = pixels.reshape(height, width * bpp).view(dtype).reshape(height, width, channels)
    image = image.astype(dtype.newbyteorder("="))
    return image[..., 0] if channels == 1 else image


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def encode_png(image: np.ndarray) -> bytes:
    """Encode an (H, W) or (H, W, 1|3) uint8/uint16 array as PNG bytes.

    Rows use the 'Up' filter (vectorised) and zlib level 6.
    """
    if image.dtype not in (np.uint8, np.uint16):
        raise CodecError(f"PNG needs uint8 or uint16 samples, got {image.dtype}")
    if image.ndim == 2:
        image = image[..., None]
    height, width, channels = image.shape
    colour_type = {1: 0, 3: 2}[channels]
    bit_depth = 8 * image.dtype.itemsize
    big_endian = image.astype(image.dtype.newbyteorder(">"), copy=False)
    rows = np.ascontiguousarray(big_endian).view(np.uint8).reshape(height, -1)
    filtered = rows.copy()
    filtered[1:] = rows[1:] - rows[:-1]  # 'Up': x - above, modulo 256 in uint8
    body = np.concatenate([np.full((height, 1), 2, dtype=np.uint8), filtered], axis=1)
    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return (PNG_SIGNATURE + _chunk(b"IHDR", header)
            + _chunk(b"IDAT", zlib.compress(body.tobytes(), 6)) + _chunk(b"IEND", b""))


def decode_pfm(data: bytes) -> np.ndarray:
    """Decode PFM bytes.

    Returns
    -------
    ndarray, shape (H, W) for ``Pf`` or (H, W, 3) for ``PF``, float32, rows
    top to bottom, native byte order.
    """
    tokens: list[bytes] = []
    position = 0
    # header: three whitespace-separated fields after the magic, one
    # whitespace byte after the scale, then the raster
    while len(tokens) < 4:
        while position < len(data) and data[position:position + 1].isspace():
            position += 1
        start = position
        while position < len(data) and not data[position:position + 1].isspace():
            position += 1
        if start == position or position - start > 32:
            raise CodecError("PFM header missing or malformed")
        tokens.append(data[start:position])
    position += 1
    magic, width_token, height_token, scale_token = tokens
    if magic not in (b"PF", b"Pf"):
        raise CodecError("not a PFM file (header must start with 'PF' or 'Pf')")
    try:
        width, height, scale = int(width_token), int(height_token), float(scale_token)
    except ValueError:
        raise CodecError("PFM header has a non-numeric size or scale") from None
    if width <= 0 or height <= 0 or scale == 0 or not np.isfinite(scale):
        raise CodecError(f"PFM header invalid: size {width} x {height}, scale {scale}")
    channels = 3 if magic == b"PF" else 1
    count = width * height * channels
    if len(data) - position < 4 * count:
        raise CodecError(
            f"PFM data truncated: {width} x {height} x {channels} floats need {4 * count} "
            f"bytes, found {len(data) - position}"
        )
    dtype = np.dtype("<f4") if scale < 0 else np.dtype(">f4")
    raster = np.frombuffer(data, dtype=dtype, count=count, offset=position)
    image = raster.reshape(height, width, channels)[::-1].astype(np.float32)
    return image[..., 0] if channels == 1 else image


def encode_pfm(image: np.ndarray) -> bytes:
    """Encode an (H, W) or (H, W, 1|3) float array as little-endian PFM bytes."""
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[..., 0]
    if image.ndim == 2:
        magic = b"Pf"
    elif image.ndim == 3 and image.shape[2] == 3:
        magic = b"PF"
    else:
        raise CodecError(f"PFM holds (H, W) or (H, W, 3) arrays, got shape {image.shape}")
    height, width = image.shape[:2]
    header = magic + b"\n" + f"{width} {height}\n-1.0\n".encode("ascii")
    raster = np.ascontiguousarray(image[::-1], dtype="<f4")  # bottom row first
    return header + raster.tobytes()
