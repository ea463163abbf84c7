"""A run folder: its saved configuration, the one split every cell uses (or one per fold), and the
grid.

A run folder holds `config.yaml` (the resolved configuration), `splits.csv` (the one split every
cell uses) and `cells/<cell-id>.json`. With `--folds K` it holds `splits/fold<k>.csv` instead, one
split per fold, and each cell uses its fold's (`split_file(run_dir, fold)`). Re-running the same
command skips finished cells, so a run killed at any moment loses at most the cell in progress.
`work/<cell>/` holds a training cell's per-epoch backups and `cache/<cell>/` its decoded images
when they do not fit in memory.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from benchmark.config.config_diff import differing_keys
from benchmark.config.run_config import RunConfig
from benchmark.errors import UsageError
from benchmark.io import write_text_atomic
from benchmark.output import warn
from benchmark.plan import ModelPlan, resolve_plan, resolve_plans
from benchmark.run.claims import hold_folder_lock
from benchmark.run.grid import Cell, build_grid
from benchmark.run.preflight import check_output_folder
from benchmark.run.split_files import (
    check_split_layout,
    read_or_make_folds,
    read_or_make_split,
    split_file,
    split_fingerprint,
    write_fold_files,
    write_skipped,
)
from data_pipeline import (
    SplitTable,
    caption_leak_fraction,
    read_split_file,
    write_split_file,
)
from models import resolve_model_names


@dataclass
class RunContext:
    """A prepared run: its configuration, folder, the one split (or the K fold splits) and the grid.

    In a K-fold run `split` is None and `fold_splits[k]` is fold k's split; `for_fold(cell.fold)`
    gives the context a cell trains in, whose `split` and `split_fingerprint` are its fold's, so
    the code that trains, combines or scores one cell reads `ctx.split` either way.
    """

    config: RunConfig
    run_dir: Path
    split: SplitTable | None
    cells: list[Cell]
    caption_warning: str = ""
    split_fingerprint: str = (
        ""  # of `splits.csv` (of the fold's file in a fold view), stamped on every record
    )
    fold_splits: list[SplitTable] = field(default_factory=list)
    fold_fingerprints: list[str] = field(default_factory=list)
    plans: dict[str, ModelPlan] = field(default_factory=dict)  # by model, resolved once
    # (path, reason) of the images a fresh scan left out: `claim_run` writes skipped_files.csv
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def for_fold(self, fold: int | None) -> RunContext:
        """The run as one fold's cells see it (the run itself for None, a run without folds)."""
        if fold is None:
            return self
        return dataclasses.replace(
            self, split=self.fold_splits[fold], split_fingerprint=self.fold_fingerprints[fold]
        )

    def plan(self, model: str) -> ModelPlan:
        """The model's plan (`prepare_run` resolved them all; a hand-made context resolves it)."""
        return self.plans.get(model) or resolve_plan(self.config, model)

    def fingerprints(self) -> dict[int | None, str]:
        """Split file fingerprint per fold (None: `splits.csv`); a record must match the one of its
        fold."""
        if not self.fold_splits:
            return {None: self.split_fingerprint}
        return dict(enumerate(self.fold_fingerprints))

    def any_split(self) -> SplitTable:
        """A split holding every image (any fold's does): for checks of the images themselves, such
        as captions."""
        return self.split if self.split is not None else self.fold_splits[0]


def prepare_run(
    config: RunConfig, run_dir: Path, *, force: bool = False, write: bool = True
) -> RunContext:
    """`resolve_run`, then (with `write`) `claim_run`: a run's steps 1 and 2 in one call, for
    callers with nothing to check in between (tests, benchmarks, a merge job reading a folder)."""
    context = resolve_run(config, run_dir, force=force)
    return claim_run(context, force=force) if write else context


def resolve_run(config: RunConfig, run_dir: Path, *, force: bool = False) -> RunContext:
    """Step 1 of a run: resolves model names, plans, the split and the grid, and checks the run
    folder against them, writing nothing (a refusal, or `--dry-run`, leaves no trace).

    A new folder's split is made in memory; `claim_run` writes it with `config.yaml`.
    """
    config = dataclasses.replace(config, models=resolve_model_names(config.models))
    plans = resolve_plans(config)  # every refusal about a model, before the folder is touched
    run_dir = Path(run_dir)
    check_output_folder(run_dir, tensorboard=config.tensorboard)
    check_split_layout(config, run_dir)  # first: --force cannot resume another split layout
    check_saved_config(config, run_dir, force=force)
    skipped: list = []
    if config.folds is None:
        split, folds = read_or_make_split(config, run_dir, skipped), []
    else:
        split, folds = None, read_or_make_folds(config, run_dir, skipped)
    caption_warning = check_captions(config, split if split is not None else folds[0])
    context = RunContext(
        config,
        run_dir,
        split,
        build_grid(config),
        caption_warning,
        fold_splits=folds,
        plans=plans,
        skipped=skipped,
    )
    return with_fingerprints(context)


