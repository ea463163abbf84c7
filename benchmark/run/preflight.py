"""Checks of a resolved configuration against the model registry and the file system.

Each one catches input that `RunConfig` alone cannot judge (which models the grid holds, whether
a file exists) and that would otherwise pass `--dry-run` and then fail cells; what concerns a
model is its plan's (`benchmark.plan`), resolved here. `run_benchmark.py`
runs them before a run, a Slurm grid or a search starts, and `--dry-run` runs them too.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from benchmark.config.run_config import RunConfig
from benchmark.errors import UsageError
from benchmark.output import to_stderr
from benchmark.plan import ModelPlan, resolve_plans
from benchmark.plan.weights import weights_file_note
from data_pipeline import is_multi_source, read_sources


def check_inputs(config: RunConfig) -> dict[str, ModelPlan]:
    """Refuses, in one line naming the flag, a grid that cannot train as asked: the model plans
    are resolved here, before TensorFlow is imported, so `--dry-run` shows every refusal."""
    check_input_paths(config)
    plans = resolve_plans(config)
    if is_multi_source(config.data):
        read_sources(config.data)  # a bad sources YAML, path or name: refused before any scan
    if note := weights_file_note(plans, config.weights):
        to_stderr(note)
    return plans


def check_input_paths(config: RunConfig) -> None:
    """`--data` and `--split-file` must exist: said here, in a second, rather than by the data
    pipeline after TensorFlow has loaded (6.5 s on an idle machine). A symlink loop is left to the
    pipeline, which names it."""
    data = None if is_multi_source(config.data) else config.data  # sources: `read_sources`
    if isinstance(data, list):  # one source given as a list (a config file's `data: [a]`)
        (data,) = data
    for flag, value, remedy in (
        ("--data", data, "a class-folder root, a pre-split root or a CSV manifest"),
        ("--split-file", config.split_file, "an existing splits.csv, or leave --split-file out"),
    ):
        path = Path(value).expanduser() if value else None
        if path is not None and not path.is_symlink() and not path.exists():
            raise UsageError(f"{flag} {value!r} does not exist; pass {remedy}")


# Folders a run writes into; one that is a file (say `RUN/tensorboard`) would fail every cell.
RUN_SUBFOLDERS = ("cells", "work", "cache", "locks")


def check_output_folder(run_dir: Path, *, tensorboard: bool = False) -> None:
    """`--output` must be a folder this process can create or write into (checked before training).

    Writability is probed by creating (and removing) an empty folder: `os.access` says yes to root
    everywhere, `/proc` included, where creating a folder then fails.
    """
    if run_dir.exists() and not run_dir.is_dir():
        raise UsageError(
            f"--output {str(run_dir)!r} is an existing file; give a folder "
            "(a new one, or a run to resume)"
        )
    existing = next(p for p in (run_dir, *run_dir.parents) if p.exists())
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise UsageError(
            f"--output {str(run_dir)!r} cannot be created: {str(existing)!r} is not a "
            "writable folder"
        )
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".write-probe-", dir=existing))
    except OSError as err:
        raise UsageError(
            f"--output {str(run_dir)!r} cannot be created: {str(existing)!r} is not a "
            f"writable folder ({err.strerror})"
        ) from None
    for name in RUN_SUBFOLDERS + (("tensorboard",) if tensorboard else ()):
        if (run_dir / name).exists() and not (run_dir / name).is_dir():
            raise UsageError(
                f"{str(run_dir / name)!r} is a file, but the run writes a folder "
                "there; move the file away or use another --output"
            )
