"""A cell's metrics and saved predictions from its class probabilities per split."""

from __future__ import annotations

import numpy as np
import pandas as pd

from benchmark.io import write_csv_atomic
from benchmark.run.environment import environment_info
from benchmark.run.folder import RunContext
from benchmark.run.grid import Cell
from benchmark.run.records import CellRecord, predictions_path
from benchmark.training.calibration import calibration_summary
from benchmark.training.metrics import classification_metrics


def evaluation_record(
    ctx: RunContext,
    cell: Cell,
    probabilities: dict[str, np.ndarray],
    *,
    variant: str = "",
    tta: int = 0,
    plain_probabilities: dict[str, np.ndarray] | None = None,
) -> CellRecord:
    """Metrics, calibration and saved predictions of one cell from its class probabilities per
    split.

    `probabilities` are what the leaderboard ranks and the predictions file keeps: averaged over
    `tta` test-time views when tta > 0, in which case `plain_probabilities` (the single, unchanged
    view) are scored too, into `metrics_plain`. Calibration (temperature fitted on val) is of
    `probabilities`.
    `variant` names a second row the same cell produces (late fusion's confidence rule): it gets
    its own cell id, model label and predictions file, while `registry_name` keeps the entry.
    """
    split = ctx.split
    plan = ctx.plan(cell.model)
    cell_id = f"{cell.cell_id}-{variant}" if variant else cell.cell_id
    metrics, frames, labels = {}, [], {}
    for part, probs in probabilities.items():
        labels[part] = y_true = split.label_indices(part)
        metrics[part] = classification_metrics(y_true, probs, split.class_names)
        frames.append(prediction_frame(part, split.subset(part), y_true, probs, split.class_names))
    metrics_plain = {
        part: classification_metrics(labels[part], probs, split.class_names)
        for part, probs in (plain_probabilities or {}).items()
    }
    predictions_file = predictions_path(ctx.run_dir, cell_id)
    write_csv_atomic(predictions_file, pd.concat(frames, ignore_index=True))
    return CellRecord(
        cell_id=cell_id,
        index=cell.index,
        model=f"{cell.model} ({variant})" if variant else cell.model,
        registry_name=cell.model,
        family=plan.entry.family,
        modality=plan.modality,
        alpha=cell.alpha,
        seed=cell.seed,
        fold=cell.fold,
        class_names=split.class_names,
        metrics=metrics,
        best_val_score=metrics.get("val", {}).get("accuracy"),
        predictions_file=str(predictions_file.relative_to(ctx.run_dir)),
        split_fingerprint=ctx.split_fingerprint,
        config=ctx.config.to_dict(),
        tta=tta,
        metrics_plain=metrics_plain,
        calibration=calibration_summary(probabilities, labels),
        environment=environment_info(),
        caption_warning=ctx.caption_warning if plan.modality != "image" else "",
    )


def prediction_frame(
    part: str, frame: pd.DataFrame, y_true, probabilities: np.ndarray, class_names
) -> pd.DataFrame:
    """One row per image: split, path, true and predicted class index, and every class
    probability."""
    out = pd.DataFrame(
        {
            "split": part,
            "path": frame["path"].to_numpy(),
            "true": y_true,
            "pred": probabilities.argmax(axis=1),
        }
    )
    for i, name in enumerate(class_names):
        out[f"prob_{name}"] = probabilities[:, i]
    return out
