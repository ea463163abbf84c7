"""Where the embedded TrashNet sample lives: the default dataset, so a first run needs no
download."""

from pathlib import Path

SAMPLE_NAME = "trashnet_sample"


def sample_data_dir() -> Path:
    """The class-folder root of the embedded sample (see its README.md for how it was made)."""
    return Path(__file__).resolve().parent / "sample_data" / SAMPLE_NAME
