"""Cell records and saved-model sidecars: typed on the way in, plain JSON on disk.

One JSON file per cell (`RUN_DIR/cells/<cell_id>.json`), written atomically, is the commit point of
a cell: a kill loses at most the cell in progress. `CellRecord` is the one shape every writer
builds and every reader (tables, report, predict, deployment cost, Slurm) gets back, so a key is
spelt in one place. `from_json` reads the records earlier versions of the suite wrote: keys it does
not know are kept in `extra` and written back unchanged.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from benchmark.errors import error_line, first_line
from benchmark.io import write_json_atomic
from benchmark.output import warn
from benchmark.run.cell_key import CellKey

OK, FAILED = "ok", "failed"
# A record file that does not parse or does not validate (`record_problem`): `load_records` returns
# a stand-in with this status, the tables leave it out with a warning naming the file, and its
# cell is trained again on the next run.
UNREADABLE = "unreadable record"
NOT_RANKED = (
    FAILED,
    UNREADABLE,
)  # leaderboard rows with these statuses sit at the bottom, unranked
# The alpha and seed of a record that does not say (`CellRecord.from_json`, `unreadable_record`).
UNKNOWN_KEY = {"alpha": float("nan"), "seed": -1}


@dataclass
class CellRecord:
    """What one grid cell trained and measured (or why it failed).

    `model` is the leaderboard label; `registry_name` the registry entry it was built from (they
    differ for the second row late fusion writes, `late_fusion_x (confidence)`). `metrics` holds one
    dict per evaluated split (`val`, `test`) as `training.metrics.classification_metrics` returns
    it.
    """

    cell_id: str
    index: int
    model: str
    alpha: float
    seed: int
    fold: int | None = None  # with --folds: the fold whose split the cell trained and was scored on
    status: str = OK
    error: str = ""
    registry_name: str = ""
    family: str = ""
    modality: str = "image"
    class_names: list[str] = field(default_factory=list)
    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)
    best_val_score: float | None = None
    predictions_file: str = ""
    split_fingerprint: str = ""  # sha1 of the run's splits.csv: cells of one table must share it
    config: dict[str, Any] = field(default_factory=dict)
    environment: dict[str, Any] = field(default_factory=dict)
    # How the cell was trained.
    weights: str = ""
    image_size: int | None = None
    preprocess: str = ""
    class_weights: list[float] = field(default_factory=list)
    head_features: str = ""
    fine_tune_features: str = ""  # "bank", "online" or "none"; "" in records older than the bank
    precision: str = ""
    strategy: str = ""
    replicas: int = 1
    batch_size: int | None = None  # per replica, after any out-of-memory halving
    phases: list[dict[str, Any]] = field(default_factory=list)
    phase2_note: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, Any] = field(default_factory=dict)
    history: dict[str, Any] = field(default_factory=dict)
    # How the cell was evaluated. `metrics` and the predictions file hold what the leaderboard
    # ranks: the average over `tta` test-time views when tta > 0, and then `metrics_plain` holds the
    # single-view figures.
    tta: int = 0
    metrics_plain: dict[str, dict[str, Any]] = field(default_factory=dict)
    # `training.calibration.calibration_summary` of the saved probabilities (temperature fitted on
    # val); empty in records written before it, which `run.calibrated.with_calibration` completes
    # from the predictions.
    calibration: dict[str, Any] = field(default_factory=dict)
    # Text, fusion and late fusion only.
    caption_warning: str = ""
    late_fusion_rule: str = ""
    image_weight: float | None = None
    components: list[str] = field(default_factory=list)
    # Failed cells only: the full traceback (the table shows `error`, one line).
    traceback: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.registry_name = self.registry_name or self.model

    @property
    def ok(self) -> bool:
        return self.status == OK

    @property
    def key(self) -> CellKey:
        """The record's identity, from its own fields (`cell_id` is only its file name)."""
        return CellKey(self.model, self.alpha, self.seed, self.fold)

    def split_metrics(self, split: str) -> dict[str, Any]:
        """The metrics of one split (`val`, `test`), empty when the cell did not evaluate it."""
        return self.metrics.get(split) or {}

    def to_json(self) -> dict[str, Any]:
        """Every field; `fold` only in a K-fold run, so a record of a run without folds has the
        keys it always had."""
        data = {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if f.name != "extra" and not (f.name == "fold" and self.fold is None)
        }
        return {**data, **self.extra}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CellRecord:
        """Rebuilds a record; one without a `cell_id` raises `KeyError`, one that does not validate
        (`record_problem`) `ValueError`.

        Every record the suite writes carries model, alpha and seed (and fold in a K-fold run). A
        hand-made one without them is not read from its cell id, a file name: it is labelled by
        the whole id, with alpha nan and seed -1 (`UNKNOWN_KEY`), so a table shows it on its own.
        """
        if not isinstance(data, dict) or "cell_id" not in data:
            raise KeyError("record lacks cell_id")
        problem = record_problem(data)
        if problem:
            raise ValueError(problem)
        known = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        values = {key: value for key, value in data.items() if key in known}
        values = {"model": str(data["cell_id"]), **UNKNOWN_KEY, "index": 0, **values}
        return cls(**values, extra={key: value for key, value in data.items() if key not in known})


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def record_problem(data: dict[str, Any]) -> str:
    """Why a record's JSON cannot be a table row, or "" when it can.

    A finished ("ok") record must carry what ranks it, `metrics.val.accuracy`: a stub such as
    `{"status": "ok", "cell_id": ...}` (a copy cut short, a hand edit) would otherwise rank as a
    finished cell with empty metrics. Fields present must have their types.
    """
    if not isinstance(data.get("cell_id"), str) or not data["cell_id"]:
        return "its cell_id is not a name"
    status = data.get("status", OK)
    if status not in (OK, FAILED):
        return f"its status is {status!r}, not {OK!r} or {FAILED!r}"
    for key, kind in (
        ("metrics", dict),
        ("class_names", list),
        ("phases", list),
        ("params", dict),
        ("timings", dict),
        ("calibration", dict),
        ("config", dict),
    ):
        if key in data and not isinstance(data[key], kind):
            return f"its {key} is not a {kind.__name__}"
    for key in ("alpha", "index", "seed"):
        if key in data and not _is_number(data[key]):
            return f"its {key} is not a number"
    if status == OK:
        val = (data.get("metrics") or {}).get("val")
        if not isinstance(val, dict) or not _is_number(val.get("accuracy")):
            return "its status is 'ok' but metrics.val.accuracy is missing"
    return ""


