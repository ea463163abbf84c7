"""`RUN_DIR/report.md`: one markdown page per run, with its figures in `RUN_DIR/plots/`.

Rebuilt from the run folder alone (cell records, predictions, `splits.csv` or the fold splits
`splits/fold<k>.csv`), so `report RUN_DIR` can redraw it at any time. A figure that cannot be drawn
becomes a note in the report rather than an error: the report is written at the end of every run and
must not lose the run.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from benchmark.inference.explain import gradcam_grid
from benchmark.io import write_text_atomic
from benchmark.results import plots
from benchmark.results.columns import REPORT_COLUMNS, REPORT_COST_COLUMNS, view
from benchmark.results.cross_dataset import cross_dataset_markdown, load_evaluations
from benchmark.results.probe_report import probe_section
from benchmark.results.fold_report import cell_label, cross_validation_section, fold_split_tables
from benchmark.results.reliability import cell_reliability_diagram
from benchmark.results.robustness import robustness_section
from benchmark.results.tables import best_per_model, build_tables, to_markdown
from benchmark.run.calibrated import with_calibration
from benchmark.run.records import (
    NOT_RANKED,
    UNREADABLE,
    CellRecord,
    load_predictions,
    load_records,
    validation_rank_key,
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
    report = _Report(run_dir)
    report.add(f"# Benchmark report: {run_dir.name}\n")
    invalid = f" {left_out} record file(s) did not validate: not in the tables." * bool(left_out)
    failed = len(records) - len(ok)
    report.add(
        f"{len(records)} cell(s): {len(ok)} finished, {failed} failed.{invalid} "
        "Rows are ranked by validation accuracy; the test split is shown with its 95 % interval "
        "but never used to pick a winner.\n"
    )
    report.add(_reading_paragraph(run_dir))
    report.leaderboard(board, tables.get("best_per_model"), records)
    if probes := probe_section(tables.get("linear_probe"), board):
        report.add(probes)
    report.add(cross_validation_section(board, records))
    report.sweeps(board, tables.get("alpha_effect"))
    report.cost(board, tables.get("best_per_model"), tables.get("deployment"))
    report.cross_dataset()
    report.add(robustness_section(run_dir, board, tables.get("best_per_model"), report.figure))
    report.cells(board, tables.get("best_per_model"), ok)
    report.add(
        "## Where the best saved model looks\n\nGrad-CAM heatmaps (red: high) of the saved model "
        "`predict` uses, on its most confident test mistakes (red frames) and hits (green); see "
        "`run_benchmark.py explain`.\n"
    )
    report.add(report.figure(gradcam_grid, "gradcam", run_dir, alt="Grad-CAM of test images"))
    report.dataset(ok)
    report.environment(ok)
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


def best_cell(records: list[CellRecord], model: str, alpha: float) -> CellRecord | None:
    """The seed of a model x alpha with the best validation accuracy (ties: validation macro-F1)."""
    group = [
        r
        for r in records
        if r.model == model and float(r.alpha) == float(alpha) and r.ok and r.metrics
    ]
    if not group:
        return None
    return max(group, key=validation_rank_key)


def _escape(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


class _Report:
    """Collects markdown parts; draws figures into `plots/` and links them relative to the
    report."""

    def __init__(self, run_dir: Path):
        self.run_dir = run_dir
        self.plot_dir = run_dir / "plots"
        self.parts: list[str] = []

    def add(self, text: str) -> None:
        self.parts.append(text)

    def figure(self, draw, name: str, *args, alt: str = "", **kwargs) -> str:
        """Markdown image link for `draw(*args, path, **kwargs)`, or a note when it cannot be
        drawn."""
        path = self.plot_dir / f"{plots.safe_name(name)}.png"
        try:
            written = draw(*args, path, **kwargs)
        except Exception as err:  # a broken figure must not cost the run its report
            return (
                f"*(figure `{path.name}` could not be drawn: "
                f"{_escape(type(err).__name__)}: {_escape(err)})*\n"
            )
        if written is None:
            return f"*(no data for figure `{path.name}`)*\n"
        return f"![{alt or name}](plots/{written.name})\n"

    def leaderboard(
        self, board: pd.DataFrame, best: pd.DataFrame | None, records: list[CellRecord]
    ) -> None:
        self.add(f"## Leaderboard (top {TOP})\n")
        ok = board[~board["status"].isin(NOT_RANKED)]
        shown = ok.head(TOP)[view(board.columns, REPORT_COLUMNS)].copy()
        self.add(to_markdown(shown) if not shown.empty else "No cell finished.\n")
        self.add(
            "Full tables: [leaderboard.md](leaderboard.md), [leaderboard.csv](leaderboard.csv).\n"
        )
        if not ok.empty:
            self.add(
                self.figure(
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
            self.add(f"### Failed cells ({len(failed)})\n")
            self.add("\n".join(f"- `{r.cell_id}`: {_escape(r.error)}" for r in failed) + "\n")
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
            self.add("### Best model per family\n")
            self.add(to_markdown(frame.reset_index(drop=True)))

    def sweeps(self, board: pd.DataFrame, effect: pd.DataFrame | None = None) -> None:
        ok = board[~board["status"].isin(NOT_RANKED)]
        if ok.empty:
            return
        self.add("## Alpha sweep\n")
        self.add(
            "Class-weight damping `w = 1 + alpha (balanced_w - 1)`: alpha 0 trains unweighted, "
            "alpha 1 fully balanced. Error bars are 95 % bootstrap intervals.\n"
        )
        self.add(
            self.figure(
                plots.alpha_sweep,
                "alpha_sweep",
                board,
                title="Accuracy and macro-F1 against alpha, per model",
                alt="alpha sweep",
            )
        )
        self.add(
            "Damping exists to help the rare class, so the weakest class's F1 is the figure to "
            "watch:\n"
        )
        self.add(
            self.figure(
                plots.worst_class_sweep,
                "worst_class_f1",
                board,
                title="Test F1 of the worst class against alpha, per model",
                alt="worst class F1",
            )
        )
        if effect is not None and not effect.empty:
            self.add(
                "Did damping help? Each model's best alpha (by validation) against alpha 0 on the "
                "same test images: `p_mcnemar` is the exact paired test, and the worst-class "
                "columns follow the class alpha 0 served worst (`alpha_effect.csv`):\n"
            )
            self.add(to_markdown(effect))

    def cost(
        self, board: pd.DataFrame, best: pd.DataFrame | None, deployment: pd.DataFrame | None = None
    ) -> None:
        self.add("## Accuracy against inference cost\n")
        if deployment is not None and not deployment.empty:
            self.add(
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
            self.add(to_markdown(deployment[shown]))
        best = best_per_model(board) if best is None else best
        present = [
            c
            for c in REPORT_COST_COLUMNS
            if c in best.columns and pd.to_numeric(best[c], errors="coerce").notna().any()
        ]
        if not present:
            names = ", ".join(f"`{c}`" for c in REPORT_COST_COLUMNS)
            self.add(f"Skipped: the leaderboard has no inference-cost columns ({names}) yet.\n")
            return
        for column in present:
            frame = best.assign(**{column: pd.to_numeric(best[column], errors="coerce")})
            self.add(
                self.figure(
                    plots.accuracy_vs_cost,
                    f"accuracy_vs_{column}",
                    frame,
                    column,
                    alt=f"test accuracy against {column}",
                )
            )
        self.add(
            "Each point is a model at its best alpha (by validation); the line joins the Pareto "
            "front (no other model is both cheaper and more accurate).\n"
        )

    def cross_dataset(self) -> None:
        """The run's saved models on other data sets (`evaluate RUN_DIR DATA`), when any was
        evaluated."""
        evaluations = load_evaluations(self.run_dir)
        if evaluations:
            self.add("## Will it work on other data? Cross-dataset evaluation\n")
            self.add(
                "From `run_benchmark.py evaluate` (`cross_dataset.csv`, "
                "[cross_dataset.md](cross_dataset.md)).\n"
            )
            self.add(cross_dataset_markdown(evaluations, level=3))

    def cells(self, board: pd.DataFrame, best: pd.DataFrame | None, ok: list[CellRecord]) -> None:
        if not ok:
            return
        top = board[~board["status"].isin(NOT_RANKED)].head(1)
        winner = (
            best_cell(ok, top["model"].iloc[0], top["alpha"].iloc[0]) if not top.empty else None
        )
        if winner is not None:
            self.add(f"## Best cell: `{winner.cell_id}`\n")
            self.add(
                f"Rank 1 ({winner.model}, alpha {winner.alpha:g}); of its "
                f"{'seeds and folds' if winner.fold is not None else 'seeds'}, the best by "
                "validation accuracy.\n"
            )
            self.add(self.cell_detail(winner, grid=True))
            self.add(self.calibration(winner))
        best = best_per_model(board) if best is None else best
        others = [best_cell(ok, m, a) for m, a in zip(best["model"], best["alpha"])]
        others = [
            r for r in others if r is not None and (winner is None or r.cell_id != winner.cell_id)
        ]
        if others:
            self.add("## Each model at its best alpha\n")
            for record in others:
                self.add(
                    f"<details><summary><code>{record.cell_id}</code> (test accuracy "
                    f"{record.split_metrics('test').get('accuracy', float('nan')):.4f})</summary>\n"
                )
                self.add(self.cell_detail(record, grid=False))
                self.add("</details>\n")
        self.add("## Training curves\n")
        self.add(
            "Train (solid) and validation (dashed); the dotted line is where fine-tuning (phase 2) "
            "starts.\n"
        )
        if winner is not None:
            self.add(self.curves(winner))
        self.add(f"<details><summary>All {len(ok)} cells</summary>\n")
        self.add("\n".join(f"- `{r.cell_id}`\n\n  {self.curves(r)}" for r in ok))
        self.add("</details>\n")

    def calibration(self, record: CellRecord) -> str:
        """The best cell's calibration figures and its reliability diagram, before and after
        temperature scaling."""
        record = with_calibration(self.run_dir, record)
        test, temperature = record.calibration.get("test"), record.calibration.get("temperature")
        parts = ["### Calibration\n"]
        if test and temperature is not None:
            parts.append(
                f"On test, expected calibration error (15 bins) {test['ece']:.4f}, Brier "
                f"{test['brier']:.4f}, NLL {test['nll']:.4f}; after dividing the logits by T = "
                f"{temperature:.3f} (fitted on validation NLL only): ECE {test['ece_scaled']:.4f}, "
                f"Brier {test['brier_scaled']:.4f}, NLL {test['nll_scaled']:.4f}. T > 1 means the "
                "model was overconfident, T < 1 underconfident; accuracy is the same either way (T "
                "never changes the predicted class).\n"
            )
        else:
            parts.append(
                "No temperature: the cell has no saved validation predictions to fit one on.\n"
            )
        parts.append(
            self.figure(
                cell_reliability_diagram,
                f"reliability_{record.cell_id}",
                self.run_dir,
                record,
                alt=f"reliability diagram {record.cell_id}",
            )
        )
        return "\n".join(parts)

    def curves(self, record: CellRecord) -> str:
        if not record.history:
            return "*(no training history)*\n"
        return self.figure(
            plots.training_curves,
            f"curves_{record.cell_id}",
            record.history,
            title=f"Training curves: {cell_label(record)}",
            alt=f"training curves {record.cell_id}",
        )

    def cell_detail(self, record: CellRecord, *, grid: bool) -> str:
        """Confusion matrices and the per-class table of one cell's test split (plus the image
        grid)."""
        test = record.split_metrics("test")
        names = record.class_names
        label = cell_label(record)
        parts = [
            f"Test accuracy {test.get('accuracy', float('nan')):.4f}, macro-F1 "
            f"{test.get('macro_f1', float('nan')):.4f}.\n"
        ]
        if test.get("confusion_matrix"):
            parts.append(
                self.figure(
                    plots.confusion_matrices,
                    f"confusion_{record.cell_id}",
                    test["confusion_matrix"],
                    names,
                    title=f"Test confusion matrix: {label}",
                    alt=f"confusion matrix {record.cell_id}",
                )
            )
        per_class = test.get("per_class") or {}
        if per_class:
            rows = pd.DataFrame(
                [
                    {
                        "class": c,
                        **{
                            k: per_class[c].get(k) for k in ("precision", "recall", "f1", "support")
                        },
                    }
                    for c in names
                    if c in per_class
                ]
            )
            parts.append(to_markdown(rows))
        if grid:
            parts.append(self.image_grid(record, label))
        return "\n".join(parts)

    def image_grid(self, record: CellRecord, label: str) -> str:
        frame = load_predictions(self.run_dir, record)
        if frame is None:
            return "*(no predictions file, so no example images)*\n"
        test = frame[frame["split"] == "test"]
        names = record.class_names
        columns = [f"prob_{name}" for name in names]
        probs = test[columns].to_numpy(float) if set(columns) <= set(test.columns) else None
        items = [
            {
                "path": str(path),
                "true": names[int(true)],
                "pred": names[int(pred)],
                "confidence": None if probs is None else float(probs[i, int(pred)]),
            }
            for i, (path, true, pred) in enumerate(zip(test["path"], test["true"], test["pred"]))
        ]
        wrong = [i for i in items if i["true"] != i["pred"]]
        right = [i for i in items if i["true"] == i["pred"]]
        return "Test images, mistakes first (red):\n\n" + self.figure(
            plots.prediction_grid,
            f"predictions_{record.cell_id}",
            wrong + right,
            title=f"Test predictions: {label}",
            alt=f"test predictions {record.cell_id}",
        )

    def dataset(self, ok: list[dict]) -> None:
        self.add("## Dataset\n")
        split_file = self.run_dir / "splits.csv"
        folds = fold_split_tables(self.run_dir)
        if folds:
            self.add(
                f"{len(folds[0])} images in {len(folds)} folds (`splits/fold<k>.csv`); each image "
                "is a test image in exactly one fold, and each fold validates on part of its own "
                "training images. Images per fold:\n"
            )
            self.add(
                to_markdown(
                    pd.DataFrame(
                        [
                            {
                                "fold": k,
                                **{
                                    s: int((t["split"] == s).sum())
                                    for s in ("train", "val", "test")
                                },
                            }
                            for k, t in enumerate(folds)
                        ]
                    )
                )
            )
            self.add(_duplicates(folds[0]))
        elif not split_file.is_file():
            self.add("No `splits.csv` in this run folder.\n")
        else:
            table = pd.read_csv(split_file, keep_default_na=False, dtype=str)
            classes = sorted(table["label"].unique())
            self.add(f"{len(table)} images, {len(classes)} classes: {', '.join(classes)}.\n")
            counts = pd.crosstab(table["label"], table["split"]).reindex(
                columns=[s for s in ("train", "val", "test") if s in set(table["split"])]
                + sorted(set(table["split"]) - {"train", "val", "test"})
            )
            counts["total"] = counts.sum(axis=1)
            counts.loc["total"] = counts.sum(axis=0)
            self.add(to_markdown(counts.reset_index().rename(columns={"label": "class"})))
            self.add(_duplicates(table))
        warnings_file = self.run_dir / "dataset_warnings.txt"
        if warnings_file.is_file():
            lines = [
                line.strip()
                for line in warnings_file.read_text(errors="replace").splitlines()
                if line.strip()
            ]
            if lines:
                self.add("### Dataset warnings\n")
                self.add("\n".join(f"- {_escape(line)}" for line in lines) + "\n")

    def environment(self, ok: list[dict]) -> None:
        env = ok[0].environment if ok else {}
        if not env:
            return
        self.add("## Environment\n")
        rows = []
        for key in ("python", "tensorflow", "keras", "keras_hub", "devices", "git_commit"):
            value = env.get(key)
            rows.append(
                f"| {key} | "
                f"{_escape(', '.join(map(str, value)) if isinstance(value, list) else value)} |"
            )
        self.add("| item | value |\n|---|---|\n" + "\n".join(rows) + "\n")


def _duplicates(table: pd.DataFrame) -> str:
    """Duplicate-content groups (same decoded pixels under several paths) and label conflicts among
    them."""
    if "content_hash" not in table.columns:
        return ""
    hashed = table[table["content_hash"] != ""]
    groups = [g for _, g in hashed.groupby("content_hash") if len(g) > 1]
    if not groups:
        return "No duplicate images (by decoded content).\n"
    conflicts = [g for g in groups if g["label"].nunique() > 1]
    straddling = [g for g in groups if g["split"].nunique() > 1]
    lines = [
        f"{len(groups)} duplicate-content group(s) ({sum(len(g) for g in groups)} files), "
        f"{len(conflicts)} with conflicting labels, {len(straddling)} spanning more than one "
        "split.\n",
        "<details><summary>Duplicate groups</summary>\n",
    ]
    for group in groups[:50]:
        flag = " **label conflict**" if group["label"].nunique() > 1 else ""
        lines.append(
            "- "
            + ", ".join(
                f"`{Path(p).name}` ({lab}, {s})"
                for p, lab, s in zip(group["path"], group["label"], group["split"])
            )
            + flag
        )
    if len(groups) > 50:
        lines.append(f"- ... and {len(groups) - 50} more")
    lines.append("\n</details>\n")
    return "\n".join(lines)
