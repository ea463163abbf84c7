"""One tune trial: trained by the benchmark's two-phase recipe and scored on validation only.

Apart from `search.py` (which sets the search up and writes its tables) because this is the part
KerasTuner calls back into: `RecipeTuner.run_trial` trains a trial exactly as a grid cell is
trained (`prepare_cell`, `train_two_phase`) and records its outcome beside KerasTuner's own
`trial.json`, so a failed trial is one row of `trials.csv`, not the end of the search.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras_tuner
import numpy as np

from benchmark.config.run_config import RunConfig
from benchmark.errors import USER_ERRORS, error_line
from benchmark.io import write_json_atomic
from benchmark.run.cell import prepare_cell, recipe_settings
from benchmark.tracking.tracker import TrialTracker
from benchmark.training.metrics import classification_metrics, predict_probabilities
from benchmark.training.recipe import RecipeSettings, train_two_phase
from benchmark.tune.space import apply_values, trial_values
from data_pipeline import SplitTable

OUTCOME_FILE = "outcome.json"  # our record of a trial, beside KerasTuner's trial.json


@dataclass
class SearchContext:
    """What every trial shares: the base configuration, the model, the split and where to write."""

    base: RunConfig
    model: str
    split: SplitTable
    out: Path
    objective: str
    max_epochs: int | None
    verbose: int
    tracker: TrialTracker | None = (
        None  # MLflow / TensorBoard, when the configuration asks for them
    )


class RecipeTuner(keras_tuner.Tuner):
    """Runs each trial through the benchmark's two-phase recipe instead of a plain `model.fit`.

    Overriding `run_trial` lets a trial train in two phases and be scored on metrics Keras does
    not log (validation macro-F1 from the predictions). Any exception but a user error marks
    only this trial failed: KerasTuner records it and asks the oracle for the next one.
    """

    def __init__(self, oracle: keras_tuner.Oracle, context: SearchContext, **kwargs: Any) -> None:
        self.context = context
        super().__init__(oracle, **kwargs)

    def run_trial(
        self, trial: keras_tuner.engine.trial.Trial, *args: Any, **kwargs: Any
    ) -> dict[str, float]:
        context = self.context
        values = trial_values(trial.hyperparameters.values)
        budget = trial.hyperparameters.values.get(
            "tuner/epochs", context.max_epochs
        )  # hyperband's budget this round
        outcome_file = Path(self.get_trial_dir(trial.trial_id)) / OUTCOME_FILE
        started = time.perf_counter()
        tracker = context.tracker
        callbacks = tracker.start_trial(trial.trial_id, values) if tracker else []
        try:
            metrics, epochs, paths = train_trial(
                context, apply_values(context.base, values), budget, callbacks=callbacks
            )
        except USER_ERRORS as err:  # a file or flag to fix: every trial would fail the same way
            raise keras_tuner.errors.FatalError(str(err)) from err
        except (
            Exception
        ) as err:  # out of memory, NaN loss, ...: this trial fails, the search goes on
            error = error_line(err, default="")
            seconds = time.perf_counter() - started
            write_json_atomic(
                outcome_file,
                {
                    "status": "failed",
                    "error": error,
                    "epochs": 0,
                    "seconds": seconds,
                    "metrics": {},
                },
            )
            if tracker:
                tracker.finish_trial(
                    trial.trial_id, metrics={}, epochs=0, seconds=seconds, error=error
                )
            raise keras_tuner.errors.FailedTrialError(error) from err
        seconds = time.perf_counter() - started
        write_json_atomic(
            outcome_file,
            {
                "status": "ok",
                "error": "",
                "epochs": epochs,
                "seconds": seconds,
                "metrics": metrics,
                **paths,
            },
        )
        if tracker:
            tracker.finish_trial(trial.trial_id, metrics=metrics, epochs=epochs, seconds=seconds)
        return {context.objective: metrics[context.objective]}


def train_trial(
    context: SearchContext, config: RunConfig, max_epochs: int | None, callbacks=()
) -> tuple[dict[str, float], int]:
    """Trains one configuration as a grid cell is trained (`prepare_cell`) and scores it on
    validation (never test).

    Returns the validation metrics, the epochs trained and the data paths each phase took (bank,
    cached or online); `callbacks` are the tracker's epoch loggers. Stored features live in
    `DIR/features` and `DIR/fine_tune_bank`, shared by all trials, as are the decoded images in
    `DIR/cache` (one cache per image size, since a size may be searched over).
    """
    import keras

    # Trials of one backbone share its banks in DIR/features and DIR/fine_tune_bank: they differ
    # in head and rates, which train above the stored tensors; a trial that moves the cut or the
    # augmentation gets a bank of its own (the bank's key holds both).
    prepared = prepare_cell(
        config,
        context.model,
        context.split,
        seed=config.seeds[0],
        alpha=config.alphas[0],
        run_dir=context.out,
        cache=context.out / "cache",
    )
    built = prepared.built
    settings = cap_epochs(
        recipe_settings(config, context.model), max_epochs, single_phase=built.from_scratch
    )
    with prepared.strategy.scope():
        training = train_two_phase(
            built,
            prepared.train,
            prepared.val,
            settings,
            steps_per_epoch=prepared.steps_per_epoch,
            callbacks=[keras.callbacks.TerminateOnNaN(), *callbacks],
            verbose=context.verbose,
            cached_head=prepared.cached_head,
            cached_tune=prepared.cached_tune,
        )
    probabilities = predict_probabilities(built.model, prepared.val)
    if (
        not np.isfinite(training.history.get("loss", [])).all()
        or not np.isfinite(probabilities).all()
    ):
        raise FloatingPointError("NaN loss: training diverged")
    val = classification_metrics(
        context.split.label_indices("val"), probabilities, context.split.class_names
    )
    metrics = {
        "val_accuracy": val["accuracy"],
        "val_loss": val["loss"],
        "val_macro_f1": val["macro_f1"],
    }
    paths = {
        "head_features": prepared.head_features,
        "fine_tune_features": prepared.fine_tune_features,
    }
    return metrics, sum(phase.epochs for phase in training.phases), paths


def cap_epochs(settings: RecipeSettings, cap: int | None, *, single_phase: bool) -> RecipeSettings:
    """At most `cap` epochs per phase; a model trained in one phase (both budgets at once) gets
    `cap` in all.
    """
    if cap is None:
        return settings
    initial = min(settings.initial_epochs, cap)
    later = cap - initial if single_phase else cap
    return dataclasses.replace(
        settings, initial_epochs=initial, fine_tune_epochs=min(settings.fine_tune_epochs, later)
    )
