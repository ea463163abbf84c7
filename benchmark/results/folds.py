"""Cross-validation figures of one leaderboard row (`--folds K`): the mean over folds, the spread, a
t-interval.

The folds are the units. With several seeds a fold's score is first the mean over its seeds, so K
folds give K values: the row's `val_accuracy` (which ranks it), `test_accuracy` and macro-F1 are the
means of those K values, `*_fold_std` their standard deviation (ddof=1) and `*_fold_ci` the 95 %
Student-t interval of the mean with K-1 degrees of freedom. Test folds are different images, so
this interval says how much the score moves with the data a model is trained and tested on, which
the bootstrap intervals over one test set cannot. The seed columns keep their meaning: the spread
over seeds of each seed's mean over folds.
"""

from __future__ import annotations

import math

import numpy as np

from benchmark.results import stats
from benchmark.run.records import CellRecord

FOLD_METRICS = (
    ("val", "accuracy"),
    ("val", "macro_f1"),
    ("test", "accuracy"),
    ("test", "macro_f1"),
)
FOLD_COLUMNS = [
    f"{split}_{key}_fold_{stat}" for split, key in FOLD_METRICS for stat in ("std", "ci")
]
MEAN_METRICS = ("accuracy", "macro_f1", "weighted_f1")


def fold_of(record: CellRecord) -> int:
    """A sort key: the record's fold, -1 for a run without folds."""
    return -1 if record.fold is None else int(record.fold)


def uses_folds(records: list[CellRecord]) -> bool:
    return any(record.fold is not None for record in records)


def _mean_by(records: list[CellRecord], attribute: str, split: str, key: str) -> dict[int, float]:
    """Per value of `attribute` (fold or seed), the mean of a metric over the records holding it
    (NaNs skipped)."""
    values: dict[int, list[float]] = {}
    for record in records:
        values.setdefault(getattr(record, attribute), []).append(
            record.split_metrics(split).get(key, np.nan)
        )
    return {
        k: float(np.nanmean(v)) if not np.isnan(v).all() else float("nan")
        for k, v in sorted(values.items())
    }


def fold_scores(ok: list[CellRecord], split: str, key: str) -> dict[int, float]:
    """fold -> the metric's mean over that fold's finished seeds."""
    return _mean_by(ok, "fold", split, key)


def fold_aggregate(ok: list[CellRecord]) -> dict:
    """The fold columns of one row from its finished cells, and its means over folds (see the module
    docstring)."""
    row: dict = {"folds": len({record.fold for record in ok})}
    for split in ("val", "test"):
        for key in MEAN_METRICS:
            values = [v for v in fold_scores(ok, split, key).values() if not math.isnan(v)]
            row[f"{split}_{key}"] = float(np.mean(values)) if values else float("nan")
    for split, key in FOLD_METRICS:
        values = [v for v in fold_scores(ok, split, key).values() if not math.isnan(v)]
        _, std, low, high = stats.t_interval(np.array(values))
        row[f"{split}_{key}_fold_std"] = None if math.isnan(std) else std
        row[f"{split}_{key}_fold_ci"] = None if math.isnan(low) else stats.format_ci(low, high)
    if len({record.seed for record in ok}) > 1:
        for split in ("val", "test"):
            row[f"{split}_accuracy_std"] = float(
                np.std(list(_mean_by(ok, "seed", split, "accuracy").values()), ddof=1)
            )
        _, _, low, high = stats.t_interval(
            np.array(list(_mean_by(ok, "seed", "test", "accuracy").values()))
        )
        row["test_accuracy_seed_ci"] = stats.format_ci(low, high)
    return row


def fold_status(ok: list[CellRecord], group: list[CellRecord]) -> str:
    """ "ok", or what the row's means lack: failed cells, and folds with no finished cell (means
    over fewer folds)."""
    expected = (ok[0].config or {}).get("folds") if ok else None
    present = {record.fold for record in ok}
    missing = sorted(set(range(expected)) - present) if isinstance(expected, int) else []
    problems = []
    if len(ok) < len(group):
        problems.append(f"{len(group) - len(ok)} cell(s) failed")
    if missing:
        problems.append(
            f"fold(s) {', '.join(map(str, missing))} missing: means over {len(present)} of "
            f"{expected} folds"
        )
    return "; ".join(problems) or "ok"
