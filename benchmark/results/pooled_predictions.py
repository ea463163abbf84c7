"""A leaderboard row's saved test predictions, pooled over its seeds (and folds).

Both the leaderboard (intervals, worst class, paired tests against rank 1) and the alpha-effect
table (each model's best alpha against alpha 0) compare rows image by image; they read the
predictions the same way from here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from benchmark.results.folds import fold_of
from benchmark.run.records import CellRecord, load_predictions


def split_predictions(
    run_dir: Path, records: list[CellRecord], split: str
) -> tuple[np.ndarray, np.ndarray] | None:
    """Pooled (y_true, y_pred) of `split` over a group's seeds, or None when a record lacks them."""
    trues, preds = [], []
    for record in records:
        frame = load_predictions(run_dir, record)
        if frame is None:
            return None
        part = frame[frame["split"] == split]
        trues.append(part["true"].to_numpy(int))
        preds.append(part["pred"].to_numpy(int))
    return (np.concatenate(trues), np.concatenate(preds)) if trues else None


def correct_vectors(
    run_dir: Path, records_by_group: dict, keys: list[tuple]
) -> list[np.ndarray | None]:
    """Per row, the pooled per-image correctness on test (aligned by seed and path) for McNemar."""
    vectors = []
    for key in keys:
        ok = [r for r in records_by_group[key] if r.ok]
        frames = []
        for record in sorted(
            ok, key=lambda r: (r.seed, fold_of(r))
        ):  # folds test different images: kept apart
            frame = load_predictions(run_dir, record)
            if frame is None:
                frames = None
                break
            part = frame[frame["split"] == "test"].sort_values("path")
            frames.append(part["true"].to_numpy() == part["pred"].to_numpy())
        vectors.append(np.concatenate(frames) if frames else None)
    lengths = {len(v) for v in vectors if v is not None}
    if len(lengths) > 1:  # rows with different seed counts cannot be paired image by image
        return [v if v is not None and len(v) == max(lengths) else None for v in vectors]
    return vectors
