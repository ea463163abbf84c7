"""Tiny image folders and a subprocess runner for the command-line tests."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

PROJECT_ROOT = Path(__file__).resolve().parents[2]
CLASSES = ("glass", "paper", "plastic")
# A grid that trains in seconds: the from-scratch CNN at 32 px, one epoch, two alphas.
TINY_FLAGS = (
    "--models",
    "simple_cnn",
    "--alphas",
    "0,1",
    "--weights",
    "none",
    "--image-size",
    "32",
    "--batch-size",
    "8",
    "--initial-epochs",
    "1",
    "--fine-tune-epochs",
    "0",
    "--quiet",
)


def make_images(root: Path, per_class: int = 10, size: int = 40) -> Path:
    """`per_class` distinct PNGs per class, each class its own dominant colour, in class folders."""
    rng = np.random.default_rng(0)
    for k, name in enumerate(CLASSES):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            pixels = rng.integers(0, 70, (size, size, 3)) + np.array(
                [170 if c == k else 30 for c in range(3)]
            )
            Image.fromarray(pixels.clip(0, 255).astype("uint8")).save(
                root / name / f"{name}_{i}.png"
            )
    return root


def run_cli(*args: str, timeout: int = 900, env: dict | None = None) -> subprocess.CompletedProcess:
    """`python run_benchmark.py ARGS` from the project root, output captured."""
    return subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "run_benchmark.py"), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=PROJECT_ROOT,
        env=env or {**os.environ},
    )


def one_line_error(done: subprocess.CompletedProcess) -> str:
    """The one `run_benchmark:` line of a command that exited 2 on bad input, without a
    traceback."""
    assert done.returncode == 2, done.stdout + done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("run_benchmark:")]
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    return lines[0]


def kill_when_epoch_backed_up(args: list[str], state_file: Path, epoch: int = 2) -> int:
    """Starts `python run_benchmark.py ARGS`, SIGKILLs it once the cell's backup (`state_file`) has
    reached `epoch` (like a preempted node: no chance to clean up), and returns its exit status."""
    import json
    import signal
    import time

    process = subprocess.Popen(
        [sys.executable, str(PROJECT_ROOT / "run_benchmark.py"), *args],
        cwd=PROJECT_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and process.poll() is None:
            if state_file.is_file() and json.loads(state_file.read_text())["epoch"] >= epoch:
                process.send_signal(signal.SIGKILL)
                break
            time.sleep(0.02)
        process.wait(timeout=60)
    finally:
        process.kill()
    return process.returncode


def kill_when_file_appears(args: list[str], path: Path, timeout: float = 600) -> int:
    """Starts `python run_benchmark.py ARGS`, SIGKILLs it as soon as `path` exists (a preempted
    node at that very moment: no clean-up), and returns its exit status (-9 when killed)."""
    import signal
    import time

    process = subprocess.Popen(
        [sys.executable, str(PROJECT_ROOT / "run_benchmark.py"), *args],
        cwd=PROJECT_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and process.poll() is None:
            if path.exists():
                process.send_signal(signal.SIGKILL)
                break
            time.sleep(0.005)
        process.wait(timeout=60)
    finally:
        process.kill()
    return process.returncode
