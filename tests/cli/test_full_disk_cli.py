"""A real full file system (a small tmpfs): the cell fails as a record naming the file, without a
crash or h5py's tracebacks, and the same command resumes it once there is room."""

import json
import subprocess
import uuid

import pytest
from cli_helpers import TINY_FLAGS, make_images, run_cli

CELL = "simple_cnn__alpha0__seed0"


@pytest.fixture
def small_disk(tmp_path):
    """A 4 MiB tmpfs (mounting needs root; skipped where it is not permitted)."""
    disk = tmp_path / f"disk-{uuid.uuid4().hex[:8]}"
    disk.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(disk)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], check=False)


@pytest.mark.slow
def test_a_full_file_system_fails_the_cell_cleanly_and_the_rerun_trains_it(small_disk, tmp_path):
    data = make_images(tmp_path / "data", per_class=4)
    run_dir = small_disk / "run"
    flags = [*TINY_FLAGS, "--alphas", "0", "--no-profile", "--save-models", "none"]
    args = [*flags, "--data", str(data), "--output", str(run_dir)]
    done = run_cli(*args)  # the CNN's weights and AdamW state (~19 MB) cannot fit in 4 MiB
    assert done.returncode == 1, done.stdout + done.stderr  # a failed cell, not a crash
    assert "Traceback" not in done.stderr and "Exception ignored" not in done.stderr, done.stderr
    record = json.loads((run_dir / "cells" / f"{CELL}.json").read_text())
    backup = run_dir / "work" / CELL / "single" / "weights.weights.h5"
    assert record["error"] == f"DiskFullError: no space left on device writing {backup}"

    grown = ["mount", "-o", "remount,size=64m", str(small_disk)]
    subprocess.run(grown, check=True)  # space freed
    done = run_cli(*args)
    assert done.returncode == 0, done.stdout + done.stderr
    record = json.loads((run_dir / "cells" / f"{CELL}.json").read_text())
    assert record["status"] == "ok"
