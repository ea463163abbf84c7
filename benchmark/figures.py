"""Matplotlib without a display (servers, CI, Slurm nodes) and one way to save a figure.

Importing `pyplot` from here guarantees the Agg backend is chosen before pyplot loads.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

DPI = 110
WRONG, RIGHT = "#c62828", "#2e7d32"  # frames and labels of mistakes and hits in image grids


def save_figure(fig, path: Path, *, dpi: int = DPI) -> Path:
    """Saves on a white background and closes the figure (a report draws many)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, bbox_inches="tight", facecolor="white")
    plt.close(fig)
    return path


__all__ = ["DPI", "RIGHT", "WRONG", "plt", "save_figure"]
