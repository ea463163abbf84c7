"""The report's per-cell sections: the best cell in full, each model's best alpha, every cell's
training curves.

Apart from `report.py` because these sections read one cell's own files (its record, predictions
and history) while the rest of the report reads the run's tables; they share only the page they
draw on (`ReportPage`).
"""

from __future__ import annotations

import pandas as pd

from benchmark.results import plots
from benchmark.results.alpha_tables import best_per_model
from benchmark.results.fold_report import cell_label
from benchmark.results.reliability import cell_reliability_diagram
from benchmark.results.report_page import ReportPage
from benchmark.results.tables import to_markdown
from benchmark.run.calibrated import with_calibration
from benchmark.run.records import (
    NOT_RANKED,
    CellRecord,
    load_predictions,
    validation_rank_key,
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


def cells_section(
    page: ReportPage, board: pd.DataFrame, best: pd.DataFrame | None, ok: list[CellRecord]
) -> None:
    if not ok:
        return
    top = board[~board["status"].isin(NOT_RANKED)].head(1)
    winner = best_cell(ok, top["model"].iloc[0], top["alpha"].iloc[0]) if not top.empty else None
    if winner is not None:
        page.add(f"## Best cell: `{winner.cell_id}`\n")
        page.add(
            f"Rank 1 ({winner.model}, alpha {winner.alpha:g}); of its "
            f"{'seeds and folds' if winner.fold is not None else 'seeds'}, the best by "
            "validation accuracy.\n"
        )
        page.add(cell_detail(page, winner, grid=True))
        page.add(calibration_section(page, winner))
    best = best_per_model(board) if best is None else best
    others = [best_cell(ok, m, a) for m, a in zip(best["model"], best["alpha"])]
    others = [
        r for r in others if r is not None and (winner is None or r.cell_id != winner.cell_id)
    ]
    if others:
        page.add("## Each model at its best alpha\n")
        for record in others:
            page.add(
                f"<details><summary><code>{record.cell_id}</code> (test accuracy "
                f"{record.split_metrics('test').get('accuracy', float('nan')):.4f})</summary>\n"
            )
            page.add(cell_detail(page, record, grid=False))
            page.add("</details>\n")
    page.add("## Training curves\n")
    page.add(
        "Train (solid) and validation (dashed); the dotted line is where fine-tuning (phase 2) "
        "starts.\n"
    )
    if winner is not None:
        page.add(curves_figure(page, winner))
    page.add(f"<details><summary>All {len(ok)} cells</summary>\n")
    page.add("\n".join(f"- `{r.cell_id}`\n\n  {curves_figure(page, r)}" for r in ok))
    page.add("</details>\n")


def calibration_section(page: ReportPage, record: CellRecord) -> str:
    """The best cell's calibration figures and its reliability diagram, before and after
    temperature scaling."""
    record = with_calibration(page.run_dir, record)
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
        page.figure(
            cell_reliability_diagram,
            f"reliability_{record.cell_id}",
            page.run_dir,
            record,
            alt=f"reliability diagram {record.cell_id}",
        )
    )
    return "\n".join(parts)


def curves_figure(page: ReportPage, record: CellRecord) -> str:
    if not record.history:
        return "*(no training history)*\n"
    return page.figure(
        plots.training_curves,
        f"curves_{record.cell_id}",
        record.history,
        title=f"Training curves: {cell_label(record)}",
        alt=f"training curves {record.cell_id}",
    )


def cell_detail(page: ReportPage, record: CellRecord, *, grid: bool) -> str:
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
            page.figure(
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
                    **{k: per_class[c].get(k) for k in ("precision", "recall", "f1", "support")},
                }
                for c in names
                if c in per_class
            ]
        )
        parts.append(to_markdown(rows))
    if grid:
        parts.append(image_grid(page, record, label))
    return "\n".join(parts)


def image_grid(page: ReportPage, record: CellRecord, label: str) -> str:
    frame = load_predictions(page.run_dir, record)
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
    return "Test images, mistakes first (red):\n\n" + page.figure(
        plots.prediction_grid,
        f"predictions_{record.cell_id}",
        wrong + right,
        title=f"Test predictions: {label}",
        alt=f"test predictions {record.cell_id}",
    )