def claim_run(context: RunContext, *, force: bool = False) -> RunContext:
    """Step 2 of a run: under the folder's lock, checks the saved configuration once more and
    writes `config.yaml` and the split file(s) where they are missing.

    Checking and writing under one lock makes the claim atomic: of two runs started at once on a
    new `--output`, the first writes its configuration and the second, with other settings, is
    refused (with the same ones it joins, reading the split the first wrote).
    """
    config, run_dir = context.config, context.run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    with hold_folder_lock(run_dir):
        check_split_layout(config, run_dir)
        check_saved_config(config, run_dir, force=force)
        if config.folds is None and split_file(run_dir).is_file():
            context = dataclasses.replace(context, split=read_split_file(split_file(run_dir)))
        elif config.folds is None:
            write_split_file(context.split, split_file(run_dir))
            write_skipped(run_dir, context.skipped)
        elif split_file(run_dir, 0).is_file():
            folds = read_or_make_folds(config, run_dir, [])
            context = dataclasses.replace(context, fold_splits=folds)
        else:
            write_fold_files(context.fold_splits, run_dir)
            write_skipped(run_dir, context.skipped)
        write_text_atomic(
            run_dir / "config.yaml", yaml.safe_dump(config.to_dict(), sort_keys=False)
        )
    return with_fingerprints(context)


def check_saved_config(config: RunConfig, run_dir: Path, *, force: bool = False) -> None:
    """A folder started with other settings is refused unless `force` (its cells would rank
    beside cells trained another way)."""
    config_file = run_dir / "config.yaml"
    if not config_file.is_file():
        return
    saved = yaml.safe_load(config_file.read_text()) or {}
    changed = differing_keys(saved, config.to_dict())
    if changed and not force:
        raise UsageError(
            f"run folder {str(run_dir)!r} was started with a different configuration "
            f"({', '.join(changed)}); "
            "use another --output, or --force to continue with the new one"
        )


def with_fingerprints(context: RunContext) -> RunContext:
    """The context with the fingerprints of the split files its folder holds ("" for each one not
    written yet)."""
    run_dir = context.run_dir
    fingerprint = split_fingerprint(run_dir) if split_file(run_dir).is_file() else ""
    fold_fingerprints = [
        split_fingerprint(run_dir, k) if split_file(run_dir, k).is_file() else ""
        for k in range(len(context.fold_splits))
    ]
    return dataclasses.replace(
        context, split_fingerprint=fingerprint, fold_fingerprints=fold_fingerprints
    )


def check_captions(config: RunConfig, split: SplitTable) -> str:
    """Text models need captions; captions that name the class leak the label. Returns the
    warning, if any."""
    text_models = [m for m in config.models if resolve_plan(config, m).modality != "image"]
    if not text_models:
        return ""
    captions = split.table["caption"].fillna("").astype(str).str.strip()
    if (captions == "").mean() > 0.5:
        raise UsageError(
            f"{', '.join(text_models)} need captions, but most images have none; "
            "give a CSV manifest with a caption "
            "column, or file names that describe the object (paper_gift_bag_1859.png)"
        )
    leak = caption_leak_fraction(split.table, split.class_names)
    if leak <= 0.5:
        return ""
    warning = (
        f"{leak:.0%} of captions contain their class name: the text leaks the label, "
        "so text and fusion "
        "scores overstate what a caption alone can tell"
    )
    warn(warning)
    return warning


def work_dir(run_dir: Path, cell_id: str) -> Path:
    """A cell's per-epoch backups while it trains (see `benchmark.training.checkpoint`)."""
    return run_dir / "work" / cell_id


def image_cache_root(run_dir: Path) -> Path:
    """The decoded, resized images of the run's splits, one cache per input kind, shared by all
    cells.

    Safe to delete whenever no process is training in the run: the next cell decodes them again.
    """
    return run_dir / "cache"
