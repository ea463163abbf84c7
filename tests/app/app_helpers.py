"""Made-up photos, the command line as a subprocess, and a `serve` process, for tests/app."""

import os
import re
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
from PIL import Image

PROJECT_ROOT = Path(__file__).resolve().parents[2]
CLASSES = ("glass", "paper", "plastic")
TINY_FLAGS = (
    "--models",
    "simple_cnn",
    "--alphas",
    "0",
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


def make_images(root: Path, per_class: int = 8, size: int = 40) -> Path:
    """`per_class` PNGs per class, each class its own dominant colour (as tests/cli's helper)."""
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


def run_cli(*args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    """`python run_benchmark.py ARGS` from the project root, output captured."""
    return subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "run_benchmark.py"), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=PROJECT_ROOT,
        env={**os.environ, "TF_ENABLE_ONEDNN_OPTS": "1"},
    )


class Server:
    """`run_benchmark.py serve RUN_DIR --port 0` in a subprocess; `url` once it listens."""

    def __init__(self, run_dir: Path, log: Path, timeout: float = 300):
        self.log = log
        self.process = subprocess.Popen(
            [sys.executable, str(PROJECT_ROOT / "run_benchmark.py"), "serve", str(run_dir)]
            + ["--port", "0"],
            cwd=PROJECT_ROOT,
            stdout=subprocess.PIPE,
            stderr=log.open("w"),
            text=True,
            env={**os.environ, "TF_ENABLE_ONEDNN_OPTS": "1"},
        )
        found: list[str] = []
        reader = threading.Thread(target=self._read_url, args=(found,), daemon=True)
        reader.start()
        reader.join(timeout)
        if not found:
            self.stop()
            raise AssertionError(f"serve did not start: {log.read_text()[-2000:]}")
        self.url = found[0]

    def _read_url(self, found: list[str]) -> None:
        for line in self.process.stdout:
            match = re.search(r"at (http://\S+/)", line)
            if match:
                found.append(match.group(1))
                return

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
