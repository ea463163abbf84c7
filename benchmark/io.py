"""Writing files so that a kill at any moment leaves either the old file or the new one, never half.

Every record, table, report, backup and stored feature array goes through `replace_atomically`:
it writes a temporary file in the target's own folder (so the rename never crosses file systems)
and renames it over the target, which POSIX makes atomic. The temporary name carries the process
id, so parallel Slurm tasks writing the same target never share a temporary file. A writer killed
with SIGKILL (a preempted Slurm task) cannot remove its temporary file; the next successful write of
the same target removes those left for over an hour (a feature-bank epoch is tens of MiB).

A full disk is `DiskFullError`, naming the file: the cell that wrote it fails as a record and the
run goes on (`benchmark.run.loop`). A writer that knows its size checks the free space first, since
h5py, half-way through a weights file on a full disk, prints tracebacks while it is collected and
can leave HDF5 in a state that later crashes the process.
"""

from __future__ import annotations

import errno
import glob
import json
import os
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

FULL_DISK_ERRNOS = (errno.ENOSPC, errno.EDQUOT)  # no space left; disk quota exceeded


class DiskFullError(OSError):
    """No space left on the device (or the quota) for `path`: one line that names the file."""

    def __init__(self, path: Path):
        super().__init__(errno.ENOSPC, f"no space left on device writing {path}", str(path))
        self.path = Path(path)

    def __str__(self) -> str:
        return self.strerror


def is_disk_full(error: BaseException | None) -> bool:
    """Whether `error`, or an error it was raised from, is a full disk (ENOSPC or EDQUOT)."""
    while error is not None:
        if isinstance(error, OSError) and error.errno in FULL_DISK_ERRNOS:
            return True
        if "No space left on device" in str(error):  # h5py, TensorFlow: errno inside the text
            return True
        error = error.__cause__ or error.__context__
    return False


def replace_atomically(
    path: Path, write: Callable[[str], object], *, suffix: str = "", size: int = 0
) -> Path:
    """Calls `write(temporary_path)`, then renames the temporary file over `path`.

    The temporary name ends in `.tmp` (so no `*.json` glob reads a half-written record) plus
    `suffix`, for writers that infer the format from the name (Keras' `.keras` and `.weights.h5`,
    numpy's `.npz`). `size`, the bytes the writer needs at most, is checked against the free space
    before it starts. A full disk raises `DiskFullError`, with the temporary file removed.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        if is_disk_full(err):
            raise DiskFullError(path) from err
        raise
    if size and shutil.disk_usage(path.parent).free < size:
        raise DiskFullError(path)
    # Process and thread id: two writers of one target (Slurm tasks, two banks in a process)
    # never share it.
    temporary = path.with_name(f".{path.name}.{os.getpid()}-{threading.get_ident()}.tmp{suffix}")
    try:
        write(str(temporary))
        os.replace(temporary, path)
    except BaseException as err:
        temporary.unlink(missing_ok=True)
        if is_disk_full(err) and not isinstance(err, DiskFullError):
            raise DiskFullError(path) from err
        raise
    remove_abandoned_temporaries(path)
    return path


STALE_SECONDS = 3600.0  # no live writer leaves its temporary file untouched this long


def remove_abandoned_temporaries(path: Path) -> None:
    """Deletes temporary files of `path` that killed writers left, once they are an hour old
    (a live writer in another process or on another node is still writing a young one)."""
    cutoff = time.time() - STALE_SECONDS
    for leftover in path.parent.glob(f".{glob.escape(path.name)}.*.tmp*"):
        try:
            if leftover.stat().st_mtime < cutoff:
                leftover.unlink()
        except FileNotFoundError:  # another writer removed it first
            pass


def write_text_atomic(path: Path, text: str) -> Path:
    return replace_atomically(path, lambda tmp: Path(tmp).write_text(text))


def write_json_atomic(path: Path, data: Any) -> Path:
    return write_text_atomic(path, json.dumps(data, indent=2, default=_json_default))


def write_csv_atomic(path: Path, frame: pd.DataFrame) -> Path:
    return replace_atomically(path, lambda tmp: frame.to_csv(tmp, index=False))


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot store {type(value).__name__} in a record")
