"""`adaptation.csv` and `adaptation.png`: one row per model, alpha and k, from each k's run folder.

The target figures are computed here from the cells' saved predictions, restricted to the fixed
target test set (every k scores the same images), pooled over seeds like the leaderboard's; the
interval is the leaderboard's seeded bootstrap, stratified by class.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from benchmark.figures import plt, save_figure
from benchmark.results import stats
from benchmark.run.records import CellRecord, load_predictions, load_records


@dataclass
class AdaptRow:
    """One point of the curve: a model x alpha trained with `shots` target photos per class."""

    model: str
    alpha: float
    shots: int
    target_test_accuracy: float | None  # on the fixed target test set, pooled over seeds
    target_ci_low: float | None
    target_ci_high: float | None
    source_test_accuracy: float | None  # on the trained sources' own test images
    val_accuracy: float | None  # mean over seeds; the source's validation images only
    n_target_test: int  # images of the fixed target test set (per seed)
    curve: str = "finetune"  # "finetune": the grid trained per k; "probe": a head on features
    target_weighting: str = ""  # how a labelled target photo was weighed (probe_curve)
    probe_C: float | None = None  # the probe head's C, chosen on source validation at k = 0
    in_domain_accuracy: float | None = None  # a head fitted on the target's training pool only
    k0_target_accuracy: float | None = None  # this model and alpha's k = 0 figure
    gap_recovered: float | None = None  # (this k - k0) / (in-domain - k0)
    feature_alignment: str = ""  # probe: "none" or "standardise" (per-domain statistics)


COLUMNS = [f.name for f in dataclasses.fields(AdaptRow)]


def _pooled_test(run_dir: Path, ok: list[CellRecord]) -> pd.DataFrame | None:
    parts = []
    for record in ok:
        frame = load_predictions(run_dir, record)
        if frame is None:
            return None
        parts.append(frame[frame["split"] == "test"])
    return pd.concat(parts, ignore_index=True) if parts else None


def _accuracy(frame: pd.DataFrame) -> float | None:
    return float((frame["true"] == frame["pred"]).mean()) if len(frame) else None


def shot_rows(run_dir: Path, shots: int, target_paths: set[str], copies: int = 1) -> list[AdaptRow]:
    """The rows of one k's run folder: a row per model x alpha with a finished cell (`copies`: the
    run's `--target-weight`)."""
    records = [r for r in load_records(run_dir) if r.ok]
    rows = []
    for model, alpha in dict.fromkeys((r.model, r.alpha) for r in records):
        ok = [r for r in records if r.model == model and r.alpha == alpha]
        test = _pooled_test(run_dir, ok)
        if test is None:
            continue
        on_target = test["path"].isin(target_paths).to_numpy()
        target, source = test[on_target], test[~on_target]
        low = high = None
        if len(target):
            low, high = stats.bootstrap_ci(
                target["true"].to_numpy(),
                target["pred"].to_numpy(),
                seed=int(ok[0].seed),
                num_classes=len(ok[0].class_names),
            )
        val = [r.split_metrics("val").get("accuracy") for r in ok]
        val = [v for v in val if v is not None]
        rows.append(
            AdaptRow(
                model,
                float(alpha),
                shots,
                _accuracy(target),
                low,
                high,
                _accuracy(source),
                float(np.mean(val)) if val else None,
                len(target_paths),
                target_weighting=f"copies {copies}",
            )
        )
    return rows


def adaptation_table(rows: list[AdaptRow]) -> pd.DataFrame:
    """The rows sorted, with each model and alpha's k = 0 figure and, where an in-domain figure
    exists, the share of the gap between them that k labelled photos recovered."""
    frame = pd.DataFrame([dataclasses.asdict(r) for r in rows], columns=COLUMNS)
    frame = frame.sort_values(["model", "alpha", "shots"], kind="stable").reset_index(drop=True)
    accuracy = frame["target_test_accuracy"].astype(float)
    at_zero = accuracy.where(frame["shots"] == 0)
    frame["k0_target_accuracy"] = at_zero.groupby([frame["model"], frame["alpha"]]).transform("max")
    gap = frame["in_domain_accuracy"].astype(float) - frame["k0_target_accuracy"]
    recovered = (accuracy - frame["k0_target_accuracy"]) / gap
    frame["gap_recovered"] = recovered.where(gap > 1e-12)  # no gap (in-domain <= k0): blank
    return frame


def adaptation_plot(frame: pd.DataFrame, path: Path, target: str) -> Path:
    """Target test accuracy against k, one line per model (and alpha when several), with the
    bootstrap intervals as error bars."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    several_alphas = frame["alpha"].nunique() > 1
    for (model, alpha), group in frame.groupby(["model", "alpha"], sort=True):
        group = group.dropna(subset=["target_test_accuracy"]).sort_values("shots")
        if group.empty:
            continue
        y = group["target_test_accuracy"].to_numpy(dtype=float)
        errors = np.vstack(
            [
                y - group["target_ci_low"].fillna(pd.Series(y, index=group.index)).to_numpy(float),
                group["target_ci_high"].fillna(pd.Series(y, index=group.index)).to_numpy(float) - y,
            ]
        ).clip(min=0)
        label = f"{model} (alpha {alpha:g})" if several_alphas else model
        line = ax.errorbar(group["shots"], y, yerr=errors, marker="o", capsize=3, label=label)
        reference = group["in_domain_accuracy"].dropna()
        if len(reference):
            ax.axhline(
                float(reference.iloc[0]),
                linestyle="--",
                linewidth=1,
                color=line[0].get_color(),
                label=f"{label}: in-domain (target pool only)",
            )
    ax.set_xlabel("labelled target photos per class (k)")
    ax.set_ylabel(f"test accuracy on {target}")
    ax.set_ylim(0, 1.02)
    ax.set_xticks(sorted(frame["shots"].unique()))
    n = int(frame["n_target_test"].iloc[0]) if len(frame) else 0
    ax.set_title(f"Adaptation curve: the same {n} {target} test photos at every k")
    ax.grid(alpha=0.3)
    if len(frame):
        ax.legend(fontsize=8)
    return save_figure(fig, path)
