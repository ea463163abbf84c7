"""Corruption robustness in the tables and the report, from `robustness.csv` alone.

Two leaderboard columns per model x alpha, means over its scored seeds: `corrupt_accuracy`, the
mean accuracy over the (corruption, severity 1..5) points, each point weighing the same whatever
its `n`, and `relative_robustness`, that over the same images' clean accuracy (1.0: corruptions
cost nothing). After `robustness RUN --adapt-bn`, `bn_clean_accuracy` and `bn_corrupt_accuracy`
are the clean and mean corrupted accuracy with each image set scored by the model adapted to it
(`robustness_bn.csv`); after `robustness RUN --tta N`, `tta_clean_accuracy` and
`tta_corrupt_accuracy` the same with the softmax averaged over N test-time views
(`robustness_tta.csv`); blank otherwise. The report adds accuracy against severity per model
(mean over corruptions) and one panel per corruption.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
from tabulate import tabulate

from benchmark.figures import plt, save_figure
from benchmark.run.records import NOT_RANKED
from benchmark.run.robustness import BN_ADAPTED, CLEAN, PLAIN, TTA, collect

ROBUSTNESS_BOARD_COLUMNS = ("corrupt_accuracy", "relative_robustness")
# (clean, mean corrupted) accuracy of each remedy scored on top of a saved model.
VARIANT_BOARD_COLUMNS = {
    BN_ADAPTED: ("bn_clean_accuracy", "bn_corrupt_accuracy"),
    TTA: ("tta_clean_accuracy", "tta_corrupt_accuracy"),
}
REMEDY_NOTES = {  # the report's line for each variant's columns
    BN_ADAPTED: "the same images with the model's BatchNorm statistics shifted to each set, "
    "each corruption one severity at a time (`robustness RUN --adapt-bn`, `robustness_bn.csv`)",
    TTA: "the same images with the softmax averaged over test-time views (`robustness RUN "
    "--tta N`, `robustness_tta.csv`; the count in `robustness/tta/VIEWS`)",
}


def column_family(columns: tuple[str, ...]) -> str:
    """The shared prefix of a variant's columns as the report names them: `bn_*`, `tta_*`."""
    return columns[0].split("_")[0] + "_*"


def robustness_frame(run_dir: Path, variant: str = PLAIN) -> pd.DataFrame:
    """Every scored cell's rows of one variant (`robustness.csv`, `robustness_bn.csv`, ...)
    rebuilt from the per-cell files (so a part a parallel task wrote meanwhile is not missed);
    empty with its columns when none exist."""
    return collect(run_dir, variant)


def variant_frames(run_dir: Path) -> dict[str, pd.DataFrame]:
    """Each remedy variant's rows, by variant."""
    return {variant: robustness_frame(run_dir, variant) for variant in VARIANT_BOARD_COLUMNS}


