"""A run folder: its saved configuration, the one split every cell uses, and the grid.

A run folder holds `config.yaml` (the resolved configuration), `splits.csv` (the one split every
cell uses) and `cells/<cell-id>.json`. Re-running the same command skips finished cells, so a run
killed at any moment loses at most the cell in progress. `work/<cell>/` holds a training cell's
per-epoch backups and `cache/<cell>/` its decoded images when they do not fit in memory.
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import yaml

from benchmark.config.run_config import RunConfig, differing_keys
from benchmark.errors import UsageError
from benchmark.io import write_csv_atomic, write_text_atomic
from benchmark.run.grid import Cell, build_grid
from data_pipeline import (
    SplitTable,
    caption_leak_fraction,
    read_split_file,
    sample_data_dir,
    scan_dataset,
    split_dataset,
    write_split_file,
)
from models import get_entry, resolve_model_names


@dataclass
class RunContext:
    """A prepared run: its configuration, folder, the one split and the grid."""

    config: RunConfig
    run_dir: Path
    split: SplitTable
    cells: list[Cell]
    caption_warning: str = ""
    split_fingerprint: str = ""  # of `splits.csv`, stamped on every record this run writes


def prepare_run(config: RunConfig, run_dir: Path, *, force: bool = False, write: bool = True) -> RunContext:
    """Resolves model names and the split, and checks or saves the run folder's configuration."""
    config = dataclasses.replace(config, models=resolve_model_names(config.models))
    run_dir = Path(run_dir)
    check_output_folder(run_dir)
    config_file = run_dir / "config.yaml"
    if config_file.is_file():
        saved = yaml.safe_load(config_file.read_text()) or {}
        changed = differing_keys(saved, config.to_dict())
        if changed and not force:
            raise UsageError(
                f"run folder {str(run_dir)!r} was started with a different configuration ({', '.join(changed)}); "
                "use another --output, or --force to continue with the new one"
            )
    split = resolve_split(config, run_dir, write=write)
    caption_warning = check_captions(config, split)
    if write:
        write_text_atomic(config_file, yaml.safe_dump(config.to_dict(), sort_keys=False))
    fingerprint = split_fingerprint(run_dir) if split_file(run_dir).is_file() else ""
    return RunContext(config, run_dir, split, build_grid(config), caption_warning, fingerprint)


def check_output_folder(run_dir: Path) -> None:
    """`--output` must be a folder this process can create or write into (checked before any training)."""
    if run_dir.exists() and not run_dir.is_dir():
        raise UsageError(f"--output {str(run_dir)!r} is an existing file; give a folder (a new one, or a run to resume)")
    existing = next(p for p in (run_dir, *run_dir.parents) if p.exists())
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise UsageError(f"--output {str(run_dir)!r} cannot be created: {str(existing)!r} is not a writable folder")


def check_captions(config: RunConfig, split: SplitTable) -> str:
    """Text models need captions; captions that name the class leak the label. Returns the warning, if any."""
    text_models = [m for m in config.models if get_entry(m).modality != "image"]
    if not text_models:
        return ""
    captions = split.table["caption"].fillna("").astype(str).str.strip()
    if (captions == "").mean() > 0.5:
        raise UsageError(
            f"{', '.join(text_models)} need captions, but most images have none; give a CSV manifest with a caption "
            "column, or file names that describe the object (paper_gift_bag_1859.png)"
        )
    leak = caption_leak_fraction(split.table, split.class_names)
    if leak <= 0.5:
        return ""
    warning = (f"{leak:.0%} of captions contain their class name: the text leaks the label, so text and fusion "
               "scores overstate what a caption alone can tell")
    print(f"warning: {warning}", file=sys.stderr)
    return warning


def resolve_split(config: RunConfig, run_dir: Path, *, write: bool = True) -> SplitTable:
    """The run's split: its own `splits.csv` on resume, else `--split-file`, else a fresh leak-free split."""
    own = split_file(run_dir)
    if own.is_file():
        return read_split_file(own)
    if config.split_file:
        split = read_split_file(Path(config.split_file))
    else:
        scanned = scan_dataset(config.data or sample_data_dir(), skip_corrupt=config.skip_corrupt)  # logs its warnings
        split = split_dataset(scanned, ratios=tuple(config.split), seed=config.split_seed)
        if write and scanned.skipped:
            write_csv_atomic(run_dir / "skipped_files.csv", pd.DataFrame(scanned.skipped, columns=["path", "reason"]))
    if write:
        run_dir.mkdir(parents=True, exist_ok=True)
        write_split_file(split, own)
    return split


def split_file(run_dir: Path) -> Path:
    """The run's one split; stored backbone features are keyed by its content."""
    return run_dir / "splits.csv"


def split_fingerprint(run_dir: Path) -> str:
    """sha1 of the run's `splits.csv`: two cells with different fingerprints were trained on different splits."""
    return hashlib.sha1(split_file(run_dir).read_bytes()).hexdigest()[:16]


def check_one_split(records, fingerprint: str) -> None:
    """Refuses a run folder whose finished cells were trained on another split than `fingerprint`.

    That happens when `splits.csv` was deleted and the data changed: a resume would train the
    missing cells on a new split and rank them beside cells scored on other test images.
    """
    others = sorted(r.cell_id for r in records if r.ok and r.split_fingerprint and r.split_fingerprint != fingerprint)
    if fingerprint and others:
        raise UsageError(
            f"{len(others)} finished cell(s) ({', '.join(others[:5])}{', ...' if len(others) > 5 else ''}) were trained on "
            f"another split than this run folder's splits.csv (it was rewritten); restore the original splits.csv, "
            "or start a new --output"
        )


def work_dir(run_dir: Path, cell_id: str) -> Path:
    """A cell's per-epoch backups while it trains (see `benchmark.training.checkpoint`)."""
    return run_dir / "work" / cell_id


def image_cache_root(run_dir: Path) -> Path:
    """The decoded, resized images of the run's splits, one cache per input kind, shared by all cells.

    Safe to delete whenever no process is training in the run: the next cell decodes them again.
    """
    return run_dir / "cache"
