"""Every line the suite prints goes through here: progress and results on stdout, warnings, notes
and refusals on stderr.

One module, so the rule of where a kind of line goes lives in one place (a test fails on a bare
`print(` anywhere else in `benchmark/`). Each function looks `sys.stdout`/`sys.stderr` up when it
is called, not when imported: while a run's live status line is up, `benchmark.progress` swaps
`sys.stdout` for a guard that writes around the line, a child process relays its stdout to the
parent, and pytest's capture swaps both. Every line is flushed at once, so in a log file a run's
lines stay in order with the warnings on stderr and show while the run is still going.

`benchmark.progress` keeps its own writes for the live line itself (carriage returns, a line that
is rewritten in place): that is terminal control, not a printed line.
"""

from __future__ import annotations

import sys

RUN_BENCHMARK = "run_benchmark"  # the prefix of a refusal: the command the user typed


def say(text: object = "") -> None:
    """A line of progress or a result (a table, a file written) on stdout."""
    print(text, flush=True)


def warn(text: str) -> None:
    """`warning: <text>` on stderr: something went wrong, the command goes on."""
    print(f"warning: {text}", file=sys.stderr, flush=True)


def notice(text: str) -> None:
    """`note: <text>` on stderr: something the user may want to know, nothing wrong."""
    print(f"note: {text}", file=sys.stderr, flush=True)


def to_stderr(text: str) -> None:
    """A line on stderr as it is: one that carries its own prefix (a kept TensorFlow line, the
    visible GPUs, a preflight note)."""
    print(text, file=sys.stderr, flush=True)


def refuse(text: str) -> None:
    """`run_benchmark: <text>` on stderr: why the command stopped (exit status 2 or 130)."""
    print(f"{RUN_BENCHMARK}: {text}", file=sys.stderr, flush=True)
