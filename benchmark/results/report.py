"""`RUN_DIR/report.md`: one markdown page per run, with its figures in `RUN_DIR/plots/`.

Rebuilt from the run folder alone (cell records, predictions, `splits.csv` or the fold splits
`splits/fold<k>.csv`), so `report RUN_DIR` can redraw it at any time. A figure that cannot be drawn
becomes a note in the report rather than an error: the report is written at the end of every run and
must not lose the run.

This module holds the run-wide sections (leaderboard, sweeps, cost, cross-dataset); the sections
that read one cell's own files are in `cell_report.py`, the data set and environment in
`dataset_report.py`, and the page they all draw on in `report_page.py`.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from benchmark.inference.explain import gradcam_grid
from benchmark.io import write_text_atomic
from benchmark.results import plots
from benchmark.results.alpha_tables import best_per_model
from benchmark.results.cell_report import cells_section
from benchmark.results.columns import REPORT_COLUMNS, REPORT_COST_COLUMNS, view
from benchmark.results.cross_dataset import cross_dataset_markdown, load_evaluations
from benchmark.results.dataset_report import dataset_section, environment_section
from benchmark.results.fold_report import cross_validation_section
from benchmark.results.probe_report import probe_section
from benchmark.results.report_page import ReportPage, escape
from benchmark.results.robustness import robustness_section
from benchmark.results.tables import build_tables, to_markdown
from benchmark.run.records import (
    NOT_RANKED,
    UNREADABLE,
    CellRecord,
    load_records,
)

PROJECT_ROOT = Path(__file__).resolve().parents[2]  # benchmark/<part>/<module>.py -> the checkout
TOP = 20
TRASHNET_CLASSES = ["cardboard", "glass", "metal", "paper", "plastic", "trash"]


def write_report(run_dir: Path, tables: dict[str, pd.DataFrame] | None = None) -> Path:
    """Draws every figure and writes `run_dir/report.md`; returns its path.

    Args:
        run_dir: the run folder (`cells/`, `splits.csv`, ...).
        tables: as returned by `benchmark.results.tables.build_tables(run_dir)`. Defaults to
        building them.
    """
    run_dir = Path(run_dir)
    tables = build_tables(run_dir) if tables is None else tables
    board = tables["leaderboard"]
    records = load_records(run_dir)
    left_out = sum(r.status == UNREADABLE for r in records)  # named by `build_tables`' warnings
    records = [r for r in records if r.status != UNREADABLE]
    ok = [r for r in records if r.ok and r.metrics]
    report = ReportPage(run_dir)
    report.add(f"# Benchmark report: {run_dir.name}\n")
    invalid = f" {left_out} record file(s) did not validate: not in the tables." * bool(left_out)
    failed = len(records) - len(ok)
    report.add(
        f"{len(records)} cell(s): {len(ok)} finished, {failed} failed.{invalid} "
        "Rows are ranked by validation accuracy; the test split is shown with its 95 % interval "
        "but never used to pick a winner.\n"
    )
    report.add(_reading_paragraph(run_dir))
    leaderboard_section(report, board, tables.get("best_per_model"), records)
    if probes := probe_section(tables.get("linear_probe"), board):
        report.add(probes)
    report.add(cross_validation_section(board, records))
    sweeps_section(report, board, tables.get("alpha_effect"))
    cost_section(report, board, tables.get("best_per_model"), tables.get("deployment"))
    cross_dataset_section(report)
    report.add(robustness_section(run_dir, board, tables.get("best_per_model"), report.figure))
    cells_section(report, board, tables.get("best_per_model"), ok)
    report.add(
        "## Where the best saved model looks\n\nGrad-CAM heatmaps (red: high) of the saved model "
        "`predict` uses, on its most confident test mistakes (red frames) and hits (green); see "
        "`run_benchmark.py explain`.\n"
    )
    report.add(report.figure(gradcam_grid, "gradcam", run_dir, alt="Grad-CAM of test images"))
    dataset_section(report)
    environment_section(report, ok)
    class_names = ok[0].class_names if ok else []
    if sorted(class_names) == TRASHNET_CLASSES:
        report.add(
            "## Data credit\n\nTrashNet: Gary Thung and Mindy Yang, *Classification of Trash for "
            "Recyclability Status*, 2016, <https://github.com/garythung/trashnet> (MIT licence).\n"
        )
    path = run_dir / "report.md"
    write_text_atomic(path, "\n".join(report.parts))
    return path


def _reading_paragraph(run_dir: Path) -> str:
    readme = PROJECT_ROOT / "docs" / "leaderboard.md"
    inside = run_dir.resolve().is_relative_to(
        PROJECT_ROOT
    )  # run folders under results/ link relatively
    link = (
        Path(os.path.relpath(readme, run_dir.resolve())).as_posix() if inside else readme.as_posix()
    )
    return (
        "## Reading the leaderboard\n\n`val_accuracy` ranks the rows; `*_ci` columns are 95 % "
        "stratified bootstrap intervals over the test (or validation) images, so two rows whose "
        "intervals overlap may not differ. `tied_with_best` says whether an exact McNemar test "
        "(Holm-corrected) finds the row indistinguishable from rank 1 on the same test images, and "
        "`p_vs_best` is that test's p-value. `test_ece` (15-bin expected calibration error) and "
        "`test_brier` say how far the stated confidences can be trusted; `temperature` is fitted "
        "on validation and `test_ece_scaled` is the ECE after it (it never changes accuracy); "
        "`tta` > 0 means the figures average that many test-time views. See [Reading the "
        f"leaderboard]({link}#reading-the-leaderboard) and [Calibration]({link}#calibration) "
        "in the documentation.\n"
    )


def leaderboard_section(
    page: ReportPage, board: pd.DataFrame, best: pd.DataFrame | None, records: list[CellRecord]
) -> None:
    page.add(f"## Leaderboard (top {TOP})\n")
    ok = board[~board["status"].isin(NOT_RANKED)]
    shown = ok.head(TOP)[view(board.columns, REPORT_COLUMNS)].copy()
    page.add(to_markdown(shown) if not shown.empty else "No cell finished.\n")
    page.add("Full tables: [leaderboard.md](leaderboard.md), [leaderboard.csv](leaderboard.csv).\n")
    if not ok.empty:
        page.add(
            page.figure(
                plots.leaderboard_dots,
                "leaderboard",
                board,
                top=TOP,
                title=f"Top {min(TOP, len(ok))} rows: test accuracy with 95 % CI",
                alt="leaderboard test accuracy with intervals",
            )
        )
    failed = [r for r in records if not r.ok]
    if failed:
        page.add(f"### Failed cells ({len(failed)})\n")
        page.add("\n".join(f"- `{r.cell_id}`: {escape(r.error)}" for r in failed) + "\n")
    best = best_per_model(board) if best is None else best
    family = {r.model: r.family for r in records}
    if not best.empty:
        frame = best.assign(family=best["model"].map(family).fillna("")).drop_duplicates(
            "family", keep="first"
        )
        columns = [
            "family",
            "model",
            "alpha",
            "val_accuracy",
            "test_accuracy",
            "test_accuracy_ci",
            "test_macro_f1",
        ]
        frame = frame[columns]
        page.add("### Best model per family\n")
        page.add(to_markdown(frame.reset_index(drop=True)))


def sweeps_section(
    page: ReportPage, board: pd.DataFrame, effect: pd.DataFrame | None = None
) -> None:
    ok = board[~board["status"].isin(NOT_RANKED)]
    if ok.empty:
        return
    page.add("## Alpha sweep\n")
    page.add(
        "Class-weight damping `w = 1 + alpha (balanced_w - 1)`: alpha 0 trains unweighted, "
        "alpha 1 fully balanced. Error bars are 95 % bootstrap intervals.\n"
    )
    page.add(
        page.figure(
            plots.alpha_sweep,
            "alpha_sweep",
            board,
            title="Accuracy and macro-F1 against alpha, per model",
            alt="alpha sweep",
        )
    )
    page.add(
        "Damping exists to help the rare class, so the weakest class's F1 is the figure to watch:\n"
    )
    page.add(
        page.figure(
            plots.worst_class_sweep,
            "worst_class_f1",
            board,
            title="Test F1 of the worst class against alpha, per model",
            alt="worst class F1",
        )
    )
    if effect is not None and not effect.empty:
        page.add(
            "Did damping help? Each model's best alpha (by validation) against alpha 0 on the "
            "same test images: `p_mcnemar` is the exact paired test, and the worst-class "
            "columns follow the class alpha 0 served worst (`alpha_effect.csv`):\n"
        )
        page.add(to_markdown(effect))


def cost_section(
    page: ReportPage,
    board: pd.DataFrame,
    best: pd.DataFrame | None,
    deployment: pd.DataFrame | None = None,
) -> None:
    page.add("## Accuracy against inference cost\n")
    if deployment is not None and not deployment.empty:
        page.add(
            "Each model's best cell, exported and measured on this machine (`deployment.csv` "
            "has every column). `test_accuracy` is the exported model's own score, so a "
            "quantisation loss shows here:\n"
        )
        shown = [
            "model",
            "alpha",
            "format",
            "precision",
            "status",
            "size_mb",
            "infer_ms_b1",
            "infer_img_s_b32",
            "test_accuracy",
            "agreement_with_keras",
            "device",
        ]
        page.add(to_markdown(deployment[shown]))
    best = best_per_model(board) if best is None else best
    present = [
        c
        for c in REPORT_COST_COLUMNS
        if c in best.columns and pd.to_numeric(best[c], errors="coerce").notna().any()
    ]
    if not present:
        names = ", ".join(f"`{c}`" for c in REPORT_COST_COLUMNS)
        page.add(f"Skipped: the leaderboard has no inference-cost columns ({names}) yet.\n")
        return
    for column in present:
        frame = best.assign(**{column: pd.to_numeric(best[column], errors="coerce")})
        page.add(
            page.figure(
                plots.accuracy_vs_cost,
                f"accuracy_vs_{column}",
                frame,
                column,
                alt=f"test accuracy against {column}",
            )
        )
    page.add(
        "Each point is a model at its best alpha (by validation); the line joins the Pareto "
        "front (no other model is both cheaper and more accurate).\n"
    )


def cross_dataset_section(page: ReportPage) -> None:
    """The run's saved models on other data sets (`evaluate RUN_DIR DATA`), when any was
    evaluated."""
    evaluations = load_evaluations(page.run_dir)
    if evaluations:
        page.add("## Will it work on other data? Cross-dataset evaluation\n")
        page.add(
            "From `run_benchmark.py evaluate` (`cross_dataset.csv`, "
            "[cross_dataset.md](cross_dataset.md)).\n"
        )
        page.add(cross_dataset_markdown(evaluations, level=3))
