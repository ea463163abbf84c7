"""The probe table and the leaderboard's `beats_probe`, from hand-made probe records: folds are
averaged, the comparison is on validation, and rows without a probe (or failed) stay blank."""

import pandas as pd

from benchmark.results.probe_report import probe_section
from benchmark.results.probe_table import probe_table, with_probe_columns
from benchmark.run.records import ProbeRecord


def probe(model, fold, val, test, status="ok") -> ProbeRecord:
    metrics = {"val": {"accuracy": val, "macro_f1": val}, "test": {"accuracy": test}}
    return ProbeRecord(model=model, fold=fold, status=status, C=0.1, class_weight="none",
                       metrics=metrics if status == "ok" else {})  # fmt: skip


def test_beats_probe_compares_validation_with_the_models_own_probe_and_blanks_the_rest():
    board = pd.DataFrame(
        {
            "model": ["lite", "lite", "cnn", "lite"],
            "alpha": [0.0, 1.0, 0.0, 0.5],
            # alpha 1 has the better test accuracy but loses on validation: validation decides
            "val_accuracy": [0.90, 0.80, 0.70, None],
            "test_accuracy": [0.80, 0.99, 0.70, None],
            "status": ["ok", "ok", "ok", "failed"],
        }
    )
    probes = probe_table([probe("lite", 0, 0.84, 0.70), probe("lite", 1, 0.86, 0.72)], board)
    (row,) = probes.to_dict("records")
    assert row["folds"] == 2 and row["val_accuracy"] == 0.85 and row["test_accuracy"] == 0.71
    assert row["best_fine_tune_alpha"] == 0.0 and row["fine_tune_beats_probe"] is True
    shown = with_probe_columns(board, probes)
    assert shown["probe_val_accuracy"].tolist()[:2] == [0.85, 0.85]
    assert shown["beats_probe"].tolist() == [True, False, pd.NA, pd.NA]
    section = probe_section(probes, shown)
    assert "## Linear probe" in section
    assert "warning: lite (alpha 1) does not beat its backbone's linear probe" in section
    assert "alpha 0)" not in section


def test_a_failed_probe_is_a_row_without_figures_and_judges_nothing():
    board = pd.DataFrame(
        {"model": ["lite"], "alpha": [0.0], "val_accuracy": [0.5], "status": ["ok"]}
    )
    probes = probe_table([probe("lite", None, 0, 0, status="failed")], board)
    assert probes["status"].tolist() == ["failed"] and probes["val_accuracy"].isna().all()
    assert with_probe_columns(board, probes)["beats_probe"].isna().all()
