"""Made-up photos, the command line as a subprocess, and a `serve` process, for tests/app."""

import os
import re
import subprocess
import sys
import threading
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(PROJECT_ROOT / "tests" / "cli"))
import cli_helpers  # noqa: E402 (tests/cli's helpers: the CLI subprocess, made-up photos)
from cli_helpers import one_line_error, run_cli  # noqa: E402, F401 (re-exported for tests/app)

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
    """tests/cli's made-up photos, eight a class by default (enough for the app's tiny run)."""
    return cli_helpers.make_images(root, per_class, size)


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
