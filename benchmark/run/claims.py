"""One process trains a cell at a time: an advisory `fcntl` lock per cell in `RUN_DIR/locks/`.

One process at a time claims the folder itself (`hold_folder_lock`): checking and writing its
`config.yaml` and split files happen under one lock, so two runs started at once cannot both
believe they created it.

Two runs pointed at the same `--output` (or Slurm array tasks, or a task and a re-run by hand)
would otherwise train the same cell twice and share its `work/` backups. The kernel releases an
`flock` when its process dies however it dies, so a crash or `kill -9` never leaves a cell stuck.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path


def lock_path(run_dir: Path, cell_id: str) -> Path:
    return Path(run_dir) / "locks" / f"{cell_id}.lock"


@contextlib.contextmanager
def claim_cell(run_dir: Path, cell_id: str) -> Iterator[bool]:
    """Yields True while this process holds the cell's lock, False (at once) when another process
    holds it.
    """
    path = lock_path(run_dir, cell_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        os.ftruncate(fd, 0)
        os.write(
            fd, f"{os.getpid()}\n".encode()
        )  # who holds it, for a person looking at the folder
        yield True
    finally:
        os.close(fd)  # closing releases the lock


FOLDER_LOCK = "run-folder.lock"  # beside the cell locks; no cell id (model__alpha__seed) is this


@contextlib.contextmanager
def hold_folder_lock(run_dir: Path) -> Iterator[None]:
    """Blocks until this process holds the run folder's own lock, for the few file operations of
    claiming the folder (no training happens under it, so a wait is short)."""
    path = Path(run_dir) / "locks" / FOLDER_LOCK
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock
