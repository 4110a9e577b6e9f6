"""Depth super-resolution from the command line: degrade --depth -> restore --depth --guide, errors."""

import numpy as np
import pytest
import torch

from learnreg.cli.main import main
from learnreg.data.io import read_depth, write_image

SIZE = 32


@pytest.fixture()
def scene(tmp_path):
    """A box on a slanted plane (unit-cube depth, .npy) and an aligned RGB guide (.png)."""
    u = np.linspace(0, 1, SIZE, dtype=np.float32)
    rows, cols = np.meshgrid(u, u, indexing="ij")
    depth = 0.6 + 0.2 * cols + 0.1 * rows
    label = np.zeros((SIZE, SIZE), dtype=int)
    depth[5:15, 3:13], label[5:15, 3:13] = 0.3, 1
    colours = np.array([[0.6, 0.6, 0.5], [0.9, 0.2, 0.2]], dtype=np.float32)
    np.save(tmp_path / "depth.npy", depth)
    write_image(tmp_path / "rgb.png", torch.from_numpy(colours[label].transpose(2, 0, 1))[None])
    return tmp_path / "depth.npy", tmp_path / "rgb.png"


def _degrade(tmp_path, depth, operator="sr:4:box"):
    lr, spec = tmp_path / "lr.npy", tmp_path / "lr.json"
    assert main(["degrade", str(depth), "--depth", "--operator", operator, "--out", str(lr), "--spec", str(spec)]) == 0
    return lr, spec


def test_degrade_depth_keeps_units_and_block_means(tmp_path, scene):
    depth, _ = scene
    lr, _ = _degrade(tmp_path, depth)
    low = read_depth(lr)
    assert low.shape == (1, 1, SIZE // 4, SIZE // 4)
    blocks = torch.from_numpy(np.load(depth)).reshape(SIZE // 4, 4, SIZE // 4, 4).mean(dim=(1, 3))
    assert torch.allclose(low[0, 0], blocks, atol=1e-6)


@pytest.mark.parametrize("method,guided", [("guided-filter", True), ("bilinear", False), ("box-pinv", False)])
def test_depth_round_trip(tmp_path, scene, capsys, method, guided):
    depth, rgb = scene
    lr, spec = _degrade(tmp_path, depth)
    out, side = tmp_path / "hr.npy", tmp_path / "side.png"
    args = ["restore", str(lr), "--depth", "--spec", str(spec), "--method", method, "--out", str(out),
            "--reference", str(depth), "--compare", str(side), "--quiet"]
    assert main(args + (["--guide", str(rgb)] if guided else [])) == 0
    printed = capsys.readouterr().out
    assert "RMSE_d" in printed and "RMSE_v" in printed and "PSNR" not in printed
    restored = read_depth(out)
    assert restored.shape == (1, 1, SIZE, SIZE)
    error = float((restored - torch.from_numpy(np.load(depth))).pow(2).mean().sqrt())
    assert f"RMSE_d {error:.4g}" in printed
    assert error < (0.04 if guided else 0.1)  # measured: guided filter 0.033, bilinear 0.057, box-pinv 0.072
    assert side.stat().st_size > 0


def test_guide_missing_or_mismatched_is_a_clear_error(tmp_path, scene, capsys):
    depth, _ = scene
    lr, spec = _degrade(tmp_path, depth)
    base = ["restore", str(lr), "--depth", "--spec", str(spec), "--method", "guided-filter",
            "--out", str(tmp_path / "hr.npy"), "--quiet"]
    assert main(base) == 2
    assert f"pass --guide with an RGB image of size {SIZE}x{SIZE}" in capsys.readouterr().err
    small = tmp_path / "small.png"
    write_image(small, torch.zeros(1, 3, 16, 16))
    assert main(base + ["--guide", str(small)]) == 2
    err = capsys.readouterr().err
    assert "is 16x16" in err and f"pass --guide with an image of size {SIZE}x{SIZE}" in err
    assert not (tmp_path / "hr.npy").exists()


@pytest.mark.parametrize("extra,message", [
    (["--plot", "curve.png"], "does not apply to depth maps"),
    (["--out", "hr.png"], "write .npy, .pfm or .tif instead, or pass --depth-scale"),
])
def test_depth_restore_refusals(tmp_path, scene, capsys, extra, message):
    depth, _ = scene
    lr, spec = _degrade(tmp_path, depth)
    extra = [str(tmp_path / e) if e.endswith(".png") else e for e in extra]
    args = ["restore", str(lr), "--depth", "--spec", str(spec), "--method", "bilinear", "--reference", str(depth),
            "--quiet"]
    if "--out" not in extra:
        args += ["--out", str(tmp_path / "hr.npy")]
    assert main(args + extra) == 2
    assert message in capsys.readouterr().err


def test_depth_png_with_scale_round_trips(tmp_path, scene):
    depth, _ = scene
    lr, spec = _degrade(tmp_path, depth)
    out = tmp_path / "hr.png"
    assert main(["restore", str(lr), "--depth", "--depth-scale", "10000", "--spec", str(spec), "--method", "box-pinv",
                 "--out", str(out), "--quiet"]) == 0
    restored = read_depth(out, scale=10000)
    assert torch.allclose(restored, read_depth(tmp_path / "lr.npy").repeat_interleave(4, 2).repeat_interleave(4, 3),
                          atol=1e-4)


def test_degrade_depth_rejects_mode_and_image_restore_is_unchanged(tmp_path, scene, capsys):
    depth, _ = scene
    code = main(["degrade", str(depth), "--depth", "--mode", "gray", "--operator", "sr:4:box",
                 "--out", str(tmp_path / "lr.npy"), "--spec", str(tmp_path / "lr.json")])
    assert code == 2
    assert "drop --mode" in capsys.readouterr().err
    # without --depth the same spec restores images: PSNR / SSIM as before
    lr, spec = _degrade(tmp_path, depth)
    assert main(["restore", str(lr), "--spec", str(spec), "--method", "bilinear", "--out", str(tmp_path / "x.npy"),
                 "--reference", str(depth), "--quiet"]) == 0
    assert "PSNR" in capsys.readouterr().out
