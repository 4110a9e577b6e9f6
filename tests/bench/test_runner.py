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
