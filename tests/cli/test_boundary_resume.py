"""A cell killed (SIGKILL, no clean-up) at the boundary between its phases resumes exactly: the same
metrics, curves and predictions as the same command never interrupted.

A kill inside a phase resumes from that phase's epoch backup (`test_preemption.py`); at the
boundary phase 1 is marked finished and phase 2 has no backup yet, so the resume starts phase 2
from phase 1's finished state, which must then hold all of it, dropout's generators included.
"""

import json
import shutil
import signal

import pytest
from cli_helpers import kill_when_file_appears, make_images, run_cli

CELL = "efficientnet_lite0__alpha0__seed0"
FLAGS = (
    "--models",
    "efficientnet_lite0",
    "--alphas",
    "0",
    "--image-size",
    "32",
    "--initial-epochs",
    "2",
    "--fine-tune-epochs",
    "2",
    "--patience",
    "1000",
    "--save-models",
    "none",
    "--no-profile",
    "--quiet",
)


def outcome(run_dir):
    """What must not depend on a kill: the metrics, the curves and every prediction."""
    record = json.loads((run_dir / "cells" / f"{CELL}.json").read_text())
    predictions = (run_dir / "cells" / f"{CELL}.predictions.csv").read_text()
    return record["status"], record["metrics"], record["history"], predictions


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_images(tmp_path_factory.mktemp("boundary") / "data", per_class=12)


@pytest.fixture(scope="module")
def uninterrupted(data, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("uninterrupted") / "run"
    done = run_cli(*FLAGS, "--data", str(data), "--output", str(run_dir))
    assert done.returncode == 0, done.stdout + done.stderr
    return outcome(run_dir)


@pytest.mark.slow
def test_a_cell_killed_at_the_phase_boundary_resumes_exactly(data, uninterrupted, tmp_path):
    killed = tmp_path / "killed"
    args = [*FLAGS, "--data", str(data), "--output", str(killed)]
    work = killed / "work" / CELL
    assert kill_when_file_appears(args, work / "head.done.json") == -signal.SIGKILL
    assert not (work / "fine_tune").exists()  # killed at the boundary, not inside phase 2
    # The weights are written before the summary: a kill between the two leaves phase 1 unmarked,
    # with its last epoch backed up. That folder, made from the killed one:
    between = tmp_path / "between"
    shutil.copytree(killed, between)
    (between / "work" / CELL / "head.done.json").unlink()

    for run_dir in (killed, between):
        done = run_cli(*FLAGS, "--data", str(data), "--output", str(run_dir))
        assert done.returncode == 0, done.stdout + done.stderr
        assert outcome(run_dir) == uninterrupted, run_dir.name
        assert "resuming" in done.stdout and "Skipping variable loading" not in done.stderr
