"""A full disk during a cell: the cell fails as a record that names the file, the process lives on.

Writes are made to fail as they do on a full disk (OSError ENOSPC from the writer) in-process; the
cell's backups stay so that the re-run, once space is freed, resumes where the disk filled up.
"""

import errno
import pathlib
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from benchmark.config.run_config import RunConfig
from benchmark.errors import UsageError
from benchmark.io import DiskFullError, replace_atomically
from benchmark.run.folder import prepare_run
from benchmark.run.loop import run_grid
from benchmark.run.records import load_records, record_path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "cli"))
from cli_helpers import make_images  # noqa: E402

CELL = "simple_cnn__alpha0__seed0"
TINY = dict(
    models=["simple_cnn"],
    alphas=[0.0],
    weights="none",
    image_size=32,
    batch_size=8,
    initial_epochs=1,
    fine_tune_epochs=0,
    profile=False,
    save_models="none",
)


def no_space(path):
    return OSError(errno.ENOSPC, "No space left on device", str(path))


@pytest.fixture
def tiny_run(tmp_path):
    data = make_images(tmp_path / "data", per_class=4, size=32)
    return prepare_run(RunConfig(data=str(data), **TINY), tmp_path / "run")


def fail_writes(monkeypatch, what: str) -> None:
    """Makes one kind of write fail with ENOSPC, as the full disk made it."""
    if what == "weights":  # Keras' weights file (h5py raises OSError errno 28)

        def save_weights(model, path, *args, **kwargs):
            raise no_space(path)

        monkeypatch.setattr(keras.Model, "save_weights", save_weights)
    elif what == "npz":  # the optimizer state, seed states, best weights and bank epochs

        def savez(path, *args, **kwargs):
            raise no_space(path)

        monkeypatch.setattr(np, "savez", savez)
    else:  # a backup's state.json, through the atomic text writer
        write_text = pathlib.Path.write_text

        def refuse_state(self, *args, **kwargs):
            if "state.json" in self.name:
                raise no_space(self)
            return write_text(self, *args, **kwargs)

        monkeypatch.setattr(pathlib.Path, "write_text", refuse_state)


@pytest.mark.parametrize(
    "what, target",
    [("weights", "weights.weights.h5"), ("npz", "optimizer.npz"), ("json", "state.json")],
)
def test_a_full_disk_fails_the_cell_as_a_record_naming_the_file(
    tiny_run, monkeypatch, what, target
):
    fail_writes(monkeypatch, what)
    assert run_grid(tiny_run, quiet=True) == 1  # one failed cell, and no crash
    monkeypatch.undo()
    (record,) = load_records(tiny_run.run_dir)
    backup = tiny_run.run_dir / "work" / CELL / "single"
    assert record.status == "failed"
    assert record.error == f"DiskFullError: no space left on device writing {backup / target}"
    assert not list(backup.glob(".*.tmp*"))  # the failed write's temporary file is removed
    assert backup.parent.is_dir()  # the backups stay, for the re-run to resume from

    assert run_grid(tiny_run, quiet=True) == 0  # space freed: the same run trains the cell
    (record,) = load_records(tiny_run.run_dir)
    assert record.status == "ok" and not backup.parent.exists()


def test_a_record_the_full_disk_refuses_stops_the_run_in_one_line(tiny_run, monkeypatch, capsys):
    import run_benchmark

    write_text = pathlib.Path.write_text

    def refuse_records(self, *args, **kwargs):
        if self.parent.name == "cells" or "state.json" in self.name:
            raise no_space(self)
        return write_text(self, *args, **kwargs)

    monkeypatch.setattr(pathlib.Path, "write_text", refuse_records)
    with pytest.raises(UsageError, match=f"no space left on device writing .*{CELL}.json: free"):
        run_grid(tiny_run, quiet=True)
    argv = ["--data", tiny_run.config.data, "--output", str(tiny_run.run_dir), "--quiet"]
    argv += ["--models", "simple_cnn", "--alphas", "0", "--weights", "none", "--image-size", "32"]
    argv += ["--batch-size", "8", "--initial-epochs", "1", "--fine-tune-epochs", "0"]
    argv += ["--no-profile", "--save-models", "none"]
    capsys.readouterr()
    assert run_benchmark.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"run_benchmark: no space left on device writing {record_path(tiny_run.run_dir, CELL)}: "
        "free space and run the same command again (it resumes)"
    ]


def test_a_write_that_cannot_fit_never_starts(tmp_path):
    started = []
    with pytest.raises(DiskFullError, match="no space left on device writing .*big.weights.h5"):
        replace_atomically(tmp_path / "big.weights.h5", started.append, size=2**62)
    assert started == [] and list(tmp_path.iterdir()) == []
