"""The PnP tuning fit: one grid point per colour mode and family, edges named."""

import pytest

from learnreg.bench.tune import HQS_ITERATIONS, HQS_LAMBDAS, PNP_GRIDS, fit_pnp, main


def _scan(score):
    grid = [(a, b) for a in HQS_LAMBDAS for b in HQS_ITERATIONS]
    row = lambda fam, bonus: {"family": fam, "grid": grid,  # noqa: E731
                              "psnr": [score(a, b) + bonus for a, b in grid]}
    return {"x2 bicubic, noise 0, gray": row("sr", 0.0), "x3 bicubic, noise 0, gray": row("sr", 1.0),
            "gaussian sigma_b 1.6, noise 0.01, gray": row("blur", 0.0),
            "x2 bicubic, noise 0, rgb": row("sr", 0.0)}


def test_fit_keeps_the_best_mean_point_and_names_the_edges():
    # a peak at lambda = 0.12 (interior) with iterations best at the largest count (an edge)
    fitted = fit_pnp(_scan(lambda a, b: -abs(a - 0.12) + b / 100), "pnp-hqs")
    assert fitted["gray"]["sr"]["lambda"] == 0.12 and fitted["gray"]["sr"]["iterations"] == HQS_ITERATIONS[-1]
    assert fitted["gray"]["sr"]["edge_of_grid"] == ["iterations"]
    assert fitted["gray"]["sr"]["mean_psnr"] == pytest.approx(-0.0 + HQS_ITERATIONS[-1] / 100 + 0.5)
    assert set(fitted["gray"]) == {"sr", "blur"} and set(fitted["rgb"]) == {"sr"}
    corner = fit_pnp(_scan(lambda a, b: -a - b / 100), "pnp-hqs")["gray"]["blur"]
    assert (corner["lambda"], corner["iterations"]) == (HQS_LAMBDAS[0], HQS_ITERATIONS[0])
    assert corner["edge_of_grid"] == ["lambda", "iterations"]


def test_refit_rewrites_the_saved_scan(tmp_path):
    import json

    saved = tmp_path / "tuning-pnp-hqs.json"
    saved.write_text(json.dumps({"prior": "pnp-hqs", "fitted": {}, "settings": _scan(lambda a, b: -a)}))
    assert main(["--prior", "pnp-hqs", "--refit", "--out-dir", str(tmp_path)]) == 0
    fitted = json.loads(saved.read_text())["fitted"]
    assert fitted["gray"]["sr"]["lambda"] == HQS_LAMBDAS[0] and "lambda" in fitted["gray"]["sr"]["edge_of_grid"]
    assert set(PNP_GRIDS) == {"pnp-hqs", "pnp-admm", "pnp-fb", "red"}
