"""Reliability round 3 (issue 30): records that do not validate, lines said twice, failed ranks.

Each test failed before its fix: a stub record crashed the tables or ranked as a finished cell,
the resume and alpha warnings printed twice, and a failed row carried a rank.
"""

import json
import logging
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from benchmark.config.run_config import RunConfig
from benchmark.results.tables import build_tables
from benchmark.run.folder import prepare_run
from benchmark.run.loop import run_grid
from benchmark.run.records import FAILED, CellRecord, predictions_path, record_path, write_record
from data_pipeline import validate_alpha

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "cli"))
from cli_helpers import make_images  # noqa: E402

TINY = dict(
    models=["simple_cnn"],
    weights="none",
    image_size=32,
    batch_size=8,
    initial_epochs=1,
    fine_tune_epochs=0,
    profile=False,
    save_models="none",
)
STUB = {"status": "ok", "cell_id": "simple_cnn__alpha0__seed0"}


@pytest.fixture
def two_cell_run(tmp_path):
    data = make_images(tmp_path / "data", per_class=8, size=32)
    return prepare_run(RunConfig(data=str(data), alphas=[0.0, 1.0], **TINY), tmp_path / "run")


def finished(ctx, cell, val_accuracy=0.5) -> CellRecord:
    """A complete ok record of `cell` with its predictions file (every test image right)."""
    test = ctx.split.subset("test")
    labels = [ctx.split.class_names.index(label) for label in test["label"]]
    frame = pd.DataFrame(
        {"split": "test", "path": list(test["path"]), "true": labels, "pred": labels}
    )
    for k, name in enumerate(ctx.split.class_names):
        frame[f"prob_{name}"] = [float(label == k) for label in labels]
    path = predictions_path(ctx.run_dir, cell.cell_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)
    metrics = {
        "val": {"accuracy": val_accuracy, "macro_f1": val_accuracy},
        "test": {"accuracy": 1.0, "macro_f1": 1.0},
    }
    return CellRecord(
        cell_id=cell.cell_id,
        index=cell.index,
        model=cell.model,
        alpha=cell.alpha,
        seed=cell.seed,
        metrics=metrics,
        predictions_file=f"cells/{path.name}",
        config=ctx.config.to_dict(),
        split_fingerprint=ctx.split_fingerprint,
        class_names=ctx.split.class_names,
    )


def write_stub(run_dir: Path, content: dict = STUB) -> Path:
    path = record_path(run_dir, content["cell_id"])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(content))
    return path


def warning_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("warning:")]


@pytest.mark.parametrize("with_good_record", [False, True], ids=["alone", "beside-a-finished-cell"])
def test_report_names_a_stub_record_in_one_line_and_leaves_it_out(
    two_cell_run, with_good_record, capsys
):
    """Alone, the stub crashed the tables ("best row 0 has no predictions"); beside a finished
    cell it ranked as a row with status ok and empty metrics."""
    ctx = two_cell_run
    if with_good_record:
        write_record(ctx.run_dir, finished(ctx, ctx.cells[1]))
    write_stub(ctx.run_dir)
    board = build_tables(ctx.run_dir)["leaderboard"]
    (line,) = warning_lines(capsys.readouterr().err)
    assert "cells/simple_cnn__alpha0__seed0.json is not a valid cell record" in line
    assert "metrics.val.accuracy is missing" in line and "left out of the tables" in line
    assert list(board["alpha"]) == ([1.0] if with_good_record else [])
    assert (board["status"] == "ok").all() and board["val_accuracy"].notna().all()


@pytest.mark.parametrize(
    "content",
    [
        {"status": "done", "cell_id": "simple_cnn__alpha0__seed0"},
        {**STUB, "metrics": {"val": {"accuracy": "high"}}},
        {**STUB, "metrics": [], "alpha": 0},
        {"cell_id": "simple_cnn__alpha0__seed0", "status": "failed", "alpha": "zero"},
    ],
)
def test_records_of_the_wrong_shape_do_not_validate(two_cell_run, content, capsys):
    write_record(two_cell_run.run_dir, finished(two_cell_run, two_cell_run.cells[1]))
    write_stub(two_cell_run.run_dir, content)
    board = build_tables(two_cell_run.run_dir)["leaderboard"]
    assert len(warning_lines(capsys.readouterr().err)) == 1 and list(board["alpha"]) == [1.0]


def fake_training(ctx, cell, **kwargs):
    return finished(ctx, cell, 0.5 + cell.alpha / 4), None


