"""The experiment tracker a grid (or a tune search) reports to: MLflow runs and TensorBoard logs.

One MLflow experiment per run folder (named after the folder unless `mlflow_experiment` names it),
one parent run per grid and one child run per cell (per trial for a search). Run ids live in
`RUN_DIR/tracking/` (`grid.json`, `<cell_id>.json`), keyed by tracking URI: a resumed or requeued
cell reopens its run and its epoch numbering continues where the backups resume it; concurrent
Slurm array tasks share the one parent run (see `MlflowStore.open_run`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmark.config.run_config import RunConfig
from benchmark.output import say, warn
from benchmark.run.folder import work_dir
from benchmark.run.records import load_records
from benchmark.run.tracking import GridTracker
from benchmark.tracking import summary
from benchmark.tracking.callbacks import MlflowEpochLogger, PhasedTensorBoard, tensorboard_available
from benchmark.tracking.store import MlflowStore, flat_params, tracking_uri


def tracking_dir(run_dir: Path) -> Path:
    """Where a run folder keeps its MLflow run ids."""
    return Path(run_dir) / "tracking"


def tensorboard_dir(run_dir: Path, name: str) -> Path:
    return Path(run_dir) / "tensorboard" / name


class MlflowRuns:
    """A store, the folder's experiment and its parent run, opened lazily on the first `start()`."""

    def __init__(self, config: RunConfig, folder: Path):
        self.folder = Path(folder)
        self.store = (
            MlflowStore(tracking_uri(config.mlflow, self.folder)) if config.mlflow else None
        )
        self.experiment_name = config.mlflow_experiment or self.folder.resolve().name
        self.experiment = None
        self.parent = None
        self.children: dict[str, tuple[str, bool]] = {}  # key -> (run id, resumed)

    @property
    def on(self) -> bool:
        return self.store is not None and self.store.enabled

    def start(self, *, params: dict[str, Any], tags: dict[str, str]) -> None:
        if (
            self.store is None
            or self.parent is not None
            or not self.store.enabled
            or not self.store.connect()
        ):
            return
        self.experiment = self.store.guard(
            "opening the experiment", self.store.experiment_id, self.experiment_name
        )
        if self.experiment is None:
            return
        opened = self.store.guard(
            "opening the parent run",
            self.store.open_run,
            self.experiment,
            tracking_dir(self.folder) / "grid.json",
            name=self.folder.resolve().name,
            tags={"benchmark.folder": str(self.folder.resolve()), **tags},
            params=params,
            shared=True,
        )
        if opened:
            self.parent = opened[0]
            say(f"mlflow: logging to {self.store.uri} (experiment {self.experiment_name!r})")

    def open_child(
        self, key: str, *, name: str, params: dict[str, Any], tags: dict[str, str]
    ) -> str | None:
        if not self.on or self.parent is None:
            return None
        opened = self.store.guard(
            "opening a run",
            self.store.open_run,
            self.experiment,
            tracking_dir(self.folder) / f"{key}.json",
            name=name,
            params=params,
            tags={"mlflow.parentRunId": self.parent, **tags},
        )
        if opened:
            self.children[key] = opened
        return opened[0] if opened else None

    def epoch_logger(self, run_id: str, backups: Path | None) -> MlflowEpochLogger:
        def log(metrics: dict, step: int) -> None:
            self.store.guard("logging an epoch", self.store.log, run_id, metrics=metrics, step=step)

        return MlflowEpochLogger(log, backups)

    def finish_parent(
        self, *, metrics: dict[str, float], artifacts: list[Path], close: bool
    ) -> None:
        if not self.on or self.parent is None:
            return
        self.store.guard("logging the grid", self._finish_parent, metrics, artifacts, close)

    def _finish_parent(self, metrics, artifacts, close) -> None:
        self.store.log(self.parent, metrics=metrics)
        for path in artifacts:
            if path.is_file():
                self.store.client.log_artifact(self.parent, str(path))
        if close:
            self.store.close(self.parent, "FINISHED")


