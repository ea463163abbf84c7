"""The report's "Linear probe" section: the probe table, how to read it, and a warning line per
fine-tuned row that does not beat its backbone's probe (`results.probe_table`)."""

from __future__ import annotations

import pandas as pd

from benchmark.results.probe_table import PROBE_COLUMNS, probe_warnings
from benchmark.results.tables import to_markdown


def probe_section(probes: pd.DataFrame | None, board: pd.DataFrame) -> str:
    """The report's "Linear probe" section: the probe table, how to read it, and the warnings."""
    if probes is None or probes.empty:
        return ""
    shown = [c for c in PROBE_COLUMNS if c not in ("recipe", "error")]
    parts = [
        "## Linear probe\n",
        "A logistic regression on each pretrained backbone's frozen, un-augmented pooled "
        "features (C and class weighting chosen on validation): the floor fine-tuning must clear. "
        "The leaderboard's `beats_probe` says, per row, whether it does on validation. See "
        "docs/shift-probe.md.\n",
        to_markdown(probes[shown].reset_index(drop=True)),
    ]
    warnings = probe_warnings(board)
    if warnings:
        parts.append("\n".join(f"- {line}" for line in warnings) + "\n")
    return "\n".join(parts)
