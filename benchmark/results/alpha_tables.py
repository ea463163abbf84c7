"""Tables across a model's alphas: its best alpha, the alpha sweep, and whether damping helped.

Apart from `tables.py` (the leaderboard, one row per model x alpha) because these read the ranked
leaderboard as input and ask one question per model, about the class-weight damping alpha.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import f1_score

from benchmark.results import stats
from benchmark.results.pooled_predictions import correct_vectors, split_predictions
from benchmark.run.records import NOT_RANKED, CellRecord


def best_per_model(board: pd.DataFrame) -> pd.DataFrame:
    """Each model's best alpha by validation (the leaderboard is already ranked)."""
    ok = board[~board["status"].isin(NOT_RANKED)]
    return ok.drop_duplicates("model", keep="first").reset_index(drop=True)


def alpha_sweep(board: pd.DataFrame) -> pd.DataFrame:
    """Models as rows, alphas as columns: `val_acc@alpha` and `test_acc@alpha` per cell."""
    ok = board[~board["status"].isin(NOT_RANKED)]
    if ok.empty:
        return pd.DataFrame(columns=["model"])
    tables = []
    for metric, label in (("val_accuracy", "val"), ("test_accuracy", "test")):
        pivot = ok.pivot_table(index="model", columns="alpha", values=metric, aggfunc="mean")
        pivot.columns = [f"{label}@{alpha:g}" for alpha in pivot.columns]
        tables.append(pivot)
    sweep = pd.concat(tables, axis=1).reset_index()
    order = {model: i for i, model in enumerate(best_per_model(board)["model"])}
    return sweep.sort_values("model", key=lambda s: s.map(order)).reset_index(drop=True)


ALPHA_EFFECT_COLUMNS = [
    "model",
    "best_alpha",
    "test_accuracy_alpha0",
    "test_accuracy_best",
    "delta_test_accuracy",
    "p_mcnemar",
    "significant",
    "worst_class_alpha0",
    "worst_class_f1_alpha0",
    "worst_class_f1_best",
    "delta_worst_class_f1",
    "note",
]


def alpha_effect(run_dir: Path, board: pd.DataFrame, records: list[CellRecord]) -> pd.DataFrame:
    """Per model, did damping help? Its best alpha (by validation) against alpha 0 on the same test
    images.

    `p_mcnemar` is the exact paired test of the two rows' per-image correctness; `worst_class_*`
    follow the class that alpha 0 served worst, because damping exists to lift the rare class.
    """
    groups: dict[tuple, list[CellRecord]] = {}
    for record in records:
        if record.ok:
            groups.setdefault((record.model, float(record.alpha)), []).append(record)
    rows = []
    for model, best_alpha in zip(best_per_model(board)["model"], best_per_model(board)["alpha"]):
        row = {"model": model, "best_alpha": float(best_alpha)}
        baseline, best = (model, 0.0), (model, float(best_alpha))
        if baseline not in groups:
            rows.append({**row, "note": "alpha 0 is not in the grid"})
            continue
        class_names = groups[baseline][0].class_names
        f1, accuracy = {}, {}
        for key in {baseline, best}:
            pooled = split_predictions(run_dir, groups[key], "test")
            if pooled is not None and len(pooled[0]):
                f1[key] = f1_score(
                    pooled[0],
                    pooled[1],
                    labels=range(len(class_names)),
                    average=None,
                    zero_division=0,
                )
                accuracy[key] = float(np.mean(pooled[0] == pooled[1]))
        if baseline not in f1 or best not in f1:
            rows.append({**row, "note": "no saved test predictions"})
            continue
        row.update(test_accuracy_alpha0=accuracy[baseline], test_accuracy_best=accuracy[best])
        worst = int(np.argmin(f1[baseline]))
        row.update(
            delta_test_accuracy=row["test_accuracy_best"] - row["test_accuracy_alpha0"],
            worst_class_alpha0=class_names[worst],
            worst_class_f1_alpha0=float(f1[baseline][worst]),
            worst_class_f1_best=float(f1[best][worst]),
            delta_worst_class_f1=float(f1[best][worst] - f1[baseline][worst]),
        )
        if best == baseline:
            rows.append({**row, "note": "alpha 0 is already the best by validation"})
            continue
        correct_baseline, correct_best = correct_vectors(run_dir, groups, [baseline, best])
        if correct_baseline is None or correct_best is None:
            rows.append({**row, "note": "seed counts differ: no paired test"})
            continue
        row["p_mcnemar"] = stats.mcnemar_exact(correct_baseline, correct_best)
        row["significant"] = bool(row["p_mcnemar"] < 0.05)
        rows.append({**row, "note": ""})
    return pd.DataFrame(rows, columns=ALPHA_EFFECT_COLUMNS)
