"""Figures for the run report, drawn with matplotlib's Agg backend from plain data.

Every function takes tables, lists or arrays (never a run folder) and an output path, writes
one PNG at 110 dpi, closes the figure (a 35-cell sweep draws dozens) and returns the path.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import matplotlib.ticker
import numpy as np
import pandas as pd

from benchmark.figures import RIGHT, WRONG, plt, save_figure
from benchmark.run.records import NOT_RANKED


def safe_name(text: str) -> str:
    """A file-name stem: letters, digits, dots, dashes and underscores kept (cell ids keep their
    dots)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", str(text)).strip("._") or "plot"


def parse_ci(value) -> tuple[float, float] | None:
    """(low, high) from a leaderboard interval cell "0.8123-0.8790"; None when blank or
    malformed."""
    match = re.fullmatch(
        r"\s*([0-9.]+(?:[eE][-+]?\d+)?)\s*-\s*([0-9.]+(?:[eE][-+]?\d+)?)\s*", str(value)
    )
    return (float(match.group(1)), float(match.group(2))) if match else None


def _colors(n: int) -> list:
    cmap = plt.get_cmap("tab10" if n <= 10 else "tab20")
    return [cmap(i % cmap.N) for i in range(n)]


MARKERS = "osD^vP*Xhp<>"


def _errors(frame: pd.DataFrame, value_col: str, ci_col: str) -> np.ndarray | None:
    """Asymmetric error bars (2, n) from a CI column; None when no row has an interval."""
    if ci_col not in frame.columns:
        return None
    bounds = [parse_ci(v) for v in frame[ci_col]]
    if not any(bounds):
        return None
    values = frame[value_col].to_numpy(float)
    low = [v - b[0] if b else 0.0 for v, b in zip(values, bounds)]
    high = [b[1] - v if b else 0.0 for v, b in zip(values, bounds)]
    return np.clip(np.array([low, high]), 0.0, None)


def _ok_rows(board: pd.DataFrame) -> pd.DataFrame:
    ok = board[~board["status"].isin(NOT_RANKED)] if "status" in board.columns else board
    return ok[ok["test_accuracy"].notna()] if "test_accuracy" in ok.columns else ok


def alpha_sweep(board: pd.DataFrame, path: Path, title: str = "Alpha sweep") -> Path:
    """Validation/test accuracy and macro-F1 against alpha: four panels, one line per model.

    Error bars are the leaderboard's 95 % bootstrap intervals where it has them; each model is
    nudged sideways a little so overlapping intervals stay readable.
    """
    ok = _ok_rows(board).sort_values("alpha")
    models = list(dict.fromkeys(ok["model"]))
    panels = [
        ("val_accuracy", "val_accuracy_ci", "Validation accuracy"),
        ("val_macro_f1", None, "Validation macro-F1"),
        ("test_accuracy", "test_accuracy_ci", "Test accuracy"),
        ("test_macro_f1", "test_macro_f1_ci", "Test macro-F1"),
    ]
    alphas = sorted(ok["alpha"].unique())
    span = (max(alphas) - min(alphas)) if len(alphas) > 1 else 1.0
    dodge = 0.012 * span
    fig, axes = plt.subplots(2, 2, figsize=(12, 8.5), sharex=True)
    for ax, (column, ci_column, label) in zip(axes.ravel(), panels):
        for i, (model, color) in enumerate(zip(models, _colors(len(models)))):
            rows = ok[ok["model"] == model]
            if column not in rows.columns or rows[column].isna().all():
                continue
            x = rows["alpha"].to_numpy(float) + (i - (len(models) - 1) / 2) * dodge
            ax.errorbar(
                x,
                rows[column].to_numpy(float),
                yerr=_errors(rows, column, ci_column) if ci_column else None,
                color=color,
                marker=MARKERS[i % len(MARKERS)],
                markersize=5,
                capsize=3,
                linewidth=1.5,
                label=model,
            )
        ax.set_title(label + (" (95 % CI)" if ci_column and ci_column in ok.columns else ""))
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.set_xticks(alphas)
        ax.set_xticklabels([f"{a:g}" for a in alphas])
    for ax in axes[1]:
        ax.set_xlabel("class-weight damping alpha (0 = unweighted, 1 = fully balanced)")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(
        handles,
        labels,
        loc="upper center",
        bbox_to_anchor=(0.5, 0.0),
        ncol=min(4, max(1, len(labels))),
        frameon=False,
        title="model",
    )
    fig.suptitle(title, fontsize=14)
    fig.tight_layout()
    return save_figure(fig, path)


