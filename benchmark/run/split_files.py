"""A run folder's split files: `splits.csv`, or `splits/fold<k>.csv` with `--folds K`.

Where they live, how a run reads or makes them (its own on resume, else `--split-file`, else a
fresh leak-free split), and their fingerprints, which every record carries so that a rewritten
split is refused instead of ranking cells scored on different test images side by side. Apart from
`folder.py` (which claims the folder and holds the run's context) because the tables, the reports
and the cross-dataset and fold checks read these files without preparing a run.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import pandas as pd

from benchmark.config.run_config import RunConfig
from benchmark.errors import UsageError
from benchmark.io import write_csv_atomic
from data_pipeline import (
    SplitTable,
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