class ExperimentTracker(GridTracker):
    """MLflow (when `config.mlflow`) and TensorBoard (when `config.tensorboard`) for one run
    folder."""

    active = True

    def __init__(self, config: RunConfig, run_dir: Path):
        self.run_dir = Path(run_dir)
        self.mlflow = MlflowRuns(config, self.run_dir)
        self.tensorboard = bool(config.tensorboard)

    def start_grid(self, ctx) -> None:
        if self.tensorboard and not tensorboard_available():
            warn(
                "--tensorboard needs the tensorboard package (pip install -r "
                "requirements.txt); no TensorBoard logs for this run"
            )
            self.tensorboard = False
        self.mlflow.start(
            params=flat_params(ctx.config.to_dict()),
            tags={"benchmark.cells": str(len(ctx.cells)), "benchmark.kind": "grid"},
        )

    def start_cell(self, ctx, cell) -> list:
        backups = work_dir(ctx.run_dir, cell.cell_id)
        callbacks = []
        if self.tensorboard:
            callbacks.append(PhasedTensorBoard(tensorboard_dir(ctx.run_dir, cell.cell_id), backups))
        run_id = self.mlflow.open_child(
            cell.cell_id,
            name=cell.cell_id,
            params=summary.cell_params(ctx.config.to_dict(), cell, ctx.plan(cell.model)),
            tags={"benchmark.cell_id": cell.cell_id, "benchmark.kind": "cell"},
        )
        if run_id is not None:
            callbacks.append(self.mlflow.epoch_logger(run_id, backups))
        return callbacks

    def finish_cell(self, ctx, record, saved_model: Path | None = None) -> None:
        opened = self.mlflow.children.pop(record.cell_id, None)
        if opened is None or not self.mlflow.on:
            return
        store = self.mlflow.store
        store.guard("finishing a cell's run", self._finish_cell, store, opened, record, saved_model)

    def _finish_cell(
        self, store: MlflowStore, opened: tuple[str, bool], record, saved_model
    ) -> None:
        run_id, resumed = opened
        if (
            resumed and record.history
        ):  # a kill may have left epochs between the backup and the log unlogged
            store.log_history(
                run_id, {k: v for k, v in record.history.items() if k != "phase_boundary"}
            )
        boundary = record.history.get("phase_boundary") if record.history else None
        if (
            isinstance(boundary, int) and len(record.phases) < 2
        ):  # with phase 2, the epoch logger logged it
            store.log(run_id, metrics={"phase_boundary": boundary}, step=boundary)
        store.log(
            run_id,
            metrics=summary.final_metrics(record, self.run_dir),
            tags=summary.record_tags(record),
        )
        summary.log_artifacts(store, run_id, record, self.run_dir, saved_model)
        store.close(run_id, "FINISHED" if record.ok else "FAILED")

    def end_grid(self, ctx, failed: int) -> None:
        records = load_records(ctx.run_dir)
        done = {r.cell_id for r in records if r.ok}
        complete = all(cell.cell_id in done for cell in ctx.cells)
        self.mlflow.finish_parent(
            metrics={"cells_ok": len(done), "cells_failed": sum(not r.ok for r in records)},
            artifacts=[
                ctx.run_dir / name for name in ("config.yaml", "leaderboard.csv", "report.md")
            ],
            close=complete,
        )


def make_tracker(config: RunConfig, run_dir: Path) -> GridTracker:
    """The no-op tracker when neither MLflow nor TensorBoard is asked for (nothing imported, nothing
    written)."""
    if not config.mlflow and not config.tensorboard:
        return GridTracker()
    return ExperimentTracker(config, run_dir)


class TrialTracker:
    """A tune search as one parent run with one child run per trial (params: the trial's values).

    Trials train without backups (KerasTuner reruns an unfinished trial from scratch), so each fit's
    epochs are counted in memory to put phase 2 after phase 1.
    """

    def __init__(self, config: RunConfig, out: Path):
        self.out = Path(out)
        self.mlflow = MlflowRuns(config, self.out)
        self.tensorboard = bool(config.tensorboard) and tensorboard_available()
        self.base = config

    def start(self, *, model: str, tuner: str, objective: str) -> None:
        self.mlflow.start(
            params={
                **flat_params(self.base.to_dict()),
                "tune.model": model,
                "tune.tuner": tuner,
                "tune.objective": objective,
            },
            tags={"benchmark.kind": "tune"},
        )

    def start_trial(self, trial_id: str, values: dict[str, Any]) -> list:
        key = f"trial_{trial_id}"
        callbacks = [PhasedTensorBoard(tensorboard_dir(self.out, key))] if self.tensorboard else []
        run_id = self.mlflow.open_child(
            key,
            name=key,
            params={**flat_params(values), "trial_id": trial_id},
            tags={"benchmark.kind": "trial", "benchmark.trial_id": trial_id},
        )
        if run_id is not None:
            callbacks.append(self.mlflow.epoch_logger(run_id, None))
        return callbacks

    def finish_trial(
        self,
        trial_id: str,
        *,
        metrics: dict[str, float],
        epochs: int,
        seconds: float,
        error: str = "",
    ) -> None:
        opened = self.mlflow.children.pop(f"trial_{trial_id}", None)
        if opened is None or not self.mlflow.on:
            return
        store = self.mlflow.store
        final = {f"final_{key}": value for key, value in metrics.items()}
        tags = {
            "benchmark.status": "failed" if error else "ok",
            **({"benchmark.error": error} if error else {}),
        }
        store.guard(
            "finishing a trial's run",
            store.log,
            opened[0],
            metrics={**final, "epochs_trained": epochs, "timing_total_seconds": seconds},
            tags=tags,
        )
        store.guard(
            "finishing a trial's run", store.close, opened[0], "FAILED" if error else "FINISHED"
        )

    def end(self) -> None:
        self.mlflow.finish_parent(
            metrics={},
            close=True,
            artifacts=[
                self.out / name for name in ("trials.csv", "importance.csv", "best_config.yaml")
            ],
        )
