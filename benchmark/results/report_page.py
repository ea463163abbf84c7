"""The page `report.md` is assembled on: markdown parts in order, and figures drawn into `plots/`.

Its own module so that each group of report sections (`report.py`, `cell_report.py`,
`dataset_report.py`) can draw on one page without importing the others.
"""

from __future__ import annotations

from pathlib import Path

from benchmark.results import plots


def escape(text) -> str:
    """`text` made safe inside one markdown table cell or list item (no `|`, no line breaks)."""
    return str(text).replace("|", "\\|").replace("\n", " ")


class ReportPage:
    """Collects markdown parts; draws figures into `plots/` and links them relative to the
    report."""

    def __init__(self, run_dir: Path):
        self.run_dir = run_dir
        self.plot_dir = run_dir / "plots"
        self.parts: list[str] = []

    def add(self, text: str) -> None:
        self.parts.append(text)

    def figure(self, draw, name: str, *args, alt: str = "", **kwargs) -> str:
        """Markdown image link for `draw(*args, path, **kwargs)`, or a note when it cannot be
        drawn."""
        path = self.plot_dir / f"{plots.safe_name(name)}.png"
        try:
            written = draw(*args, path, **kwargs)
        except Exception as err:  # a broken figure must not cost the run its report
            return (
                f"*(figure `{path.name}` could not be drawn: "
                f"{escape(type(err).__name__)}: {escape(err)})*\n"
            )
        if written is None:
            return f"*(no data for figure `{path.name}`)*\n"
        return f"![{alt or name}](plots/{written.name})\n"