def test_a_run_leaves_a_stub_out_of_the_leaderboard_it_writes(two_cell_run, monkeypatch, capsys):
    """The run's own tables: a stub of a cell outside this grid is named, not ranked."""
    from benchmark import commands

    ctx = two_cell_run
    monkeypatch.setattr("benchmark.run.loop.train_or_combine", fake_training)
    monkeypatch.setattr(commands, "write_report", lambda run_dir, tables: run_dir / "report.md")
    write_stub(ctx.run_dir, {"status": "ok", "cell_id": "mobilenet__alpha0__seed0"})
    overrides = {"data": ctx.config.data, **TINY, "alphas": [0.0, 1.0]}
    from benchmark.config.run_config import resolve_config

    config = resolve_config(None, None, overrides)
    assert (
        commands.run_command(
            config, output=str(ctx.run_dir), force=False, cell=None, dry_run=False, quiet=True
        )
        == 0
    )
    board = pd.read_csv(ctx.run_dir / "leaderboard.csv")
    assert list(board["model"]) == ["simple_cnn"] * 2 and list(board["rank"]) == [1, 2]
    (line,) = warning_lines(capsys.readouterr().err)
    assert "cells/mobilenet__alpha0__seed0.json is not a valid cell record" in line


def test_resume_says_once_why_a_cell_trains_again(two_cell_run, monkeypatch, capsys):
    """Each line came twice: when the run listed the folder and in the check before each cell."""
    ctx = two_cell_run
    monkeypatch.setattr("benchmark.run.loop.train_or_combine", fake_training)
    write_stub(ctx.run_dir)
    stale = finished(ctx, ctx.cells[1])
    stale.config = {**stale.config, "dropout": 0.1}
    write_record(ctx.run_dir, stale)
    run_grid(ctx, quiet=True)
    out = capsys.readouterr().out
    assert out.count("training simple_cnn__alpha0__seed0 again") == 1
    assert out.count("retraining 1 finished cell(s) trained under other settings (dropout)") == 1


def test_the_alpha_above_one_warning_comes_once(tmp_path, caplog, monkeypatch):
    """It came twice when the flags were resolved, and again in each cell (re-validated there)."""
    monkeypatch.setattr("data_pipeline.class_weights._WARNED_ALPHAS", set(), raising=False)
    caplog.set_level(logging.WARNING)
    data = make_images(tmp_path / "data", per_class=4, size=32)
    for _ in range(2):
        RunConfig(data=str(data), alphas=[0.0, 1.375], **TINY)
    validate_alpha(1.375)
    assert sum("alpha 1.375 > 1" in r.getMessage() for r in caplog.records) == 1


def test_a_failed_row_has_no_rank(two_cell_run):
    ctx = two_cell_run
    for cell in ctx.cells:
        failed = CellRecord(
            cell_id=cell.cell_id,
            index=cell.index,
            model=cell.model,
            alpha=cell.alpha,
            seed=cell.seed,
            status=FAILED,
            error="boom",
        )
        write_record(ctx.run_dir, failed)
    board = build_tables(ctx.run_dir)["leaderboard"]
    assert board["rank"].isna().all() and (board["status"] == "failed").all()
    write_record(ctx.run_dir, finished(ctx, ctx.cells[1]))
    board = build_tables(ctx.run_dir)["leaderboard"]
    assert list(board["status"]) == ["ok", "failed"] and board["rank"].tolist()[0] == 1
    assert pd.isna(board["rank"].tolist()[1])
    assert np.isnan(pd.read_csv(ctx.run_dir / "leaderboard.csv")["rank"][1])
    assert "|        | simple_cnn | 0 " in (ctx.run_dir / "leaderboard.md").read_text()


def test_a_best_row_whose_predictions_are_gone_is_a_warning_not_a_crash(two_cell_run, capsys):
    """The same 'best row 0 has no predictions' traceback, from a valid record whose file is
    lost."""
    ctx = two_cell_run
    write_record(ctx.run_dir, finished(ctx, ctx.cells[0], 0.9))
    write_record(ctx.run_dir, finished(ctx, ctx.cells[1], 0.5))
    predictions_path(ctx.run_dir, ctx.cells[0].cell_id).unlink()
    board = build_tables(ctx.run_dir)["leaderboard"]
    assert list(board["rank"]) == [1, 2] and board["p_vs_best"].isna().all()
    (line,) = warning_lines(capsys.readouterr().err)
    assert "the best row (simple_cnn, alpha 0) cannot be compared" in line
    assert "cells/simple_cnn__alpha0__seed0.predictions.csv" in line
