"""What a person watching a run sees: one status line on a terminal, plain lines in a log.

On a terminal the run keeps ONE line at the bottom, rewritten in place with a carriage return:
cells done of the total, the current cell, its phase (preparing, head, fine-tune, training,
building a bank, evaluating) with the epoch, the elapsed time and an ETA. Lines that other code
prints (notes, finished cells) scroll above it: while the line is up, `sys.stdout` is a guard that
takes the line down before any text and puts it back after each finished line. Written to a file or
a pipe (not a terminal) the run prints plain lines, one when a cell starts and one when it ends,
and Keras prints one line per epoch. Under `--quiet` only each cell's result (and problems) show.

The ETA is measured, never assumed: cells still to run take the mean time of the finished cells of
the same model (else of all finished cells); the current cell's remainder is its time per finished
epoch times the epochs it has left. Before anything has been measured it reads "ETA ?".

Cells trained in a child process (`benchmark.run.isolation`) report through the child's answer
queue: `relay` makes the child's reporter and its `sys.stdout` post messages that the parent's
`Progress.receive` renders, so the parent alone writes to the terminal. No TensorFlow here: the
recipe's Keras callback (`benchmark.training.phase_callbacks.EpochProgress`) calls `reporter()`.
"""

from __future__ import annotations

import contextlib
import shutil
import sys
import threading
import time
from dataclasses import dataclass
from typing import TextIO

from benchmark.output import say

PHASE_LABELS = {"head": "head", "fine_tune": "fine-tune", "single": "training"}
TICK_SECONDS = 1.0  # how often the line's clock is redrawn between events
RELAYED = ("epoch_begin", "epoch_end", "stage", "say")  # what a child may ask its parent to do


def clock(seconds: float) -> str:
    """h:mm:ss."""
    seconds = max(int(seconds), 0)
    return f"{seconds // 3600:d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class Reporter:
    """Where training reports its epochs: the base reports nowhere (tests, `tune`, a bare cell)."""

    def epoch_begin(self, phase: str, epoch: int, epochs: int, building: bool = False) -> None:
        """Epoch `epoch` (1-based) of `epochs` of `phase` starts; `building`: it fills a bank."""

    def epoch_end(self) -> None:
        """The epoch just begun has finished (the ETA counts finished epochs)."""

    def stage(self, name: str) -> None:
        """A step outside the epochs ("evaluating")."""

    def receive(self, message) -> None:
        """A child process's relayed call (see `relay`): its printed lines are printed here."""
        name, args = message
        if name == "say":
            say(args[0])


_active: list[Reporter] = [Reporter()]


def reporter() -> Reporter:
    """The reporter of this process: the run's `Progress`, a child's relay, or a silent one."""
    return _active[-1]


@contextlib.contextmanager
def reporting(target: Reporter):
    _active.append(target)
    try:
        yield target
    finally:
        _active.remove(target)


@dataclass
class _Cell:
    """The cell under way, as the line shows it."""

    position: int
    cell_id: str
    model: str
    epochs: int  # its planned epochs over all phases (early stopping may end it sooner)
    started: float
    epochs_done: int = 0
    phase: str = "preparing"
    epoch: str = ""  # "3/10" while a phase runs (", building bank" while it fills one)


