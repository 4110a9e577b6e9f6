"""The command line end to end on tiny images: degrade -> restore, errors, no overwriting."""

import json

import pytest

from learnreg.cli.main import build_parser, main
from learnreg.data.io import read_image, write_image
from learnreg.data.samples import sample


@pytest.fixture()
def clean_png(tmp_path):
    path = tmp_path / "clean.png"
    write_image(path, sample("camera", size=64))
    return path


def test_degrade_then_restore_with_reference(tmp_path, clean_png, capsys):
    y, spec, x = tmp_path / "y.png", tmp_path / "y.json", tmp_path / "x.png"
    assert main(["degrade", str(clean_png), "--operator", "blur:gaussian:1.5", "--noise", "gaussian:0.01",
                 "--seed", "3", "--out", str(y), "--spec", str(spec)]) == 0
    assert json.loads(spec.read_text())
    assert main(["restore", str(y), "--spec", str(spec), "--method", "tv", "--out", str(x), "--reference",
                 str(clean_png), "--compare", str(tmp_path / "side.png"), "--plot", str(tmp_path / "curve.png"),
                 "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "PSNR" in out and "SSIM" in out
    assert read_image(x).shape == (1, 1, 64, 64)
    assert (tmp_path / "side.png").stat().st_size > 0 and (tmp_path / "curve.png").stat().st_size > 0


def test_sr_round_trip_and_bicubic(tmp_path, clean_png):
    y, spec, x = tmp_path / "y.png", tmp_path / "y.json", tmp_path / "x.png"
    assert main(["degrade", str(clean_png), "--operator", "sr:4:bicubic", "--noise", "none", "--out", str(y),
                 "--spec", str(spec)]) == 0
    assert read_image(y).shape == (1, 1, 16, 16)
    assert main(["restore", str(y), "--spec", str(spec), "--method", "bicubic", "--out", str(x), "--quiet"]) == 0
    assert read_image(x).shape == (1, 1, 64, 64)


def test_restore_refuses_to_overwrite_its_input(tmp_path, clean_png, capsys):
    y, spec = tmp_path / "y.png", tmp_path / "y.json"
    main(["degrade", str(clean_png), "--operator", "identity", "--noise", "gaussian:0.05", "--out", str(y), "--spec", str(spec)])
    before = y.read_bytes()
    code = main(["restore", str(y), "--spec", str(spec), "--out", str(y), "--force", "--quiet"])
    assert code == 2
    assert "input" in capsys.readouterr().err
    assert y.read_bytes() == before


def test_existing_output_needs_force(tmp_path, clean_png, capsys):
    y, spec = tmp_path / "y.png", tmp_path / "y.json"
    args = ["degrade", str(clean_png), "--operator", "identity", "--noise", "none", "--out", str(y), "--spec", str(spec)]
    assert main(args) == 0
    assert main(args) == 2
    assert "exists" in capsys.readouterr().err
    assert main(args + ["--force"]) == 0


@pytest.mark.parametrize("args,message", [
    (["--operator", "blurry:3"], "unknown"),
    (["--operator", "sr:5:bicubic"], "divide"),
    (["--operator", "blur:uniform:99"], "larger than the image"),
    (["--operator", "identity", "--noise", "gaussian:25"], "[0, 1]"),
])
def test_bad_specs_name_the_problem(tmp_path, clean_png, capsys, args, message):
    code = main(["degrade", str(clean_png), *args, "--out", str(tmp_path / "y.png"), "--spec", str(tmp_path / "y.json")])
    assert code == 2
    assert message in capsys.readouterr().err


def test_unreadable_input_is_a_clear_error(tmp_path, capsys):
    bogus = tmp_path / "bogus.png"
    bogus.write_text("not an image")
    code = main(["degrade", str(bogus), "--operator", "identity", "--out", str(tmp_path / "y.png"),
                 "--spec", str(tmp_path / "y.json")])
    assert code == 2
    assert "bogus.png" in capsys.readouterr().err


def test_unknown_method_lists_methods(tmp_path, clean_png, capsys):
    y, spec = tmp_path / "y.png", tmp_path / "y.json"
    main(["degrade", str(clean_png), "--operator", "identity", "--noise", "gaussian:0.05", "--out", str(y), "--spec", str(spec)])
    assert main(["restore", str(y), "--spec", str(spec), "--method", "magic", "--out", str(tmp_path / "x.png")]) == 2
    assert "valid methods" in capsys.readouterr().err


def test_help_has_examples(capsys):
    for command in ("degrade", "restore", "bench", "demo"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        assert "examples:" in capsys.readouterr().out


def test_a_closed_pipe_ends_quietly(capsys, monkeypatch):
    def closed(args):
        raise BrokenPipeError(32, "Broken pipe")  # what printing into `| head` after it quit raises

    parser = build_parser()
    monkeypatch.setattr("learnreg.cli.main.build_parser", lambda: parser)
    parser.set_defaults(run=closed)
    for action in parser._subparsers._group_actions[0].choices.values():
        action.set_defaults(run=closed)
    assert main(["models"]) == 0
    assert capsys.readouterr().err == ""


def test_models_lists_or_says_none(capsys):
    assert main(["models"]) == 0
    assert capsys.readouterr().out.strip()


def test_models_state_recipe_data_and_tested_quality(capsys):
    import re

    from learnreg.hub import list_models

    shipped = {m["name"]: m for m in list_models()}
    if "drunet-gray" not in shipped:
        pytest.skip("no drunet-gray shipped")
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    block = out[out.index("drunet-gray "):].split("\n")[:4]
    record = shipped["drunet-gray"]["regression"]
    assert "recipes/denoiser-gray.yaml" in block[0] and "dead leaves" in block[1]
    assert f"{record['psnr']:.2f} dB (regression-tested)" in block[2]
    training = shipped["drunet-gray"]["training"]
    assert block[3] == (f"    training: {training['steps']:,} steps in {training['wall_s'] / 60:.1f} min (cpu, 1 process), "
                        f"{training['patches_per_s']:.1f} patches/s")
    assert not re.search(r"\d\.\d{6,}", out), "raw floats in the listing"
