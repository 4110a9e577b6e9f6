"""File input/output: round trips, safe writes and clear errors."""

from __future__ import annotations

import io
import os
import pathlib
import struct

import numpy as np
import pytest
import torch
from PIL import Image

from learnreg.data import _codecs, io as data_io
from learnreg.data import (
    ImageFileError,
    OverwriteError,
    atomic_path,
    atomic_write_text,
    read_depth,
    read_image,
    write_depth,
    write_image,
)


def _image(channels: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(1, channels, 13, 17, generator=torch.Generator().manual_seed(seed))


def _smooth(channels: int) -> torch.Tensor:
    rows = torch.linspace(0, 1, 24).view(24, 1)
    cols = torch.linspace(0, 1, 32).view(1, 32)
    planes = [(rows + cols) / 2, rows * cols, 1 - rows + 0 * cols][:channels]
    return torch.stack(planes)[None]


# -- round trips ---------------------------------------------------------------------------
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("extension, bit_depth", [
    (".png", 8), (".png", 16), (".tif", 8), (".tif", 16), (".tiff", 32), (".npy", 8), (".pfm", 8),
])
def test_round_trip_within_quantisation(tmp_path, extension, bit_depth, channels):
    image = _image(channels)
    path = write_image(tmp_path / f"image{extension}", image, bit_depth=bit_depth)
    back = read_image(path)
    assert back.shape == image.shape and back.dtype == torch.float32
    exact = extension in (".npy", ".pfm") or bit_depth == 32
    tolerance = 0.0 if exact else 0.5 / (2**bit_depth - 1) + 1e-6
    assert (back - image).abs().max().item() <= tolerance


@pytest.mark.parametrize("channels", [1, 3])
def test_jpeg_round_trip_is_close(tmp_path, channels):
    image = _smooth(channels)
    back = read_image(write_image(tmp_path / "image.jpg", image))
    assert back.shape == image.shape
    assert (back - image).abs().mean().item() < 0.01


def test_pfm_round_trip_exact_with_out_of_range_values(tmp_path):
    image = 10 * torch.randn(1, 3, 5, 7, generator=torch.Generator().manual_seed(0))
    back = read_image(write_image(tmp_path / "image.pfm", image))
    assert torch.equal(back, image)


@pytest.mark.parametrize("endian, scale", [("<", b"-1.0"), (">", b"1.0")])
def test_pfm_reader_handles_byte_order_and_bottom_to_top_rows(tmp_path, endian, scale):
    # 3 x 2 grey image: stored rows bottom first
    top_to_bottom = np.array([[1, 2, 3], [4, 5, 6]], dtype=np.float32)
    raster = top_to_bottom[::-1].astype(endian + "f4").tobytes()
    path = tmp_path / "hand.pfm"
    path.write_bytes(b"Pf\n3 2\n" + scale + b"\n" + raster)
    back = read_image(path)
    assert back.shape == (1, 1, 2, 3)
    np.testing.assert_array_equal(back[0, 0].numpy(), top_to_bottom)


def test_mode_conversion(tmp_path):
    rgb = _image(3)
    path = write_image(tmp_path / "rgb.pfm", rgb)
    gray = read_image(path, mode="gray")
    expected = 0.299 * rgb[:, 0] + 0.587 * rgb[:, 1] + 0.114 * rgb[:, 2]
    torch.testing.assert_close(gray[:, 0], expected)
    grey_path = write_image(tmp_path / "gray.png", rgb[:, :1])
    assert read_image(grey_path, mode="rgb").shape == (1, 3, 13, 17)


def test_npy_scales_integers_and_accepts_channel_first(tmp_path):
    values = np.array([[0, 32768, 65535]], dtype=np.uint16)
    np.save(tmp_path / "ints.npy", values)
    torch.testing.assert_close(read_image(tmp_path / "ints.npy")[0, 0],
                               torch.from_numpy(values / 65535.0).float())
    planar = np.random.default_rng(0).random((3, 6, 5)).astype(np.float32)
    np.save(tmp_path / "planar.npy", planar)
    assert torch.equal(read_image(tmp_path / "planar.npy")[0], torch.from_numpy(planar))


def test_sixteen_bit_colour_png_is_standard_and_drops_alpha(tmp_path):
    image = _image(3)
    path = write_image(tmp_path / "deep.png", image, bit_depth=16)
    with Image.open(path) as pillow:  # Pillow reads 16-bit colour as 8-bit: the high bytes
        high = np.asarray(pillow.convert("RGB"))
    stored = np.round(image[0].numpy().transpose(1, 2, 0) * 65535).astype(np.uint16)
    np.testing.assert_array_equal(high, (stored >> 8).astype(np.uint8))
    # an RGBA 8-bit PNG with filtered rows: our decoder agrees with Pillow
    rgba = (np.random.default_rng(0).random((9, 11, 4)) * 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(rgba).save(buffer, format="PNG", optimize=True)
    np.testing.assert_array_equal(_codecs.decode_png(buffer.getvalue()), rgba)


def test_png_decoder_undoes_every_row_filter():
    pixels = (np.random.default_rng(1).random((6, 5, 3)) * 255).astype(np.uint8)
    stride = pixels.shape[1] * 3
    raw = pixels.reshape(6, stride).astype(np.int32)
    rows = []
    for index, kind in enumerate([0, 1, 2, 3, 4, 4]):
        x = raw[index]
        above = raw[index - 1] if index else np.zeros(stride, np.int32)
        left = np.concatenate([np.zeros(3, np.int32), x[:-3]])
        upper_left = np.concatenate([np.zeros(3, np.int32), above[:-3]])
        predictor = [0 * x, left, above, (left + above) // 2,
                     _codecs._paeth(left, above, upper_left)][kind]
        rows.append(np.concatenate([[kind], (x - predictor) % 256]).astype(np.uint8))
    header = struct.pack(">IIBBBBB", 5, 6, 8, 2, 0, 0, 0)
    data = (_codecs.PNG_SIGNATURE + _codecs._chunk(b"IHDR", header)
            + _codecs._chunk(b"IDAT", __import__("zlib").compress(np.concatenate(rows).tobytes()))
            + _codecs._chunk(b"IEND", b""))
    np.testing.assert_array_equal(_codecs.decode_png(data), pixels)


# -- depth ---------------------------------------------------------------------------------
def test_depth_round_trips(tmp_path):
    depth = 5 * torch.rand(1, 1, 9, 8, generator=torch.Generator().manual_seed(0))
    with_hole = depth.clone()
    with_hole[0, 0, 2, 3] = float("nan")
    for extension in (".npy", ".pfm", ".tif"):
        back = read_depth(write_depth(tmp_path / f"depth{extension}", with_hole))
        assert back.shape == (1, 1, 9, 8)
        assert torch.equal(torch.nan_to_num(back, -1.0), torch.nan_to_num(with_hole, -1.0))
    png = write_depth(tmp_path / "depth.png", depth, scale=1000)
    assert (read_depth(png, scale=1000) - depth).abs().max().item() <= 0.5e-3 + 1e-6
    stored = read_depth(png)  # raw integers without a scale
    assert torch.equal(stored, torch.round(depth * 1000))


def test_depth_write_errors(tmp_path):
    depth = torch.rand(1, 1, 4, 4) * 100
    with pytest.raises(ValueError, match="16-bit range"):
        write_depth(tmp_path / "too_deep.png", depth, scale=1000)
    depth[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN or inf"):
        write_depth(tmp_path / "hole.png", depth)
    with pytest.raises(ImageFileError, match="supported: .png"):
        write_depth(tmp_path / "depth.jpg", depth)
    with pytest.raises(ImageFileError, match="one channel"):
        read_depth(write_image(tmp_path / "colour.png", _image(3)))


# -- safe writes ---------------------------------------------------------------------------
def test_never_overwrites_an_input_even_with_force(tmp_path):
    source = write_image(tmp_path / "input.png", _image(1))
    before = source.read_bytes()
    other_spelling = tmp_path / "sub" / ".." / "input.png"
    (tmp_path / "sub").mkdir()
    for target in (source, other_spelling):
        with pytest.raises(OverwriteError, match="refusing to overwrite the input .*choose another --out"):
            write_image(target, _image(1, seed=1), force=True, protect=[source])
    with pytest.raises(OverwriteError, match="refusing to overwrite the input"):
        write_depth(source, torch.zeros(1, 1, 4, 4), force=True, protect=str(source))
    assert source.read_bytes() == before


def test_existing_output_needs_force(tmp_path):
    target = write_image(tmp_path / "out.png", _image(1))
    with pytest.raises(OverwriteError, match="already exists.*force=True"):
        write_image(target, _image(1, seed=1))
    write_image(target, _image(1, seed=1), force=True)
    assert torch.equal(read_image(target), torch.round(_image(1, seed=1) * 255) / 255)


def test_writes_leave_no_temporary_files_and_keep_the_umask(tmp_path):
    for extension in (".png", ".jpg", ".tif", ".npy", ".pfm"):
        write_image(tmp_path / f"image{extension}", _image(3))
    atomic_write_text(tmp_path / "report.json", "{}")
    names = sorted(path.name for path in tmp_path.iterdir())
    assert names == sorted(["image.jpg", "image.npy", "image.pfm", "image.png", "image.tif",
                            "report.json"])
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "image.png").stat().st_mode & 0o777 == 0o666 & ~umask


def test_failure_mid_write_keeps_the_old_file(tmp_path, monkeypatch):
    target = write_image(tmp_path / "out.png", _image(1))
    before = target.read_bytes()

    def half_then_fail(self, data):
        with open(self, "wb") as stream:
            stream.write(data[: len(data) // 2])
        raise OSError("disk full")

    monkeypatch.setattr(pathlib.Path, "write_bytes", half_then_fail)
    with pytest.raises(OSError, match="disk full"):
        write_image(target, _image(1, seed=1), force=True)
    monkeypatch.undo()
    assert target.read_bytes() == before
    assert [path.name for path in tmp_path.iterdir()] == ["out.png"]


def test_failure_at_replace_and_inside_atomic_path_cleans_up(tmp_path, monkeypatch):
    target = tmp_path / "model.json"
    target.write_text("old")

    def refuse(source, destination):
        raise PermissionError("replace refused")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(PermissionError):
        atomic_write_text(target, "new")
    monkeypatch.undo()
    with pytest.raises(RuntimeError):
        with atomic_path(target) as temporary:
            temporary.write_text("partial")
            raise RuntimeError("crash while writing")
    assert target.read_text() == "old"
    assert [path.name for path in tmp_path.iterdir()] == ["model.json"]
    with pytest.raises(FileNotFoundError, match="does not exist; create it first"):
        atomic_write_text(tmp_path / "missing" / "x.json", "{}")


# -- errors --------------------------------------------------------------------------------
@pytest.mark.parametrize("extension", [".png", ".jpg", ".tif", ".npy", ".pfm"])
def test_unreadable_file_is_named(tmp_path, extension):
    path = tmp_path / f"notes{extension}"
    path.write_text("this is a text file, not an image\n")
    with pytest.raises(ImageFileError, match=r"cannot read .*notes.*corrupt or not in the format"):
        read_image(path)


def test_truncated_png_is_reported(tmp_path):
    data = (write_image(tmp_path / "full.png", _image(3), bit_depth=16)).read_bytes()
    cut = tmp_path / "cut.png"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageFileError, match="cannot read .*cut.png"):
        read_image(cut)


def test_unsupported_extension_and_missing_file(tmp_path):
    with pytest.raises(ImageFileError, match=r"'\.bmp'.*supported: \.png, \.jpg"):
        read_image(tmp_path / "image.bmp")
    with pytest.raises(ImageFileError, match="supported"):
        write_image(tmp_path / "image.gif", _image(1))
    with pytest.raises(FileNotFoundError, match="no such file: .*absent.png"):
        read_image(tmp_path / "absent.png")


def test_bad_contents_are_reported(tmp_path):
    np.save(tmp_path / "nan.npy", np.full((4, 4), np.nan, dtype=np.float32))
    with pytest.raises(ImageFileError, match="NaN or inf"):
        read_image(tmp_path / "nan.npy")
    np.save(tmp_path / "complex.npy", np.zeros((4, 4), dtype=np.complex64))
    with pytest.raises(ImageFileError, match="complex64 data"):
        read_image(tmp_path / "complex.npy")
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ImageFileError, match="cannot read"):
        read_image(tmp_path / "objects.npy")
    np.save(tmp_path / "volume.npy", np.zeros((5, 4, 4, 4), dtype=np.float32))
    with pytest.raises(ImageFileError, match="shape"):
        read_image(tmp_path / "volume.npy")


def test_write_image_argument_errors(tmp_path):
    with pytest.raises(ValueError, match="NaN or inf"):
        write_image(tmp_path / "nan.png", torch.full((1, 1, 4, 4), float("nan")))
    with pytest.raises(ValueError, match="batch of 2"):
        write_image(tmp_path / "batch.png", torch.zeros(2, 1, 4, 4))
    with pytest.raises(ValueError, match="bit_depth 16 is not available for .jpg"):
        write_image(tmp_path / "deep.jpg", torch.zeros(1, 1, 4, 4), bit_depth=16)
    with pytest.raises(ValueError, match="mode must be"):
        read_image(tmp_path / "x.png", mode="RGB")
    assert not any(tmp_path.iterdir())


def test_module_reexports():
    assert data_io.atomic_path is atomic_path
