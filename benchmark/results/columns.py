"""The leaderboard's columns, named in one place: the full table and the views that show part of it.

`leaderboard.csv`/`.md` have every column; `report.md` and the console show an excerpt. The views
are named here beside the table, and a test checks them against it, so renaming or dropping a
column cannot silently thin a view out (`view` keeps only the columns a given board has, as the
fold columns exist only in a K-fold run).
"""

from __future__ import annotations

from benchmark.deployment.run_costs import COST_COLUMNS
from benchmark.results.folds import FOLD_COLUMNS

# A merged run's per-source test accuracies are named at run time: this prefix + the source's name
# (`per_source.source_column`), placed after `test_accuracy_ci`. No fixed column starts with it.
SOURCE_PREFIX = "test_accuracy_on_"
# The full table, before `tables.with_cost_columns` adds `COST_COLUMNS` after `params_m` (and a
# K-fold run `folds` and `FOLD_COLUMNS`: `leaderboard_columns`).
LEADERBOARD_COLUMNS = [
    "rank",
    "model",
    "alpha",
    "seeds",
    "val_accuracy",
    "val_accuracy_ci",
    "val_macro_f1",
    "test_accuracy",
    "test_accuracy_ci",
    "test_macro_f1",
    "test_macro_f1_ci",
    "test_weighted_f1",
    "test_ece",
    "test_brier",
    "temperature",
    "test_ece_scaled",
    "p_vs_best",
    "tied_with_best",
    "probe_val_accuracy",  # the model's linear probe (`results.probe_table`)
    "beats_probe",
    "worst_class",
    "worst_class_f1",
    "corrupt_accuracy",  # corruption robustness (results/robustness.py)
    "relative_robustness",
    "bn_clean_accuracy",  # the same after test-time BatchNorm adaptation (`--adapt-bn`)
    "bn_corrupt_accuracy",
    "tta_clean_accuracy",  # the same with the softmax averaged over test-time views (`--tta N`)
    "tta_corrupt_accuracy",
    "val_accuracy_std",
    "test_accuracy_std",
    "test_accuracy_seed_ci",
    "params_m",
    "train_seconds",
    "epochs_phase1",
    "epochs_phase2",
    "tta",
    "weights",
    "status",
    "error",
]
# The inference-cost columns the report plots accuracy against and shows in its excerpt.
REPORT_COST_COLUMNS = ("infer_ms_b1", "gflops")
# The report's excerpt, ordered for reading: each fold interval beside its metric, calibration
# after the worst class.
REPORT_COLUMNS = (
    "rank",
    "model",
    "alpha",
    "seeds",
    "folds",
    "val_accuracy",
    "val_accuracy_ci",
    "val_accuracy_fold_ci",
    "val_macro_f1",
    "test_accuracy",
    "test_accuracy_ci",
    "test_accuracy_fold_ci",
    "test_macro_f1",
    "test_macro_f1_ci",
    "test_macro_f1_fold_ci",
    "tied_with_best",
    "p_vs_best",
    "beats_probe",
    "worst_class",
    "worst_class_f1",
    "corrupt_accuracy",
    "relative_robustness",
    "test_ece",
    "temperature",
    "test_ece_scaled",
    "params_m",
    *REPORT_COST_COLUMNS,
    "train_seconds",
    "tta",
    "status",
)
# The headline columns printed after a run or `report` (the files have them all).
CONSOLE_COLUMNS = (
    "rank",
    "model",
    "alpha",
    "val_accuracy",
    "val_macro_f1",
    "test_accuracy",
    "test_accuracy_ci",
    "test_macro_f1",
    "tied_with_best",
    "infer_ms_b1",
    "status",
)


def leaderboard_columns(with_folds: bool, source_columns: list[str] | None = None) -> list[str]:
    """The leaderboard's columns before the cost columns; a K-fold run adds `folds` after `seeds`
    and the fold statistics after the seed ones; a run of merged sources its per-source test
    accuracies (`per_source.source_column`) after `test_accuracy_ci`."""
    columns = list(LEADERBOARD_COLUMNS)
    if source_columns:
        at = columns.index("test_accuracy_ci") + 1
        columns = columns[:at] + list(source_columns) + columns[at:]
    if not with_folds:
        return columns
    columns.insert(columns.index("seeds") + 1, "folds")
    at = columns.index("test_accuracy_seed_ci") + 1
    return columns[:at] + FOLD_COLUMNS + columns[at:]


def view(columns, shown: tuple[str, ...]) -> list[str]:
    """The columns of a view that a board has, in the view's order; a view showing
    `test_accuracy_ci` shows a merged run's per-source accuracies after it, as the board does."""
    present = set(columns)
    picked = []
    for column in shown:
        picked += [column] if column in present else []
        if column == "test_accuracy_ci":
            picked += [c for c in columns if str(c).startswith(SOURCE_PREFIX)]
    return picked


def unknown_columns(shown: tuple[str, ...]) -> list[str]:
    """The columns a view names that no leaderboard has (a test keeps this empty for every view)."""
    known = {*leaderboard_columns(True), *COST_COLUMNS}
    return [column for column in shown if column not in known]
