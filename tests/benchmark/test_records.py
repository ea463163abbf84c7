"""Typed cell records and sidecars: the JSON that commit 60ee30d's runner wrote still loads and
round-trips."""

import json
import math
import shutil
from pathlib import Path

import pandas as pd
import pytest

from benchmark.config.run_config import RunConfig
from benchmark.plan import resolve_plans
from benchmark.results.tables import leaderboard
from benchmark.run.cell_key import CellKey
from benchmark.run.grid import build_grid
from benchmark.run.records import (
    CellRecord,
    SavedModelInfo,
    finished_cell_ids,
    load_records,
    record_path,
    validation_rank_key,
    write_record,
)

DATA = Path(__file__).parent / "data"


def old_run_folder(tmp_path: Path) -> Path:
    """A run folder holding one finished and one failed record, byte for byte as the untyped runner
    wrote them."""
    cells = tmp_path / "cells"
    cells.mkdir()
    for name in ("ok", "failed"):
        data = json.loads((DATA / f"record_60ee30d_{name}.json").read_text())
        shutil.copy(DATA / f"record_60ee30d_{name}.json", cells / f"{data['cell_id']}.json")
    pd.DataFrame(
        {
            "split": ["val"] * 4 + ["test"] * 4,
            "path": [f"x{i}.png" for i in range(8)],
            "true": [0, 0, 1, 1] * 2,
            "pred": [0, 0, 1, 0, 0, 1, 1, 0],
            "prob_a": [0.9, 0.8, 0.2, 0.6] * 2,
            "prob_b": [0.1, 0.2, 0.8, 0.4] * 2,
        }
    ).to_csv(cells / "simple_cnn__alpha0__seed0.predictions.csv", index=False)
    return tmp_path


def test_old_records_load_as_typed_records(tmp_path):
    ok, failed = load_records(old_run_folder(tmp_path))
    assert ok.ok and not failed.ok
    assert ok.registry_name == "simple_cnn" and ok.split_metrics("val")["accuracy"] == 0.75
    assert (
        ok.params["total"] == 120
        and ok.phases[0]["name"] == "single"
        and ok.history["phase_boundary"] == 1
    )
    assert (
        failed.error.startswith("ResourceExhaustedError") and failed.registry_name == "simple_cnn"
    )
    assert validation_rank_key(ok) == pytest.approx((0.75, 0.70, 0))
    board = leaderboard(tmp_path)
    assert list(board["status"]) == ["ok", "failed"] and board.loc[0, "val_accuracy"] == 0.75


def test_an_old_record_gets_its_calibration_from_its_saved_predictions(tmp_path):
    """Written before calibration existed: the leaderboard computes it from the predictions CSV,
    writing nothing."""
    run_dir = old_run_folder(tmp_path)
    before = {p.name: p.read_bytes() for p in (run_dir / "cells").iterdir()}
    board = leaderboard(run_dir)
    # Confidences 0.9 (right), 0.8 (right), 0.8 (right), 0.6 (wrong) in bins 14, 12, 12, 9 of 15:
    # ECE = (0.1 + 2 * 0.2 + 0.6) / 4; Brier = (0.02 + 0.08 + 0.08 + 0.72) / 4.
    assert board.loc[0, "test_ece"] == pytest.approx(0.275)
    assert board.loc[0, "test_brier"] == pytest.approx(0.225)
    assert (
        0 < board.loc[0, "temperature"]
        and board.loc[0, "test_ece_scaled"] >= 0
        and board.loc[0, "tta"] == 0
    )
    assert {p.name: p.read_bytes() for p in (run_dir / "cells").iterdir()} == before


@pytest.mark.parametrize("name", ["ok", "failed"])
def test_a_rewritten_old_record_keeps_every_key_and_value(tmp_path, name):
    original = json.loads((DATA / f"record_60ee30d_{name}.json").read_text())
    record = CellRecord.from_json({**original, "a_key_from_the_future": [1, 2]})
    write_record(tmp_path, record)
    rewritten = json.loads(record_path(tmp_path, record.cell_id).read_text())
    assert {k: rewritten[k] for k in original} == original
    assert rewritten["a_key_from_the_future"] == [1, 2]
    assert CellRecord.from_json(rewritten) == record


def test_a_record_without_its_identity_is_refused_and_a_minimal_one_keeps_its_id_opaque():
    with pytest.raises(KeyError, match="cell_id"):
        CellRecord.from_json({"status": "ok"})
    with pytest.raises(ValueError, match="metrics.val.accuracy is missing"):  # a stub: issue 30
        CellRecord.from_json({"cell_id": "mobilenet_v2__alpha0.5__seed3", "status": "ok"})
    record = CellRecord.from_json(
        {
            "cell_id": "mobilenet_v2__alpha0.5__seed3",
            "status": "ok",
            "metrics": {"val": {"accuracy": 0.5}},
        }
    )
    # The id is a file name, never parsed back: no alpha 0.5 or seed 3 is made up from it.
    assert record.model == "mobilenet_v2__alpha0.5__seed3"
    assert (record.seed, record.fold, record.index) == (-1, None, 0)
    assert math.isnan(record.alpha)


def test_an_old_run_folder_resumes_its_grid_by_file_name(tmp_path):
    """The id format is unchanged, so the cells of the grid that wrote a folder find its records."""
    run_dir = old_run_folder(tmp_path)
    config = RunConfig(models=["simple_cnn"], alphas=[0.0, 1.0], weights="none")
    cells = build_grid(config, resolve_plans(config))
    records = {r.cell_id: r for r in load_records(run_dir)}
    assert {c.cell_id for c in cells} == set(records)
    assert finished_cell_ids(run_dir) == {cells[0].cell_id}
    assert [records[c.cell_id].key for c in cells] == [c.key for c in cells]


def test_records_group_by_their_fields_whatever_their_file_is_called(tmp_path):
    """Two seeds of one model x alpha under odd file names are still one leaderboard row."""
    run_dir = old_run_folder(tmp_path)
    original = json.loads((DATA / "record_60ee30d_ok.json").read_text())
    for path in (run_dir / "cells").glob("*.json"):
        path.unlink()
    for seed, name in enumerate(["renamed copy", "other__alpha7__seed9__fold3"]):
        write_record(run_dir, CellRecord.from_json({**original, "cell_id": name, "seed": seed}))
    board = leaderboard(run_dir)
    assert len(board) == 1
    row = board.loc[0]
    assert (row["model"], row["alpha"], row["seeds"]) == ("simple_cnn", 0.0, 2)
    keys = {r.key for r in load_records(run_dir)}
    assert keys == {CellKey("simple_cnn", 0.0, 0), CellKey("simple_cnn", 0.0, 1)}


def test_old_sidecar_loads_and_an_incomplete_one_is_an_error(tmp_path):
    info = SavedModelInfo.read(DATA / "sidecar_60ee30d.json")
    assert info.class_names == ["a", "b"] and info.preprocess == "raw" and info.image_size == 32
    old = json.loads((DATA / "sidecar_60ee30d.json").read_text())
    assert {k: v for k, v in info.to_json().items() if k in old} == old
    assert (
        info.tta == 0 and info.temperature is None
    )  # written before TTA and calibration: neither applies
    older = {
        k: v
        for k, v in info.to_json().items()
        if k not in ("modality", "text_encoder", "sequence_length")
    }
    assert SavedModelInfo.from_json(older).modality == "image"
    with pytest.raises(TypeError):
        SavedModelInfo.from_json({"cell_id": "x"})
