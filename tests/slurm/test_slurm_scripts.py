"""Script generation of benchmark/run/slurm_scripts.py: no Slurm needed (a hand-made run folder, no
training)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from benchmark.config.run_config import RunConfig
from benchmark.errors import UsageError
from benchmark.run.folder import RunContext
from benchmark.run.grid import build_grid
from benchmark.run.slurm import slurm_command, submit_plan
from benchmark.run.slurm_options import SlurmOptions, time_limit_seconds
from benchmark.run.slurm_scripts import PROJECT_ROOT, array_spec, write_slurm_scripts


def make_context(run_dir: Path, alphas=(0.0, 0.5, 1.0), finished=(), failed=()) -> RunContext:
    """A run of simple_cnn over `alphas` whose cells `finished` have "ok" records and `failed`
    failed ones."""
    config = RunConfig(models=["simple_cnn"], alphas=list(alphas), weights="none")
    cells = build_grid(config)
    for index, status in [(i, "ok") for i in finished] + [(i, "failed") for i in failed]:
        path = run_dir / "cells" / f"{cells[index].cell_id}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        record = {"cell_id": cells[index].cell_id, "index": index, "status": status}
        if status == "ok":  # a finished record carries what ranks it, else it is not a valid record
            record["metrics"] = {"val": {"accuracy": 0.5}}
        path.write_text(json.dumps(record))
    return RunContext(config, run_dir, split=None, cells=cells)


def sbatch_lines(script: Path) -> list[str]:
    return [
        line.removeprefix("#SBATCH ")
        for line in script.read_text().splitlines()
        if line.startswith("#SBATCH ")
    ]


def test_array_holds_only_unfinished_cells_with_the_throttle(tmp_path):
    context = make_context(tmp_path, alphas=(0, 0.2, 0.5, 0.8, 1), finished=[1, 3], failed=[4])
    plan = write_slurm_scripts(context, SlurmOptions(max_parallel=2), python="/opt/py/bin/python")
    assert plan.pending == [0, 2, 4]  # a failed record runs again
    assert "--array=0,2,4%2" in sbatch_lines(plan.array_script)


def test_array_spec_folds_runs_and_omits_the_throttle_when_unlimited():
    assert array_spec([5, 0, 1, 2, 7, 8], 4) == "0-2,5,7-8%4"
    assert array_spec([3]) == "3"


def test_array_script_requeues_before_the_time_limit_and_logs_per_task(tmp_path):
    plan = write_slurm_scripts(
        make_context(tmp_path),
        SlurmOptions(
            time="02:00:00",
            partition="gpu",
            account="lab",
            gpus_per_task=1,
            cpus_per_task=8,
            mem="32G",
            sbatch_args=["--qos=high"],
        ),
    )
    lines = sbatch_lines(plan.array_script)
    run_dir = tmp_path.resolve()
    for expected in (
        "--requeue",
        "--signal=B:USR1@120",
        f"--output={run_dir}/slurm/logs/%A_%a.out",
        "--time=02:00:00",
        "--partition=gpu",
        "--account=lab",
        "--gpus-per-task=1",
        "--cpus-per-task=8",
        "--mem=32G",
        "--qos=high",
        "--array=0-2",
    ):
        assert expected in lines
    text = plan.array_script.read_text()
    assert "trap requeue USR1" in text and 'scontrol requeue "$task"' in text
    command = (
        f"{sys.executable} {PROJECT_ROOT / 'run_benchmark.py'} --config "
        f"{run_dir}/slurm/config.yaml "
        f'--output {run_dir} --cell "$SLURM_ARRAY_TASK_ID" --quiet &'
    )
    assert command in text


def test_merge_script_reports_after_any_end_of_the_array(tmp_path):
    plan = write_slurm_scripts(make_context(tmp_path), SlurmOptions(gpus_per_task=2, account="lab"))
    lines = sbatch_lines(plan.merge_script)
    assert "--account=lab" in lines and not any("gpus" in line for line in lines)
    assert f"--output={tmp_path.resolve()}/slurm/logs/merge_%j.out" in lines
    assert f"run_benchmark.py report {tmp_path.resolve()}" in plan.merge_script.read_text()
    assert plan.commands == [
        f"array_id=$(sbatch --parsable {plan.array_script})",
        f"sbatch --parsable --dependency=afterany:${{array_id}} {plan.merge_script}",
    ]


def test_config_copy_is_the_resolved_configuration(tmp_path):
    context = make_context(tmp_path)
    plan = write_slurm_scripts(context, SlurmOptions())
    assert yaml.safe_load(plan.config_file.read_text()) == context.config.to_dict()


def test_generated_scripts_are_valid_bash(tmp_path):
    plan = write_slurm_scripts(
        make_context(tmp_path), SlurmOptions(sbatch_args=["--constraint=a100|h100"])
    )
    for script in (plan.array_script, plan.merge_script):
        subprocess.run(["bash", "-n", str(script)], check=True)


def test_usr1_stops_the_cell_and_requeues_the_task(tmp_path):
    """Runs array.sbatch outside Slurm: the cell is a sleep, scontrol a recorder; SIGUSR1 must
    requeue."""
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    (fake_bin / "scontrol").write_text(f'#!/bin/sh\necho "$@" > {tmp_path}/scontrol.args\n')
    (fake_bin / "python").write_text("#!/bin/sh\nexec sleep 60\n")
    for tool in fake_bin.iterdir():
        tool.chmod(0o755)
    plan = write_slurm_scripts(
        make_context(tmp_path / "run"), SlurmOptions(), python=str(fake_bin / "python")
    )
    env = {
        **os.environ,
        "PATH": f"{fake_bin}:{os.environ['PATH']}",
        "SLURM_ARRAY_JOB_ID": "41",
        "SLURM_ARRAY_TASK_ID": "2",
    }
    task = subprocess.Popen(
        ["bash", str(plan.array_script)], env=env, stdout=subprocess.PIPE, text=True
    )
    time.sleep(1.0)
    task.send_signal(signal.SIGUSR1)
    out, _ = task.communicate(timeout=20)
    assert task.returncode == 0, out
    assert "requeueing 41_2" in out
    assert (tmp_path / "scontrol.args").read_text().split() == ["requeue", "41_2"]


@pytest.mark.parametrize(
    "text, seconds",
    [("30", 1800), ("1:30", 90), ("01:00:00", 3600), ("1-12", 129600), ("2-00:00:10", 172810)],
)
def test_time_limit_forms(text, seconds):
    assert time_limit_seconds(text) == seconds


@pytest.mark.parametrize(
    "options, flag",
    [
        (SlurmOptions(time="1h"), "--time"),
        (SlurmOptions(time="00:00:00"), "--time"),
        (SlurmOptions(mem="lots"), "--mem"),
        (SlurmOptions(max_parallel=0), "--max-parallel"),
        (SlurmOptions(gpus_per_task=-1), "--gpus-per-task"),
        (SlurmOptions(partition="a b"), "--partition"),
        (SlurmOptions(sbatch_args=["qos=high"]), "--sbatch-arg"),
    ],
)
def test_bad_options_are_one_line_usage_errors(options, flag):
    with pytest.raises(UsageError, match=flag) as error:
        options.validate()
    assert "\n" not in str(error.value)


def test_short_time_limits_get_an_earlier_signal(tmp_path):
    plan = write_slurm_scripts(make_context(tmp_path), SlurmOptions(time="3"))
    assert "--signal=B:USR1@90" in sbatch_lines(plan.array_script)


def test_submit_without_sbatch_on_path_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    plan = write_slurm_scripts(make_context(tmp_path), SlurmOptions())
    with pytest.raises(
        UsageError,
        match="sbatch not found on PATH; run this on a Slurm login node or drop --submit",
    ):
        submit_plan(plan, wait=False)
    with pytest.raises(UsageError, match="sbatch not found"):
        slurm_command(
            RunConfig(models=["simple_cnn"], weights="none"), tmp_path, SlurmOptions(), submit=True
        )


def test_wait_needs_submit(tmp_path):
    with pytest.raises(UsageError, match="--wait needs --submit"):
        slurm_command(
            RunConfig(models=["simple_cnn"], weights="none"), tmp_path, SlurmOptions(), wait=True
        )


def test_nothing_pending_writes_no_array(tmp_path):
    plan = write_slurm_scripts(make_context(tmp_path, finished=[0, 1, 2]), SlurmOptions())
    assert plan.pending == [] and plan.array_script is None and plan.commands == []
    assert not (tmp_path / "slurm" / "array.sbatch").exists() and plan.merge_script.is_file()
