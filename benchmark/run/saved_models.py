"""Trained models kept after a run, each with a sidecar that makes it self-describing.

`best` keeps one file per model name, replaced whenever a cell of that model beats it on
validation; `all` keeps one per cell; `none` keeps none.
"""

from __future__ import annotations

import json
from pathlib import Path

from benchmark.io import replace_atomically, write_json_atomic
from benchmark.run.folder import RunContext
from benchmark.run.records import CellRecord, SavedModelInfo, load_records, validation_rank_key


def saved_models_dir(run_dir: Path) -> Path:
    return run_dir / "saved_models"


def saved_model_file(run_dir: Path, record: CellRecord) -> Path | None:
    """The `.keras` file saved for this very cell, or None when it has none.

    Under `best` the file is named after the model and holds whichever of its cells was best when
    saved, so the sidecar's `cell_id` must name this cell; under `all` it is named after the cell.
    """
    for stem in (record.cell_id, record.model):
        sidecar = saved_models_dir(run_dir) / f"{stem}.json"
        if not sidecar.is_file():
            continue
        try:
            cell_id = json.loads(sidecar.read_text()).get("cell_id")
        except (OSError, ValueError, AttributeError):
            # an unreadable sidecar names no cell; loading the model would fail on it anyway
            continue
        if cell_id == record.cell_id:
            return sidecar.with_suffix(".keras")
    return None


def save_model_if_wanted(ctx: RunContext, record: CellRecord, model) -> Path | None:
    """Saves the trained model (`<stem>.keras`) and its sidecar (`<stem>.json`: classes,
    preprocessing, size).

    Returns the saved `.keras` file, or None when the policy keeps no model of this cell.
    """
    policy = ctx.config.save_models
    if policy == "none" or not record.ok:
        return None
    if policy == "best":
        rivals = [
            r
            for r in load_records(ctx.run_dir)
            if r.model == record.model and r.ok and r.cell_id != record.cell_id
        ]
        if any(validation_rank_key(r) > validation_rank_key(record) for r in rivals):
            return None
        stem = record.model
    else:
        stem = record.cell_id
    target = saved_models_dir(ctx.run_dir) / f"{stem}.keras"
    replace_atomically(target, model.save, suffix=".keras")
    info = SavedModelInfo.for_record(
        record, text_encoder=ctx.config.text_encoder, sequence_length=ctx.config.sequence_length
    )
    write_json_atomic(target.with_suffix(".json"), info.to_json())
    return target
