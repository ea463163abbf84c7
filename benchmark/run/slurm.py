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
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from benchmark.config.run_config import RunConfig
from benchmark.errors import UsageError
from benchmark.output import say
from benchmark.run.records import finished_cell_ids, load_records

PROJECT_ROOT = Path(__file__).resolve().parents[2]  # benchmark/run/slurm.py -> the checkout
SIGNAL_LEAD_SECONDS = (
    120  # SIGUSR1 this long before the time limit (Slurm may send it up to 60 s earlier)
)
# Slurm's --time forms: MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM, D-HH:MM:SS.
_TIME = re.compile(r"^(?:(\d+)-(\d+)(?::(\d+))?(?::(\d+))?|(\d+)(?::(\d+))?(?::(\d+))?)$")
_MEM = re.compile(r"^\d+[KMGT]?$", re.IGNORECASE)


@dataclass
class SlurmOptions:
    """What each array task asks Slurm for; None leaves the cluster's default.

    Args:
        partition: `--partition`.
        gpus_per_task: `--gpus-per-task` (array tasks only; the merge job needs no GPU).
        cpus_per_task: `--cpus-per-task`.
        mem: `--mem`, e.g. "16G".
        time: `--time` in a Slurm form (HH:MM:SS, D-HH:MM:SS, MM, ...).
        max_parallel: at most this many tasks at once (`--array=...%K`).
        account: `--account` (both jobs).
        sbatch_args: further sbatch options, one per item (`--qos=high`), added to both jobs.
    """

    partition: str | None = None
    gpus_per_task: int | None = None
    cpus_per_task: int | None = None
    mem: str | None = None
    time: str | None = None
    max_parallel: int | None = None
    account: str | None = None
    sbatch_args: list[str] = field(default_factory=list)

    def validate(self) -> None:
        for key in ("gpus_per_task", "cpus_per_task", "max_parallel"):
            value = getattr(self, key)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise UsageError(
                    f"--{key.replace('_', '-')} must be a whole number >= 1, got {value!r}"
                )
        if self.time is not None:
            time_limit_seconds(self.time)
        if self.mem is not None and not _MEM.match(str(self.mem)):
            raise UsageError(
                f"--mem {self.mem!r} is not a Slurm memory size; give e.g. 16G or 16000M"
            )
        for key in ("partition", "account"):
            value = getattr(self, key)
            if value is not None and not re.fullmatch(r"[\w.,+-]+", value):
                raise UsageError(f"--{key} {value!r} is not a valid Slurm {key} name")
        for arg in self.sbatch_args:
            if not arg.startswith("-") or "\n" in arg:
                raise UsageError(
                    f"--sbatch-arg {arg!r} must be one sbatch option on one line, "
                    "e.g. --sbatch-arg=--qos=high"
                )


def time_limit_seconds(text: str) -> int:
    """Seconds in a Slurm `--time` value; a bad one is a UsageError naming it."""
    match = _TIME.match(text.strip())
    if not match:
        raise UsageError(
            f"--time {text!r} is not a Slurm time; give HH:MM:SS, D-HH:MM:SS or minutes"
        )
    days, d_hours, d_minutes, d_seconds, minutes, m_seconds, h_seconds = match.groups()
    if days is not None:
        seconds = (
            int(days) * 86400 + int(d_hours) * 3600 + int(d_minutes or 0) * 60 + int(d_seconds or 0)
        )
    elif h_seconds is not None:  # HH:MM:SS
        seconds = int(minutes) * 3600 + int(m_seconds) * 60 + int(h_seconds)
    else:  # MM or MM:SS
        seconds = int(minutes) * 60 + int(m_seconds or 0)
    if seconds <= 0:
        raise UsageError(f"--time {text!r} must be longer than zero")
    return seconds


@dataclass
class SlurmPlan:
    """The written scripts and what submitting them means.

    Args:
        run_dir: the run folder (absolute).
        slurm_dir: RUN_DIR/slurm.
        config_file: RUN_DIR/slurm/config.yaml, what every task reads.
        array_script: RUN_DIR/slurm/array.sbatch, or None when nothing is pending.
        merge_script: RUN_DIR/slurm/merge.sbatch.
        log_dir: RUN_DIR/slurm/logs.
        pending: indices of the cells without an "ok" record (the array).
        cell_ids: cell id of every grid index.
        commands: the shell lines that submit both jobs (what `--submit` runs).
    """

    run_dir: Path
    slurm_dir: Path
    config_file: Path
    array_script: Path | None
    merge_script: Path
    log_dir: Path
    pending: list[int]
    cell_ids: list[str]
    commands: list[str]


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


def array_spec(indices: list[int], max_parallel: int | None = None) -> str:
    """`0-2,5,7-8%4`: sorted indices with consecutive runs folded, then the throttle."""
    parts: list[str] = []
    ordered = sorted(set(indices))
    start = previous = None
    for index in ordered + [None]:
        if previous is not None and (index is None or index != previous + 1):
            parts.append(str(start) if start == previous else f"{start}-{previous}")
            start = None
        if start is None:
            start = index
        previous = index
    return ",".join(parts) + (f"%{max_parallel}" if max_parallel else "")


def pending_cells(context) -> list[int]:
    """Grid indices without an "ok" record; failed and missing cells run again.

    Late-fusion cells are left to the merge job (`report` computes them): they train nothing and
    need their components' predictions, which tasks running in parallel may not have written yet.
    """
    from benchmark.run.loop import late_fusion_indices

    done = finished_cell_ids(context.run_dir) if (context.run_dir / "cells").is_dir() else set()
    late = set(late_fusion_indices(context))
    return [
        cell.index for cell in context.cells if cell.cell_id not in done and cell.index not in late
    ]


