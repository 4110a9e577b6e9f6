"""Every shipped weight loads by name, matches its sha256, and still reaches its recorded quality."""

import json
from pathlib import Path

import pytest
import torch

from learnreg.bench.regression import measure, metric_name
from learnreg.hub import list_models, load

MODELS = list_models()


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("model", MODELS, ids=[m["name"] for m in MODELS])
def test_shipped_weight_reaches_recorded_quality(model):
    record = json.loads(Path(model["path"]).read_text())
    assert "regression" in record, f"{model['name']}: run python -m learnreg.bench.regression {model['name']}"
    assert record.get("recipe") and Path(record["recipe"]).name, "every shipped weight names its recipe"
    load(model["name"])  # verifies the sha256
    case = {k: v for k, v in record["regression"].items() if k not in ("psnr", "rmse_d")}
    case.setdefault("kind", "denoiser")
    metric = metric_name(case)
    tolerance = {"psnr": {"abs": 0.02}, "rmse_d": {"rel": 2e-3}}[metric]
    assert measure(model["name"], case) == pytest.approx(record["regression"][metric], **tolerance)
    if record["config"]["architecture"] == "rg_pair":  # a pair's G too, through rg-gd
        assert "regression_gradient" in record, f"{model['name']}: rerun python -m learnreg.bench.regression"
        case = {k: v for k, v in record["regression_gradient"].items() if k != "psnr"}
        assert measure(model["name"], case) == pytest.approx(record["regression_gradient"]["psnr"], abs=0.02)


def test_recipes_of_shipped_weights_exist():
    root = Path(__file__).resolve().parents[2]
    for model in MODELS:
        recipe = json.loads(Path(model["path"]).read_text()).get("recipe")
        assert recipe and (root / recipe).is_file() or Path(recipe).is_file(), f"{model['name']}: recipe {recipe} missing"
