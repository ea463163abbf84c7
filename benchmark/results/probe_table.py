"""The linear-probe table and the leaderboard's comparison with it (`probe_val_accuracy`,
`beats_probe`).

One row per pretrained model (`run.probe`: a logistic regression on the frozen backbone's pooled
features, fitted once per model, not per alpha). The leaderboard's fine-tuned rows gain their own
backbone's probe validation accuracy and `beats_probe`: True when the row's validation accuracy is
above it, False when it is not (the training bought nothing over one linear layer on the ImageNet
features), blank when the model has no probe. Like the ranking, the comparison is on validation:
the test figures are shown, never used to judge.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from benchmark.run.records import NOT_RANKED, ProbeRecord

PROBE_COLUMNS = [
    "model",
    "recipe",
    "folds",
    "weights",
    "image_size",
    "C",
    "class_weight",
    "val_accuracy",
    "val_macro_f1",
    "test_accuracy",
    "test_macro_f1",
    "best_fine_tune_alpha",
    "best_fine_tune_val_accuracy",
    "fine_tune_beats_probe",
    "status",
    "error",
]


def probe_table(probes: list[ProbeRecord], board: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per probed model: its probe's figures (means over folds in a K-fold run), beside the
    model's best fine-tuned row of `board` (the ranked leaderboard) by validation."""
    groups: dict[str, list[ProbeRecord]] = {}
    for probe in probes:
        groups.setdefault(probe.model, []).append(probe)
    rows = []
    for model, group in groups.items():
        ok = [p for p in group if p.ok]
        row = {"model": model, "recipe": "linear_probe", "folds": len(ok)}
        if not ok:
            rows.append({**row, "status": "failed", "error": group[0].error})
            continue

        def mean(split: str, key: str, probes=ok) -> float:
            return float(np.mean([p.metrics.get(split, {}).get(key, np.nan) for p in probes]))

        row.update(
            weights=ok[0].weights,
            image_size=ok[0].image_size,
            C=ok[0].C if len({p.C for p in ok}) == 1 else None,
            class_weight=" | ".join(sorted({p.class_weight for p in ok})),
            val_accuracy=mean("val", "accuracy"),
            val_macro_f1=mean("val", "macro_f1"),
            test_accuracy=mean("test", "accuracy"),
            test_macro_f1=mean("test", "macro_f1"),
            status="ok" if len(ok) == len(group) else f"{len(group) - len(ok)} fold(s) failed",
            error="",
        )
        tuned = _ranked(board)
        tuned = tuned[tuned["model"] == model] if tuned is not None else pd.DataFrame()
        if not tuned.empty:
            best = tuned.iloc[0]
            row.update(
                best_fine_tune_alpha=best["alpha"],
                best_fine_tune_val_accuracy=best["val_accuracy"],
                fine_tune_beats_probe=bool(best["val_accuracy"] > row["val_accuracy"]),
            )
        rows.append(row)
    return pd.DataFrame(rows, columns=PROBE_COLUMNS)


def _ranked(board: pd.DataFrame | None) -> pd.DataFrame | None:
    if board is None or board.empty:
        return None
    return board[~board["status"].isin(NOT_RANKED)]


def with_probe_columns(board: pd.DataFrame, probes: pd.DataFrame) -> pd.DataFrame:
    """Fills the leaderboard's `probe_val_accuracy` and `beats_probe` from the probe table."""
    board = board.copy()
    ok = probes[probes["val_accuracy"].notna()]  # failed probes have none
    probe_val = dict(zip(ok["model"], ok["val_accuracy"]))
    board["probe_val_accuracy"] = board["model"].map(probe_val).astype(float)
    ranked = ~board["status"].isin(NOT_RANKED) & board["probe_val_accuracy"].notna()
    beats = board["val_accuracy"] > board["probe_val_accuracy"]
    board["beats_probe"] = pd.array(
        [bool(b) if r else pd.NA for b, r in zip(beats, ranked)], dtype="boolean"
    )
    return board


def probe_warnings(board: pd.DataFrame) -> list[str]:
    """One line per fine-tuned row that does not beat its own backbone's probe on validation."""
    if "beats_probe" not in board:
        return []
    losing = board[board["beats_probe"].fillna(True).eq(False)]
    return [
        f"warning: {model} (alpha {alpha:g}) does not beat its backbone's linear probe on "
        f"validation ({val:.4f} vs {probe:.4f}): training it did no better than a logistic "
        "regression on its frozen features"
        for model, alpha, val, probe in zip(
            losing["model"], losing["alpha"], losing["val_accuracy"], losing["probe_val_accuracy"]
        )
    ]
