"""`splits.csv`: the split as a file, so every model, seed and resumed run uses the same images."""

from __future__ import annotations

import io
import logging
import os
from pathlib import Path

import pandas as pd

from data_pipeline.captions import caption_from_filename
from data_pipeline.errors import DataError
from data_pipeline.leaks import check_split_leaks
from data_pipeline.sources import SPLITS, check_training_classes, utf8_text
from data_pipeline.splits import SPLIT_COLUMNS, SplitTable, make_split_table

logger = logging.getLogger(__name__)

REQUIRED_COLUMNS = ["path", "label", "split", "content_hash"]
OPTIONAL_COLUMNS = ["source"]  # the source of each image in a merged run


def write_split_file(split_table: SplitTable, path: str | Path) -> None:
    """Writes `path,label,split,content_hash,caption` with absolute paths; atomic, so a crash leaves
    no half file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    split_table.table[file_columns(split_table.table)].to_csv(partial, index=False)
    os.replace(partial, path)


def file_columns(table: pd.DataFrame) -> list[str]:
    """`SPLIT_COLUMNS`, and `source` after them for a merge of several sources
    (`data_pipeline.merge`): a single dataset's file is byte for byte what it always was."""
    return SPLIT_COLUMNS + [c for c in OPTIONAL_COLUMNS if c in table.columns]


def read_split_file(path: str | Path) -> SplitTable:
    """Reads a split file and checks it: columns, split names, that every file exists, and the leak
    checks.

    Relative paths are taken relative to the file's folder, so a hand-written split file can sit
    next to its images. Content hashes are trusted, not recomputed: the file came from a scan.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise DataError(
            f"split file {path} does not exist; pass an existing splits.csv, or leave --split-file "
            "out to split anew"
        )
    text = utf8_text(path, "split file")
    try:
        table = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise DataError(
            f"split file {path} is not a readable CSV ({str(err).splitlines()[0]}); write it again"
        ) from err
    missing = [c for c in REQUIRED_COLUMNS if c not in table.columns]
    if missing:
        raise DataError(
            f"split file {path} has no {', '.join(map(repr, missing))} column; "
            f"it needs {','.join(SPLIT_COLUMNS)} (write it with write_split_file)"
        )
    bad = sorted(set(table["split"]) - set(SPLITS))
    if bad or (table[REQUIRED_COLUMNS] == "").any().any():
        raise DataError(
            f"split file {path} has empty cells or split values other than train/val/test ({bad}); "
            "fix or rewrite it"
        )
    base = path.parent.resolve()
    table["path"] = [str((base / p).resolve()) for p in table["path"]]
    absent = [p for p in table["path"] if not Path(p).is_file()]
    if absent:
        shown = ", ".join(absent[:5]) + (f" and {len(absent) - 5} more" if len(absent) > 5 else "")
        raise DataError(
            f"split file {path} lists {len(absent)} file(s) that do not exist ({shown}); "
            "restore them or make a new split"
        )
    if "caption" not in table.columns:
        table["caption"] = [caption_from_filename(p) for p in table["path"]]
    check_training_classes(table, path)
    check_split_leaks(table, path)
    class_names = sorted(table["label"].unique())
    if len(class_names) < 2:
        raise DataError(
            f"split file {path} has fewer than two classes ({class_names}); make a new split"
        )
    split_table = make_split_table(class_names, table[file_columns(table)], path)
    for warning in split_table.warnings:
        logger.warning(warning)
    return split_table
