"""Test-suite setup: tests/ on sys.path so shared helpers (tests/_operators.py) import."""

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))


@pytest.fixture
def one_thread():
    """Run a test on one torch thread (``pytestmark = pytest.mark.usefixtures("one_thread")``).

    Tiny images gain nothing from threads, and on shared cores OpenMP barriers stall each conv for
    milliseconds; the caller's thread count is restored afterwards.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
