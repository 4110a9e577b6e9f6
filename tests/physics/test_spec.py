"""Degradation specs: parsing, building, JSON round trip with verified arrays, errors."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from learnreg.physics import (
    Blur,
    Degradation,
    GaussianNoise,
    Identity,
    Inpaint,
    NoNoise,
    PoissonGaussianNoise,
    PoissonNoise,
    SuperResolution,
    gaussian_kernel,
    parse_noise,
    parse_operator,
)

SHAPE = (3, 24, 36)


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture
def files(tmp_path, monkeypatch):
    """K.npy (an asymmetric kernel) and M.png (a mask of the image size) in the working directory."""
    monkeypatch.chdir(tmp_path)
    np.save("K.npy", np.arange(1.0, 13.0).reshape(3, 4))
    mask = np.full(SHAPE[1:], 255, dtype=np.uint8)
    mask[5:9, 10:20] = 0
    Image.fromarray(mask).save("M.png")
    return tmp_path


@pytest.mark.parametrize("text,fields", [
    ("identity", dict(kind="identity")),
    ("denoise", dict(kind="identity")),
    ("blur:gaussian:2.0", dict(kind="blur", variant="gaussian", sigma=2.0, size=None)),
    ("blur:gaussian:2.0:25", dict(kind="blur", variant="gaussian", sigma=2.0, size=25)),
    ("blur:uniform:7", dict(kind="blur", variant="uniform", size=7)),
    ("blur:kernel:K.npy", dict(kind="blur", variant="kernel", path="K.npy")),
    ("sr:4:bicubic", dict(kind="sr", variant="bicubic", factor=4)),
    ("sr:2:gaussian:1.0", dict(kind="sr", variant="gaussian", factor=2, sigma=1.0)),
    ("sr:8:nearest", dict(kind="sr", variant="nearest", factor=8)),
    ("sr:4:box", dict(kind="sr", variant="box", factor=4)),
    ("sr:2:kernel:K.npy", dict(kind="sr", variant="kernel", factor=2, path="K.npy")),
    ("inpaint:random:0.8", dict(kind="inpaint", variant="random", fraction=0.8)),
    ("inpaint:box:0.33", dict(kind="inpaint", variant="box", fraction=0.33)),
    ("inpaint:mask:M.png", dict(kind="inpaint", variant="mask", path="M.png")),
])
def test_parse_operator(text, fields):
    spec = parse_operator(text)
    for name, value in fields.items():
        assert getattr(spec, name) == value, name


@pytest.mark.parametrize("text,message", [
    ("blurry:3", "unknown operator kind 'blurry'.*valid kinds: identity, denoise, blur, sr, inpaint"),
    ("blur:motion:3", "unknown blur variant 'motion'.*valid: gaussian, uniform, kernel"),
    ("sr:4:lanczos", "unknown sr variant 'lanczos'.*valid: bicubic, box, nearest, gaussian, kernel"),
    ("inpaint:stripes:0.5", "valid: random, box, mask"),
    ("sr:four:bicubic", "SR factor must be an integer"),
    ("blur:gaussian:wide", "sigma must be a number"),
    ("blur:gaussian", "takes 1 or 2 parameter"),
    ("sr:2:bicubic:3", "takes 0 parameter"),
    ("identity:2", "takes no parameters"),
    ("blur:kernel:", "give a file"),
    ("", "valid kinds"),
])
def test_parse_operator_errors(text, message):
    with pytest.raises(ValueError, match=message):
        parse_operator(text)


def test_parse_noise():
    assert isinstance(parse_noise("none"), NoNoise)
    assert parse_noise("gaussian:0.01") == GaussianNoise(0.01)
    assert parse_noise("poisson:255") == PoissonNoise(255)
    assert parse_noise("poisson-gaussian:255:0.01") == PoissonGaussianNoise(255, 0.01)
    with pytest.raises(ValueError, match="unknown noise kind 'speckle'.*none, gaussian:SIGMA, poisson:PEAK"):
        parse_noise("speckle:0.1")
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        parse_noise("gaussian:25")
    with pytest.raises(ValueError, match="takes 2 parameter"):
        parse_noise("poisson-gaussian:255")


@pytest.mark.parametrize("text,kind,out_shape", [
    ("identity", Identity, SHAPE),
    ("blur:gaussian:2.0", Blur, SHAPE),
    ("blur:uniform:7", Blur, SHAPE),
    ("blur:kernel:K.npy", Blur, SHAPE),
    ("sr:4:bicubic", SuperResolution, (3, 6, 9)),
    ("sr:3:gaussian:1.0", SuperResolution, (3, 8, 12)),
    ("sr:2:kernel:K.npy", SuperResolution, (3, 12, 18)),
    ("inpaint:random:0.8", Inpaint, SHAPE),
    ("inpaint:box:0.33", Inpaint, SHAPE),
    ("inpaint:mask:M.png", Inpaint, SHAPE),
])
def test_build_operator(files, text, kind, out_shape):
    degradation = Degradation.from_strings(text, "none", shape=SHAPE, seed=0)
    operator = degradation.build_operator()
    assert isinstance(operator, kind) and operator.out_shape == out_shape
    assert text in degradation.describe()


def test_kernel_file_is_normalised_and_mask_file_read(files):
    degradation = Degradation.from_strings("blur:kernel:K.npy", "none", shape=SHAPE)
    assert degradation.kernel.sum() == pytest.approx(1.0)
    mask = Degradation.from_strings("inpaint:mask:M.png", "none", shape=SHAPE).mask
    assert mask.dtype == np.bool_ and int((~mask).sum()) == 40


@pytest.mark.parametrize("operator,noise", [
    ("inpaint:random:0.8", "gaussian:0.05"),
    ("sr:4:bicubic", "poisson-gaussian:100:0.01"),
    ("blur:kernel:K.npy", "poisson:255"),
    ("sr:2:gaussian:1.0:5", "none"),
    ("identity", "gaussian:0.1"),
])
def test_save_load_round_trip_reproduces_y(files, operator, noise):
    x = torch.rand((2, *SHAPE), generator=_generator(0))
    first = Degradation.from_strings(operator, noise, shape=SHAPE, seed=7)
    y = first.apply(x, _generator(7))
    (files / "out").mkdir()
    first.save("out/y.json")
    document = json.loads((files / "out" / "y.json").read_text())
    assert document["format"] == "learnreg.degradation" and document["version"] == 1
    assert document["operator"]["spec"] == operator and document["seed"] == 7
    assert not [p for p in (files / "out").iterdir() if p.name.startswith(".")]  # no temporary files left
    second = Degradation.load(files / "out" / "y.json")
    assert torch.equal(second.apply(x, _generator(7)), y)
    assert second.sigma == first.sigma and second.describe() == first.describe()
    for name, entry in document["arrays"].items():
        np.testing.assert_array_equal(np.load(files / "out" / entry["file"]), getattr(first, name))


def test_random_mask_is_saved_not_redrawn(files):
    degradation = Degradation.from_strings("inpaint:random:0.5", "none", shape=SHAPE, seed=1)
    degradation.save("y.json")
    assert np.array_equal(Degradation.load("y.json").mask, degradation.mask)
    assert not np.array_equal(Degradation.from_strings("inpaint:random:0.5", "none", shape=SHAPE, seed=2).mask,
                              degradation.mask)
    # the inpainting measurements keep exact zeros at missing pixels, noise included
    y = degradation.apply(torch.rand((1, *SHAPE), generator=_generator(0)), _generator(0))
    assert torch.equal(y[0, 0] == 0, ~torch.from_numpy(degradation.mask))


def test_sr_offset_is_recorded(files):
    Degradation.from_strings("sr:4:bicubic", "none", shape=SHAPE).save("sr.json")
    document = json.loads((files / "sr.json").read_text())
    assert document["operator"]["offset"] == [1, 1] and document["operator"]["factor"] == 4
    assert document["operator"]["kernel_origin"] == [8, 8]


def test_tampered_or_missing_arrays_are_refused(files):
    Degradation.from_strings("blur:gaussian:1.0", "none", shape=SHAPE).save("y.json")
    np.save("y.kernel.npy", gaussian_kernel(1.1))
    with pytest.raises(ValueError, match="sha256"):
        Degradation.load("y.json")
    (files / "y.kernel.npy").unlink()
    with pytest.raises(FileNotFoundError, match="y.kernel.npy.*beside the JSON"):
        Degradation.load("y.json")
    with pytest.raises(FileNotFoundError, match="nope.json"):
        Degradation.load("nope.json")
    (files / "other.json").write_text('{"format": "something-else"}')
    with pytest.raises(ValueError, match="not a learnreg degradation spec"):
        Degradation.load("other.json")


def test_save_refuses_to_overwrite_without_force_and_never_an_input(files):
    degradation = Degradation.from_strings("blur:kernel:K.npy", "none", shape=SHAPE)
    degradation.save("y.json")
    with pytest.raises(FileExistsError, match="force"):
        degradation.save("y.json")
    degradation.save("y.json", force=True)
    Degradation.from_strings("sr:2:kernel:y.kernel.npy", "none", shape=SHAPE)  # reads the saved kernel
    with pytest.raises(ValueError, match="refusing to overwrite"):
        Degradation.from_strings("blur:kernel:y.kernel.npy", "none", shape=SHAPE).save("y.json", force=True)


def test_hand_written_spec(files):
    (files / "hand.json").write_text(json.dumps({"operator": "blur:gaussian:1.5", "shape": [1, 16, 20],
                                                 "noise": "gaussian:0.02", "seed": 3}))
    degradation = Degradation.load("hand.json")
    assert degradation.build_operator().in_shape == (1, 16, 20) and degradation.sigma == 0.02
    np.testing.assert_allclose(degradation.kernel, gaussian_kernel(1.5))


@pytest.mark.parametrize("operator,message", [
    ("sr:5:bicubic", "does not divide the image size 24x36; crop the image to 20x35, a multiple of 5"),
    ("blur:uniform:30", "kernel 30x30 is larger than the image 24x36"),
    ("blur:kernel:missing.npy", "missing.npy does not exist"),
])
def test_construction_fails_early(files, operator, message):
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        Degradation.from_strings(operator, "none", shape=SHAPE)


def test_mask_of_the_wrong_size_and_nan_input(files):
    with pytest.raises(ValueError, match="mask M.png is 24x36 but the image is 12x12"):
        Degradation.from_strings("inpaint:mask:M.png", "none", shape=(1, 12, 12))
    degradation = Degradation.from_strings("identity", "none", shape=(1, 4, 4))
    with pytest.raises(ValueError, match="NaN"):
        degradation.apply(torch.full((1, 1, 4, 4), float("nan")), _generator(0))
