"""`adapt`: the curve, by a head on frozen features (`--curve probe`, the default) or by one run of
the normal grid per k in `OUTPUT/shots<k>/` (`--curve finetune`).

`--curve finetune`:
Each k's split is written to `OUTPUT/splits/shots<k>.csv` and handed to the ordinary run machinery
as its `--split-file` (`run_command`), so every k is a complete run folder (leaderboard, report,
per-source columns) that resumes like any other. Backbone feature banks are keyed by the split
file's bytes, and each k trains on other images, so they are not shared across k: the curve costs
one grid per k.

`--curve probe` (`probe_curve`): the features of every source and target image are computed once
per model into `OUTPUT/features/` (`adapt.features`) and every k's head is fitted on them; it
writes no split files, and another `--shots` list or weighting in the same folder reuses the
features.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from benchmark.adapt.curve import adaptation_plot, adaptation_table, shot_rows
from benchmark.adapt.plan import AdaptPlan
from benchmark.config.run_config import RunConfig
from benchmark.errors import UsageError, error_line
from benchmark.io import write_csv_atomic
from benchmark.output import say, warn
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


def target_test_paths(plan: AdaptPlan) -> set[str]:
    """The fixed target test set's images, scored at every k."""
    test, base = plan.draw.test_hashes(), plan.base.table
    return set(
        base.loc[(base[SOURCE_COLUMN] == plan.target) & base["content_hash"].isin(test), "path"]
    )


def _finish(frame, output: Path, target: str, n_test: int) -> None:
    write_csv_atomic(output / "adaptation.csv", frame)
    adaptation_plot(frame, output / "adaptation.png", target)
    say(
        f"\nadaptation curve on {n_test} fixed {target} test photos: "
        f"{output / 'adaptation.csv'}, {output / 'adaptation.png'}"
    )


def probe_curve_command(config: RunConfig, plan: AdaptPlan, output: str, weighting) -> int:
    """Features once per model, then a head per alpha and k; writes adaptation.csv/.png.

    Returns 1 if any model's features or heads failed (the others are still written), else 0.
    """
    from benchmark.adapt.features import image_rows, probe_plans, stored_features
    from benchmark.adapt.probe_curve import probe_rows

    output = Path(output)
    check_existing_splits(plan, output)
    plans, skipped = probe_plans(config)
    if skipped:
        say(f"adapt --curve probe: no pretrained image backbone, left out: {', '.join(skipped)}")
    output.mkdir(parents=True, exist_ok=True)
    write_csv_atomic(output / "draw.csv", draw_table(plan.base, plan.draw))
    images = image_rows(plan.base.table)
    status, rows = 0, []
    for model_plan in plans:
        started = time.perf_counter()
        try:
            stored = stored_features(
                config, model_plan, images, plan.base.class_names, output / "features"
            )
            how = (
                f"computed for {', '.join(stored.computed)}"
                if stored.computed
                else "all read from the folder"
            )
            say(
                f"\nfeatures of {len(images)} images for {model_plan.name} at "
                f"{model_plan.image_size} px: {how} ({time.perf_counter() - started:.1f} s)"
            )
            rows.extend(
                probe_rows(stored, plan, list(config.alphas), weighting, int(config.seeds[0]))
            )
        except Exception as err:  # one model's failure must not cost the others' curves
            status = 1
            warn(f"probe curve of {model_plan.name} failed: {error_line(err)}")
    frame = adaptation_table(rows)
    _finish(frame, output, plan.target, len(target_test_paths(plan)))
    return status


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
    target_paths = target_test_paths(plan)
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
        rows.extend(shot_rows(shots_dir(output, k), k, target_paths, plan.target_weight))
    _finish(adaptation_table(rows), output, plan.target, len(target_paths))
    return status
