"""Ranked tables built from the cell records: the leaderboard, and `build_tables`, which writes it
with the per-model tables of `alpha_tables.py` (best alpha, alpha sweep, alpha effect).

Ranking uses validation accuracy (ties: validation macro-F1) and nothing else: the test split
is shown, with its uncertainty, but never used to pick a winner. Failed cells stay in the
leaderboard as unranked rows at the bottom, so a reader sees what is missing; a record file that
does not validate is no row at all (its figures cannot be trusted): `build_tables` names it in a
warning. In a K-fold run
(`--folds K`) a row's scores are means over its folds, with their spread across folds.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from tabulate import tabulate

from benchmark.deployment.run_costs import cost_columns, deployment_frame
from benchmark.io import write_csv_atomic, write_text_atomic
from benchmark.output import to_stderr, warn
from benchmark.results import stats
from benchmark.results.alpha_tables import alpha_effect, alpha_sweep, best_per_model
from benchmark.results.columns import leaderboard_columns
from benchmark.results.folds import fold_aggregate, fold_status, uses_folds
from benchmark.results.per_source import (
    run_sources,
    source_accuracies,
    source_column,
    source_names,
)
from benchmark.results.pooled_predictions import correct_vectors, split_predictions
from benchmark.results.probe_table import probe_table, probe_warnings, with_probe_columns
from benchmark.results.robustness import (
    robustness_frame,
    variant_frames,
    with_robustness_columns,
)
from benchmark.run.calibrated import with_calibration
from benchmark.run.records import (
    NOT_RANKED,
    UNREADABLE,
    CellRecord,
    load_predictions,
    load_probes,
    load_records,
)
from benchmark.run.split_files import check_splits, split_fingerprints

# Leaderboard column -> (split or None for the top level, key) of a record's `calibration`.
CALIBRATION_COLUMNS = {
    "test_ece": ("test", "ece"),
    "test_brier": ("test", "brier"),
    "temperature": (None, "temperature"),
    "test_ece_scaled": ("test", "ece_scaled"),
}


def _group_row(
    run_dir: Path,
    model: str,
    alpha: float,
    group: list[CellRecord],
    sources: dict[str, str] | None = None,
) -> dict:
    """One leaderboard row for a model x alpha: means over seeds (and folds), intervals from the
    predictions."""
    ok = [r for r in group if r.ok]
    folds = uses_folds(group)
    row: dict = {
        "model": model,
        "alpha": alpha,
        "seeds": len({r.seed for r in ok}) if folds else len(ok),
    }
    if not ok:
        row.update(status="failed", error="; ".join(sorted({r.error for r in group}))[:300])
        return row

    def metric(split: str, key: str) -> np.ndarray:
        return np.array([r.split_metrics(split).get(key, np.nan) for r in ok], dtype=float)

    num_classes = len(ok[0].class_names)
    for split in ("val", "test"):
        for key in ("accuracy", "macro_f1", "weighted_f1"):
            row[f"{split}_{key}"] = float(np.nanmean(metric(split, key)))
    seed = int(ok[0].seed)
    for split, key in (("val", "accuracy"), ("test", "accuracy"), ("test", "macro_f1")):
        pooled = split_predictions(run_dir, ok, split)
        if pooled is not None and len(pooled[0]):
            low, high = stats.bootstrap_ci(
                pooled[0], pooled[1], metric=key, seed=seed, num_classes=num_classes
            )
            row[f"{split}_{key}_ci"] = stats.format_ci(low, high)
    row.update(source_accuracies(run_dir, ok, sources or {}))  # merged sources: one column each
    for column, (
        split,
        key,
    ) in CALIBRATION_COLUMNS.items():  # means over seeds, like the accuracies
        figures = [(r.calibration.get(split) or {}) if split else r.calibration for r in ok]
        values = [figure.get(key) for figure in figures]
        values = [float(v) for v in values if v is not None]
        if values:
            row[column] = float(np.mean(values))
    # Means over folds replace the means over cells; seed spread is of each seed's mean over folds.
    if folds:
        row.update(fold_aggregate(ok))
    elif len(ok) > 1:
        for split in ("val", "test"):
            row[f"{split}_accuracy_std"] = float(np.std(metric(split, "accuracy"), ddof=1))
        _, _, low, high = stats.t_interval(metric("test", "accuracy"))
        row["test_accuracy_seed_ci"] = stats.format_ci(low, high)
    test_pooled = split_predictions(run_dir, ok, "test")
    if test_pooled is not None and len(test_pooled[0]):
        worst, f1 = stats.worst_class_f1(test_pooled[0], test_pooled[1], num_classes)
        row.update(worst_class=ok[0].class_names[worst], worst_class_f1=float(f1))
    phases = ok[0].phases
    row.update(
        # Late fusion trains nothing and has no network of its own: no parameters or training time.
        params_m=ok[0].params["total"] / 1e6 if ok[0].params else None,
        train_seconds=float(np.mean([r.timings["train_seconds"] for r in ok]))
        if ok[0].timings
        else None,
        epochs_phase1=phases[0]["epochs"] if phases else None,
        epochs_phase2=phases[1]["epochs"] if len(phases) > 1 else 0,
        tta=int(ok[0].tta),
        weights=ok[0].weights,
        status="ok" if len(ok) == len(group) else f"{len(group) - len(ok)} seed(s) failed",
        error="",
    )
    if folds:
        row["status"] = fold_status(ok, group)
    return row


def leaderboard(run_dir: Path, records: list[CellRecord] | None = None) -> pd.DataFrame:
    """The ranked model x alpha table (see `leaderboard_columns`).

    Calibration of old records comes from their predictions. Record files that did not validate
    (`UNREADABLE` stand-ins) are left out; failed rows have no rank.
    """
    records = load_records(run_dir) if records is None else records
    records = [with_calibration(run_dir, r) for r in records if r.status != UNREADABLE]
    sources = run_sources(run_dir)
    columns = leaderboard_columns(
        uses_folds(records), [source_column(name) for name in source_names(sources)]
    )
    groups: dict[tuple, list[CellRecord]] = {}
    for record in records:
        groups.setdefault((record.model, float(record.alpha)), []).append(record)
    rows = [
        _group_row(run_dir, model, alpha, group, sources)
        for (model, alpha), group in groups.items()
    ]
    frame = pd.DataFrame(rows, columns=[c for c in columns if c != "rank"])
    frame["_ok"] = ~frame["status"].isin(NOT_RANKED)
    frame["_first_cell"] = [
        min(r.index for r in groups[key]) for key in zip(frame["model"], frame["alpha"])
    ]
    # Ties go to the earlier grid cell, as `records.validation_rank_key` resolves them for single
    # cells.
    frame = frame.sort_values(
        ["_ok", "val_accuracy", "val_macro_f1", "_first_cell"],
        ascending=[False, False, False, True],
        na_position="last",
    )
    ranked = int(frame["_ok"].sum())
    frame = frame.drop(columns=["_ok", "_first_cell"]).reset_index(drop=True)
    ranks = [*range(1, ranked + 1), *[pd.NA] * (len(frame) - ranked)]  # failed rows have no rank
    frame.insert(0, "rank", pd.array(ranks, dtype="Int64"))
    keys = list(zip(frame["model"], frame["alpha"]))
    if len(frame) and frame.loc[0, "status"] not in NOT_RANKED:
        vectors = correct_vectors(run_dir, groups, keys)
        if vectors[0] is None:  # nothing to pair the other rows' test images with
            missing = [
                r.predictions_file or f"{r.cell_id} (none recorded)"
                for r in groups[keys[0]]
                if r.ok and load_predictions(run_dir, r) is None
            ]
            why = (
                f"its test predictions are missing ({', '.join(missing)})"
                if missing
                else "its seeds cover fewer test images than another row's"
            )
            warn(
                f"the best row ({keys[0][0]}, alpha {keys[0][1]:g}) cannot be compared: "
                f"{why}; p_vs_best and tied_with_best are left blank"
            )
        else:
            comparisons = stats.compare_to_best(vectors, best_index=0)
            frame["p_vs_best"] = [p for p, _ in comparisons]
            frame["tied_with_best"] = [tied for _, tied in comparisons]
    return frame[columns]


def to_markdown(frame: pd.DataFrame) -> str:
    """GitHub markdown, four decimals, blanks for missing values, alpha written as given (0.5, not
    0.5000)."""
    shown = frame.astype(object).where(frame.notna(), "")
    keep_as_text = []
    for index, column in enumerate(frame.columns):
        if (
            column.endswith("alpha") and not frame.empty
        ):  # tabulate rejects column options on an empty table
            shown[column] = [f"{a:g}" if pd.notna(a) else "" for a in frame[column]]
            keep_as_text.append(index)
    return (
        tabulate(
            shown.values.tolist(),
            headers=list(frame.columns),
            tablefmt="github",
            floatfmt=".4f",
            disable_numparse=keep_as_text,
        )
        + "\n"
    )


def with_cost_columns(board: pd.DataFrame, cost: pd.DataFrame) -> pd.DataFrame:
    """Adds each model's deployment figures (one profile per model: cost does not depend on alpha)
    after `params_m`."""
    columns = [c for c in cost.columns if c != "model"]
    merged = (
        board.merge(cost, on="model", how="left")
        if not cost.empty
        else board.assign(**{c: np.nan for c in columns})
    )
    order = list(board.columns)
    at = order.index("params_m") + 1
    return merged[order[:at] + columns + order[at:]]


def write_tables(run_dir: Path, tables: dict[str, pd.DataFrame]) -> None:
    """Writes `<name>.csv` and `<name>.md` for each table, atomically."""
    for name, frame in tables.items():
        write_csv_atomic(run_dir / f"{name}.csv", frame)
        write_text_atomic(run_dir / f"{name}.md", to_markdown(frame))


def build_tables(run_dir: Path) -> dict[str, pd.DataFrame]:
    """All tables of a run folder, rebuilt from its records (what `report RUN_DIR` does).

    Refuses a folder whose finished cells come from different splits; names every record file that
    does not validate on stderr, one line each, and leaves it out of every table.
    """
    records = load_records(run_dir)
    check_splits(records, split_fingerprints(run_dir))
    for record in records:
        if record.status == UNREADABLE:
            warn(
                f"cells/{record.error}; left out of the tables (a run whose grid holds "
                "this cell trains it again)"
            )
    records = [record for record in records if record.status != UNREADABLE]
    board = with_cost_columns(leaderboard(run_dir, records), cost_columns(run_dir))
    probes = probe_table(load_probes(run_dir), board)  # each pretrained backbone's linear probe
    board = with_probe_columns(board, probes)
    for line in probe_warnings(board):
        to_stderr(line)
    board = with_robustness_columns(board, robustness_frame(run_dir), variant_frames(run_dir))
    tables = {
        "leaderboard": board,
        "best_per_model": best_per_model(board),
        "alpha_sweep": alpha_sweep(board),
        "alpha_effect": alpha_effect(run_dir, board, records),
    }
    if not probes.empty:
        tables["linear_probe"] = probes
    deployment = deployment_frame(run_dir)
    if not deployment.empty:
        tables["deployment"] = deployment
    write_tables(run_dir, tables)
    return tables
