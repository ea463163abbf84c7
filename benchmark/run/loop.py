"""Runs the grid: trains each unfinished cell in order and writes one record per cell.

An exception inside one cell becomes a failed record and the sweep goes on; errors the user must
fix stop the run. The record is the commit point: it is written (atomically) after the cell's
saved model, and only then are the cell's backups and spilled image cache removed.
"""
from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

import yaml

from benchmark.config.run_config import config_from_dict
from benchmark.errors import USER_ERRORS, UsageError
from benchmark.run.cell import failed_record, run_cell
from benchmark.run.folder import RunContext, cache_dir, prepare_run, work_dir
from benchmark.run.grid import Cell
from benchmark.run.late_fusion import run_late_fusion_cell
from benchmark.run.records import finished_cell_ids, write_record
from benchmark.run.saved_models import save_model_if_wanted
from benchmark.run.zero_shot import run_zero_shot_cell
from models import get_entry


def train_or_combine(ctx: RunContext, cell: Cell, *, verbose: int | str):
    """A late-fusion cell combines its components' predictions, a zero-shot cell scores prompts; every other cell trains."""
    entry = get_entry(cell.model)
    if entry.components:
        return run_late_fusion_cell(ctx, cell), None
    if entry.zero_shot:
        return run_zero_shot_cell(ctx, cell)
    return run_cell(ctx, cell, verbose=verbose)


def run_grid(ctx: RunContext, *, only: list[int] | None = None, quiet: bool = False) -> int:
    """Runs every unfinished cell (or those of the grid indices `only`); returns the number of failed cells."""
    cells = ctx.cells
    if only is not None:
        outside = [i for i in only if not 0 <= i < len(cells)]
        if outside:
            raise UsageError(f"--cell {outside[0]} is out of range; this grid has cells 0..{len(cells) - 1}")
        cells = [cells[i] for i in only]
    done = finished_cell_ids(ctx.run_dir)
    todo = [c for c in cells if c.cell_id not in done]
    if len(todo) < len(cells):
        print(f"resuming: {len(cells) - len(todo)} of {len(cells)} cells already finished, {len(todo)} to run")
    verbose = 0 if quiet else (1 if sys.stdout.isatty() else 2)
    failed, start = 0, time.perf_counter()
    for position, cell in enumerate(todo, 1):
        print(f"[{position}/{len(todo)}] start {cell.cell_id} (elapsed {_clock(time.perf_counter() - start)})", flush=True)
        model = None
        try:
            record, model = train_or_combine(ctx, cell, verbose=verbose)
        except USER_ERRORS:
            raise
        except Exception as err:  # one cell's failure (out of memory, NaN, ...) must not stop the sweep
            failed += 1
            record = failed_record(cell, ctx, err)
            print(f"[{position}/{len(todo)}] FAILED {cell.cell_id}: {record.error}", flush=True)
        if model is not None:
            save_model_if_wanted(ctx, record, model)
        write_record(ctx.run_dir, record)  # the record is the commit point
        shutil.rmtree(work_dir(ctx.run_dir, cell.cell_id), ignore_errors=True)
        shutil.rmtree(cache_dir(ctx.run_dir, cell.cell_id), ignore_errors=True)
        elapsed = time.perf_counter() - start
        eta = elapsed / position * (len(todo) - position)
        if record.ok:
            val = record.split_metrics("val").get("accuracy", float("nan"))
            print(f"[{position}/{len(todo)}] done {cell.cell_id}: val_accuracy {val:.4f} "
                  f"(elapsed {_clock(elapsed)}, ETA {_clock(eta)})", flush=True)
    return failed


def late_fusion_indices(ctx: RunContext) -> list[int]:
    """Grid cells that combine other cells' predictions instead of training."""
    return [cell.index for cell in ctx.cells if get_entry(cell.model).components]


def finish_late_fusion(run_dir: Path) -> int:
    """Computes the late-fusion cells a Slurm array leaves to its merge job (they need their components'
    predictions, which parallel tasks may not have written yet); returns the number that failed."""
    config_file = run_dir / "config.yaml"
    if not config_file.is_file():
        return 0
    ctx = prepare_run(config_from_dict(yaml.safe_load(config_file.read_text())), run_dir, write=False)
    done = finished_cell_ids(run_dir)
    pending = [i for i in late_fusion_indices(ctx) if ctx.cells[i].cell_id not in done]
    return run_grid(ctx, only=pending, quiet=True) if pending else 0


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600:d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
