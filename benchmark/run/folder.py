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
import hashlib
import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import yaml

from benchmark.config.run_config import RunConfig, differing_keys
from benchmark.errors import UsageError
from benchmark.io import write_csv_atomic, write_text_atomic
from benchmark.plan import ModelPlan, resolve_plans
from benchmark.run.claims import hold_folder_lock
from benchmark.run.grid import Cell, build_grid
from benchmark.run.preflight import check_output_folder
from data_pipeline import (
    SplitTable,
    caption_leak_fraction,
    check_fold_partition,
    fold_splits,
    is_multi_source,
    read_split_file,
    sample_data_dir,
    scan_dataset,
    split_dataset,
    split_sources,
    validation_share,
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
        """The model's plan, as `resolve_run` resolved it with all the others."""
        return self.plans[model]

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
    caption_warning = check_captions(config, plans, split if split is not None else folds[0])
    context = RunContext(
        config,
        run_dir,
        split,
        build_grid(config, plans),
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


def check_split_layout(config: RunConfig, run_dir: Path) -> None:
    """A folder split one way (one `splits.csv`, or K fold files) is never resumed the other way,
    even with --force: its finished cells would sit beside cells scored on other test images."""
    fold_files = sorted(split_dir(run_dir).glob("fold*.csv")) if split_dir(run_dir).is_dir() else []
    if config.folds is None and fold_files:
        raise UsageError(
            f"run folder {str(run_dir)!r} holds {len(fold_files)} fold splits "
            f"({split_dir(run_dir)}); "
            f"add --folds {len(fold_files)} to resume it, or use another --output"
        )
    if config.folds is not None and split_file(run_dir).is_file():
        raise UsageError(
            f"run folder {str(run_dir)!r} holds one split ({split_file(run_dir)}), not folds; "
            "leave --folds out to resume it, or use another --output"
        )
    expected = {split_file(run_dir, k) for k in range(config.folds or 0)}
    if config.folds is not None and fold_files and set(fold_files) != expected:
        own = {split_file(run_dir, k) for k in range(len(fold_files))} == set(fold_files)
        advice = f"--folds {len(fold_files)}" if own else "its own --folds"
        raise UsageError(
            f"run folder {str(run_dir)!r} holds fold splits "
            f"{', '.join(p.name for p in fold_files)}, not the {config.folds} of "
            f"--folds {config.folds}; resume it with {advice}, "
            "or use another --output"
        )


def check_captions(config: RunConfig, plans: dict[str, ModelPlan], split: SplitTable) -> str:
    """Text models need captions; captions that name the class leak the label. Returns the
    warning, if any."""
    text_models = [m for m in config.models if plans[m].modality != "image"]
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
    print(f"warning: {warning}", file=sys.stderr)
    return warning


def resolve_split(config: RunConfig, run_dir: Path, *, write: bool = True) -> SplitTable:
    """The run's split: its own `splits.csv` on resume, else `--split-file`, else a fresh
    leak-free split (with `write`, saved as the folder's `splits.csv`)."""
    skipped: list = []
    split = read_or_make_split(config, run_dir, skipped)
    if write and not split_file(run_dir).is_file():
        write_split_file(split, split_file(run_dir))
        write_skipped(run_dir, skipped)
    return split


def read_or_make_split(config: RunConfig, run_dir: Path, skipped: list) -> SplitTable:
    """The folder's own `splits.csv` on resume, else `--split-file`, else a fresh leak-free split;
    writes nothing, and appends the images a fresh scan skipped to `skipped`."""
    own = split_file(run_dir)
    if own.is_file():
        return read_split_file(own)
    if config.split_file:
        return read_split_file(Path(config.split_file))
    if is_multi_source(config.data):  # several sources: docs/sources.md
        merged = split_sources(
            config.data,
            ratios=config.split,
            seed=config.split_seed,
            skip_corrupt=config.skip_corrupt,
        )
        skipped.extend(merged.skipped)
        return merged.split
    scanned = scan_dataset(
        config.data or sample_data_dir(), skip_corrupt=config.skip_corrupt
    )  # logs its warnings
    skipped.extend(scanned.skipped)
    return split_dataset(scanned, ratios=tuple(config.split), seed=config.split_seed)


def read_or_make_folds(config: RunConfig, run_dir: Path, skipped: list) -> list[SplitTable]:
    """The K fold splits: the run folder's own `splits/fold<k>.csv` on resume, else K fresh ones
    (written by `claim_run`, together, before any cell trains, so Slurm array tasks and resumed
    runs only ever read a complete set). Writes nothing."""
    if split_file(run_dir, 0).is_file():
        folds = [read_split_file(split_file(run_dir, k)) for k in range(config.folds)]
        check_fold_partition([fold.table for fold in folds], split_dir(run_dir))
        return folds
    scanned = scan_dataset(
        config.data or sample_data_dir(), skip_corrupt=config.skip_corrupt
    )  # logs its warnings
    skipped.extend(scanned.skipped)
    return fold_splits(
        scanned, config.folds, seed=config.split_seed, val_ratio=validation_share(config.split)
    )


def write_skipped(run_dir: Path, skipped: list) -> None:
    """`skipped_files.csv`: the unreadable images `--skip-corrupt` left out, if any."""
    if skipped:
        write_csv_atomic(
            run_dir / "skipped_files.csv", pd.DataFrame(skipped, columns=["path", "reason"])
        )


def write_fold_files(folds: list[SplitTable], run_dir: Path) -> None:
    """`splits/fold<k>.csv` for every fold, all or none: written in a temporary folder, then
    renamed into place.

    When another process renamed its (identical: same data and seed) set first, that set stands.
    """
    partial = (
        run_dir / f".splits.{os.getpid()}.partial"
    )  # per process, like benchmark.io; mkdir keeps the umask
    shutil.rmtree(partial, ignore_errors=True)  # left by a killed process that had this id
    partial.mkdir(parents=True)
    for k, fold in enumerate(folds):
        write_split_file(fold, partial / split_file(run_dir, k).name)
    try:
        os.rename(partial, split_dir(run_dir))
    except OSError:
        shutil.rmtree(partial, ignore_errors=True)
        if not split_file(run_dir, len(folds) - 1).is_file():
            raise


def split_dir(run_dir: Path) -> Path:
    """Where a K-fold run keeps its fold splits."""
    return run_dir / "splits"


def split_file(run_dir: Path, fold: int | None = None) -> Path:
    """The split a cell of `fold` trains and is scored on: `splits.csv`, or `splits/fold<k>.csv`
    in a K-fold run.

    Stored backbone features are keyed by its content.
    """
    return run_dir / "splits.csv" if fold is None else split_dir(run_dir) / f"fold{fold}.csv"


def split_fingerprint(run_dir: Path, fold: int | None = None) -> str:
    """sha1 of a split file: two cells with different fingerprints were trained on different
    splits."""
    return hashlib.sha1(split_file(run_dir, fold).read_bytes()).hexdigest()[:16]


def split_fingerprints(run_dir: Path) -> dict[int | None, str]:
    """Fingerprint of every split file the folder holds, by fold (None: `splits.csv`)."""
    folds = (
        sorted(
            int(p.stem[4:]) for p in split_dir(run_dir).glob("fold*.csv") if p.stem[4:].isdigit()
        )
        if split_dir(run_dir).is_dir()
        else []
    )
    files = ([None] if split_file(run_dir).is_file() else []) + folds
    return {fold: split_fingerprint(run_dir, fold) for fold in files}


def check_splits(records, fingerprints: dict[int | None, str]) -> None:
    """`check_one_split` for each fold's records against that fold's split file (None:
    `splits.csv`)."""
    records = list(records)
    for fold, fingerprint in fingerprints.items():
        check_one_split(
            [r for r in records if r.fold == fold],
            fingerprint,
            name=split_file(Path(), fold).as_posix(),
        )


def check_one_split(records, fingerprint: str, *, name: str = "splits.csv") -> None:
    """Refuses a run folder whose finished cells were trained on another split than `fingerprint`.

    That happens when `splits.csv` (`name`) was deleted and the data changed: a resume would train
    the missing cells on a new split and rank them beside cells scored on other test images.
    """
    others = sorted(
        r.cell_id
        for r in records
        if r.ok and r.split_fingerprint and r.split_fingerprint != fingerprint
    )
    if fingerprint and others:
        raise UsageError(
            f"{len(others)} finished cell(s) "
            f"({', '.join(others[:5])}{', ...' if len(others) > 5 else ''}) were trained on "
            f"another split than this run folder's {name} (it was rewritten); "
            f"restore the original {name}, "
            "or start a new --output"
        )


def work_dir(run_dir: Path, cell_id: str) -> Path:
    """A cell's per-epoch backups while it trains (see `benchmark.training.checkpoint`)."""
    return run_dir / "work" / cell_id


def image_cache_root(run_dir: Path) -> Path:
    """The decoded, resized images of the run's splits, one cache per input kind, shared by all
    cells.

    Safe to delete whenever no process is training in the run: the next cell decodes them again.
    """
    return run_dir / "cache"
