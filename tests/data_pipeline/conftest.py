"""Fixtures of the data_pipeline tests: a tiny class-folder dataset and the real TrashNet when
present."""

from pathlib import Path

import pytest
from dp_helpers import TRASHNET_DIR, write_classes


@pytest.fixture
def folders(tmp_path: Path) -> Path:
    """Three classes of 10, 10 and 4 images in class folders."""
    return write_classes(tmp_path / "data", {"cat": 10, "dog": 10, "eel": 4})


@pytest.fixture
def trashnet() -> Path:
    if not TRASHNET_DIR.is_dir():
        pytest.skip(f"{TRASHNET_DIR} absent")
    return TRASHNET_DIR
