"""The sbatch scripts of a Slurm run: `RUN_DIR/slurm/{config.yaml,array.sbatch,merge.sbatch}`.

Apart from `slurm.py` (which prepares the run and submits) because writing the scripts needs no
Slurm at all: `run_benchmark.py slurm` without `--submit` stops here and prints how to submit, and
the script tests run on any machine.
"""

from __future__ import annotations

import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

from benchmark.config.run_config import RunConfig
from benchmark.run.records import finished_cell_ids
from benchmark.run.slurm_options import SlurmOptions, time_limit_seconds

PROJECT_ROOT = Path(__file__).resolve().parents[2]  # benchmark/run/slurm_scripts.py -> the checkout


SIGNAL_LEAD_SECONDS = (
    120  # SIGUSR1 this long before the time limit (Slurm may send it up to 60 s earlier)
)


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
