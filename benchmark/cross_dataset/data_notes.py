"""What `evaluate` says about DATA itself: its file-safe name, and the notes that qualify its
figures (images the run already holds, a single class to score).

Apart from `evaluate.py` (which loads and scores the saved models) because these read only DATA
and the run folder's split files, never a model.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pandas as pd

from benchmark.run.split_files import split_file as split_file_of


def dataset_name(source: Path) -> str:
    """A file-safe name for DATA: its folder or manifest name plus a short hash of its absolute
    path.

    The hash keeps two data sets with the same folder name apart; the same DATA evaluated again
    (with a corrected label map, say) gets the same name and replaces its earlier rows.
    """
    source = Path(source).expanduser().resolve()
    stem = (
        re.sub(r"[^A-Za-z0-9_.-]+", "_", source.stem if source.is_file() else source.name).strip(
            "._"
        )
        or "data"
    )
    return f"{stem}-{hashlib.sha1(str(source).encode()).hexdigest()[:6]}"


def overlap_note(run_dir: Path, scored: pd.DataFrame) -> str:
    """A note when DATA holds images the run already has (same decoded pixels as in its
    `splits.csv`).

    A K-fold run has no `splits.csv`; its fold files all list every image, so fold 0's says which
    ones.
    """
    split_file = run_dir / "splits.csv"
    if not split_file.is_file():
        split_file = split_file_of(run_dir, 0)
    if not split_file.is_file():
        return ""
    run_split = pd.read_csv(split_file, keep_default_na=False, dtype=str)
    if "content_hash" not in run_split.columns:
        return ""
    known = run_split.drop_duplicates("content_hash").set_index("content_hash")["split"]
    shared = scored["content_hash"][scored["content_hash"].isin(known.index)]
    if shared.empty:
        return ""
    counts = known.loc[shared].value_counts()
    where = ", ".join(f"{n} in its {split} split" for split, n in counts.items())
    if (
        split_file.parent.name == "splits"
    ):  # K-fold: every image is tested in one fold and trained on in the others
        where = "each trained on in all but one fold"
    return (
        f"{len(shared)} of DATA's {len(scored)} scored images are images of the run itself "
        f"(same decoded pixels; {where}): they are not new to the model, so these figures "
        "overstate how it does on unseen photos"
    )


def one_class_note(data_class: str) -> str:
    return (
        f"DATA has one class to score ({data_class}): accuracy and its confusion row are "
        "reported; macro-F1 and per-class precision and F1 need at least two classes"
    )
