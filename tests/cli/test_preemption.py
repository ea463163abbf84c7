"""A cell killed mid-training continues from its last finished epoch when the same command runs
again."""

import json
import signal

from cli_helpers import kill_when_epoch_backed_up, make_images, run_cli

EPOCHS = 40
FLAGS = (
    "--models",
    "simple_cnn",
    "--alphas",
    "0",
    "--weights",
    "none",
    "--image-size",
    "32",
    "--batch-size",
    "4",
    "--initial-epochs",
    str(EPOCHS),
    "--fine-tune-epochs",
    "0",
    "--patience",
    "1000",
    "--save-models",
    "none",
    "--no-profile",
    "--quiet",
)


def test_killed_cell_resumes_without_repeating_epochs(tmp_path):
    data = make_images(tmp_path / "data", per_class=12)
    run_dir = tmp_path / "run"
    args = [*FLAGS, "--data", str(data), "--output", str(run_dir), "--cell", "0"]
    state = run_dir / "work" / "simple_cnn__alpha0__seed0" / "single" / "state.json"
    returncode = kill_when_epoch_backed_up(args, state)
    assert returncode == -signal.SIGKILL, (
        "the cell finished before it could be killed; raise EPOCHS"
    )
    killed_at = json.loads(state.read_text())["epoch"]
    assert not (run_dir / "cells" / "simple_cnn__alpha0__seed0.json").exists()

    done = run_cli(*FLAGS, "--data", str(data), "--output", str(run_dir), "--cell", "0")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "resuming simple_cnn__alpha0__seed0 from its backup" in done.stdout
    record = json.loads((run_dir / "cells" / "simple_cnn__alpha0__seed0.json").read_text())
    (phase,) = record["phases"]
    assert phase["resumed_from_epoch"] >= killed_at + 1 >= 3
    assert (
        phase["epochs"] == EPOCHS and len(record["history"]["loss"]) == EPOCHS
    )  # none repeated, none lost
    assert (
        record["status"] == "ok" and not (run_dir / "work" / "simple_cnn__alpha0__seed0").exists()
    )
