"""The K-fold leaderboard on hand-made records with known answers: mean, std (ddof=1) and Student-t
interval over folds for val and test accuracy and macro-F1, ranking by the mean validation
accuracy."""

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from benchmark.results.columns import LEADERBOARD_COLUMNS, leaderboard_columns
from benchmark.results.folds import FOLD_COLUMNS, fold_aggregate
from benchmark.results.tables import build_tables, leaderboard
from benchmark.run.records import CellRecord, load_records
from benchmark.training.metrics import classification_metrics

CLASSES = ["glass", "paper"]
# Student t quantile 0.975 with 2 degrees of freedom (scipy.stats.t.ppf(0.975, 2))
T_975_2 = 4.302652729911275
PER_SPLIT = 10


def predictions(split: str, fold: int, correct: int) -> tuple[pd.DataFrame, dict]:
    """Ten images of one split (labels alternate), the first `correct` of them predicted right."""
    y_true = np.arange(PER_SPLIT) % 2
    y_pred = np.where(np.arange(PER_SPLIT) < correct, y_true, 1 - y_true)
    probs = np.where(np.eye(2)[y_pred] == 1, 0.9, 0.1)
    paths = [
        f"/data/{split}/fold{fold}_{i}.png" for i in range(PER_SPLIT)
    ]  # each fold tests its own images
    frame = pd.DataFrame(
        {
            "split": split,
            "path": paths,
            "true": y_true,
            "pred": y_pred,
            "prob_glass": probs[:, 0],
            "prob_paper": probs[:, 1],
        }
    )
    return frame, classification_metrics(y_true, probs, CLASSES)


def write_cell(
    run_dir: Path,
    model: str,
    fold: int,
    val_correct: int,
    test_correct: int,
    *,
    index: int,
    seed: int = 0,
    status: str = "ok",
    folds: int = 3,
) -> CellRecord:
    cell_id = f"{model}__alpha0__seed{seed}__fold{fold}"
    val, val_metrics = predictions("val", fold, val_correct)
    test, test_metrics = predictions("test", fold, test_correct)
    (run_dir / "cells").mkdir(parents=True, exist_ok=True)
    pd.concat([val, test]).to_csv(run_dir / "cells" / f"{cell_id}.predictions.csv", index=False)
    record = CellRecord(
        cell_id=cell_id,
        index=index,
        model=model,
        alpha=0.0,
        seed=seed,
        fold=fold,
        status=status,
        error="" if status == "ok" else "boom",
        class_names=CLASSES,
        metrics={"val": val_metrics, "test": test_metrics} if status == "ok" else {},
        predictions_file=f"cells/{cell_id}.predictions.csv",
        config={"folds": folds},
        phases=[{"name": "head", "epochs": 1}],
        params={"total": 1000},
        timings={"train_seconds": 1.0},
    )
    (run_dir / "cells" / f"{cell_id}.json").write_text(json.dumps(record.to_json()))
    return record


@pytest.fixture
def run_dir(tmp_path):
    """Model `a`: val accuracy 0.8, 0.9, 1.0 and test 0.7, 0.8, 0.9 over three folds; model `b`: 0.8
    everywhere."""
    for fold, (val, test) in enumerate([(8, 7), (9, 8), (10, 9)]):
        write_cell(tmp_path, "a", fold, val, test, index=fold)
        write_cell(tmp_path, "b", fold, 8, 8, index=3 + fold)
    return tmp_path


