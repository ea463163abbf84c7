"""Training a cell in a child process, so a long grid's memory cannot grow cell after cell.

Keras and TensorFlow keep memory when models are built in a loop (keras#19471, tensorflow#61791):
`benchmarks/cell_memory.py` measured +52 % resident memory over 20 tiny cells in one process here
(1119 -> 1696 MB, about 30 MB a cell). A child started with `spawn` (never `fork`: forking after
TensorFlow has started its threads can deadlock) trains the cell, writes its record, and exits,
returning every byte. It costs one TensorFlow import per cell (seconds, against minutes of
training).
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import queue as queue_module
import threading
import time
from typing import Any

# `auto` isolates when at least this many cells are to train: below it the growth stays under ~10 %.
ISOLATE_FROM = 10


def should_isolate(setting: str, cells_to_train: int) -> bool:
    return setting == "on" or (setting == "auto" and cells_to_train >= ISOLATE_FROM)


PARENT_POLL_SECONDS = 0.5  # how soon an orphaned child notices that its parent is gone
PARENT_GONE_EXIT = 137  # as if the child had been killed with the parent (128 + SIGKILL)


def die_with_parent(parent_pid: int, poll: float = PARENT_POLL_SECONDS) -> threading.Thread:
    """Ends this process at once when `parent_pid` is no longer its parent.

    A parent killed with SIGKILL (a preempted node, `kill -9`) runs no clean-up, so the daemon
    child would live on, training and writing into the run folder beside the re-run that resumes
    the cell. The parent's death re-parents the child, which this thread sees in `os.getppid()`;
    `os._exit` skips clean-up too, and every file the child writes is replaced atomically, so
    nothing is left half-written.
    """

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(poll)
        os._exit(PARENT_GONE_EXIT)

    watchdog = threading.Thread(target=watch, name="die-with-parent", daemon=True)
    watchdog.start()
    return watchdog


def _child(payload: bytes, answers, parent_pid: int | None = None) -> None:
    """Runs in the child: it dies with its parent, the start-up is quiet as in the parent, then
    `train(*args)`.

    `(train, args)` arrive pickled as bytes and are unpickled only after `quiet_startup`: unpickling
    them imports TensorFlow, whose start-up lines would otherwise reach the terminal.

    Its epochs and printed lines go to the parent over `answers` (`progress.relay`), so the parent
    alone writes to the terminal and its progress line follows the child's epochs.
    """
    if parent_pid is not None:  # first: before the imports that take seconds
        die_with_parent(parent_pid)
    from benchmark.errors import USER_ERRORS
    from benchmark.progress import relay
    from benchmark.quiet import quiet_startup

    quiet_startup()
    train, args = pickle.loads(payload)
    with relay(answers):
        try:
            answers.put(("record", train(*args)))
        except USER_ERRORS as err:
            answers.put(("user_error", (type(err).__name__, str(err))))


def run_in_child(train, *args: Any):
    """`train(*args)` in a spawned child; returns its result, re-raises a user error, or raises
    `ChildProcessError` naming the exit code when the child died (killed, out of host memory).

    The child's progress messages go to this process's reporter as they come."""
    from benchmark.progress import reporter

    context = multiprocessing.get_context("spawn")
    answers = context.Queue()
    payload = pickle.dumps((train, args))
    child = context.Process(target=_child, args=(payload, answers, os.getpid()), daemon=True)
    child.start()
    answer = None
    while answer is None:
        try:
            answer = answers.get(timeout=1.0)
        except queue_module.Empty:
            if not child.is_alive():
                break
            continue
        if answer[0] == "progress":
            reporter().receive(answer[1])
            answer = None
    child.join()
    if answer is None:
        raise ChildProcessError(
            f"the cell's child process exited with code {child.exitcode} before writing its record"
        )
    kind, value = answer
    if kind == "user_error":
        from benchmark.errors import UsageError

        raise UsageError(value[1])
    return value
