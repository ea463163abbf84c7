"""The grid as a Slurm job array: one array task per unfinished cell, then a merge job for the
tables.

`run_benchmark.py slurm ... --output RUN_DIR` resolves the run once on the login node (the split is
written to RUN_DIR/splits.csv, or with `--folds K` all K fold splits to RUN_DIR/splits/fold<k>.csv,
before anything is submitted, so concurrent tasks only read them), then writes RUN_DIR/slurm/:

- `config.yaml`: the resolved configuration, the same as RUN_DIR/config.yaml; every task reads it.
- `array.sbatch`: `--array=<unfinished cells>%K`, each task
  `run_benchmark.py --cell $SLURM_ARRAY_TASK_ID`; logs in `logs/%A_%a.out`. Cells with an "ok"
  record are left out, so resubmitting fills the holes.
- `merge.sbatch`: `run_benchmark.py report RUN_DIR`, submitted with `--dependency=afterany:<array>`
  so one failed cell does not hold back the table of the others.

Each task writes only its own record, atomically (`benchmark.run.records`), so tasks never corrupt
each other. A task asks for `--requeue` and for SIGUSR1 two minutes before its time limit: the
script stops the cell and requeues itself; the requeued task resumes the cell from its last finished
epoch and phase (the per-epoch backup in `RUN_DIR/work/<cell>/`, `benchmark.training.checkpoint`).
With nothing left to run, nothing is submitted (not even the merge): `report RUN_DIR` rebuilds the
tables.

This module prepares the run and submits; the options are checked in `slurm_options.py` and the
scripts written by `slurm_scripts.py`.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from benchmark.config.run_config import RunConfig
from benchmark.errors import UsageError
from benchmark.output import say
from benchmark.run.records import load_records
from benchmark.run.slurm_options import SlurmOptions
from benchmark.run.slurm_scripts import SlurmPlan, array_spec, write_slurm_scripts


@dataclass
class SubmitResult:
    """Job ids of a submission and, after `wait`, which submitted cells did not finish "ok"."""

    array_job_id: str
    merge_job_id: str
    waited: bool = False
    merge_exit_code: int | None = None
    failed_cells: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed_cells and self.merge_exit_code in (None, 0)


def _sbatch(args: list[str]) -> str:
    """Runs `sbatch --parsable ARGS` and returns the job id."""
    done = subprocess.run(["sbatch", "--parsable", *args], capture_output=True, text=True)
    if done.returncode != 0:
        message = (done.stderr or done.stdout).strip().splitlines() or [
            f"exit status {done.returncode}"
        ]
        raise UsageError(f"sbatch {' '.join(args)} failed: {message[-1]}")
    return done.stdout.strip().split(";")[0]  # "<id>[;cluster]"


def submit_plan(plan: SlurmPlan, wait: bool = False) -> SubmitResult:
    """Submits the array, then the merge after it; with `wait`, blocks until both end and checks
    every cell."""
    if shutil.which("sbatch") is None:
        raise UsageError(
            "sbatch not found on PATH; run this on a Slurm login node or drop --submit"
        )
    if plan.array_script is None:
        raise UsageError(f"nothing to submit: every cell of {plan.run_dir} has finished")
    array_id = _sbatch([str(plan.array_script)])
    say(
        f"submitted array job {array_id}: cells {array_spec(plan.pending)} (logs in {plan.log_dir})"
    )
    merge_args = [f"--dependency=afterany:{array_id}", str(plan.merge_script)]
    if not wait:
        merge_id = _sbatch(merge_args)
        say(
            f"submitted merge job {merge_id} "
            f"(after the array; writes {plan.run_dir / 'leaderboard.csv'})"
        )
        return SubmitResult(array_id, merge_id)
    # sbatch --wait prints the id at once, then returns when the job ends, with its exit code. The
    # merge starts only after every array task has ended, so its end is the end of both.
    process = subprocess.Popen(
        ["sbatch", "--parsable", "--wait", *merge_args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    merge_id = process.stdout.readline().strip().split(";")[0]
    if merge_id:
        say(f"submitted merge job {merge_id}; waiting for both jobs to end")
    _, errors = process.communicate()
    if not merge_id:
        raise UsageError(f"sbatch of the merge job failed: {errors.strip()}")
    result = SubmitResult(array_id, merge_id, waited=True, merge_exit_code=process.returncode)
    records = {r.cell_id: r for r in load_records(plan.run_dir)}
    for index in plan.pending:
        cell_id = plan.cell_ids[index]
        record = records.get(cell_id)
        if record is None or not record.ok:
            result.failed_cells.append(cell_id)
            reason = "no record" if record is None else (record.error or "failed")
            say(
                f"cell {index} {cell_id} failed: {reason} "
                f"(log {plan.log_dir / f'{array_id}_{index}.out'})"
            )
    if result.merge_exit_code:
        say(
            f"merge job {merge_id} exited {result.merge_exit_code}; "
            f"see {plan.log_dir / f'merge_{merge_id}.out'}"
        )
    return result


def slurm_command(
    config: RunConfig,
    run_dir: str | Path | None,
    options: SlurmOptions,
    submit: bool = False,
    wait: bool = False,
    force: bool = False,
) -> int:
    """What `run_benchmark.py slurm` does: prepare the run once, write the scripts, print or
    submit them."""
    from benchmark.run.fetch_weights import check_weights_available
    from benchmark.run.folder import claim_run, resolve_run

    options.validate()
    if run_dir is None:
        raise UsageError("slurm needs --output RUN_DIR on a file system the compute nodes share")
    if wait and not submit:
        raise UsageError("--wait needs --submit")
    if submit and shutil.which("sbatch") is None:
        raise UsageError(
            "sbatch not found on PATH; run this on a Slurm login node or drop --submit"
        )
    # Resolves every model's plan (refusing what a model cannot honour) and checks the weights,
    # then writes config.yaml and the split file(s), once: a refusal leaves no folder behind.
    context = resolve_run(config, Path(run_dir), force=force)
    models = list(dict.fromkeys(cell.model for cell in context.cells))
    check_weights_available(
        models, context.config.weights, context.config.text_encoder, context.config.image_size
    )
    context = claim_run(context, force=force)
    plan = write_slurm_scripts(context, options)
    say(f"run folder: {plan.run_dir} ({len(context.cells)} cells, {len(plan.pending)} to run)")
    say(f"scripts: {plan.slurm_dir}")
    if not plan.pending:
        say(
            "nothing to submit: every cell has finished; "
            f"`run_benchmark.py report {plan.run_dir}` rebuilds the tables"
        )
        return 0
    if not submit:
        say("submit with:")
        for line in plan.commands:
            say(f"  {line}")
        return 0
    result = submit_plan(plan, wait)
    say(f"array job {result.array_job_id}, merge job {result.merge_job_id}")
    if not result.waited:
        return 0
    if result.ok:
        say(f"all {len(plan.pending)} submitted cells finished; tables in {plan.run_dir}")
        return 0
    say(
        f"{len(result.failed_cells)} of {len(plan.pending)} submitted cells failed; "
        "resubmit the same command to rerun them"
    )
    return 1
