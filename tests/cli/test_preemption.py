"""A cell killed mid-training continues from its last finished epoch when the same command runs again."""
import json
import signal
import subprocess
import sys
import time

from cli_helpers import PROJECT_ROOT, make_images, run_cli

EPOCHS = 40
FLAGS = ("--models", "simple_cnn", "--alphas", "0", "--weights", "none", "--image-size", "32", "--batch-size", "4",
         "--initial-epochs", str(EPOCHS), "--fine-tune-epochs", "0", "--patience", "1000", "--save-models", "none",
         "--no-profile", "--quiet")


def test_killed_cell_resumes_without_repeating_epochs(tmp_path):
    data = make_images(tmp_path / "data", per_class=12)
    run_dir = tmp_path / "run"
    args = [sys.executable, str(PROJECT_ROOT / "run_benchmark.py"), *FLAGS, "--data", str(data), "--output", str(run_dir),
            "--cell", "0"]
    state = run_dir / "work" / "simple_cnn__alpha0__seed0" / "single" / "state.json"
    process = subprocess.Popen(args, cwd=PROJECT_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and process.poll() is None:
            if state.is_file() and json.loads(state.read_text())["epoch"] >= 2:
                process.send_signal(signal.SIGKILL)  # like a preempted node: no chance to clean up
                break
            time.sleep(0.02)
        process.wait(timeout=60)
    finally:
        process.kill()
    assert process.returncode == -signal.SIGKILL, "the cell finished before it could be killed; raise EPOCHS"
    killed_at = json.loads(state.read_text())["epoch"]
    assert not (run_dir / "cells" / "simple_cnn__alpha0__seed0.json").exists()

    done = run_cli(*FLAGS, "--data", str(data), "--output", str(run_dir), "--cell", "0")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "resuming simple_cnn__alpha0__seed0 from its backup" in done.stdout
    record = json.loads((run_dir / "cells" / "simple_cnn__alpha0__seed0.json").read_text())
    (phase,) = record["phases"]
    assert phase["resumed_from_epoch"] >= killed_at + 1 >= 3
    assert phase["epochs"] == EPOCHS and len(record["history"]["loss"]) == EPOCHS  # none repeated, none lost
    assert record["status"] == "ok" and not (run_dir / "work" / "simple_cnn__alpha0__seed0").exists()
