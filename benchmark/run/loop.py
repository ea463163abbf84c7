"""Runs the grid: trains each unfinished cell in order and writes one record per cell.

An exception inside one cell becomes a failed record and the sweep goes on; errors the user must
fix stop the run. The record is the commit point: it is written (atomically) after the cell's
saved model, and only then are the cell's backups removed.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

from benchmark.config.config_diff import GRID_AXES, differing_keys
from benchmark.config.run_config import config_from_dict
from benchmark.errors import USER_ERRORS, UsageError
from benchmark.io import DiskFullError, is_disk_full
from benchmark.output import say
from benchmark.plan.cost import cell_epochs
from benchmark.progress import Progress
from benchmark.run.cell import failed_record, run_cell
from benchmark.run.claims import claim_cell, lock_path
from benchmark.run.folder import RunContext, prepare_run, work_dir
from benchmark.run.grid import Cell
from benchmark.run.isolation import run_in_child, should_isolate
from benchmark.run.late_fusion import run_late_fusion_cell
from benchmark.run.records import (
    UNREADABLE,
    CellRecord,
    finished_cell_ids,
    load_records,
    write_record,
)
from benchmark.run.robustness import score_trained_cell
from benchmark.run.saved_models import save_model_if_wanted
from benchmark.run.split_files import check_splits
from benchmark.run.tracking import GridTracker
from benchmark.run.zero_shot import run_zero_shot_cell


def train_or_combine(ctx: RunContext, cell: Cell, *, verbose: int | str, callbacks=()):
    """The one dispatch on a model's kind: a late-fusion cell combines its components'
    predictions, a zero-shot cell scores prompts; every other kind trains (`run_cell`).

    Each sees the run through its fold (`ctx.split` is the cell's split).
    """
    ctx = ctx.for_fold(cell.fold)
    kind = ctx.plan(cell.model).kind
    if kind == "late_fusion":
        return run_late_fusion_cell(ctx, cell), None
    if kind == "zero_shot":
        return run_zero_shot_cell(ctx, cell)
    return run_cell(ctx, cell, verbose=verbose, callbacks=callbacks)


def combines(ctx: RunContext, cell: Cell) -> bool:
    """Whether the cell combines trained cells (late fusion) instead of training in a process."""
    return ctx.plan(cell.model).kind == "late_fusion"


def run_grid(
    ctx: RunContext,
    *,
    only: list[int] | None = None,
    quiet: bool = False,
    tracker: GridTracker | None = None,
) -> int:
    """Runs every unfinished cell (or those of the grid indices `only`); returns the number of
    failed cells.

    A cell whose record is finished under the same settings and split is skipped; one another
    process is training (its lock is held) is skipped with a note; everything else trains. `tracker`
    mirrors each cell into an experiment tracker (MLflow, TensorBoard); None tracks nothing.
    """
    tracker = tracker or GridTracker()
    cells = ctx.cells
    if only is not None:
        outside = [i for i in only if not 0 <= i < len(cells)]
        if outside:
            raise UsageError(
                f"--cell {outside[0]} is out of range; this grid has cells 0..{len(cells) - 1}"
            )
        cells = [cells[i] for i in only]
    records = {r.cell_id: r for r in load_records(ctx.run_dir)}
    check_splits(records.values(), ctx.fingerprints())
    done = finished_here(records, cells, ctx)
    todo = [c for c in cells if c.cell_id not in done]
    if len(todo) < len(cells):
        say(
            f"resuming: {len(cells) - len(todo)} of {len(cells)} cells already finished, "
            f"{len(todo)} to run"
        )
    isolate = should_isolate(ctx.config.isolate_cells, sum(not combines(ctx, c) for c in todo))
    if isolate and tracker.active:
        isolate = False  # the tracker's open runs and epoch loggers live in this process
        say("cells train in this process: experiment tracking is on (it logs from here)")
    if isolate:
        say(
            "each cell trains in its own process (--isolate-cells): memory stays flat over the grid"
        )
    failed, busy = 0, []
    if todo:
        tracker.start_grid(ctx)
    with Progress([c.model for c in todo], quiet=quiet) as progress:
        for position, cell in enumerate(todo, 1):
            failed += _run_one(ctx, cell, position, progress, isolate, tracker, busy)
    if busy:
        say(
            f"{len(busy)} cell(s) were left to another process; "
            f"`run_benchmark.py report {ctx.run_dir}` rebuilds the tables once it has finished"
        )
    return failed


def _run_one(ctx, cell: Cell, position: int, progress: Progress, isolate, tracker, busy) -> int:
    """Claims, trains and records one cell, telling `progress`; returns 1 if it failed, else 0."""
    with claim_cell(ctx.run_dir, cell.cell_id) as claimed:
        if not claimed or _finished_meanwhile(ctx, cell):
            busy.append(cell.cell_id)
            progress.skip_cell(
                position,
                f"{cell.cell_id}: another process is training or has trained it "
                f"(lock {lock_path(ctx.run_dir, cell.cell_id)})",
            )
            return 0
        epochs = sum(cell_epochs(ctx.plan(cell.model), ctx.config))
        progress.start_cell(position, cell.cell_id, cell.model, epochs)
        if isolate and not combines(ctx, cell):
            record = _record_from_child(ctx, cell, progress.keras_verbose)
        else:
            record = _train_and_record(ctx, cell, progress.keras_verbose, tracker)
    if record.ok:
        val = record.split_metrics("val").get("accuracy", float("nan"))
        progress.finish_cell(True, f"val_accuracy {val:.4f}")
    else:
        progress.finish_cell(False, record.error)
    return 0 if record.ok else 1


def _train_and_record(
    ctx: RunContext, cell: Cell, verbose, tracker: GridTracker | None = None
) -> CellRecord:
    """Trains (or combines) one claimed cell and commits its record; an exception becomes a failed
    record.
    """
    tracker = tracker or GridTracker()
    model, disk_full = None, False
    try:
        record, model = train_or_combine(
            ctx, cell, verbose=verbose, callbacks=tracker.start_cell(ctx, cell)
        )
    except USER_ERRORS:
        raise
    except Exception as err:  # one cell's failure (out of memory, NaN, ...) must not stop the sweep
        record, disk_full = failed_record(cell, ctx, err), is_disk_full(err)
    saved = None
    try:
        saved = save_model_if_wanted(ctx, record, model) if model is not None else None
    except DiskFullError as err:
        record, disk_full = failed_record(cell, ctx, err), True
    tracker.finish_cell(ctx, record, saved)
    commit_record(ctx.run_dir, record)
    if not disk_full:  # on a full disk the backups stay: the re-run resumes where it filled up
        shutil.rmtree(work_dir(ctx.run_dir, cell.cell_id), ignore_errors=True)
    score_trained_cell(ctx, record, model)  # after the commit: an extra, never the cell
    return record


def commit_record(run_dir: Path, record: CellRecord) -> None:
    """Writes the record, the commit point; a record the full disk refuses stops the run with one
    line, since the sweep could record nothing more."""
    try:
        write_record(run_dir, record)
    except DiskFullError as err:
        raise UsageError(f"{err}: free space and run the same command again (it resumes)") from err


def _record_from_child(ctx: RunContext, cell: Cell, verbose) -> CellRecord:
    """`_train_and_record` in a child process; a child that dies leaves a failed record written
    here.
    """
    try:
        return run_in_child(_train_and_record, ctx, cell, verbose)
    except USER_ERRORS:
        raise
    except ChildProcessError as err:
        record = failed_record(cell, ctx, err)
        commit_record(ctx.run_dir, record)
        return record


def finished_here(
    records: dict[str, CellRecord], cells: list[Cell], ctx: RunContext, *, explain: bool = True
) -> set[str]:
    """The cells of `cells` with a finished record trained under this configuration; says why the
    others retrain (unless `explain` is False: the check before each cell repeats the run's first
    one).

    After `--force` a cell trained under other settings is trained again, so the folder's
    `config.yaml` always describes every cell in it. The grid axes (models, alphas, seeds) and
    output-only keys may differ: they choose which cells exist, not how a cell trains.
    """
    current = ctx.config.to_dict()
    done, stale = set(), {}
    for cell in cells:
        record = records.get(cell.cell_id)
        if record is None:
            continue
        if record.status == UNREADABLE:
            if explain:
                say(f"{record.error}; training {cell.cell_id} again")
        elif record.ok:
            changed = (
                [k for k in differing_keys(record.config, current) if k not in GRID_AXES]
                if record.config
                else []
            )
            if changed:
                stale[cell.cell_id] = changed
            else:
                done.add(cell.cell_id)
    if stale and explain:
        keys = sorted({k for changed in stale.values() for k in changed})
        say(
            f"retraining {len(stale)} finished cell(s) trained under other settings "
            f"({', '.join(keys)})"
        )
    return done


def _finished_meanwhile(ctx: RunContext, cell: Cell) -> bool:
    """Whether another process committed this cell's record after this run listed the folder."""
    records = {r.cell_id: r for r in load_records(ctx.run_dir)}
    return cell.cell_id in finished_here(records, [cell], ctx, explain=False)


def late_fusion_indices(ctx: RunContext) -> list[int]:
    """Grid cells that combine other cells' predictions instead of training."""
    return [cell.index for cell in ctx.cells if combines(ctx, cell)]


def finish_late_fusion(run_dir: Path) -> int:
    """Computes the late-fusion cells a Slurm array leaves to its merge job (they need their
    components' predictions, which parallel tasks may not have written yet); returns the number that
    failed."""
    config_file = run_dir / "config.yaml"
    if not config_file.is_file():
        return 0
    ctx = prepare_run(
        config_from_dict(yaml.safe_load(config_file.read_text())), run_dir, write=False
    )
    done = finished_cell_ids(run_dir)
    pending = [i for i in late_fusion_indices(ctx) if ctx.cells[i].cell_id not in done]
    return run_grid(ctx, only=pending, quiet=True) if pending else 0
