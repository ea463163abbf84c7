"""`adapt`: one run of the normal grid per k in `OUTPUT/shots<k>/`, then the curve.

Each k's split is written to `OUTPUT/splits/shots<k>.csv` and handed to the ordinary run machinery
as its `--split-file` (`run_command`), so every k is a complete run folder (leaderboard, report,
per-source columns) that resumes like any other. Backbone feature banks are keyed by the split
file's bytes, and each k trains on other images, so they are not shared across k: the curve costs
one grid per k.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from benchmark.adapt.curve import adaptation_plot, adaptation_table, shot_rows
from benchmark.adapt.plan import AdaptPlan
from benchmark.config.run_config import RunConfig
from benchmark.errors import UsageError
from benchmark.io import write_csv_atomic
from benchmark.output import say
from data_pipeline.merge import SOURCE_COLUMN
from data_pipeline.shots import draw_table
from data_pipeline.split_file import file_columns


def shots_dir(output: Path, k: int) -> Path:
    return Path(output) / f"shots{k}"


def split_path(output: Path, k: int) -> Path:
    return Path(output) / "splits" / f"shots{k}.csv"


def _split_csv(plan: AdaptPlan, k: int) -> str:
    table = plan.splits[k].table
    return table[file_columns(table)].to_csv(index=False)


def check_existing_splits(plan: AdaptPlan, output: Path) -> None:
    """A folder adapted with another split (other data, seed, shots or weight) is refused: its k
    runs would resume on their old splits and the curve would mix two draws."""
    for k in plan.splits:
        path = split_path(output, k)
        if path.is_file() and path.read_text() != _split_csv(plan, k):
            raise UsageError(
                f"{path} holds another split than this command's (other data, --split-seed, "
                "--shots or --target-weight); use another --output"
            )


def adapt_command(config: RunConfig, plan: AdaptPlan, output: str, *, force: bool, quiet: bool):
    """Trains the grid once per k on its split, then writes adaptation.csv/.png into `output`.

    Returns 1 if any cell of any k failed, else 0.
    """
    from benchmark.commands import run_command

    output = Path(output)
    check_existing_splits(plan, output)
    (output / "splits").mkdir(parents=True, exist_ok=True)
    write_csv_atomic(output / "draw.csv", draw_table(plan.base, plan.draw))
    for k in plan.splits:
        path = split_path(output, k)
        if not path.is_file():
            path.write_text(_split_csv(plan, k))
    test = plan.draw.test_hashes()
    base = plan.base.table
    target_paths = set(
        base.loc[(base[SOURCE_COLUMN] == plan.target) & base["content_hash"].isin(test), "path"]
    )
    status, rows = 0, []
    for k in plan.splits:
        say(f"\nadapt: {k} labelled {plan.target} photo(s) per class -> {shots_dir(output, k)}")
        status |= run_command(
            dataclasses.replace(config, split_file=str(split_path(output, k).resolve())),
            output=shots_dir(output, k),
            force=force,
            cell=None,
            dry_run=False,
            quiet=quiet,
        )
        rows.extend(shot_rows(shots_dir(output, k), k, target_paths))
    frame = adaptation_table(rows)
    write_csv_atomic(output / "adaptation.csv", frame)
    adaptation_plot(frame, output / "adaptation.png", plan.target)
    say(
        f"\nadaptation curve on {len(target_paths)} fixed {plan.target} test photos: "
        f"{output / 'adaptation.csv'}, {output / 'adaptation.png'}"
    )
    return status
