"""Test-suite setup: tests/ on sys.path so shared helpers (tests/_operators.py) import."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
