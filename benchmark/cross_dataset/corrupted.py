"""`robustness RUN_DIR`: a finished run's saved models on their own test images, corrupted.

The other shift `evaluate` cannot show: the same photos taken worse (noise, blur, compression, low
resolution, lighting, colour cast, occlusion; `data_pipeline.corruptions`). Scores what a run
trained with `--robustness off`, or before the hook existed, from its saved models; no retraining.
Idempotent: a cell already in `robustness/` is skipped unless `--force`. Cells sharing an image
size and split are scored together, so each corrupted set is made once for all of them. With
`--adapt-bn` each set is scored instead by the model adapted to it (`robustness_bn`), into
`robustness_bn.csv`; with `--tta N` by the mean over N test-time views (`robustness_tta`), into
`robustness_tta.csv`; the plain rows are left as they are.
"""

from __future__ import annotations

import time
from pathlib import Path

from benchmark.cross_dataset.evaluate import choose_cells
from benchmark.cross_dataset.robustness_bn import score_models_adapted
from benchmark.cross_dataset.robustness_tta import check_views, claim_views, score_models_tta
from benchmark.errors import UsageError
from benchmark.inference.predict import load_model_file
from benchmark.output import say
from benchmark.results.report import write_report
from benchmark.results.tables import build_tables
from benchmark.run.folder import split_file
from benchmark.run.records import load_records
from benchmark.run.robustness import (
    BN_ADAPTED,
    PER_CLASS,
    PLAIN,
    TTA,
    ScoredModel,
    mean_corrupted,
    score_models,
    scored_cell_ids,
    table_path,
    write_cell_rows,
)
from data_pipeline import read_split_file

MODELS_AT_ONCE = 8  # loaded together per image size: memory stays bounded on a large grid


def cells_to_score(run_dir: Path, force: bool, variant: str = PLAIN) -> tuple[list, list[str]]:
    """The chosen cells (`evaluate.ChosenCell`) to score, and one note per cell left out."""
    if not (run_dir / "cells").is_dir():
        raise UsageError(
            f"{str(run_dir)!r} is not a run folder (no cells/ inside); pass the --output of a "
            "finished run"
        )
    records = [r for r in load_records(run_dir) if r.ok]
    if not records:
        raise UsageError(f"run folder {str(run_dir)!r} has no finished cells to score")
    done = set() if force else scored_cell_ids(run_dir, variant)
    todo, notes = [], []
    for chosen in choose_cells(run_dir, records, "all"):
        cell_id = chosen.record.cell_id
        if cell_id in done:
            notes.append(f"{cell_id}: already scored (--force scores it again)")
        elif chosen.model_file is None:
            notes.append(f"{cell_id}: skipped, {chosen.reason}")
        elif chosen.record.modality != "image":
            notes.append(f"{cell_id}: skipped, it reads captions (image models only)")
        else:
            todo.append(chosen)
    if not todo and not done & {r.cell_id for r in records}:
        raise UsageError(
            f"run folder {str(run_dir)!r} has no saved image model to score: models are saved "
            "only while cells train, so train the grid again into a new --output with "
            "--save-models best (the default) or all"
        )
    return todo, notes


def robustness_command(
    run_dir: str,
    *,
    force: bool = False,
    per_class: int | None = None,
    adapt_bn: bool = False,
    tta: int = 0,
) -> int:
    """Scores every unscored cell with a saved image model, then rebuilds the tables and report.

    `per_class` None is `PER_CLASS`, the hook's subset, so both paths score the same images.
    """
    path = Path(run_dir)
    per_class = PER_CLASS if per_class is None else per_class
    if per_class < 1:
        raise UsageError(f"--per-class must be at least 1, got {per_class}")
    if adapt_bn and tta:
        raise UsageError("--adapt-bn and --tta score separate tables: pass one at a time")
    variant = BN_ADAPTED if adapt_bn else TTA if tta else PLAIN
    views = check_views(tta) if tta else 0
    todo, notes = cells_to_score(path, force, variant)
    if variant == TTA:
        claim_views(path, views, force)
    groups: dict[tuple, list] = {}
    for chosen in todo:
        record = chosen.record
        groups.setdefault((record.fold, record.image_size), []).append(chosen)
    for (fold, _), group in groups.items():
        split = read_split_file(split_file(path, fold))
        for start in range(0, len(group), MODELS_AT_ONCE):
            chunk = group[start : start + MODELS_AT_ONCE]
            score_group(path, chunk, split, per_class, variant, views)
    for note in notes:
        say(note)
    if not todo:
        say("no cell to score")
    tables = build_tables(path)
    report = write_report(path, tables)
    say(f"{table_path(path, variant).name}, tables and {report.name} written to {path}")
    return 0


def score_group(
    run_dir: Path, group: list, split, per_class: int, variant: str, views: int = 0
) -> None:
    """Loads a group's saved models (one image size), scores them together (plainly, adapted to
    each set, or over `views` test-time views, as `variant` says), commits each cell."""
    started = time.perf_counter()
    models = []
    for chosen in group:
        saved = load_model_file(chosen.model_file)
        record = chosen.record
        models.append(
            ScoredModel(
                record.cell_id,
                record.model,
                record.alpha,
                record.seed,
                saved.model,
                saved.info.preprocess,
                saved.info.class_names,
            )
        )
    size = saved.info.image_size  # as `predict` feeds it: the group shares one side
    if variant == TTA:
        rows = score_models_tta(models, split, size, per_class, views=views)
    else:
        scorer = score_models_adapted if variant == BN_ADAPTED else score_models
        rows = scorer(models, split, size, per_class)
    seconds = time.perf_counter() - started
    how = {BN_ADAPTED: ", BatchNorm adapted to each set", TTA: f", {views} views"}.get(variant, "")
    for chosen in group:
        cell_rows = rows[chosen.record.cell_id]
        write_cell_rows(run_dir, chosen.record.cell_id, cell_rows, variant)
        clean, corrupted = mean_corrupted(cell_rows)
        say(
            f"{chosen.record.cell_id}: corrupted accuracy {corrupted:.4f} (clean {clean:.4f}, "
            f"{cell_rows[0].n} test images{how})"
        )
    say(f"{len(group)} cell(s) at {size} px scored in {seconds:.1f} s")
