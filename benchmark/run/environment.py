"""What a result was computed on: library versions, devices and the project's git commit."""

from __future__ import annotations

import platform
import subprocess
from importlib import metadata
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]  # benchmark/<part>/<module>.py -> the checkout


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def git_commit() -> str | None:
    """The project's commit (with `-dirty` when the tree has changes), or None outside git."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=5,
        )
        if commit.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=5,
        )
        return commit.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def environment_info() -> dict:
    """Versions, devices and commit, recorded in every cell record and in the report."""
    import tensorflow as tf

    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "tensorflow": _version("tensorflow"),
        "keras": _version("keras"),
        "keras_hub": _version("keras-hub"),
        "numpy": _version("numpy"),
        "scikit_learn": _version("scikit-learn"),
        "devices": [d.name for d in tf.config.list_logical_devices()],
        "gpus": len(tf.config.list_physical_devices("GPU")),
        "cpu_count": __import__("os").cpu_count(),
        "git_commit": git_commit(),
    }
