"""The reliability diagram of a cell: how often its answers were right against how sure it said it
was.

Drawn from the cell's saved test predictions, before and after dividing the logits by the
temperature fitted on its validation split, with the same 15 equal-width bins as the ECE column
(`training.calibration.reliability_bins`). Bars on the diagonal are perfectly calibrated; bars below
it are overconfident (a stated 0.9 that is right less often).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from benchmark.figures import plt, save_figure
from benchmark.run.records import CellRecord, load_predictions
from benchmark.training.calibration import (
    BINS,
    apply_temperature,
    expected_calibration_error,
    reliability_bins,
)

GAP = "#e57373"


def _panel(ax, probabilities: np.ndarray, labels: np.ndarray, title: str) -> None:
    table = reliability_bins(probabilities, labels, BINS)
    edges, filled = table["edges"], table["count"] > 0
    width = edges[1] - edges[0]
    left = edges[:-1][filled]
    accuracy, confidence = table["accuracy"][filled], table["confidence"][filled]
    ax.bar(
        left,
        accuracy,
        width=width,
        align="edge",
        color="#64b5f6",
        edgecolor="#1e88e5",
        label="accuracy in bin",
    )
    # What the bin said (its mean confidence) as a bar-wide tick: above the bar is overconfident,
    # below underconfident.
    ax.hlines(
        confidence, left, left + width, colors=GAP, linewidth=2.5, label="mean confidence in bin"
    )
    ax.plot([0, 1], [0, 1], "--", color="#424242", linewidth=1, label="perfectly calibrated")
    for x, acc, n in zip(left, accuracy, table["count"][filled]):
        ax.text(
            x + width / 2,
            0.01,
            f"{int(n)}",
            ha="center",
            fontsize=6,
            color="white" if acc > 0.05 else "#424242",
        )
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_aspect("equal")
    ax.set_xlabel("confidence (top-class probability)")
    ax.set_ylabel("accuracy")
    ax.set_title(
        f"{title}\nECE {expected_calibration_error(probabilities, labels):.4f}", fontsize=10
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left")


def reliability_diagram(
    probabilities: np.ndarray,
    labels: np.ndarray,
    temperature: float | None,
    path: Path,
    title: str = "",
) -> Path:
    """Per-bin accuracy against confidence, before and (with a temperature) after scaling; image
    counts at the bars' feet."""
    panels = [(probabilities, "as trained")]
    if temperature is not None:
        panels.append(
            (
                apply_temperature(probabilities, temperature),
                f"after temperature scaling (T = {temperature:.3f})",
            )
        )
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 5.0), squeeze=False)
    for ax, (probs, name) in zip(axes[0], panels):
        _panel(ax, probs, labels, name)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, path)


def cell_reliability_diagram(run_dir: Path, record: CellRecord, path: Path) -> Path | None:
    """The diagram of a cell's test split (`record` with its calibration completed); None without
    test predictions."""
    frame = load_predictions(run_dir, record)
    columns = [f"prob_{name}" for name in record.class_names]
    if frame is None or not columns or not set(columns) <= set(frame.columns):
        return None
    test = frame[frame["split"] == "test"]
    if test.empty:
        return None
    temperature = (record.calibration or {}).get("temperature")
    return reliability_diagram(
        test[columns].to_numpy(float),
        test["true"].to_numpy(int),
        temperature,
        path,
        title=f"Reliability on the test split: {record.cell_id}",
    )
