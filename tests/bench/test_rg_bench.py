"""The ``rg`` benchmark's settings, bookkeeping and claims (no network runs)."""

from __future__ import annotations

import pytest

from learnreg.bench import rg


def test_settings_are_the_papers_twelve_columns():
    table1 = [s for s in rg.SETTINGS if s.table == 1]
    table2 = [s for s in rg.SETTINGS if s.table == 2]
    assert [s.operator for s in table1] == ["inpaint:random:0.8", "inpaint:random:0.9", "blur:gaussian:1.6:25",
                                            "blur:gaussian:2.0:25"]
    assert [s.noise for s in table1] == ["none", "none", "gaussian:0.01", "gaussian:0.01"]
    assert len(table2) == 8 and {s.factor for s in table2} == {2, 3}
    assert {(s.operator, s.noise) for s in table2} == {
        (f"sr:{f}:{k}", n) for f in (2, 3) for k in ("bicubic", "gaussian:0.5") for n in ("none", "gaussian:0.01")}
    assert len({s.key for s in rg.SETTINGS}) == 12  # keys identify cached runs


def test_rows_cover_every_method_and_protocol():
    rows = rg.rows_for(rg.PRIORS)
    names = [r.name for r in rows]
    assert len(names) == len(set(names))
    for prior, model in rg.PRIORS.items():
        for kind, group, iterations in (("adam", "table", 1500), ("anderson", "table", 150),
                                        ("gd", "acceleration", 1500), ("nesterov", "acceleration", 150)):
            row = rg._find(rows, prior, kind)
            assert row is not None and row.group == group and row.method == "rg-gd"
            assert row.parameters == {"prior": model, "solver": kind, "iterations": iterations}
        long_step = rg._find(rows, prior, "gd-long")  # the same gradient-flow time as GD 1500 at step 0.05
        assert long_step.parameters == {"prior": model, "solver": "gd", "iterations": 150, "step": pytest.approx(0.5)}
    assert {"Gauss (PnP-ADMM)", "MTDEQ (PnP-ADMM)", "MTDEQ, FB fixed point", "TV"} <= set(names)


def _done(rows, values):
    """Fake cached results: values[(prior or row name, kind)] -> PSNR on every setting and image."""
    done = {}
    for row in rows:
        for setting in rg.SETTINGS:
            for image in ("a", "b"):
                value = values.get((row.prior, row.kind), values.get((row.name, ""), 20.0))
                done[rg._key(setting, image, row)] = {"psnr": value + (image == "b"), "ssim": 0.5,
                                                      "status": "max_iter", "seconds": 1.0, "residual": 1e-3}
    return done


def test_claim_holds_within_three_tenths_and_fails_beyond():
    rows = rg.rows_for(rg.PRIORS)
    done = _done(rows, {("RERG", "adam"): 29.8, ("RG1", "adam"): 30.0, ("DEQGD", "adam"): 29.0,
                        ("RERG", "anderson"): 29.6, ("RG1", "anderson"): 29.0, ("DEQGD", "anderson"): 30.0})
    table = rg.summarise(done, rows, ("a", "b"))
    assert table["RERG, paper protocol"]["completion-80"]["psnr"] == pytest.approx(30.3)  # mean of 29.8, 30.8
    result = rg.claims(table)
    assert len(result) == 24
    assert all(c["holds"] and c["gap"] == pytest.approx(-0.2) for c in result if c["protocol"] == "paper protocol")
    assert not any(c["holds"] for c in result if c["protocol"] == "GD fixed point")


def test_acceleration_compares_to_the_long_gd_run_on_the_first_image():
    rows = rg.rows_for({"RERG": "rg-rerg"})
    done = _done(rows, {("RERG", "gd"): 25.0, ("RERG", "anderson"): 25.08, ("RERG", "nesterov"): 24.5})
    result = rg.acceleration(done, rows, "a")
    assert len(result) == 12
    assert all(r["anderson_within"] and not r["nesterov_within"] for r in result)
    assert result[0]["gd1500"] == 25.0  # image "a" only (image "b" would add 1 dB)


def test_markdown_reports_tables_claims_and_acceleration():
    rows = rg.rows_for(rg.PRIORS)
    done = _done(rows, {})
    table = rg.summarise(done, rows, ("a", "b"))
    text = rg.markdown(table, rows, rg.claims(table), rg.acceleration(done, rows, "a"), [], images=("a", "b"),
                       minutes=1.0, figures=["rg-crops.png"])
    assert "## Table 1" in text and "## Table 2" in text and "![rg-crops.png](rg-crops.png)" in text
    assert "the claim holds on 12 of 12 settings" in text
    assert "of 48 (prior, setting) pairs: GD with a 10x step 48, Nesterov 48, Anderson 48" in text
