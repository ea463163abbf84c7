"""What a cell's MLflow run holds, read from the configuration and the finished `CellRecord`.

Params are the resolved configuration (every key, nested knobs dotted) with the cell's own values
(model, alpha, seed, the image size and fine-tune depth the model actually used); metrics are the
final validation and test scores with their bootstrap intervals (the same stratified bootstrap the
leaderboard uses), timings and sizes; tags say how the cell was trained; artifacts are the record,
its predictions, its plots and the saved model.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmark.results import stats
from benchmark.run.records import CellRecord
from benchmark.tracking.store import MlflowStore, flat_params

GRID_KEYS = ("models", "alphas", "seeds")  # one value per cell: logged as model, alpha, seed
FINAL_KEYS = (
    "accuracy",
    "loss",
    "macro_f1",
    "macro_precision",
    "macro_recall",
    "weighted_f1",
    "worst_class_f1",
)
METRIC_UNSAFE = re.compile(r"[^\w\-. /]")  # characters an MLflow metric key may not hold
RECORD_TAGS = (
    "status",
    "error",
    "registry_name",
    "family",
    "modality",
    "weights",
    "precision",
    "strategy",
    "head_features",
    "fine_tune_features",
    "phase2_note",
    "preprocess",
)


def cell_params(config: dict[str, Any], cell, plan) -> dict[str, Any]:
    """The cell's resolved configuration: grid lists replaced by the cell's values, and the model's
    own side and fine-tune depth from its plan (`benchmark.plan.ModelPlan`)."""
    params = {key: value for key, value in config.items() if key not in GRID_KEYS}
    params.update(model=cell.model, alpha=cell.alpha, seed=cell.seed, cell_index=cell.index)
    if getattr(cell, "fold", None) is not None:  # K-fold runs: which fold's split the cell used
        params["fold"] = cell.fold
    if plan.modality != "text":
        params["image_size"] = plan.image_size
    if config.get("fine_tune_layers") is None:
        params["fine_tune_layers"] = plan.fine_tune_layers
    return flat_params(params)


def final_metrics(record: CellRecord, run_dir: Path) -> dict[str, float]:
    """Final val/test scores (and without TTA), per-class F1, calibration, 95% bootstrap intervals,
    timings, parameters, epochs."""
    metrics: dict[str, float] = {}
    for split in ("val", "test"):
        scores = record.split_metrics(split)
        metrics.update(
            {f"final_{split}_{key}": scores[key] for key in FINAL_KEYS if _number(scores.get(key))}
        )
        for name, per_class in (scores.get("per_class") or {}).items():
            if _number(per_class.get("f1")):
                metrics[f"final_{split}_f1.{METRIC_UNSAFE.sub('_', str(name))}"] = per_class["f1"]
    for split in ("val", "test"):
        scores = (
            record.metrics_plain.get(split) or {}
        )  # the single view's figures when TTA ranks the cell
        metrics.update(
            {
                f"final_{split}_{key}_no_tta": scores[key]
                for key in ("accuracy", "macro_f1")
                if _number(scores.get(key))
            }
        )
        figures = record.calibration.get(split) or {}
        metrics.update(
            {f"final_{split}_{key}": value for key, value in figures.items() if _number(value)}
        )
    if _number(record.calibration.get("temperature")):
        metrics["temperature"] = record.calibration["temperature"]
    metrics.update(intervals(record, run_dir))
    metrics.update(
        {f"timing_{key}": value for key, value in (record.timings or {}).items() if _number(value)}
    )
    if _number((record.params or {}).get("total")):
        metrics["params_total"] = record.params["total"]
    if record.history.get("loss"):
        metrics["epochs_trained"] = len(record.history["loss"])
    return metrics


def intervals(record: CellRecord, run_dir: Path) -> dict[str, float]:
    """Accuracy and macro-F1 intervals per split from the cell's predictions CSV."""
    path = run_dir / record.predictions_file if record.predictions_file else None
    if path is None or not path.is_file():
        return {}
    frame = pd.read_csv(path)
    out = {}
    for split, rows in frame.groupby("split"):
        y_true, y_pred = rows["true"].to_numpy(), rows["pred"].to_numpy()
        for metric in ("accuracy", "macro_f1"):
            low, high = stats.bootstrap_ci(
                y_true, y_pred, metric=metric, seed=0, num_classes=len(record.class_names)
            )
            out[f"final_{split}_{metric}_ci_low"], out[f"final_{split}_{metric}_ci_high"] = (
                low,
                high,
            )
    return out


def record_tags(record: CellRecord) -> dict[str, str]:
    return {
        f"benchmark.{key}": getattr(record, key)
        for key in RECORD_TAGS
        if getattr(record, key) not in ("", None)
    }


def log_artifacts(
    store: MlflowStore, run_id: str, record: CellRecord, run_dir: Path, saved_model: Path | None
) -> None:
    """The record, predictions CSV, training-curve and confusion-matrix plots, the traceback and the
    saved model."""
    from benchmark.results import plots

    client = store.client
    client.log_dict(run_id, record.to_json(), f"record/{record.cell_id}.json")
    if record.traceback:
        client.log_text(run_id, record.traceback, "record/traceback.txt")
    if record.predictions_file and (run_dir / record.predictions_file).is_file():
        client.log_artifact(run_id, str(run_dir / record.predictions_file), "predictions")
    with tempfile.TemporaryDirectory() as folder:
        if record.history.get("loss"):
            plots.training_curves(
                record.history, Path(folder) / "training_curves.png", record.cell_id
            )
        for split in ("val", "test"):
            matrix = record.split_metrics(split).get("confusion_matrix")
            if matrix:
                plots.confusion_matrices(
                    matrix,
                    record.class_names,
                    Path(folder) / f"confusion_{split}.png",
                    f"{record.cell_id}: {split}",
                )
        if any(Path(folder).iterdir()):
            client.log_artifacts(run_id, folder, "plots")
    if saved_model is not None and Path(saved_model).is_file():
        client.log_artifact(run_id, str(saved_model), "model")
        if Path(saved_model).with_suffix(".json").is_file():
            client.log_artifact(run_id, str(Path(saved_model).with_suffix(".json")), "model")


def _number(value) -> bool:
    return (
        isinstance(value, (int, float, np.number))
        and not isinstance(value, bool)
        and np.isfinite(value)
    )
