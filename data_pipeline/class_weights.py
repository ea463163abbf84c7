"""Per-class loss weights against class imbalance, and their damping by `alpha`.

`alpha` = 0 trains unweighted, 1 fully balanced; values between trade the minority classes'
recall against overall accuracy, which is what the benchmark's alpha grid measures.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

import numpy as np

from data_pipeline.errors import DataError

logger = logging.getLogger(__name__)
# Alphas already warned about: a configuration is validated several times (resolved, copied for each
# cell, re-read by `report`) and each cell damps its weights, but one warning per value says it all.
_WARNED_ALPHAS: set[float] = set()


def balanced_class_weights(counts: Sequence[int] | np.ndarray) -> np.ndarray:
    """`w_c = N / (K n_c)` for per-class training counts in class order; each class then weighs N
    / K in total.

    A class with no training images would get an infinite weight, so it is a DataError.
    """
    values = np.asarray(counts, dtype=np.float64)
    if values.ndim != 1 or len(values) == 0 or (values <= 0).any():
        raise DataError(
            f"class weights need a positive training count for every class, got {values.tolist()}; "
            "every class needs training images"
        )
    return values.sum() / (len(values) * values)


def validate_alpha(alpha: float) -> float:
    """`alpha` as a float: finite and >= 0 (DataError naming --alphas otherwise); > 1 is allowed but
    warned about, once per value and process."""
    try:
        value = float(alpha)
    except (TypeError, ValueError):
        raise DataError(f"--alphas takes numbers, got {alpha!r}") from None
    if isinstance(alpha, bool) or not math.isfinite(value) or value < 0:
        raise DataError(f"--alphas value {alpha!r} is not a finite number >= 0; use e.g. 0, 0.5, 1")
    if value > 1 and value not in _WARNED_ALPHAS:
        _WARNED_ALPHAS.add(value)
        logger.warning(
            "class-weight alpha %g > 1 over-weights minority classes beyond balance", value
        )
    return value


def damped_class_weights(counts: Sequence[int] | np.ndarray, alpha: float) -> np.ndarray:
    """`1 + alpha (w_c - 1)`: the balanced weights pulled towards 1 (unweighted) by `alpha` in
    [0, 1]."""
    return 1.0 + validate_alpha(alpha) * (balanced_class_weights(counts) - 1.0)