def per_cell(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per cell: model, alpha, clean accuracy, mean corrupted accuracy, their ratio."""
    rows = []
    for cell_id, part in frame.groupby("cell_id", sort=False):
        clean = part.loc[part["corruption"] == CLEAN, "accuracy"]
        corrupted = part.loc[part["corruption"] != CLEAN, "accuracy"].mean()
        clean = float(clean.iloc[0]) if len(clean) else math.nan
        rows.append(
            {
                "cell_id": cell_id,
                "model": part["model"].iloc[0],
                "alpha": float(part["alpha"].iloc[0]),
                "clean_accuracy": clean,
                "corrupt_accuracy": corrupted,
                "relative_robustness": corrupted / clean if clean > 0 else math.nan,
            }
        )
    return pd.DataFrame(
        rows, columns=["cell_id", "model", "alpha", "clean_accuracy", *ROBUSTNESS_BOARD_COLUMNS]
    )


def with_robustness_columns(
    board: pd.DataFrame, frame: pd.DataFrame, variants: dict[str, pd.DataFrame] | None = None
) -> pd.DataFrame:
    """The leaderboard with the plain columns and each remedy variant's filled from `variants`
    (blank for rows never scored), after `worst_class_f1`."""
    variants = variants or {}
    every = [*ROBUSTNESS_BOARD_COLUMNS]
    every += [c for columns in VARIANT_BOARD_COLUMNS.values() for c in columns]
    board = board.drop(columns=[c for c in every if c in board.columns])
    order = list(board.columns)
    at = order.index("worst_class_f1") + 1 if "worst_class_f1" in order else len(order)
    scored = [(per_cell(frame), ROBUSTNESS_BOARD_COLUMNS)]
    for variant, (clean, corrupted) in VARIANT_BOARD_COLUMNS.items():
        cells = per_cell(variants.get(variant, frame.iloc[:0]))
        renamed = {"clean_accuracy": clean, "corrupt_accuracy": corrupted}
        scored.append((cells.rename(columns=renamed), (clean, corrupted)))
    for cells, columns in scored:
        if cells.empty:
            board = board.assign(**{c: np.nan for c in columns})
        else:
            means = cells.groupby(["model", "alpha"], as_index=False)[list(columns)].mean()
            board = board.merge(means, on=["model", "alpha"], how="left")
    return board[order[:at] + every + order[at:]]


def severity_curves(frame: pd.DataFrame, cells: list[str] | None = None) -> pd.DataFrame:
    """Accuracy per model x corruption x severity (severity 0: clean), mean over `cells`."""
    if cells is not None:
        frame = frame[frame["cell_id"].isin(cells)]
    return frame.groupby(["model", "corruption", "severity"], as_index=False, sort=False)[
        "accuracy"
    ].mean()


def plot_severity(curves: pd.DataFrame, path: Path) -> Path | None:
    """Accuracy against severity, one line per model: the mean over corruptions (0 = clean)."""
    if curves.empty:
        return None
    clean = curves[curves["corruption"] == CLEAN].set_index("model")["accuracy"]
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for model, part in curves[curves["corruption"] != CLEAN].groupby("model", sort=False):
        mean = part.groupby("severity")["accuracy"].mean()
        xs = [0, *mean.index] if model in clean.index else list(mean.index)
        ys = [clean[model], *mean.values] if model in clean.index else list(mean.values)
        ax.plot(xs, ys, marker="o", label=model)
    ax.set(
        xlabel="severity (0 = clean)",
        ylabel="test accuracy (mean over corruptions)",
        ylim=(0, 1.02),
    )
    ax.set_xticks(range(6))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return save_figure(fig, path)


def plot_per_corruption(curves: pd.DataFrame, path: Path) -> Path | None:
    """One small panel per corruption, accuracy against severity, one line per model."""
    corrupted = curves[curves["corruption"] != CLEAN]
    if corrupted.empty:
        return None
    names = list(dict.fromkeys(corrupted["corruption"]))
    columns = 3
    rows = math.ceil(len(names) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(10, 2.6 * rows), sharex=True, sharey=True)
    clean = curves[curves["corruption"] == CLEAN].set_index("model")["accuracy"]
    for ax, name in zip(np.ravel(axes), names):
        for model, part in corrupted[corrupted["corruption"] == name].groupby("model", sort=False):
            part = part.sort_values("severity")
            start = [clean[model]] if model in clean.index else []
            xs = ([0] if start else []) + list(part["severity"])
            ax.plot(xs, start + list(part["accuracy"]), marker=".", label=model)
        ax.set_title(name.replace("_", " "), fontsize=9)
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
    for ax in np.ravel(axes)[len(names) :]:
        ax.axis("off")
    np.ravel(axes)[0].legend(fontsize=7)
    fig.supxlabel("severity (0 = clean)")
    fig.supylabel("test accuracy")
    return save_figure(fig, path)


def robustness_section(run_dir: Path, board: pd.DataFrame, best: pd.DataFrame | None, figure):
    """The report's markdown: a table of each model's best alpha, and the two figures (drawn by
    the report's `figure(draw, name, *args)`); empty when nothing was scored."""
    frame = robustness_frame(run_dir)
    if frame.empty:
        return ""
    cells = per_cell(frame)
    if best is not None and not best.empty:
        keys = set(zip(best["model"], best["alpha"].astype(float)))
        chosen = cells[[k in keys for k in zip(cells["model"], cells["alpha"])]]
        cells = chosen if not chosen.empty else cells
    curves = severity_curves(frame, list(cells["cell_id"]))
    ok = board[~board["status"].isin(NOT_RANKED)] if "status" in board.columns else board
    shown = [
        variant
        for variant, columns in VARIANT_BOARD_COLUMNS.items()
        if all(c in ok.columns and ok[c].notna().any() for c in columns)
    ]
    extra = [c for variant in shown for c in VARIANT_BOARD_COLUMNS[variant]]
    columns = ["model", "alpha", *ROBUSTNESS_BOARD_COLUMNS, *extra]
    table = ok[ok["model"].isin(cells["model"])][columns]
    table = table.dropna(subset=["corrupt_accuracy"]).drop_duplicates("model")
    rows = [[model, f"{alpha:g}", *rest] for model, alpha, *rest in table.itertuples(index=False)]
    notes = "".join(
        f" `{column_family(VARIANT_BOARD_COLUMNS[variant])}`: {REMEDY_NOTES[variant]}."
        for variant in shown
    )
    n = int(frame["n"].max())
    return "\n".join(
        [
            "## Corruption robustness\n",
            f"Each model (at its best alpha) on up to {n} of its test images, clean and under "
            f"{frame.loc[frame['corruption'] != CLEAN, 'corruption'].nunique()} common "
            "corruptions, each image at one severity (1-5) per corruption, rotated so each "
            "point has about a fifth of the images (`robustness.csv`, its `n`; see "
            "docs/shift-robustness.md). `corrupt_accuracy` is the mean over those points, "
            "`relative_robustness` that over the clean accuracy of the same images."
            f"{notes}\n",
            tabulate(rows, headers=list(table.columns), tablefmt="github", floatfmt=".4f") + "\n",
            figure(plot_severity, "robustness_severity", curves, alt="accuracy vs severity"),
            figure(plot_per_corruption, "robustness_corruptions", curves, alt="per corruption"),
        ]
    )