def _common_lines(options: SlurmOptions) -> list[str]:
    lines = []
    if options.partition:
        lines.append(f"--partition={options.partition}")
    if options.account:
        lines.append(f"--account={options.account}")
    return lines + list(options.sbatch_args)


def _array_script(
    context,
    options: SlurmOptions,
    pending: list[int],
    run_dir: Path,
    config_file: Path,
    log_dir: Path,
    python: str,
) -> str:
    name = f"gb-{run_dir.name}"
    lead = SIGNAL_LEAD_SECONDS
    if options.time:
        lead = min(lead, max(time_limit_seconds(options.time) // 2, 1))
    sbatch = [
        f"--job-name={name}",
        f"--array={array_spec(pending, options.max_parallel)}",
        f"--output={log_dir}/%A_%a.out",
        "--open-mode=append",
        "--ntasks=1",
        "--requeue",
        f"--signal=B:USR1@{lead}",
    ]
    if options.gpus_per_task:
        sbatch.append(f"--gpus-per-task={options.gpus_per_task}")
    if options.cpus_per_task:
        sbatch.append(f"--cpus-per-task={options.cpus_per_task}")
    if options.mem:
        sbatch.append(f"--mem={options.mem}")
    if options.time:
        sbatch.append(f"--time={options.time}")
    sbatch += _common_lines(options)
    command = " ".join(
        shlex.quote(str(part))
        for part in (
            python,
            PROJECT_ROOT / "run_benchmark.py",
            "--config",
            config_file,
            "--output",
            run_dir,
        )
    )
    header = "\n".join(f"#SBATCH {line}" for line in sbatch)
    return f"""#!/bin/bash
{header}
# Written by `run_benchmark.py slurm`: array task I trains grid cell I of {run_dir} \
({len(context.cells)} cells).
# Cells already finished ("ok" record) are not in --array; resubmit with the same command to \
fill holes.
# Near the time limit Slurm sends SIGUSR1 to this script (--signal=B:USR1@{lead}); \
the trap stops the cell and
# requeues this task, which resumes the cell from its last finished epoch.
set -u
export TF_CPP_MIN_LOG_LEVEL="${{TF_CPP_MIN_LOG_LEVEL:-2}}"
cd {shlex.quote(str(PROJECT_ROOT))}
task="${{SLURM_ARRAY_JOB_ID}}_${{SLURM_ARRAY_TASK_ID}}"
child=""
requeue() {{
    echo "run_benchmark slurm: time limit near, requeueing $task"
    [ -n "$child" ] && kill -TERM "$child" 2>/dev/null && wait "$child"
    scontrol requeue "$task"
    exit 0
}}
trap requeue USR1
echo "run_benchmark slurm: task $task, cell $SLURM_ARRAY_TASK_ID on $(hostname) \
(restart count ${{SLURM_RESTART_COUNT:-0}})"
# In the background, so bash runs the trap as soon as the signal arrives instead of after the cell.
{command} --cell "$SLURM_ARRAY_TASK_ID" --quiet &
child=$!
wait "$child"
exit $?
"""


def _merge_script(options: SlurmOptions, run_dir: Path, log_dir: Path, python: str) -> str:
    sbatch = [
        f"--job-name=gb-{run_dir.name}-merge",
        f"--output={log_dir}/merge_%j.out",
        "--ntasks=1",
    ]
    if options.mem:
        sbatch.append(f"--mem={options.mem}")
    sbatch += _common_lines(options)
    header = "\n".join(f"#SBATCH {line}" for line in sbatch)
    command = " ".join(
        shlex.quote(str(part))
        for part in (python, PROJECT_ROOT / "run_benchmark.py", "report", run_dir)
    )
    return f"""#!/bin/bash
{header}
# Written by `run_benchmark.py slurm`: rebuilds the leaderboards of {run_dir} from its cell records.
# Submitted with --dependency=afterany:<array job>, so failed cells appear as failed rows.
set -eu
cd {shlex.quote(str(PROJECT_ROOT))}
exec {command}
"""


def write_slurm_scripts(context, options: SlurmOptions, python: str = sys.executable) -> SlurmPlan:
    """Writes RUN_DIR/slurm/{config.yaml,array.sbatch,merge.sbatch} for the unfinished cells of a
    prepared run."""
    options.validate()
    run_dir = Path(context.run_dir).resolve()
    slurm_dir = run_dir / "slurm"
    log_dir = slurm_dir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    config_file = slurm_dir / "config.yaml"
    config: RunConfig = context.config
    config_file.write_text(
        yaml.safe_dump(config.to_dict(), sort_keys=False)
    )  # same text as RUN_DIR/config.yaml
    pending = pending_cells(context)
    merge_script = slurm_dir / "merge.sbatch"
    merge_script.write_text(_merge_script(options, run_dir, log_dir, python))
    array_script: Path | None = slurm_dir / "array.sbatch"
    if pending:
        array_script.write_text(
            _array_script(context, options, pending, run_dir, config_file, log_dir, python)
        )
        commands = [
            f"array_id=$(sbatch --parsable {shlex.quote(str(array_script))})",
            f"sbatch --parsable --dependency=afterany:${{array_id}} "
            f"{shlex.quote(str(merge_script))}",
        ]
    else:
        array_script.unlink(missing_ok=True)  # a stale one would rerun finished cells
        array_script = None
        commands = []
    return SlurmPlan(
        run_dir,
        slurm_dir,
        config_file,
        array_script,
        merge_script,
        log_dir,
        pending,
        [cell.cell_id for cell in context.cells],
        commands,
    )


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
