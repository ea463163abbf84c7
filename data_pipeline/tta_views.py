"""The test-time views by name, and the check of `--tta`: plain data, so a configuration check
needs no TensorFlow (`tta.py` makes the views).
"""

from __future__ import annotations

from data_pipeline.errors import DataError

VIEWS = (
    "identity",
    "flip",
    "center_crop",
    "center_crop_flip",
    "crop_top_left",
    "crop_top_right",
    "crop_bottom_left",
    "crop_bottom_right",
)
MAX_VIEWS = len(VIEWS)


def validate_tta(views: int) -> int:
    """`views` as the number of views to average: 0 (off) to `MAX_VIEWS`; else a DataError."""
    if isinstance(views, bool) or not isinstance(views, int) or not 0 <= views <= MAX_VIEWS:
        raise DataError(
            "--tta must be a whole number of test-time views from 0 (off) to "
            f"{MAX_VIEWS}, got {views!r}"
        )
    return views