@dataclass
class SavedModelInfo:
    """The `.json` sidecar beside a saved `.keras` model: everything needed to feed it new
    images."""

    cell_id: str
    model: str
    class_names: list[str]
    preprocess: str
    image_size: int | None
    # Provenance: shown to the user, not needed to feed the model.
    alpha: float | None = None
    seed: int | None = None
    weights: str = ""
    val_accuracy: float | None = None
    modality: str = "image"
    text_encoder: str = ""
    sequence_length: int = 32
    # How the cell's figures were made, so a model file copied out of its run folder is shown as
    # ranked: test-time views averaged (0: one) and the temperature its probabilities are divided
    # by (None: none).
    tta: int = 0
    temperature: float | None = None

    @classmethod
    def for_record(
        cls, record: CellRecord, *, text_encoder: str, sequence_length: int
    ) -> SavedModelInfo:
        return cls(
            cell_id=record.cell_id,
            model=record.model,
            class_names=record.class_names,
            preprocess=record.preprocess,
            image_size=record.image_size,
            alpha=record.alpha,
            seed=record.seed,
            weights=record.weights,
            val_accuracy=record.best_val_score,
            modality=record.modality,
            text_encoder=text_encoder,
            sequence_length=sequence_length,
            tta=record.tta,
            temperature=record.calibration.get("temperature"),
        )

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SavedModelInfo:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in names})

    @classmethod
    def read(cls, path: Path) -> SavedModelInfo:
        return cls.from_json(json.loads(Path(path).read_text()))


def cells_dir(run_dir: Path) -> Path:
    return run_dir / "cells"


def record_path(run_dir: Path, cell_id: str) -> Path:
    return cells_dir(run_dir) / f"{cell_id}.json"


def predictions_path(run_dir: Path, cell_id: str) -> Path:
    return cells_dir(run_dir) / f"{cell_id}.predictions.csv"


def write_record(run_dir: Path, record: CellRecord) -> Path:
    return write_json_atomic(record_path(run_dir, record.cell_id), record.to_json())


