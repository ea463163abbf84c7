"""`run_benchmark.py tune`: a KerasTuner search over one model's hyperparameters, trained by the
benchmark's recipe.

Each trial is a RunConfig (the base configuration with the trial's values, `benchmark.tune.space`)
trained exactly as a grid cell is: the run's split file, `train_two_phase` with AdamW and early
stopping, per-sample class weights damped by the trial's alpha. Trials are scored on the
validation split only; the test split is never read, so a later benchmark run's test score of the
winning configuration stays an unbiased estimate.

Hyperband's later rounds retrain a promising configuration from scratch with the larger budget:
the two-phase recipe cannot pick up another trial's weights mid-phase.

The output folder DIR holds the KerasTuner project (`DIR/keras_tuner`, reloaded on a re-run so
finished trials are kept and only the missing ones run), `splits.csv`, `tune_request.yaml` (the
model, space, objective, tuner, epoch cap and base configuration: a re-run that changes any of
them is refused unless --force, which starts the search afresh), and what
`benchmark.tune.trials` writes: trials.csv/.md, importance.csv, plots/ and best_config.yaml,
which `run_benchmark.py --config DIR/best_config.yaml` runs unchanged. How one trial is trained
and scored (the part KerasTuner calls back into) is `benchmark.tune.trial_training`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras_tuner
import numpy as np
import pandas as pd
import yaml

from benchmark.config.config_diff import differing_keys
from benchmark.config.run_config import RunConfig
from benchmark.errors import USER_ERRORS, UsageError
from benchmark.io import write_text_atomic
from benchmark.output import say
from benchmark.plan.model_plan import model_kind
from benchmark.run.fetch_weights import check_weights_available
from benchmark.run.folder import check_captions
from benchmark.run.split_files import resolve_split
from benchmark.tracking.tracker import TrialTracker
from benchmark.tune.space import (
    Param,
    apply_values,
    default_space_path,
    load_space,
    to_hyperparameters,
    trial_values,
)
from benchmark.tune.trial_training import OUTCOME_FILE, RecipeTuner, SearchContext
from benchmark.tune.trials import importance_table, rank_trials, write_plots, write_tables
from models import get_entry, resolve_model_names

OBJECTIVES = {"val_accuracy": "max", "val_loss": "min", "val_macro_f1": "max"}
TUNERS = ("random", "bayesian", "hyperband")
PROJECT_NAME = "keras_tuner"
REQUEST_FILE = "tune_request.yaml"


@dataclass(frozen=True)
class TuneOptions:
    """What to search and for how long.

    Args:
        model: registry name (or alias) of the one model to tune.
        tuner: "random" (the default: independent trials keep the importance estimates unbiased),
            "bayesian" or "hyperband".
        max_trials: trials in all, finished ones of an earlier run included. Defaults to 20.
        max_epochs: caps each training phase (the whole budget of a one-phase model) so a trial
            stays short; hyperband's largest budget, so hyperband needs it. Defaults to None
            (no cap).
        objective: "val_accuracy" (default), "val_loss" or "val_macro_f1", on the validation split.
        space: search-space file; None for the shipped one (`benchmark/tune/spaces/`).
    """

    model: str
    tuner: str = "random"
    max_trials: int = 20
    max_epochs: int | None = None
    objective: str = "val_accuracy"
    space: str | None = None

    def __post_init__(self) -> None:
        if self.tuner not in TUNERS:
            raise UsageError(f"--tuner must be one of {', '.join(TUNERS)}, got {self.tuner!r}")
        if self.objective not in OBJECTIVES:
            raise UsageError(
                f"--objective must be one of {', '.join(OBJECTIVES)}, got {self.objective!r}"
            )
        if self.max_trials < 1:
            raise UsageError(f"--max-trials must be at least 1, got {self.max_trials}")
        if self.max_epochs is not None and self.max_epochs < 1:
            raise UsageError(f"--max-epochs must be at least 1, got {self.max_epochs}")
        if self.tuner == "hyperband" and self.max_epochs is None:
            raise UsageError(
                "--tuner hyperband needs --max-epochs (the largest epoch budget it gives a trial)"
            )


def tune_command(
    config: RunConfig, options: TuneOptions, output: str | None, force: bool, *, quiet: bool = False
) -> int:
    """Searches, then writes the tables, importance, plots and best configuration; exit 1 if no
    trial finished.
    """
    if config.folds is not None:
        raise UsageError(
            "tune searches on one split; leave --folds out (cross-validate the best configuration "
            "afterwards with `run_benchmark.py --config BEST --folds K`)"
        )
    model = single_model(options.model)
    base = dataclasses.replace(config, models=[model])
    space_file = options.space or default_space_path(model)
    space = load_space(space_file, base, model)
    out = Path(output) if output else Path("results") / time.strftime("tune-%Y%m%d-%H%M%S")
    request = search_request(base, options, space)
    changed = changed_request(out, request)
    if changed and not force:
        raise UsageError(
            f"tune folder {str(out)!r} was started with a different search ({', '.join(changed)}); "
            "use another --output, or --force to start the search afresh there"
        )
    check_weights_available([model], base.weights, base.text_encoder, base.image_size)
    if any(key.startswith("config.") for key in changed):
        (out / "splits.csv").unlink(
            missing_ok=True
        )  # the data or split settings changed: split again
    split = resolve_split(base, out)
    check_captions(base, split)
    write_text_atomic(out / REQUEST_FILE, yaml.safe_dump(request, sort_keys=False))
    tracker = TrialTracker(base, out) if base.mlflow or base.tensorboard else None
    context = SearchContext(
        base,
        model,
        split,
        out,
        options.objective,
        options.max_epochs,
        verbose=0 if quiet else (1 if sys.stdout.isatty() else 2),
        tracker=tracker,
    )
    tuner = make_tuner(
        options, context, to_hyperparameters(space, base, model), overwrite=bool(changed)
    )
    say(
        f"tune folder: {out} ({model}, {options.tuner} search over {len(space)} hyperparameters "
        f"from {space_file}; up to {tuner.remaining_trials} trial(s) to run)"
    )
    if tracker:
        tracker.start(model=model, tuner=options.tuner, objective=options.objective)
    search(tuner)
    status = write_outputs(tuner, context, space, options)
    if tracker:
        tracker.end()
    return status


def single_model(name: str) -> str:
    """The one registry model a search tunes (a wildcard must match exactly one)."""
    names = resolve_model_names([name])
    if len(names) != 1:
        raise UsageError(
            f"--model {name!r} matches {len(names)} models ({', '.join(names)}); tune one at a time"
        )
    if model_kind(get_entry(names[0])) == "late_fusion":
        raise UsageError(
            f"{names[0]} combines trained cells and has nothing to train; tune its components "
            "instead"
        )
    return names[0]


def search_request(
    base: RunConfig, options: TuneOptions, space: dict[str, Param]
) -> dict[str, Any]:
    """Everything that decides which trials run and how they score (`max_trials` may grow on a
    re-run).
    """
    return {
        "model": base.models[0],
        "tuner": options.tuner,
        "objective": options.objective,
        "max_epochs": options.max_epochs,
        "space": {name: param.to_data() for name, param in space.items()},
        "config": base.to_dict(),
    }


def changed_request(out: Path, request: dict[str, Any]) -> list[str]:
    """What differs from the request saved in `out` (nothing for a new folder)."""
    path = out / REQUEST_FILE
    if not path.is_file():
        return []
    saved = yaml.safe_load(path.read_text()) or {}
    fresh = yaml.safe_load(
        yaml.safe_dump(request)
    )  # compared as YAML reads them back (tuples become lists)
    changed = [
        key
        for key in ("model", "tuner", "objective", "max_epochs", "space")
        if saved.get(key) != fresh[key]
    ]
    return changed + [
        f"config.{key}" for key in differing_keys(saved.get("config") or {}, fresh["config"])
    ]


def make_tuner(
    options: TuneOptions,
    context: SearchContext,
    hyperparameters: keras_tuner.HyperParameters,
    *,
    overwrite: bool,
) -> RecipeTuner:
    """The chosen oracle under our tuner, its state in `DIR/keras_tuner` (reloaded unless
    `overwrite`).
    """
    common = {
        "objective": keras_tuner.Objective(
            options.objective, direction=OBJECTIVES[options.objective]
        ),
        "hyperparameters": hyperparameters,
        "seed": context.base.seeds[0] + 1,  # KerasTuner draws a random seed for 0
        # KerasTuner stops after 3 failures in a row; a run of out-of-memory configurations (the
        # largest batches, say) must not end the search, so failures never stop it.
        "max_consecutive_failed_trials": None,
    }
    if options.tuner == "random":
        oracle = keras_tuner.oracles.RandomSearchOracle(max_trials=options.max_trials, **common)
    elif options.tuner == "bayesian":
        # A third of the budget explores at random before the Gaussian process steers (KerasTuner's
        # default, 3 per hyperparameter, would spend a 20-trial budget at random on a 14-knob
        # space).
        initial = min(3 * len(hyperparameters.space), max(3, options.max_trials // 3))
        oracle = keras_tuner.oracles.BayesianOptimizationOracle(
            max_trials=options.max_trials, num_initial_points=initial, **common
        )
    else:
        oracle = keras_tuner.oracles.HyperbandOracle(
            max_epochs=options.max_epochs, factor=3, **common
        )
        oracle.max_trials = (
            options.max_trials
        )  # Hyperband has no cap of its own; the base oracle honours this one
    return RecipeTuner(
        oracle, context, directory=str(context.out), project_name=PROJECT_NAME, overwrite=overwrite
    )


def search(tuner: RecipeTuner) -> None:
    """Runs the remaining trials; a user error inside a trial surfaces as itself (one line, exit
    2)."""
    try:
        tuner.search()
    except keras_tuner.errors.FatalError as err:
        if isinstance(err.__cause__, USER_ERRORS):
            raise err.__cause__ from None
        raise


def trial_rows(tuner: RecipeTuner) -> list[dict[str, Any]]:
    """One plain row per trial the oracle knows: its values and our outcome record."""
    rows = []
    for trial_id, trial in sorted(tuner.oracle.trials.items()):
        outcome_file = Path(tuner.get_trial_dir(trial_id)) / OUTCOME_FILE
        outcome = json.loads(outcome_file.read_text()) if outcome_file.is_file() else {}
        metrics = outcome.get("metrics", {})
        ok = trial.status == keras_tuner.engine.trial.TrialStatus.COMPLETED
        error = (
            outcome.get("error")
            or ((trial.message or "").strip().splitlines() or [f"trial {trial.status}"])[-1]
        )
        rows.append(
            {
                "trial_id": trial_id,
                **trial_values(trial.hyperparameters.values),
                "objective": metrics.get(tuner.context.objective, math.nan),
                **metrics,
                "epochs": outcome.get("epochs", 0),
                "seconds": outcome.get("seconds", math.nan),
                "head_features": outcome.get("head_features", ""),
                "fine_tune_features": outcome.get("fine_tune_features", ""),
                "status": "ok" if ok else "failed",
                "error": "" if ok else error,
            }
        )
    return rows


def write_outputs(
    tuner: RecipeTuner, context: SearchContext, space: dict[str, Param], options: TuneOptions
) -> int:
    """trials.csv/.md, importance.csv, plots/ and best_config.yaml; prints the best trial."""
    out, names, direction = context.out, list(space), OBJECTIVES[options.objective]
    trials = rank_trials(trial_rows(tuner), names, direction)
    importance = importance_table(trials, names)
    write_tables(
        out,
        trials,
        importance,
        f"{context.model}: {options.tuner} search, ranked by {options.objective} "
        f"({direction}imised) on the validation split",
    )
    shutil.rmtree(
        out / "plots", ignore_errors=True
    )  # a changed space would leave figures of old hyperparameters
    log_scale = {name for name, param in space.items() if param.log}
    write_plots(out / "plots", trials, importance, names, log_scale, options.objective, direction)
    finished = trials[trials["status"] == "ok"]
    failed = len(trials) - len(finished)
    say(
        f"\n{len(finished)} trial(s) finished, {failed} failed; tables, importance and plots "
        f"written to {out}"
    )
    if finished.empty:
        (out / "best_config.yaml").unlink(missing_ok=True)
        return 1
    best = finished.iloc[0]
    write_best_config(out / "best_config.yaml", context, best, names, options)
    top = importance.iloc[0]
    ranking = (
        f"most important: {top['hyperparameter']} (permutation importance "
        f"{top['permutation_importance']:.3f})"
        if math.isfinite(top["permutation_importance"])
        else f"importance: {top['note']}"
    )
    say(f"best trial {best['trial_id']}: {options.objective} {best['objective']:.4f}; {ranking}")
    say(f"train it on the benchmark: python run_benchmark.py --config {out / 'best_config.yaml'}")
    return 0


def write_best_config(
    path: Path, context: SearchContext, best: pd.Series, names: list[str], options: TuneOptions
) -> None:
    """The winning trial as a RunConfig file; epochs stay the base configuration's (the cap was a
    search shortcut).
    """
    config = apply_values(context.base, {name: plain(best[name]) for name in names})
    header = (
        f"# Best of {options.tuner} search in {context.out}: trial {best['trial_id']}, "
        f"{options.objective} {best['objective']:.4f} (validation split"
        f"{f', epochs capped at {options.max_epochs}' if options.max_epochs else ''}).\n"
        f"# Run it: python run_benchmark.py --config {path}\n"
    )
    write_text_atomic(path, header + yaml.safe_dump(config.to_dict(), sort_keys=False))


def plain(value: Any) -> Any:
    """A pandas/numpy cell as the Python value a RunConfig and YAML expect."""
    return value.item() if isinstance(value, np.generic) else value
