"""What the grid loop tells an experiment tracker, and the tracker that does nothing (tracking off).

The loop cannot import the MLflow and TensorBoard implementation (`benchmark.tracking`, which needs
`results/` for a cell's intervals and plots), so it is handed a `GridTracker`; `commands.py` and the
tuner build the real one. Every method must return quickly and never raise: the records on disk are
the source of truth, a tracker only mirrors them.
"""

from __future__ import annotations

from pathlib import Path


class GridTracker:
    """Tracking off: every hook is a no-op and a cell trains with no extra callbacks."""

    active = (
        False  # a real tracker logs from this process, so cells are not moved into child processes
    )

    def start_grid(self, ctx) -> None:
        """Before the first cell: connect, open (or reopen) the grid's parent run."""

    def start_cell(self, ctx, cell) -> list:
        """Opens or resumes the cell's run; returns the Keras callbacks that log its epochs."""
        return []

    def finish_cell(self, ctx, record, saved_model: Path | None = None) -> None:
        """After the cell's saved model and before its record is written (the record stays the
        commit point).
        """

    def end_grid(self, ctx, failed: int) -> None:
        """After the grid (and its tables): closes the parent run once every cell has a record."""
