"""The progress output: one line rewritten in place on a terminal, plain lines elsewhere, results
only under --quiet, and an ETA from measured times (no TensorFlow here)."""

import io
import queue
import sys

from benchmark.progress import Progress, relay, reporter


class FakeTerminal(io.StringIO):
    def isatty(self):
        return True


class FakeClock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def two_cells(stream, clock, **kwargs):
    """Cell 1 (lite0): two 10 s epochs; cell 2 (cnn) starts and trains one epoch."""
    progress = Progress(["lite0", "cnn"], stream=stream, tick=0, now=clock, width=200, **kwargs)
    with progress:
        progress.start_cell(1, "lite0__alpha0__seed0", "lite0", epochs=2)
        progress.epoch_begin("head", 1, 1, building=True)
        clock.t += 10
        progress.epoch_end()
        progress.epoch_begin("fine_tune", 1, 1)
        print("a note from the recipe")
        clock.t += 10
        progress.epoch_end()
        progress.finish_cell(True, "val_accuracy 0.8000")
        progress.start_cell(2, "cnn__alpha0__seed0", "cnn", epochs=4)
        progress.epoch_begin("single", 1, 4)
        clock.t += 5
        progress.epoch_end()
    return progress


def test_a_terminal_gets_one_line_rewritten_in_place():
    terminal, clock = FakeTerminal(), FakeClock()
    two_cells(terminal, clock)
    out = terminal.getvalue()
    finished_lines = out.split("\n")[:-1]
    # Only whole lines scroll: the note and the finished cell; no "start" line on a terminal.
    assert [line.rsplit("\r", 1)[-1] for line in finished_lines] == [
        "a note from the recipe",
        "[1/2] done lite0__alpha0__seed0: val_accuracy 0.8000 (elapsed 0:00:20, ETA 0:00:20)",
    ]
    live = out.split("\n")[-1].split("\r")
    # The live line is redrawn with carriage returns, never a newline, and shows every part.
    assert (
        "cells 0/2 done | elapsed 0:00:00, ETA ? | lite0__alpha0__seed0: head 1/1, building bank"
        in out
    )
    # 10 s an epoch: 10 s left in this cell, and the cnn (unmeasured) as long as this one
    assert "elapsed 0:00:10, ETA 0:00:30 | lite0__alpha0__seed0: fine-tune 1/1" in out
    assert any(  # the cnn: 5 s an epoch, 3 epochs left
        part.startswith(
            "cells 1/2 done | elapsed 0:00:25, ETA 0:00:15 | cnn__alpha0__seed0: training 1/4"
        )
        for part in live
    )
    assert live[-1].strip() == ""  # the line is taken down when the run ends
    assert "Guard" not in type(sys.stdout).__name__  # stdout is given back


def test_a_log_gets_plain_lines_and_no_carriage_returns():
    log, clock = io.StringIO(), FakeClock()
    progress = two_cells(log, clock)
    out = log.getvalue()
    assert "\r" not in out
    assert out.splitlines() == [
        "[1/2] start lite0__alpha0__seed0 (elapsed 0:00:00)",
        "[1/2] done lite0__alpha0__seed0: val_accuracy 0.8000 (elapsed 0:00:20, ETA 0:00:20)",
        "[2/2] start cnn__alpha0__seed0 (elapsed 0:00:20)",
    ]
    assert progress.keras_verbose == 2


def test_quiet_keeps_only_results():
    log, clock = FakeTerminal(), FakeClock()
    progress = two_cells(log, clock, quiet=True)
    assert "\r" not in log.getvalue() and " start " not in log.getvalue()
    assert log.getvalue().splitlines()[-1].startswith("[1/2] done lite0__alpha0__seed0")
    assert progress.keras_verbose == 0


def test_the_eta_uses_the_finished_cells_of_the_same_model():
    clock = FakeClock()
    progress = Progress(["a", "a", "b"], stream=io.StringIO(), tick=0, now=clock)
    assert progress.eta() is None  # nothing measured yet
    progress.start_cell(1, "a1", "a", epochs=4)
    clock.t += 30
    progress.finish_cell(True, "ok")
    # The second "a" takes what the first took; "b", unmeasured, takes the mean of all.
    assert progress.eta() == 60
    progress.start_cell(2, "a2", "a", epochs=4)
    clock.t += 10
    progress.epoch_end()  # 10 s an epoch, 3 left: 30 s, then b's 30 s
    assert progress.eta() == 60


def test_a_child_relays_its_epochs_and_lines_to_the_parent():
    answers = queue.Queue()
    with relay(answers):
        reporter().epoch_begin("head", 2, 5, False)
        print("bank note")
    terminal, clock = FakeTerminal(), FakeClock()
    with Progress(["m"], stream=terminal, tick=0, now=clock, width=200) as progress:
        progress.start_cell(1, "m__alpha0__seed0", "m", epochs=5)
        while not answers.empty():
            kind, message = answers.get()
            assert kind == "progress"
            progress.receive(message)
    out = terminal.getvalue()
    assert "m__alpha0__seed0: head 2/5" in out
    assert "bank note\n" in out


def test_the_line_never_outgrows_the_terminal():
    terminal, clock = FakeTerminal(), FakeClock()
    progress = Progress(["m"], stream=terminal, tick=0, now=clock, width=30)
    progress.start_cell(1, "a_very_long_model_name__alpha0.5__seed0", "m", epochs=5)
    drawn = terminal.getvalue().split("\r")[1:]
    assert drawn and all(len(part) <= 30 for part in drawn)