def load_records(run_dir: Path) -> list[CellRecord]:
    """Every cell record of a run, in grid order.

    A file that cannot be read or does not validate becomes an `UNREADABLE` stand-in (named after
    the file, its error saying why): not `ok`, so nothing ranks or loads it, and the tables name it
    in a warning (`results.tables.build_tables`) instead of dropping it silently.
    """
    records = []
    for path in sorted(cells_dir(run_dir).glob("*.json")):
        try:
            records.append(CellRecord.from_json(json.loads(path.read_text())))
        except (OSError, ValueError, KeyError, TypeError) as err:
            records.append(unreadable_record(path, err))
    return sorted(records, key=lambda r: r.index)


def unreadable_record(path: Path, err: BaseException) -> CellRecord:
    """A stand-in for a record file that did not load, named after the file; its key is unknown."""
    reason = first_line(err, limit=200)
    if isinstance(err, ValueError) and not isinstance(err, json.JSONDecodeError):
        error = f"{path.name} is not a valid cell record ({reason})"  # parsed, but did not validate
    else:
        error = f"{path.name} is unreadable ({error_line(err, limit=200)})"
    return CellRecord(
        cell_id=path.stem,
        index=10**9,
        model=path.stem,
        **UNKNOWN_KEY,
        status=UNREADABLE,
        error=error,
    )


def finished_cell_ids(run_dir: Path) -> set[str]:
    """Cells whose record says they finished ("ok"); failed cells are re-run on resume."""
    return {r.cell_id for r in load_records(run_dir) if r.ok}


def load_predictions(run_dir: Path, record: CellRecord) -> pd.DataFrame | None:
    """A cell's saved predictions (`split,path,true,pred,prob_*`), or None if it has none."""
    name = record.predictions_file
    if not name or not (run_dir / name).is_file():
        return None
    return pd.read_csv(run_dir / name)


def validation_rank_key(record: CellRecord) -> tuple[float, float, int]:
    """How one cell ranks (higher is better): validation accuracy, then validation macro-F1, then
    the earlier grid cell, so ties resolve the same way wherever a best cell is picked (saved model,
    deployment profile, predict, report)."""
    val = record.split_metrics("val")
    return (val.get("accuracy", -1.0), val.get("macro_f1", -1.0), -int(record.index))


@dataclass
class ProbeRecord:
    """A pretrained backbone's linear probe (`training.linear_probe`): one per model (and fold),
    not per alpha or seed, since its features depend on neither. Kept in `RUN_DIR/probes/` beside
    the cells, so `report RUN_DIR` rebuilds the probe table and the leaderboard's `beats_probe`."""

    model: str
    fold: int | None = None
    status: str = OK
    error: str = ""
    weights: str = ""
    image_size: int | None = None
    feature_dim: int | None = None
    C: float | None = None
    class_weight: str = ""  # "none" or "balanced", chosen on validation with C
    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)  # val, test
    grid: list[dict[str, Any]] = field(default_factory=list)  # every point's validation score
    split_fingerprint: str = ""
    seconds: float | None = None  # fitting the grid, not the backbone pass
    features_computed: list[str] = field(default_factory=list)  # splits the probe paid a pass for

    @property
    def probe_id(self) -> str:
        return self.model if self.fold is None else f"{self.model}__fold{self.fold}"

    @property
    def ok(self) -> bool:
        return self.status == OK

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ProbeRecord:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in names})


def probe_path(run_dir: Path, probe_id: str) -> Path:
    return run_dir / "probes" / f"{probe_id}.json"


def write_probe(run_dir: Path, probe: ProbeRecord) -> Path:
    return write_json_atomic(probe_path(run_dir, probe.probe_id), dataclasses.asdict(probe))


def load_probes(run_dir: Path) -> list[ProbeRecord]:
    """Every probe record of a run; a file that does not load is named in a warning and skipped
    (the next run of that model probes again)."""
    probes = []
    for path in sorted((run_dir / "probes").glob("*.json")):
        try:
            probes.append(ProbeRecord.from_json(json.loads(path.read_text())))
        except (OSError, ValueError, TypeError, AttributeError) as err:
            warn(f"probe record {path} is unreadable ({err}); left out")
    return probes
