"""Cell records on disk: one JSON file per cell, written atomically so a kill loses at most one cell."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd


def write_json_atomic(path: Path, data: Any) -> None:
    """Writes to a temporary file in the same folder, then renames it over `path` (atomic on POSIX)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(data, handle, indent=2, default=_json_default)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_csv_atomic(path: Path, frame: pd.DataFrame) -> None:
    """Same guarantee as `write_json_atomic`, for tables."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        frame.to_csv(tmp, index=False)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(tmp, path)


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot store {type(value).__name__} in a record")


def cells_dir(run_dir: Path) -> Path:
    return run_dir / "cells"


def record_path(run_dir: Path, cell_id: str) -> Path:
    return cells_dir(run_dir) / f"{cell_id}.json"


def predictions_path(run_dir: Path, cell_id: str) -> Path:
    return cells_dir(run_dir) / f"{cell_id}.predictions.csv"


def load_records(run_dir: Path) -> list[dict]:
    """Every readable cell record of a run, in grid order (unreadable files are skipped)."""
    records = []
    for path in sorted(cells_dir(run_dir).glob("*.json")):
        try:
            records.append(json.loads(path.read_text()))
        except (OSError, json.JSONDecodeError):
            continue
    return sorted(records, key=lambda r: r.get("index", 0))


def finished_cell_ids(run_dir: Path) -> set[str]:
    """Cells whose record says they finished ("ok"); failed cells are re-run on resume."""
    return {r["cell_id"] for r in load_records(run_dir) if r.get("status") == "ok"}


def load_predictions(run_dir: Path, record: dict) -> pd.DataFrame | None:
    """A cell's saved predictions (`split,path,true,pred,prob_*`), or None if it has none."""
    name = record.get("predictions_file")
    if not name or not (run_dir / name).is_file():
        return None
    return pd.read_csv(run_dir / name)


def validation_rank_key(record: dict) -> tuple[float, float, int]:
    """How one cell ranks (higher is better): validation accuracy, then validation macro-F1, then the
    earlier grid cell, so ties resolve the same way wherever a best cell is picked (saved model,
    deployment profile, predict, report)."""
    val = record.get("metrics", {}).get("val", {})
    return (val.get("accuracy", -1.0), val.get("macro_f1", -1.0), -int(record.get("index", 0)))
