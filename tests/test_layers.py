"""Each package imports only packages listed above it in DESIGN.md (plus its own level)."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "learnreg"

# Lower number = lower layer. A module may import its own layer or any lower one.
LAYERS = {
    "config": 0,
    "physics": 0,
    "regularizers": 1,
    "solvers": 2,
    "data": 3,
    "metrics": 3,
    "viz": 4,
    "learned": 5,
    "hub": 5,
    "restore": 6,
    "training": 7,
    "bench": 8,
    "cli": 9,
}


def _layer_of(module_path: Path) -> str:
    relative = module_path.relative_to(ROOT)
    head = relative.parts[0]
    return head[:-3] if head.endswith(".py") else head


def _imported_layers(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = set()
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        for name in names:
            parts = name.split(".")
            if parts[0] == "learnreg" and len(parts) > 1:
                found.add(parts[1])
    return found


MODULES = [p for p in ROOT.rglob("*.py") if _layer_of(p) in LAYERS]


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_go_downward(path):
    own = LAYERS[_layer_of(path)]
    for layer in _imported_layers(path):
        assert layer in LAYERS, f"{path}: imports learnreg.{layer}, which has no layer in tests/test_layers.py"
        assert LAYERS[layer] <= own, f"{path.relative_to(ROOT)} (layer {own}) imports learnreg.{layer} (layer {LAYERS[layer]})"


def test_every_package_has_a_layer():
    for child in ROOT.iterdir():
        if child.name.startswith("_") or child.name in {"weights"}:
            continue
        if child.is_dir() or child.suffix == ".py":
            assert _layer_of(child) in LAYERS, f"learnreg/{child.name} has no layer in tests/test_layers.py"
