"""Benchmark runner: method strings with a prior and options."""

from __future__ import annotations

import pytest

from learnreg.bench.runner import parse_method


def test_method_strings_carry_a_prior_and_typed_options():
    assert parse_method("tv") == ("tv", {})
    assert parse_method("denoiser@drunet-rgb") == ("denoiser", {"prior": "drunet-rgb"})
    assert parse_method("denoiser:ensemble=8") == ("denoiser", {"ensemble": 8})
    assert parse_method("pnp-hqs@p:lambda=0.5;color=opponent") == (
        "pnp-hqs", {"prior": "p", "lambda": 0.5, "color": "opponent"})
    with pytest.raises(ValueError, match="is not KEY=VALUE"):
        parse_method("denoiser:ensemble")


def test_a_setting_with_draws_averages_distinct_seeded_noise_draws(tmp_path, monkeypatch):
    import statistics

    from learnreg.bench import runner
    from learnreg.bench.suites import Setting, Suite

    setting = Setting("denoising", "sigma 25/255", "identity", "gaussian:0.098", "gray", ("tikhonov",), draws=3)
    suite = Suite("tiny", "a test suite", (setting,), ("camera", "coins"), (), size=128, seed=5)
    monkeypatch.setattr(runner, "get_suite", lambda name: suite)
    report = runner.run_suite("tiny", out_dir=tmp_path)
    (row,) = report.rows
    assert row["draws"] == 3 and row["images"] == ["camera", "coins"]
    images = runner.load_images(None, suite, "gray", 128)
    singles = [statistics.fmean(r["psnr"] for r in runner.run_setting(setting, images, ["tikhonov"], seed=seed))
               for seed in (5, 1005, 2005)]
    assert row["psnr_draws"] == pytest.approx(singles, abs=1e-9)
    assert len(set(round(p, 6) for p in singles)) == 3  # three different noise draws
    assert row["psnr"] == pytest.approx(statistics.fmean(singles), abs=1e-9)
    assert [len(entry["psnr_draws"]) for entry in row["per_image"]] == [3, 3]
    assert f"{row['psnr']:.2f} [{min(singles):.2f}, {max(singles):.2f}]" in report.markdown_path.read_text()
