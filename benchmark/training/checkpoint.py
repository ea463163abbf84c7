"""Per-epoch backups so a preempted or killed cell continues where it stopped instead of starting
over.

`keras.callbacks.BackupAndRestore` keeps only the weights and the epoch: the resumed run would
start AdamW's moments and step count (and with them the cosine schedule) from zero, and early
stopping would forget its best epoch. `EpochBackup` saves all four after every epoch, and the
state of the model's random seed generators (dropout draws its masks from them; they are variables
but not weights, so `save_weights` leaves them out and a resumed cell would replay the masks of its
first epochs: 8e-3 apart from an uninterrupted cell after six epochs with dropout 0.3). With them,
a resumed cell ends bit-identical to one never interrupted (tested in `tests/run/`).
`PhaseCheckpoint` marks a finished phase so a re-run skips it, with its weights and seed states:
the next phase draws its dropout masks on from those states, and a cell killed at the phase
boundary once started them again from the build and ended elsewhere (issue 39). A cell's backups
live in `RUN_DIR/work/<cell_id>/` and are removed once its record is written.
"""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np

from benchmark.io import replace_atomically, write_text_atomic

STATE = "state.json"
WEIGHTS = "weights.weights.h5"
OPTIMIZER = "optimizer.npz"
BEST = "best_weights.npz"
SEEDS = "seed_states.npz"


def seed_states(model: keras.Model) -> list:
    """The model's variables that are not weights: the states of its layers' seed generators."""
    weights = {id(variable) for variable in model.weights}
    return [variable for variable in model.variables if id(variable) not in weights]


def save_seed_states(model: keras.Model, path: Path) -> None:
    seeds = {f"s{i}": np.asarray(v) for i, v in enumerate(seed_states(model))}
    replace_atomically(path, lambda temporary: np.savez(temporary, **seeds), suffix=".npz")


def restore_seed_states(model: keras.Model, path: Path) -> None:
    """Sets the model's seed generators as `save_seed_states` left them; backups written before
    they were saved lack the file, and keep the generators as built."""
    if path.is_file():
        seeds = np.load(path)
        for index, variable in enumerate(seed_states(model)):
            variable.assign(seeds[f"s{index}"])


HDF5_BYTES_PER_VARIABLE = 4096  # a dataset's header and metadata in a weights file, generously


def weights_bytes(model: keras.Model) -> int:
    """At most what `model.save_weights` writes (its optimizer's variables included): checked
    against the free space first, since h5py on a full disk fails untidily (`benchmark.io`)."""
    optimizer = getattr(model, "optimizer", None)
    variables = [*model.weights, *(optimizer.variables if optimizer is not None else [])]
    data = sum(int(np.prod(v.shape)) * np.dtype(v.dtype).itemsize for v in variables)
    return data + HDF5_BYTES_PER_VARIABLE * (len(variables) + 1)


def save_weights(model: keras.Model, path: Path) -> None:
    replace_atomically(path, model.save_weights, suffix=".weights.h5", size=weights_bytes(model))


def load_weights(model: keras.Model, path: Path) -> None:
    """`model.load_weights`, optimizer included: the weights file holds the compiled optimizer's
    variables too, which an unbuilt optimizer skips with a warning, so it is built first."""
    if model.optimizer is not None and not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)
    model.load_weights(path)


class EpochBackup(keras.callbacks.Callback):
    """Saves and restores weights, optimizer state, epoch, history and early-stopping state of one
    phase.

    Place it after the `EarlyStopping` it mirrors: callbacks run in list order, and the stopper's
    own `on_train_begin` resets what this one restores.
    """

    def __init__(self, folder: Path, stopper: keras.callbacks.EarlyStopping):
        super().__init__()
        self.folder = Path(folder)
        self.stopper = stopper
        self.history: dict[str, list[float]] = {}
        self.resumed_from_epoch = 0

    def on_train_begin(self, logs=None) -> None:
        state_file = self.folder / STATE
        if not state_file.is_file():
            return
        state = json.loads(state_file.read_text())
        load_weights(self.model, self.folder / WEIGHTS)
        saved = np.load(self.folder / OPTIMIZER)
        for index, variable in enumerate(self.model.optimizer.variables):
            variable.assign(saved[f"v{index}"])
        self.stopper.wait, self.stopper.best, self.stopper.best_epoch = (
            state["wait"],
            state["best"],
            state["best_epoch"],
        )
        restore_seed_states(self.model, self.folder / SEEDS)
        if (self.folder / BEST).is_file():
            best = np.load(self.folder / BEST)
            self.stopper.best_weights = [best[f"w{i}"] for i in range(len(best.files))]
        self.history = state["history"]
        self.resumed_from_epoch = state["epoch"] + 1
        # An early stop that was already decided stays decided: no epochs are left to run.
        self.model._initial_epoch = state["epochs"] if state["stopped"] else self.resumed_from_epoch

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(float(value))
        self.folder.mkdir(parents=True, exist_ok=True)
        save_weights(self.model, self.folder / WEIGHTS)
        optimizer_state = {
            f"v{i}": np.asarray(v) for i, v in enumerate(self.model.optimizer.variables)
        }
        replace_atomically(
            self.folder / OPTIMIZER, lambda path: np.savez(path, **optimizer_state), suffix=".npz"
        )
        save_seed_states(self.model, self.folder / SEEDS)
        if self.stopper.best_weights is not None:
            best_weights = {f"w{i}": w for i, w in enumerate(self.stopper.best_weights)}
            replace_atomically(
                self.folder / BEST, lambda path: np.savez(path, **best_weights), suffix=".npz"
            )
        best = self.stopper.best
        state = {
            "epoch": epoch,
            "epochs": self.params.get("epochs", epoch + 1),
            "history": self.history,
            "wait": self.stopper.wait,
            "best": None if best is None else float(best),
            "best_epoch": self.stopper.best_epoch,
            "stopped": bool(self.model.stop_training),
        }
        # The state file is written last: it is the commit point that says the files beside it are
        # whole.
        write_text_atomic(self.folder / STATE, json.dumps(state))


class PhaseCheckpoint:
    """The finished phases of one cell: the phase's summary and the whole model's weights after
    it."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)

    def epoch_backup(self, phase: str, stopper: keras.callbacks.EarlyStopping) -> EpochBackup:
        return EpochBackup(self.folder / phase, stopper)

    def finished(self, phase: str, model: keras.Model) -> dict | None:
        """The saved summary of `phase`, with `model` set to the weights it ended with; None if it
        never finished."""
        summary = self.folder / f"{phase}.done.json"
        if not summary.is_file():
            return None
        load_weights(model, self.folder / f"{phase}.done.weights.h5")
        restore_seed_states(model, self.folder / f"{phase}.done.{SEEDS}")
        return json.loads(summary.read_text())

    def finished_epochs(self) -> list[int]:
        """Epochs each finished phase ran, read without touching a model: where a resumed cell's
        timeline stands."""
        return [
            int(json.loads(path.read_text())["epochs"])
            for path in sorted(self.folder.glob("*.done.json"))
        ]

    def mark_finished(self, phase: str, model: keras.Model, summary: dict) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        save_weights(model, self.folder / f"{phase}.done.weights.h5")
        # Dropout's generators as the phase left them: the next phase draws its masks on from
        # there, so a cell resumed at the boundary must not start them again from the build.
        save_seed_states(model, self.folder / f"{phase}.done.{SEEDS}")
        write_text_atomic(self.folder / f"{phase}.done.json", json.dumps(summary))
