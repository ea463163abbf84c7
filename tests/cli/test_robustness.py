"""Corruption robustness through the real command line: after each cell trains, and `robustness RUN`
on the finished run (one tiny run trained once for the module)."""

import shutil

import pandas as pd
import pytest
from cli_helpers import TINY_FLAGS, make_images, one_line_error, run_cli

from data_pipeline.corruptions import CORRUPTIONS

COLUMNS = ["model", "alpha", "seed", "corruption", "severity", "accuracy", "macro_f1", "n"]
CELLS = ["simple_cnn__alpha0__seed0", "simple_cnn__alpha1__seed0"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """simple_cnn at 32 px x alpha 0, 1 on three classes, every cell's model saved, robustness on
    (the default)."""
    root = tmp_path_factory.mktemp("robustness")
    run_dir = root / "run"
    done = run_cli(
        *TINY_FLAGS,
        "--data",
        str(make_images(root / "data")),
        "--output",
        str(run_dir),
        "--save-models",
        "all",
        "--no-profile",
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return run_dir, done.stdout


def assert_board_columns(run_dir, rows, prefix):
    """The leaderboard's `<prefix>clean_accuracy` and `<prefix>corrupt_accuracy` per alpha are
    the clean row and the mean of the corrupted rows of `rows` (a variant's table)."""
    board = pd.read_csv(run_dir / "leaderboard.csv").set_index("alpha")
    for alpha, part in rows.groupby("alpha"):
        corrupted = part.loc[part["corruption"] != "none", "accuracy"].mean()
        clean = part.loc[part["corruption"] == "none", "accuracy"].iloc[0]
        assert board.loc[alpha, f"{prefix}corrupt_accuracy"] == pytest.approx(corrupted)
        assert board.loc[alpha, f"{prefix}clean_accuracy"] == pytest.approx(clean)


def test_every_cell_is_scored_after_it_trains(trained):
    run_dir, stdout = trained
    table = pd.read_csv(run_dir / "robustness.csv")
    assert list(table.columns) == ["cell_id", *COLUMNS]
    assert sorted(set(table["cell_id"])) == CELLS
    # 1 test image a class: clean on all 3, then each corruption at 3 rotated severities, 1 each
    per_cell = 1 + len(CORRUPTIONS) * 3
    assert table.groupby("cell_id").size().tolist() == [per_cell, per_cell]
    assert set(table["corruption"]) == {"none", *CORRUPTIONS}
    assert set(table["severity"]) == {0, 1, 2, 3, 4, 5}
    clean = table["corruption"] == "none"
    assert (table.loc[clean, "n"] == 3).all() and (table.loc[~clean, "n"] == 1).all()
    assert table["accuracy"].between(0, 1).all()
    assert all(f"{cell}: corrupted accuracy" in stdout for cell in CELLS)
    board = pd.read_csv(run_dir / "leaderboard.csv").set_index("alpha")
    for alpha, part in table.groupby("alpha"):
        corrupted = part.loc[part["corruption"] != "none", "accuracy"].mean()
        clean = part.loc[part["corruption"] == "none", "accuracy"].iloc[0]
        assert board.loc[alpha, "corrupt_accuracy"] == pytest.approx(corrupted)
        assert board.loc[alpha, "relative_robustness"] == pytest.approx(corrupted / clean)
    report = (run_dir / "report.md").read_text()
    assert "## Corruption robustness" in report
    assert "(plots/robustness_severity.png)" in report
    assert (run_dir / "plots" / "robustness_severity.png").is_file()


def test_the_subcommand_scores_only_missing_cells_and_agrees_with_the_hook(trained):
    run_dir, _ = trained
    after_training = pd.read_csv(run_dir / "robustness.csv")
    (run_dir / "robustness" / f"{CELLS[1]}.csv").unlink()
    (run_dir / "robustness.csv").unlink()
    done = run_cli("robustness", str(run_dir))
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{CELLS[0]}: already scored" in done.stdout
    assert f"{CELLS[1]}: corrupted accuracy" in done.stdout
    # The saved model on the same seeded corruptions: exactly the figures of the in-memory model.
    pd.testing.assert_frame_equal(pd.read_csv(run_dir / "robustness.csv"), after_training)
    board = pd.read_csv(run_dir / "leaderboard.csv")
    assert board[["corrupt_accuracy", "relative_robustness"]].notna().all().all()


def test_adapt_bn_scores_every_set_again_beside_the_plain_rows(trained):
    run_dir, _ = trained
    plain = pd.read_csv(run_dir / "robustness.csv")
    done = run_cli("robustness", str(run_dir), "--adapt-bn")
    assert done.returncode == 0, done.stdout + done.stderr
    assert all(f"{cell}: corrupted accuracy" in done.stdout for cell in CELLS)
    assert "BatchNorm adapted to each set" in done.stdout
    adapted = pd.read_csv(run_dir / "robustness_bn.csv")
    pd.testing.assert_frame_equal(pd.read_csv(run_dir / "robustness.csv"), plain)
    key = ["cell_id", "corruption", "severity", "n"]
    pd.testing.assert_frame_equal(adapted[key], plain[key])
    assert sorted(p.stem for p in (run_dir / "robustness" / "bn_adapted").glob("*.csv")) == CELLS
    assert_board_columns(run_dir, adapted, "bn_")
    assert "`bn_*`" in (run_dir / "report.md").read_text()
    again = run_cli("robustness", str(run_dir), "--adapt-bn")
    assert again.returncode == 0 and f"{CELLS[0]}: already scored" in again.stdout


def test_tta_scores_every_set_again_with_one_view_count_per_folder(trained):
    run_dir, _ = trained
    plain = pd.read_csv(run_dir / "robustness.csv")
    for flags, wrong in (
        (["--tta", "1"], "--tta must be 2 to 8"),
        (["--tta", "2", "--adapt-bn"], "pass one at a time"),
    ):
        line = one_line_error(run_cli("robustness", str(run_dir), *flags))
        assert wrong in line
    assert not (run_dir / "robustness_tta.csv").exists()  # nothing written before a refusal
    done = run_cli("robustness", str(run_dir), "--tta", "2")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 views" in done.stdout
    tta = pd.read_csv(run_dir / "robustness_tta.csv")
    pd.testing.assert_frame_equal(pd.read_csv(run_dir / "robustness.csv"), plain)
    key = ["cell_id", "corruption", "severity", "n"]
    pd.testing.assert_frame_equal(tta[key], plain[key])
    assert_board_columns(run_dir, tta, "tta_")
    assert "`tta_*`" in (run_dir / "report.md").read_text()
    # Another view count would mix two means in one column: refused, the rows kept.
    line = one_line_error(run_cli("robustness", str(run_dir), "--tta", "4"))
    assert "scored with --tta 2" in line and "--force" in line
    pd.testing.assert_frame_equal(pd.read_csv(run_dir / "robustness_tta.csv"), tta)


def test_robustness_on_a_folder_that_is_not_a_run_is_one_line(tmp_path):
    line = one_line_error(run_cli("robustness", str(tmp_path)))
    assert repr(str(tmp_path)) in line and "not a run folder" in line
    assert not (tmp_path / "robustness.csv").exists()


def test_a_run_without_saved_models_is_one_line(trained, tmp_path):
    run_dir, _ = trained
    copy = tmp_path / "run"
    shutil.copytree(run_dir / "cells", copy / "cells")
    shutil.copy(run_dir / "splits.csv", copy / "splits.csv")
    line = one_line_error(run_cli("robustness", str(copy)))
    assert "has no saved image model to score" in line and "--save-models" in line