def worst_class_sweep(
    board: pd.DataFrame, path: Path, title: str = "Worst class F1 against alpha"
) -> Path:
    """Test F1 of each row's worst class against alpha, one line per model, points named by
    class."""
    ok = _ok_rows(board).sort_values("alpha")
    ok = ok[ok["worst_class_f1"].notna()] if "worst_class_f1" in ok.columns else ok.iloc[0:0]
    models = list(dict.fromkeys(ok["model"]))
    alphas = sorted(ok["alpha"].unique())
    single = ok["worst_class"].nunique() == 1 if "worst_class" in ok.columns else True
    if single and len(ok):
        title += f" (worst class everywhere: {ok['worst_class'].iloc[0]})"
    fig, ax = plt.subplots(figsize=(10, 5.5))
    for i, (model, color) in enumerate(zip(models, _colors(len(models)))):
        rows = ok[ok["model"] == model]
        ax.plot(
            rows["alpha"],
            rows["worst_class_f1"],
            color=color,
            marker=MARKERS[i % len(MARKERS)],
            label=model,
        )
        if not single:  # name the worst class where it first appears and wherever it changes
            previous = None
            for alpha, f1, name in zip(rows["alpha"], rows["worst_class_f1"], rows["worst_class"]):
                if name != previous:
                    ax.annotate(
                        str(name),
                        (alpha, f1),
                        xytext=(4, 4),
                        textcoords="offset points",
                        fontsize=8,
                        color=color,
                    )
                previous = name
    ax.set_xticks(alphas)
    ax.set_xticklabels([f"{a:g}" for a in alphas])
    ax.set_xlabel("class-weight damping alpha")
    ax.set_ylabel("test F1 of the worst class")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False, title="model")
    return save_figure(fig, path)


def leaderboard_dots(
    board: pd.DataFrame, path: Path, top: int = 20, title: str = "Leaderboard"
) -> Path:
    """Test accuracy with its 95 % interval per leaderboard row (rank 1 at the top)."""
    ok = _ok_rows(board).head(top).reset_index(drop=True)
    labels = [f"{int(r['rank'])}. {r['model']} (alpha {r['alpha']:g})" for _, r in ok.iterrows()]
    y = np.arange(len(ok))[::-1]
    tied = (
        ok["tied_with_best"].fillna(False).astype(bool).to_numpy()
        if "tied_with_best" in ok.columns
        else np.zeros(len(ok), bool)
    )
    errors = _errors(ok, "test_accuracy", "test_accuracy_ci")
    fig, ax = plt.subplots(figsize=(10, 1.2 + 0.38 * max(len(ok), 1)))
    for mask, color, label in (
        (tied, "#1565c0", "not significantly worse than rank 1"),
        (~tied, "#9e9e9e", "worse than rank 1"),
    ):
        if mask.any():
            ax.errorbar(
                ok["test_accuracy"].to_numpy(float)[mask],
                y[mask],
                xerr=errors[:, mask] if errors is not None else None,
                fmt="o",
                color=color,
                capsize=3,
                label=label,
            )
    ax.set_yticks(y)
    ax.set_yticklabels(labels)
    ax.set_xlabel("test accuracy (95 % bootstrap CI); rows ranked by validation accuracy")
    ax.set_title(title)
    ax.grid(axis="x", alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, fontsize=9)
    return save_figure(fig, path)


def pareto_front(cost: np.ndarray, score: np.ndarray) -> np.ndarray:
    """Indices of points no other point beats on both lower cost and higher score, by cost."""
    order = np.lexsort((-score, cost))
    front, best = [], -np.inf
    for i in order:
        if score[i] > best:
            front.append(i)
            best = score[i]
    return np.array(front, dtype=int)


def _minor_label(value: float, _position) -> str:
    """Labels the 2 and 5 minor ticks of a log axis, so short ranges still read."""
    if value <= 0:
        return ""
    leading = round(value / 10 ** math.floor(math.log10(value)))
    return f"{value:g}" if leading in (2, 5) else ""


def accuracy_vs_cost(frame: pd.DataFrame, cost_column: str, path: Path, title: str = "") -> Path:
    """Test accuracy against an inference cost on a log x axis, points labelled, Pareto front
    joined."""
    rows = frame[frame[cost_column].notna() & frame["test_accuracy"].notna()].reset_index(drop=True)
    cost = rows[cost_column].to_numpy(float)
    score = rows["test_accuracy"].to_numpy(float)
    front = pareto_front(cost, score)
    fig, ax = plt.subplots(figsize=(10, 6))
    ax.scatter(cost, score, color="#607d8b", zorder=2, label="model (best alpha)")
    ax.plot(
        cost[front],
        score[front],
        color="#d84315",
        marker="o",
        linewidth=2,
        zorder=3,
        label="Pareto front",
    )
    middle = np.sqrt(cost.min() * cost.max()) if len(cost) else 1.0
    labels: dict[tuple, list[str]] = {}  # points drawn on top of each other share one label
    for c, s, r in zip(cost, score, rows.itertuples()):
        labels.setdefault((float(f"{c:.3g}"), round(s, 4)), []).append(
            f"{r.model} (alpha {r.alpha:g})"
        )
    for (c, s), names in labels.items():
        right = c <= middle  # labels point inwards so they stay inside the axes
        ax.annotate(
            "\n".join(names),
            (c, s),
            xytext=(6 if right else -6, 4),
            textcoords="offset points",
            fontsize=8,
            ha="left" if right else "right",
            va="bottom" if len(names) == 1 else "center",
        )
    ax.set_xscale("log")
    ax.margins(x=0.08, y=0.08)
    ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    short = len(cost) and cost.max() / cost.min() < 10  # less than a decade: label every minor tick
    ax.xaxis.set_minor_formatter(
        matplotlib.ticker.FuncFormatter(lambda v, p: f"{v:g}" if short else _minor_label(v, p))
    )
    unit = {"infer_ms_b1": "inference latency, batch 1 (ms)", "gflops": "GFLOPs per image"}.get(
        cost_column, cost_column
    )
    ax.set_xlabel(f"{unit} (log scale)")
    ax.set_ylabel("test accuracy")
    ax.set_title(title or f"Test accuracy against {unit}")
    ax.grid(alpha=0.3, which="both")
    ax.legend(loc="best")
    return save_figure(fig, path)


