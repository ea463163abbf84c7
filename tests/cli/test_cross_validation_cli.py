"""`--folds 2` through the real command line: fold split files, fold cell ids, the aggregate
leaderboard, the report, and a resume that trains nothing."""

import json

import pandas as pd
import pytest
from cli_helpers import TINY_FLAGS, make_images, run_cli

FOLD_FLAGS = tuple(a if a != "0,1" else "0" for a in TINY_FLAGS) + (
    "--folds",
    "2",
)  # one alpha: two cells


@pytest.fixture(scope="module")
def fold_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("folds")
    data = make_images(root / "data")
    run_dir = root / "run"
    done = run_cli(*FOLD_FLAGS, "--data", str(data), "--output", str(run_dir))
    assert done.returncode == 0, done.stdout + done.stderr
    return data, run_dir


def test_a_two_fold_run_writes_fold_splits_fold_cells_and_the_aggregate(fold_run):
    _, run_dir = fold_run
    folds = [pd.read_csv(run_dir / "splits" / f"fold{k}.csv") for k in (0, 1)]
    assert not (run_dir / "splits.csv").exists()
    tested = [set(f.loc[f["split"] == "test", "path"]) for f in folds]
    assert not tested[0] & tested[1] and len(tested[0] | tested[1]) == 30  # every image scored once
    records = {p.stem: json.loads(p.read_text()) for p in (run_dir / "cells").glob("*.json")}
    assert sorted(records) == [
        "simple_cnn__alpha0__seed0__fold0",
        "simple_cnn__alpha0__seed0__fold1",
    ]
    for k in (0, 1):
        record = records[f"simple_cnn__alpha0__seed0__fold{k}"]
        assert record["fold"] == k and record["status"] == "ok"
        scored = pd.read_csv(run_dir / record["predictions_file"])
        assert set(scored.loc[scored["split"] == "test", "path"]) == tested[k]
    board = pd.read_csv(run_dir / "leaderboard.csv")
    row = board.iloc[0]
    assert len(board) == 1 and row["folds"] == 2 and row["seeds"] == 1 and row["status"] == "ok"
    val = [
        records[f"simple_cnn__alpha0__seed0__fold{k}"]["metrics"]["val"]["accuracy"] for k in (0, 1)
    ]
    assert row["val_accuracy"] == pytest.approx(sum(val) / 2, abs=1e-9)
    assert row["val_accuracy_fold_std"] == pytest.approx(abs(val[0] - val[1]) / 2**0.5, abs=1e-9)
    for column in (
        "val_accuracy_fold_ci",
        "val_macro_f1_fold_ci",
        "test_accuracy_fold_ci",
        "test_macro_f1_fold_ci",
    ):
        assert isinstance(row[column], str) and "-" in row[column], column
    assert "## Cross-validation (2 folds)" in (run_dir / "report.md").read_text()
    assert (
        run_dir / "deployment" / "simple_cnn.json"
    ).is_file()  # profiled on its best cell's own fold


def test_a_rerun_of_a_fold_run_trains_nothing(fold_run):
    data, run_dir = fold_run
    before = {p.name: p.read_bytes() for p in (run_dir / "splits").iterdir()}
    again = run_cli(*FOLD_FLAGS, "--data", str(data), "--output", str(run_dir), "--no-profile")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "resuming: 2 of 2 cells already finished, 0 to run" in again.stdout
    assert " start " not in again.stdout
    assert {p.name: p.read_bytes() for p in (run_dir / "splits").iterdir()} == before


def test_folds_with_a_split_file_or_on_a_one_split_folder_is_one_line(fold_run, tmp_path):
    data, run_dir = fold_run
    done = run_cli(
        *FOLD_FLAGS,
        "--data",
        str(data),
        "--split-file",
        str(tmp_path / "splits.csv"),
        "--output",
        str(tmp_path / "x"),
    )
    assert done.returncode == 2 and done.stderr.strip().count("\n") == 0
    assert "--split-file and --folds exclude each other" in done.stderr
    plain = run_cli(
        *TINY_FLAGS, "--data", str(data), "--output", str(run_dir), "--dry-run", "--force"
    )
    assert plain.returncode == 2 and "add --folds 2 to resume it" in plain.stderr


def test_dry_run_lists_the_fold_cells_and_each_folds_counts(fold_run, tmp_path):
    data, _ = fold_run
    done = run_cli(*FOLD_FLAGS, "--data", str(data), "--output", str(tmp_path / "new"), "--dry-run")
    assert done.returncode == 0, done.stderr
    assert "grid: 2 cells = 1 models x 1 alphas x 1 seeds x 2 folds" in done.stdout
    assert "fold 1:" in done.stdout and "the test folds partition the images" in done.stdout
    assert not (tmp_path / "new").exists()
