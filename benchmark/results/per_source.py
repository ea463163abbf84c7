"""Test accuracy per data source, beside the pooled figure, for a run that merged several sources.

A merged run's `splits.csv` names each image's source (`data_pipeline.merge`). The pooled
`test_accuracy` mixes them; a column per source says whether a model learned each one, and a
`test_only` source's column is a cross-dataset score measured inside the grid.

Why columns named at run time: the leaderboard's columns are one fixed list (`columns.py`), but
the sources are the user's. Each source adds `SOURCE_PREFIX + name` after `test_accuracy_ci`
(`leaderboard_columns(..., source_columns)`); a run of one dataset has none, so its tables are
unchanged. Source names hold only letters, digits, `_`, `-` and `.` (`data_pipeline.source_specs`),
and no fixed column starts with the prefix, so a source cannot shadow a fixed column.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from benchmark.results.columns import SOURCE_PREFIX
from benchmark.run.records import CellRecord, load_predictions


def source_column(name: str) -> str:
    """The leaderboard column of one source's test accuracy."""
    return f"{SOURCE_PREFIX}{name}"


def run_sources(run_dir: Path) -> dict[str, str]:
    """Image path -> source name from the run's `splits.csv`, in the order the sources were given;
    {} for a run of one dataset (no `source` column) or a K-fold run (no `splits.csv`)."""
    path = Path(run_dir) / "splits.csv"
    if not path.is_file():
        return {}
    header = pd.read_csv(path, nrows=0).columns
    if "source" not in header:
        return {}
    table = pd.read_csv(path, usecols=["path", "source"], dtype=str, keep_default_na=False)
    return dict(zip(table["path"], table["source"]))


def source_names(sources: dict[str, str]) -> list[str]:
    """The source names of `run_sources`, first-seen order."""
    return list(dict.fromkeys(sources.values()))


def source_accuracies(
    run_dir: Path, ok: list[CellRecord], sources: dict[str, str]
) -> dict[str, float]:
    """Per source, the test accuracy pooled over the row's finished cells (every seed scores the
    same test images, so this is also the mean over seeds); {} when a record lacks predictions."""
    if not sources:
        return {}
    parts = []
    for record in ok:
        frame = load_predictions(run_dir, record)
        if frame is None:
            return {}
        parts.append(frame[frame["split"] == "test"])
    if not parts:
        return {}
    test = pd.concat(parts, ignore_index=True)
    of = test["path"].map(sources)
    correct = test["true"].to_numpy() == test["pred"].to_numpy()
    return {
        source_column(name): float(np.mean(correct[(of == name).to_numpy()]))
        for name in source_names(sources)
        if (of == name).any()
    }