def training_curves(history: dict, path: Path, title: str) -> Path:
    """Loss and accuracy per epoch, train (solid) and validation (dashed), phase 2 start marked."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    boundary = history.get("phase_boundary")
    for ax, key, label in ((axes[0], "loss", "loss"), (axes[1], "accuracy", "accuracy")):
        for prefix, style, name in (("", "-", "train"), ("val_", "--", "validation")):
            values = history.get(prefix + key) or []
            if values:
                ax.plot(
                    range(1, len(values) + 1), values, style, marker="o", markersize=3, label=name
                )
        longest = max(len(history.get(key) or []), len(history.get("val_" + key) or []))
        if boundary is not None and 0 < boundary < longest:
            ax.axvline(boundary + 0.5, color="#616161", linestyle=":", label="fine-tuning starts")
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.set_title(label)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
        ax.xaxis.get_major_locator().set_params(integer=True)
    fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, path)


def confusion_matrices(matrix, class_names: list[str], path: Path, title: str) -> Path:
    """Counts and row-normalised (recall per true class) confusion matrices side by side."""
    counts = np.asarray(matrix, dtype=float)
    totals = counts.sum(axis=1, keepdims=True)
    normalised = np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)
    k = len(class_names)
    side = max(4.5, 0.75 * k + 1.5)
    rotate = 45 if max((len(c) for c in class_names), default=0) > 5 else 0
    fig, axes = plt.subplots(1, 2, figsize=(2 * side + 1.5, side + 0.6))
    for ax, data, label, fmt in (
        (axes[0], counts, "counts", "{:.0f}"),
        (axes[1], normalised, "row-normalised", "{:.2f}"),
    ):
        image = ax.imshow(
            data, cmap="Blues", vmin=0, vmax=max(data.max(), 1e-9) if label == "counts" else 1.0
        )
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
        threshold = (data.max() if label == "counts" else 1.0) / 2
        for (i, j), value in np.ndenumerate(data):
            ax.text(
                j,
                i,
                fmt.format(value),
                ha="center",
                va="center",
                fontsize=9 if k <= 10 else 7,
                color="white" if value > threshold else "black",
            )
        ax.set_xticks(range(k))
        ax.set_yticks(range(k))
        ax.set_xticklabels(class_names, rotation=rotate, ha="right" if rotate else "center")
        ax.set_yticklabels(class_names)
        ax.set_xlabel("predicted class")
        ax.set_ylabel("true class")
        ax.set_title(label)
    fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, path)


def _load_thumbnail(path: str, size: int = 160):
    from PIL import Image

    try:
        with Image.open(path) as image:
            image = image.convert("RGB")
            image.thumbnail((size, size))
            return np.asarray(image)
    except (OSError, ValueError):
        return None


def prediction_grid(
    items: list[dict], path: Path, title: str, limit: int = 24, columns: int = 6
) -> Path | None:
    """Images with true and predicted labels; wrong ones get a red title and border.

    `items` are dicts with `path`, `true`, `pred` (class names) and optionally `confidence`,
    already in display order. Unreadable files are skipped; returns None when none is readable.
    """
    shown = []
    for item in items:
        if len(shown) == limit:
            break
        pixels = _load_thumbnail(item["path"])
        if pixels is not None:
            shown.append((item, pixels))
    if not shown:
        return None
    columns = min(columns, len(shown))
    rows = math.ceil(len(shown) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(2.3 * columns, 2.7 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, (item, pixels) in zip(axes.ravel(), shown):
        wrong = item["true"] != item["pred"]
        ax.axis("on")
        ax.imshow(pixels)
        ax.set_xticks([])
        ax.set_yticks([])
        color = WRONG if wrong else RIGHT
        for spine in ax.spines.values():
            spine.set_edgecolor(color)
            spine.set_linewidth(4 if wrong else 1.5)
        confidence = item.get("confidence")
        tail = f" ({confidence:.2f})" if confidence is not None else ""
        longest = max(len(str(item["true"])), len(str(item["pred"])) + len(tail))
        ax.set_title(
            f"true: {item['true']}\npred: {item['pred']}{tail}",
            fontsize=9 if longest <= 20 else 7,
            color=color,
            fontweight="bold" if wrong else "normal",
        )
    fig.suptitle(title + "  (red = wrong)", fontsize=12)
    fig.tight_layout()
    return save_figure(fig, path)
