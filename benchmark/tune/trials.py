"""What a search leaves behind: the ranked trials table, hyperparameter importance and its figures.

Everything here takes plain rows and tables (never a tuner), so it is tested on hand-made trials.
Importance is only a reading of the trials that finished: a Spearman rank correlation per numeric
hyperparameter (the objective rises or falls with it), the mean objective per level of a
categorical one, and the permutation importance of a random forest fitted to all of them (how
much the forest's in-sample R^2 drops when that column is shuffled). With a handful of trials
these are hints, not findings; with fewer than three they are NaN and the note says why.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib.ticker
import numpy as np
import pandas as pd
from scipy.stats import spearmanr
from sklearn.ensemble import RandomForestRegressor
from sklearn.inspection import permutation_importance
from tabulate import tabulate

from benchmark.figures import plt, save_figure
from benchmark.io import write_csv_atomic, write_text_atomic

METRIC_COLUMNS = [
    "objective",
    "val_accuracy",
    "val_macro_f1",
    "val_loss",
    "epochs",
    "seconds",
    "head_features",  # what each phase trained on: "bank", "cached", "online" (or "none")
    "fine_tune_features",
    "status",
    "error",
]
IMPORTANCE_COLUMNS = [
    "hyperparameter",
    "kind",
    "spearman_rho",
    "spearman_p",
    "level_means",
    "permutation_importance",
    "permutation_std",
    "note",
]
MIN_TRIALS = 3


def rank_trials(rows: list[dict], hyperparameters: list[str], direction: str) -> pd.DataFrame:
    """One row per trial, best objective first (`direction` "max" or "min"); failed trials last,
    unranked.
    """
    frame = pd.DataFrame(rows, columns=["trial_id", *hyperparameters, *METRIC_COLUMNS])
    ok = frame["status"] == "ok"
    finished = frame[ok].sort_values(
        ["objective", "trial_id"], ascending=[direction == "min", True], kind="stable"
    )
    failed = frame[~ok].sort_values("trial_id", kind="stable")
    finished.insert(0, "rank", range(1, len(finished) + 1))
    failed.insert(0, "rank", pd.NA)
    return (
        pd.concat([finished, failed], ignore_index=True)
        if len(failed)
        else finished.reset_index(drop=True)
    )


def finished_trials(trials: pd.DataFrame) -> pd.DataFrame:
    return trials[(trials["status"] == "ok") & trials["objective"].notna()]


def is_categorical(values: pd.Series) -> bool:
    """Strings and booleans have no order a rank correlation could use."""
    return pd.api.types.is_bool_dtype(values) or not pd.api.types.is_numeric_dtype(values)


def importance_table(trials: pd.DataFrame, hyperparameters: list[str]) -> pd.DataFrame:
    """Per hyperparameter: Spearman rho and p (numeric), mean objective per level (categorical), and
    random-forest permutation importance; rows sorted by permutation importance, largest first.

    `trials` needs the hyperparameter columns, `objective` and `status` (only "ok" rows count).
    """
    ok = finished_trials(trials)
    forest = forest_importance(ok, hyperparameters)
    rows = []
    for name in hyperparameters:
        values = ok[name]
        categorical = is_categorical(values)
        row = {
            "hyperparameter": name,
            "kind": "categorical" if categorical else "numeric",
            "spearman_rho": math.nan,
            "spearman_p": math.nan,
            "level_means": level_means(values, ok["objective"]) if categorical else "",
            "permutation_importance": math.nan,
            "permutation_std": math.nan,
            "note": shortfall(ok, name),
        }
        if not row["note"]:
            if not categorical:
                rho, p = spearmanr(values.astype(float), ok["objective"].astype(float))
                row.update(spearman_rho=float(rho), spearman_p=float(p))
            row.update(permutation_importance=forest[name][0], permutation_std=forest[name][1])
        rows.append(row)
    table = pd.DataFrame(rows, columns=IMPORTANCE_COLUMNS)
    table = table.sort_values(
        "permutation_importance", ascending=False, na_position="last", kind="stable"
    )
    return table.reset_index(drop=True)


def shortfall(ok: pd.DataFrame, name: str) -> str:
    """Why no statistic can be computed for `name` (empty when one can)."""
    if len(ok) < MIN_TRIALS:
        return f"only {len(ok)} finished trial(s); importance needs at least {MIN_TRIALS}"
    if ok["objective"].nunique() < 2:
        return "the objective is the same in every finished trial"
    if ok[name].nunique() < 2:
        return "the same value in every finished trial"
    return ""


def level_means(values: pd.Series, objective: pd.Series) -> str:
    """`level=mean (n)` per level, e.g. `gelu=0.6120 (3); relu=0.5810 (4)`."""
    stats = objective.groupby(values.astype(str)).agg(["mean", "count"])
    return "; ".join(
        f"{level}={row['mean']:.4f} ({int(row['count'])})" for level, row in stats.iterrows()
    )


def forest_importance(
    ok: pd.DataFrame, hyperparameters: list[str]
) -> dict[str, tuple[float, float]]:
    """Permutation importance (mean, std over repeats) of each column for a forest fitted to every
    finished trial.

    In-sample on purpose: there are too few trials to hold any out, so this says what the forest
    relies on to explain the trials, not how well it would predict new ones.
    """
    if len(ok) < MIN_TRIALS or ok["objective"].nunique() < 2:
        return {name: (math.nan, math.nan) for name in hyperparameters}
    features = pd.DataFrame({name: encode(ok[name]) for name in hyperparameters})
    target = ok["objective"].to_numpy(float)
    forest = RandomForestRegressor(n_estimators=100, random_state=0).fit(features, target)
    result = permutation_importance(forest, features, target, n_repeats=10, random_state=0)
    return {
        name: (float(mean), float(std))
        for name, mean, std in zip(hyperparameters, result.importances_mean, result.importances_std)
    }


def encode(values: pd.Series) -> np.ndarray:
    """Numbers as they are, categories as level codes (a tree splits them either way)."""
    if is_categorical(values):
        return pd.Categorical(values.astype(str)).codes.astype(float)
    return values.to_numpy(float)


def write_tables(out: Path, trials: pd.DataFrame, importance: pd.DataFrame, title: str) -> None:
    """trials.csv/.md and importance.csv, each replaced atomically."""
    write_csv_atomic(out / "trials.csv", trials)
    write_csv_atomic(out / "importance.csv", importance)
    shown = trials.astype(object).where(trials.notna(), "")
    table = tabulate(
        shown.values.tolist(), headers=list(trials.columns), tablefmt="github", floatfmt=".4g"
    )
    write_text_atomic(out / "trials.md", f"# {title}\n\n{table}\n")


def write_plots(
    plots: Path,
    trials: pd.DataFrame,
    importance: pd.DataFrame,
    hyperparameters: list[str],
    log_scale: set[str],
    objective_label: str,
    direction: str,
) -> list[Path]:
    """The three figures, drawn from the finished trials only."""
    ok = finished_trials(trials)
    return [
        importance_plot(importance, plots / "importance.png"),
        objective_plot(
            ok,
            hyperparameters,
            log_scale,
            objective_label,
            plots / "objective_vs_hyperparameters.png",
        ),
        parallel_coordinates(
            ok,
            hyperparameters,
            log_scale,
            objective_label,
            direction,
            plots / "parallel_coordinates.png",
        ),
    ]


def importance_plot(importance: pd.DataFrame, path: Path) -> Path:
    """Permutation importance per hyperparameter with its spread over repeats (most important on
    top).
    """
    shown = importance[importance["permutation_importance"].notna()].iloc[::-1]
    fig, ax = plt.subplots(figsize=(8, 0.45 * max(len(importance), 4) + 1))
    if shown.empty:
        ax.text(
            0.5,
            0.5,
            importance["note"].iloc[0] if len(importance) else "no hyperparameters",
            ha="center",
            va="center",
            transform=ax.transAxes,
        )
        ax.set_axis_off()
    else:
        ax.barh(
            shown["hyperparameter"],
            shown["permutation_importance"],
            xerr=shown["permutation_std"],
            color="#1565c0",
            capsize=3,
        )
        ax.axvline(0, color="black", linewidth=0.8)
        ax.set_xlabel("permutation importance (drop in random-forest R^2 when shuffled)")
        ax.grid(axis="x", alpha=0.3)
    ax.set_title("Hyperparameter importance over the finished trials")
    return save_figure(fig, path)


def objective_plot(
    ok: pd.DataFrame,
    hyperparameters: list[str],
    log_scale: set[str],
    objective_label: str,
    path: Path,
) -> Path:
    """One panel per hyperparameter: each finished trial's objective against its value (the best as
    a star).
    """
    columns = min(4, max(len(hyperparameters), 1))
    rows = math.ceil(max(len(hyperparameters), 1) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(3.6 * columns, 3.0 * rows), squeeze=False)
    for ax, name in zip(axes.ravel(), hyperparameters):
        x, labels = axis_positions(ok[name], jitter=True)
        ax.scatter(x, ok["objective"], s=22, alpha=0.8, color="#1565c0")
        ax.scatter(
            x[:1], ok["objective"].iloc[:1], marker="*", s=160, color="#c62828", zorder=3
        )  # ranked: best first
        if labels:
            ax.set_xticks(range(len(labels)))
            ax.set_xticklabels(labels, rotation=30, fontsize=8)
        elif name in log_scale and len(x):
            log_ticks(ax, x)
        ax.set_title(name, fontsize=9)
        ax.grid(alpha=0.3)
    for ax in axes.ravel()[len(hyperparameters) :]:
        ax.set_axis_off()
    for ax in axes[:, 0]:
        ax.set_ylabel(objective_label)
    fig.suptitle(f"{objective_label} against each hyperparameter (star: best trial)")
    fig.tight_layout()
    return save_figure(fig, path)


def log_ticks(ax, x: np.ndarray) -> None:
    """A log axis with three plain labels: a learning-rate range spans less than a decade of default
    ticks.
    """
    ax.set_xscale("log")
    ticks = np.geomspace(np.nanmin(x), np.nanmax(x), 3)
    ax.set_xticks(ticks)
    ax.set_xticklabels([f"{t:.2g}" for t in ticks], fontsize=8)
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())


def axis_positions(values: pd.Series, jitter: bool = False) -> tuple[np.ndarray, list[str]]:
    """x positions of a column: numbers as they are; categories as level indices (jittered apart)
    with their labels.
    """
    if not is_categorical(values):
        return values.to_numpy(float), []
    levels = sorted(values.astype(str).unique())
    x = values.astype(str).map(levels.index).to_numpy(float)
    if jitter:
        x = x + np.random.default_rng(0).uniform(-0.12, 0.12, len(x))
    return x, levels


def parallel_coordinates(
    ok: pd.DataFrame,
    hyperparameters: list[str],
    log_scale: set[str],
    objective_label: str,
    direction: str,
    path: Path,
) -> Path:
    """Each finished trial as a line across one vertical axis per hyperparameter and the objective.

    Every axis is scaled to [0, 1] between the values the trials took (log-sampled ones in log
    space); lines are coloured by the objective, better in yellow, so good regions stand out.
    """
    columns = [*hyperparameters, "objective"]
    fig, ax = plt.subplots(figsize=(max(1.3 * len(columns), 6), 5))
    scaled, ticks = {}, {}
    for name in columns:
        scaled[name], ticks[name] = unit_scale(ok[name], name in log_scale)
    score = ok["objective"].to_numpy(float)
    colour = (score - np.nanmin(score)) / (np.ptp(score) or 1.0) if len(score) else score
    if direction == "min":
        colour = 1 - colour
    cmap = plt.get_cmap("viridis")
    for i in np.argsort(colour):  # best drawn last, on top
        ax.plot(
            range(len(columns)),
            [scaled[name][i] for name in columns],
            color=cmap(colour[i]),
            alpha=0.8,
            linewidth=2.5 if i == 0 else 1.2,
        )
    for position, name in enumerate(columns):
        ax.axvline(position, color="black", linewidth=0.8)
        for value, label in ticks[name]:
            ax.annotate(
                label,
                (position, value),
                xytext=(3, 0),
                textcoords="offset points",
                fontsize=7,
                va="center",
            )
    ax.set_xticks(range(len(columns)))
    ax.set_xticklabels([*hyperparameters, objective_label], rotation=30, ha="right", fontsize=8)
    ax.set_yticks([])
    ax.set_xlim(-0.2, len(columns) - 0.5)
    ax.set_title(
        f"Finished trials across the search space (colour: {objective_label}, yellow best)"
    )
    return save_figure(fig, path)


def unit_scale(values: pd.Series, log: bool) -> tuple[np.ndarray, list[tuple[float, str]]]:
    """A column mapped onto [0, 1] (a constant one onto 0.5) and the tick labels that place its
    values.
    """
    if is_categorical(values):
        levels = sorted(values.astype(str).unique())
        span = max(len(levels) - 1, 1)
        positions = values.astype(str).map(levels.index).to_numpy(float) / span
        return positions, [(i / span, level) for i, level in enumerate(levels)]
    raw = values.to_numpy(float)
    numbers = np.log10(raw) if log else raw
    if not len(raw):
        return numbers, []
    low, high = float(np.nanmin(numbers)), float(np.nanmax(numbers))
    if high == low:
        return np.full(len(raw), 0.5), [(0.5, f"{np.nanmin(raw):.3g}")]
    return (numbers - low) / (high - low), [
        (0.0, f"{np.nanmin(raw):.3g}"),
        (1.0, f"{np.nanmax(raw):.3g}"),
    ]