class Progress(Reporter):
    """The run's progress over the cells of `models` (one entry per cell to run, in order).

    `quiet` keeps only each cell's result; otherwise a terminal `stream` gets the live line and any
    other stream plain lines. `tick` is the redraw period of the line's clock (0: on events only);
    `now` is the clock and `width` the line's maximum (None: the terminal's width less one, so the
    line never wraps, which would break the carriage return).
    """

    def __init__(
        self,
        models: list[str],
        *,
        quiet: bool = False,
        stream: TextIO | None = None,
        tick: float = TICK_SECONDS,
        now=time.monotonic,
        width: int | None = None,
    ):
        self.models, self.tick, self.now, self.width = list(models), tick, now, width
        self.stream = stream or sys.stdout
        tty = getattr(self.stream, "isatty", lambda: False)()
        self.mode = "quiet" if quiet else ("line" if tty else "plain")
        self.started = now()
        self.finished: list[tuple[str, float]] = []  # (model, seconds) of each finished cell
        self.cell: _Cell | None = None
        self._position = 0  # the last cell started or skipped (1-based)
        self._lock = threading.RLock()
        self._shown = 0  # characters of the status line on screen (0: none)
        self._at_line_start = True  # whether the last text written ended its line
        self._stop = threading.Event()
        self._real_stdout = sys.stdout

    @property
    def keras_verbose(self) -> int:
        """Keras' own output: one line per epoch in plain mode, none beside the live line."""
        return 2 if self.mode == "plain" else 0

    # The run's life: `with progress:` puts the line's guard around sys.stdout and starts the clock.
    def __enter__(self) -> Progress:
        _active.append(self)
        if self.mode == "line":
            self._real_stdout = sys.stdout
            sys.stdout = _Guard(self)
            if self.tick > 0:
                threading.Thread(target=self._ticker, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        with self._lock:
            self._clear()
            if self.mode == "line" and isinstance(sys.stdout, _Guard):
                sys.stdout = self._real_stdout
        _active.remove(self)

    def _ticker(self) -> None:
        while not self._stop.wait(self.tick):
            with self._lock:
                if self.cell is not None and self._at_line_start:
                    self._draw()

    # Cells.
    def start_cell(self, position: int, cell_id: str, model: str, epochs: int) -> None:
        with self._lock:
            self.cell = _Cell(position, cell_id, model, epochs, self.now())
            self._position = position
            if self.mode == "plain":
                self._line(f"{self._counter(position)} start {cell_id} (elapsed {self._elapsed()})")
            self._draw()

    def skip_cell(self, position: int, text: str) -> None:
        """A cell this run leaves (another process has it): `text` says why."""
        with self._lock:
            self._position = position
            self._line(f"{self._counter(position)} skip {text}", essential=True)

    def finish_cell(self, ok: bool, summary: str) -> None:
        """Ends the current cell: `summary` is its result ("val_accuracy 0.8052") or its error."""
        with self._lock:
            cell, self.cell = self.cell, None
            if cell is None:
                return
            self.finished.append((cell.model, self.now() - cell.started))
            counter = self._counter(cell.position)
            if ok:
                self._line(
                    f"{counter} done {cell.cell_id}: {summary} (elapsed {self._elapsed()}, "
                    f"ETA {self._eta_text()})",
                    essential=True,
                )
            else:
                self._line(f"{counter} FAILED {cell.cell_id}: {summary}", essential=True)

    def say(self, text: str) -> None:
        """A plain line in every mode (a skipped cell, a note), above the live line."""
        with self._lock:
            self._line(text.rstrip("\n"), essential=True)

    # Reporter: what the recipe's callback (or a child's relay) tells.
    def epoch_begin(self, phase: str, epoch: int, epochs: int, building: bool = False) -> None:
        with self._lock:
            if self.cell is not None:
                label = PHASE_LABELS.get(phase, phase)
                self.cell.phase = label
                self.cell.epoch = f"{epoch}/{epochs}" + (", building bank" if building else "")
                self._draw()

    def epoch_end(self) -> None:
        with self._lock:
            if self.cell is not None:
                self.cell.epochs_done += 1
                self._draw()

    def stage(self, name: str) -> None:
        with self._lock:
            if self.cell is not None:
                self.cell.phase, self.cell.epoch = name, ""
                self._draw()

    def receive(self, message) -> None:
        """A child's relayed call: (method name, arguments); anything else is ignored."""
        name, args = message
        if name in RELAYED:
            getattr(self, name)(*args)

    # The estimate.
    def eta(self) -> float | None:
        """Seconds left, from measured times only; None before anything has been measured."""
        now = self.now()
        means = {}
        for model in {m for m, _ in self.finished}:
            times = [s for m, s in self.finished if m == model]
            means[model] = sum(times) / len(times)
        overall = sum(s for _, s in self.finished) / len(self.finished) if self.finished else None
        left, current_total = 0.0, None
        if self.cell is not None:
            spent = now - self.cell.started
            if self.cell.epochs_done and self.cell.epochs:
                per_epoch = spent / self.cell.epochs_done
                remaining_epochs = max(self.cell.epochs - self.cell.epochs_done, 0)
                left += per_epoch * remaining_epochs
                current_total = spent + per_epoch * remaining_epochs
            else:
                guess = means.get(self.cell.model, overall)
                if guess is None:
                    return None
                left += max(guess - spent, 0.0)
        for model in self.models[self._position :]:  # the cells after the current one
            guess = means.get(model, overall if overall is not None else current_total)
            if guess is None:
                return None
            left += guess
        return left

    # Output.
    def _counter(self, position: int) -> str:
        return f"[{position}/{len(self.models)}]"

    def _elapsed(self) -> str:
        return clock(self.now() - self.started)

    def _eta_text(self) -> str:
        eta = self.eta()
        return "?" if eta is None else clock(eta)

    def status(self) -> str:
        """The live line's text: counts and times first, so a narrow terminal cuts the cell's
        name rather than the ETA."""
        parts = [
            f"cells {len(self.finished)}/{len(self.models)} done",
            f"elapsed {self._elapsed()}, ETA {self._eta_text()}",
        ]
        if self.cell is not None:
            parts.append(f"{self.cell.cell_id}: {self.cell.phase} {self.cell.epoch}".strip())
        return " | ".join(parts)

    def _line(self, text: str, essential: bool = False) -> None:
        """A finished line, above the live line; under --quiet only `essential` ones."""
        if self.mode == "quiet" and not essential:
            return
        self._clear()
        self._write(text + "\n")
        self._at_line_start = True
        self._draw()

    def _draw(self) -> None:
        if self.mode != "line":
            return
        width = self.width or shutil.get_terminal_size((100, 24)).columns - 1
        text = self.status()[:width]
        self._write("\r" + text + " " * max(self._shown - len(text), 0))
        self._shown = len(text)

    def _clear(self) -> None:
        if self._shown:
            self._write("\r" + " " * self._shown + "\r")
            self._shown = 0

    def _write(self, text: str) -> None:
        self.stream.write(text)
        self.stream.flush()

    def passthrough(self, text: str) -> None:
        """Text other code printed while the line is up: the line steps aside, then returns."""
        with self._lock:
            self._clear()
            self._write(text)
            self._at_line_start = text.endswith("\n")
            if self._at_line_start:
                self._draw()


class _Guard:
    """`sys.stdout` while the live line is up: every write goes around the line."""

    def __init__(self, progress: Progress):
        self._progress = progress

    def write(self, text: str) -> int:
        if text:
            self._progress.passthrough(text)
        return len(text)

    def flush(self) -> None:
        self._progress.stream.flush()

    def isatty(self) -> bool:
        return True

    def __getattr__(self, name):
        return getattr(self._progress.stream, name)


class _Relay(Reporter):
    """A child process's reporter: each call becomes a message on the parent's answer queue."""

    def __init__(self, answers):
        self.answers = answers

    def epoch_begin(self, phase: str, epoch: int, epochs: int, building: bool = False) -> None:
        self.answers.put(("progress", ("epoch_begin", (phase, epoch, epochs, building))))

    def epoch_end(self) -> None:
        self.answers.put(("progress", ("epoch_end", ())))

    def stage(self, name: str) -> None:
        self.answers.put(("progress", ("stage", (name,))))


class _RelayedStdout:
    """A child's `sys.stdout`: whole lines go to the parent, which prints them around its line."""

    def __init__(self, answers):
        self.answers, self._pending = answers, ""

    def write(self, text: str) -> int:
        self._pending += text
        while "\n" in self._pending:
            line, self._pending = self._pending.split("\n", 1)
            self.answers.put(("progress", ("say", (line,))))
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False


@contextlib.contextmanager
def relay(answers):
    """In a child process: its reports and its printed lines go to the parent over `answers`."""
    stdout, sys.stdout = sys.stdout, _RelayedStdout(answers)
    try:
        with reporting(_Relay(answers)):
            yield
    finally:
        pending = sys.stdout._pending
        sys.stdout = stdout
        if pending:
            answers.put(("progress", ("say", (pending,))))