def test_fold_mean_std_and_t_interval_have_the_known_values(run_dir):
    board = leaderboard(run_dir)
    a = board.set_index("model").loc["a"]
    assert list(board["model"]) == ["a", "b"]  # ranked by mean validation accuracy: 0.9 > 0.8
    assert a["folds"] == 3 and a["seeds"] == 1 and a["status"] == "ok"
    assert a["val_accuracy"] == pytest.approx(0.9) and a["test_accuracy"] == pytest.approx(0.8)
    assert a["val_accuracy_fold_std"] == pytest.approx(0.1) and a[
        "test_accuracy_fold_std"
    ] == pytest.approx(0.1)
    half = T_975_2 * 0.1 / math.sqrt(3)
    assert a["val_accuracy_fold_ci"] == f"{0.9 - half:.4f}-{0.9 + half:.4f}" == "0.6516-1.1484"
    assert a["test_accuracy_fold_ci"] == f"{0.8 - half:.4f}-{0.8 + half:.4f}"
    f1 = np.array(
        [r.split_metrics("test")["macro_f1"] for r in load_records(run_dir) if r.model == "a"]
    )
    assert a["test_macro_f1"] == pytest.approx(f1.mean())
    assert a["test_macro_f1_fold_std"] == pytest.approx(f1.std(ddof=1))
    f1_half = T_975_2 * f1.std(ddof=1) / math.sqrt(3)
    assert a["test_macro_f1_fold_ci"] == f"{f1.mean() - f1_half:.4f}-{f1.mean() + f1_half:.4f}"
    b = board.set_index("model").loc["b"]
    assert (
        b["val_accuracy_fold_std"] == pytest.approx(0)
        and b["val_accuracy_fold_ci"] == "0.8000-0.8000"
    )
    assert not pd.isna(
        b["p_vs_best"]
    )  # out-of-fold test predictions of both rows are paired image by image


def test_fold_columns_appear_only_in_a_k_fold_run(run_dir):
    columns = leaderboard_columns(True)
    assert columns[columns.index("seeds") + 1] == "folds" and set(FOLD_COLUMNS) <= set(columns)
    assert leaderboard_columns(False) == LEADERBOARD_COLUMNS
    assert list(leaderboard(run_dir).columns) == columns
    tables = build_tables(run_dir)
    assert (run_dir / "leaderboard.csv").is_file() and "val_accuracy_fold_ci" in tables[
        "leaderboard"
    ].columns
    assert list(tables["best_per_model"]["model"]) == ["a", "b"]


def test_with_seeds_each_fold_is_first_averaged_over_its_seeds(tmp_path):
    # fold 0: seeds give 0.6 and 0.8 (mean 0.7); fold 1: 0.9 and 1.0 (mean 0.95)
    for index, (fold, seed, val) in enumerate([(0, 0, 6), (0, 1, 8), (1, 0, 9), (1, 1, 10)]):
        write_cell(tmp_path, "a", fold, val, val, index=index, seed=seed, folds=2)
    row = fold_aggregate(load_records(tmp_path))
    assert row["folds"] == 2 and row["val_accuracy"] == pytest.approx(0.825)
    assert row["val_accuracy_fold_std"] == pytest.approx(np.std([0.7, 0.95], ddof=1))
    # seed spread: each seed's mean over folds, 0.75 and 0.9
    assert row["val_accuracy_std"] == pytest.approx(np.std([0.75, 0.9], ddof=1))
    board = leaderboard(tmp_path)
    assert board.loc[0, "seeds"] == 2 and board.loc[0, "folds"] == 2


def test_a_failed_fold_is_said_in_the_status(run_dir):
    write_cell(run_dir, "c", 0, 9, 9, index=6)
    write_cell(run_dir, "c", 1, 9, 9, index=7, status="failed")
    c = leaderboard(run_dir).set_index("model").loc["c"]
    assert c["status"] == "1 cell(s) failed; fold(s) 1, 2 missing: means over 1 of 3 folds"
    assert c["folds"] == 1 and pd.isna(c["val_accuracy_fold_std"])


def test_the_report_shows_the_fold_aggregate_and_the_leaders_folds(run_dir):
    from benchmark.results.report import write_report

    for fold in range(3):  # the fold files, as a K-fold run writes them
        (run_dir / "splits").mkdir(exist_ok=True)
        pd.DataFrame(
            {
                "path": [f"/data/x{fold}_{i}.png" for i in range(3)],
                "label": "glass",
                "split": ["train", "val", "test"],
                "content_hash": [f"h{fold}{i}" for i in range(3)],
                "caption": "",
            }
        ).to_csv(run_dir / "splits" / f"fold{fold}.csv", index=False)
    text = write_report(run_dir).read_text()
    assert "## Cross-validation (3 folds)" in text and "val_accuracy_fold_ci" in text
    assert (
        "0.6516-1.1484" in text
    )  # model a's validation t-interval, in both the leaderboard and the aggregate
    assert "Rank 1 (a, alpha 0) fold by fold" in text
    assert "3 images in 3 folds (`splits/fold<k>.csv`)" in text
    assert "## Best cell: `a__alpha0__seed0__fold2`" in text and "of its seeds and folds" in text
