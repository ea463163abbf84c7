"""The report's K-fold parts (`--folds K`): the aggregate over folds, the leader's fold-by-fold
scores, the fold files.

Empty for a run without folds, so its report reads as it always did.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from benchmark.results.folds import FOLD_METRICS, fold_scores
from benchmark.results.tables import to_markdown
from benchmark.run.records import NOT_RANKED, CellRecord
from benchmark.run.split_files import split_dir

TOP = 20
AGGREGATE_COLUMNS = ["rank", "model", "alpha", "seeds", "folds"] + [
    f"{split}_{key}{suffix}"
    for split, key in FOLD_METRICS
    for suffix in ("", "_fold_std", "_fold_ci")
]


def cell_label(record: CellRecord) -> str:
    """`model, alpha 0.5, seed 0` (`, fold 2` in a K-fold run): how figure titles name a cell."""
    label = f"{record.model}, alpha {record.alpha:g}, seed {record.seed}"
    return label if record.fold is None else f"{label}, fold {record.fold}"


def fold_split_tables(run_dir: Path) -> list[pd.DataFrame]:
    """The fold splits `splits/fold<k>.csv` in fold order; empty for a run with one split."""
    folder = split_dir(run_dir)
    files = (
        sorted(
            folder.glob("fold*.csv"), key=lambda p: int(p.stem[4:]) if p.stem[4:].isdigit() else -1
        )
        if folder.is_dir()
        else []
    )
    return [pd.read_csv(p, keep_default_na=False, dtype=str) for p in files if p.stem[4:].isdigit()]


def cross_validation_section(board: pd.DataFrame, records: list[CellRecord]) -> str:
    """Markdown: what the fold columns mean, the aggregate of the top rows, and the leader's scores
    per fold."""
    if "folds" not in board.columns:
        return ""
    ok = board[~board["status"].isin(NOT_RANKED)]
    expected = next(
        (r.config.get("folds") for r in records if r.ok and r.config.get("folds")), None
    )
    parts = [
        f"## Cross-validation ({expected or 'K'} folds)\n",
        "Every cell was trained and scored once per fold; the test folds partition the images, so "
        "each image is scored exactly once per seed. `val_accuracy`, `test_accuracy` and the "
        "macro-F1 columns are means over the folds (each fold first averaged over its seeds), and "
        "rows rank by the mean validation accuracy. `*_fold_std` is the standard deviation over "
        "folds (ddof 1) and `*_fold_ci` the 95 % Student-t interval of the mean with folds - 1 "
        "degrees of freedom: how much the score moves with the images a model is trained and "
        "tested on. The bootstrap `*_ci` columns pool the out-of-fold predictions.\n",
    ]
    if ok.empty:
        return "\n".join(parts + ["No row finished.\n"])
    parts.append(to_markdown(ok.head(TOP)[[c for c in AGGREGATE_COLUMNS if c in ok.columns]]))
    top = ok.iloc[0]
    leader = [
        r
        for r in records
        if r.ok and r.model == top["model"] and float(r.alpha) == float(top["alpha"])
    ]
    if leader:
        per_fold = {
            f"{split}_{key}": fold_scores(leader, split, key) for split, key in FOLD_METRICS
        }
        frame = pd.DataFrame(
            {
                "fold": sorted({r.fold for r in leader}),
                **{
                    column: [scores[f] for f in sorted(scores)]
                    for column, scores in per_fold.items()
                },
            }
        )
        parts.append(
            f"Rank 1 ({top['model']}, alpha {top['alpha']:g}) fold by fold (means over its "
            "seeds):\n"
        )
        parts.append(to_markdown(frame))
    return "\n".join(parts)
