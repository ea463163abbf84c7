"""benchmark/run/slurm.py against a real single-node Slurm (the `slurm_cluster` fixture), not a mock
of sbatch."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

import run_benchmark
from benchmark.config.run_config import resolve_config
from benchmark.run.slurm import slurm_command, submit_plan
from benchmark.run.slurm_options import SlurmOptions
from benchmark.run.slurm_scripts import PROJECT_ROOT, SlurmPlan


def test_submit_waits_for_the_array_and_the_merge_runs_after_a_failed_task(
    slurm_cluster, tmp_path, capsys
):
    """Trivial jobs: task 0 writes an "ok" record, task 1 fails; afterany still runs the merge, and
    wait reports cell 1."""
    cells = tmp_path / "cells"
    logs = tmp_path / "slurm" / "logs"
    logs.mkdir(parents=True)
    array = tmp_path / "slurm" / "array.sbatch"
    array.write_text(f"""#!/bin/bash
#SBATCH --array=0-1%1
#SBATCH --output={logs}/%A_%a.out
mkdir -p {cells}
record='{{"cell_id": "a", "status": "ok", "metrics": {{"val": {{"accuracy": 0.5}}}}}}'
if [ "$SLURM_ARRAY_TASK_ID" = 0 ]; then echo "$record" > {cells}/a.json; else exit 3; fi
""")
    merge = tmp_path / "slurm" / "merge.sbatch"
    merge.write_text(
        f"#!/bin/bash\n#SBATCH --output={logs}/merge_%j.out\nls {cells} > {tmp_path}/merged.txt\n"
    )
    plan = SlurmPlan(
        tmp_path,
        tmp_path / "slurm",
        tmp_path / "slurm" / "config.yaml",
        array,
        merge,
        logs,
        [0, 1],
        ["a", "b"],
        [],
    )
    result = submit_plan(plan, wait=True)
    assert result.waited and result.merge_exit_code == 0
    assert result.failed_cells == ["b"] and not result.ok
    assert (tmp_path / "merged.txt").read_text().split() == ["a.json"]
    assert {p.name for p in logs.iterdir()} == {
        f"{result.array_job_id}_0.out",
        f"{result.array_job_id}_1.out",
        f"merge_{result.merge_job_id}.out",
    }
    assert f"submitted array job {result.array_job_id}" in capsys.readouterr().out


def make_dataset(root: Path, per_class: int = 8) -> Path:
    """3 classes x `per_class` distinct 32 px PNGs, each class its own colour."""
    rng = np.random.default_rng(0)
    for k, name in enumerate(["glass", "paper", "plastic"]):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            pixels = rng.integers(0, 60, (32, 32, 3)) + np.array(
                [180 if c == k else 40 for c in range(3)]
            )
            Image.fromarray(pixels.clip(0, 255).astype("uint8")).save(
                root / name / f"{name}_{i}.png"
            )
    return root


GRID_FLAGS = [
    "--preset",
    "smoke",
    "--models",
    "simple_cnn",
    "--alphas",
    "0,1",
    "--image-size",
    "32",
    "--initial-epochs",
    "1",
    "--fine-tune-epochs",
    "0",
    "--save-models",
    "none",
]
SLURM_FLAGS = [
    "--cpus-per-task",
    "1",
    "--max-parallel",
    "2",
    "--time",
    "00:20:00",
    "--submit",
    "--wait",
]


def run_slurm(data: Path, run_dir: Path, capsys) -> tuple[int, str]:
    """`run_benchmark.py slurm ...` as a subprocess once the CLI has the subcommand, else the same
    call in process."""
    if "slurm" in run_benchmark.SUBCOMMANDS:
        done = subprocess.run(
            [
                sys.executable,
                str(PROJECT_ROOT / "run_benchmark.py"),
                "slurm",
                *GRID_FLAGS,
                "--data",
                str(data),
                "--output",
                str(run_dir),
                *SLURM_FLAGS,
            ],
            capture_output=True,
            text=True,
            timeout=1200,
        )
        return done.returncode, done.stdout + done.stderr
    overrides = {
        "models": ["simple_cnn"],
        "alphas": [0.0, 1.0],
        "image_size": 32,
        "initial_epochs": 1,
        "fine_tune_epochs": 0,
        "save_models": "none",
        "data": str(data),
    }
    code = slurm_command(
        resolve_config("smoke", None, overrides),
        run_dir,
        SlurmOptions(cpus_per_task=1, max_parallel=2, time="00:20:00"),
        submit=True,
        wait=True,
    )
    return code, capsys.readouterr().out


def array_ids(run_dir: Path) -> set[str]:
    return {
        p.name.split("_")[0]
        for p in (run_dir / "slurm" / "logs").glob("*_*.out")
        if not p.name.startswith("merge")
    }


def test_grid_on_slurm_fills_only_the_missing_cell_on_resubmit(slurm_cluster, tmp_path, capsys):
    data = make_dataset(tmp_path / "data")
    run_dir = tmp_path / "run"
    code, out = run_slurm(data, run_dir, capsys)
    assert code == 0, out
    records = {p.stem: json.loads(p.read_text()) for p in (run_dir / "cells").glob("*.json")}
    assert sorted(records) == ["simple_cnn__alpha0__seed0", "simple_cnn__alpha1__seed0"]
    assert all(r["status"] == "ok" for r in records.values())
    board = pd.read_csv(run_dir / "leaderboard.csv")  # written by the merge job
    assert len(board) == 2 and set(board["status"]) == {"ok"}
    (first,) = array_ids(run_dir)
    assert {p.name for p in (run_dir / "slurm" / "logs").glob(f"{first}_*.out")} == {
        f"{first}_0.out",
        f"{first}_1.out",
    }

    (run_dir / "cells" / "simple_cnn__alpha1__seed0.json").unlink()
    code, out = run_slurm(data, run_dir, capsys)
    assert code == 0, out
    assert "--array=1%2" in (run_dir / "slurm" / "array.sbatch").read_text()
    (second,) = array_ids(run_dir) - {first}
    assert {p.name for p in (run_dir / "slurm" / "logs").glob(f"{second}_*.out")} == {
        f"{second}_1.out"
    }
    assert (
        json.loads((run_dir / "cells" / "simple_cnn__alpha1__seed0.json").read_text())["status"]
        == "ok"
    )
