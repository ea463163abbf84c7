"""Finding the images of a dataset in one of its three layouts, before any file is decoded.

Layouts: class folders (`ROOT/<class>/<image>`), pre-split folders (`ROOT/<..train>/<class>/...`,
`<..val>`, `<..test>`, any prefix, any case) and a CSV manifest (`path,label[,split][,caption]`).
"""

from __future__ import annotations

import errno
import io
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from data_pipeline.errors import DataError, record_warning
from data_pipeline.images import IMAGE_EXTENSIONS, is_image_file

logger = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
_SPLIT_NAMES = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}
_SPLIT_DIR = re.compile(r"^(?:.*[_\-\s.])?(train|val|valid|validation|test)$", re.IGNORECASE)
_EXTENSIONS_TEXT = ", ".join(sorted(e.lstrip(".") for e in IMAGE_EXTENSIONS))


@dataclass
class Listing:
    """The files a dataset names, with labels and (when given) splits, not yet decoded.

    Args:
        layout: "folders", "presplit" or "manifest".
        table: columns `path` (absolute str), `label`, `split` ("" when not given), `caption` (""
            when not given).
        warnings: things the user should know but that do not stop the run.
    """

    layout: str
    table: pd.DataFrame
    warnings: list[str] = field(default_factory=list)


def _warn(warnings: list[str], message: str) -> None:
    record_warning(warnings, message, logger)


def _visible(path: Path) -> bool:
    return not path.name.startswith(".") and path.name != "__MACOSX"


def _subdirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and _visible(p))


def is_symlink_loop(path: Path) -> bool:
    """Whether `path` is a symlink that never reaches a file or folder (it points, via others, at
    itself)."""
    try:
        path.resolve(strict=True)
    except RuntimeError:  # Python 3.11 reports a loop this way
        return True
    except OSError as err:
        return err.errno == errno.ELOOP
    return False


def _loop_warning(path: Path, target: Path | None = None) -> str:
    where = f"back to {target}" if target else "to itself"
    return f"{path} is a symlink loop (it leads {where}); it is skipped"


def _report_loops(folder: Path, warnings: list[str]) -> None:
    """Warns about looping symlinks directly in `folder` (a class or split folder that can never be
    read)."""
    for entry in sorted(folder.iterdir()):
        if entry.is_symlink() and _visible(entry) and is_symlink_loop(entry):
            _warn(warnings, _loop_warning(entry))


def _folder_key(path: Path) -> tuple[int, int]:
    info = path.stat()
    return info.st_dev, info.st_ino


def _images_under(folder: Path, warnings: list[str], outer: tuple[Path, ...] = ()) -> list[Path]:
    """Image files anywhere below `folder`, following symlinked folders; hidden folders and other
    files are skipped.

    A symlink that leads back to a folder being walked (or to `outer`, the dataset and split
    folders above) would list the same images forever, or under the wrong class: it is named in a
    warning and skipped. A folder reached twice through different links is listed once.
    """
    found: list[Path] = []
    seen: set[tuple[int, int]] = set()

    def walk(directory: Path, key: tuple[int, int], ancestors: dict[tuple[int, int], Path]) -> None:
        seen.add(key)
        ancestors = {**ancestors, key: directory}
        for entry in sorted(os.scandir(directory), key=lambda e: e.name):
            path = Path(entry.path)
            if not _visible(path):
                continue
            try:
                is_dir, is_file = entry.is_dir(), entry.is_file()
            except OSError:  # a looping link raises ELOOP here
                is_dir = is_file = False
            if not (is_dir or is_file):
                if entry.is_symlink() and is_symlink_loop(path):
                    _warn(warnings, _loop_warning(path))
            elif is_file:
                if is_image_file(path):
                    found.append(path)
            elif (key := _folder_key(path)) in ancestors:
                _warn(warnings, _loop_warning(path, ancestors[key]))
            elif key not in seen:
                walk(path, key, ancestors)

    above = {_folder_key(p): p for p in outer}
    if (key := _folder_key(folder)) in above:
        _warn(warnings, _loop_warning(folder, above[key]))
        return []
    walk(folder, key, above)
    return sorted(found)


def split_of_folder(name: str) -> str | None:
    """ "train", "val" or "test" for a split folder name such as `CVPR_2024_dataset_Val`, else
    None."""
    match = _SPLIT_DIR.match(name)
    return _SPLIT_NAMES[match.group(1).lower()] if match else None


def _class_rows(
    class_dir: Path, split: str, warnings: list[str], outer: tuple[Path, ...]
) -> list[dict]:
    """One row per distinct file (two links to one file are one image)."""
    paths = dict.fromkeys(str(p.resolve()) for p in _images_under(class_dir, warnings, outer))
    return [
        {"path": path, "label": class_dir.name, "split": split, "caption": ""} for path in paths
    ]


def _list_folders(root: Path, warnings: list[str]) -> list[dict]:
    loose = [p for p in root.iterdir() if p.is_file() and is_image_file(p)]
    if loose:
        _warn(
            warnings,
            f"{len(loose)} images directly under {root} are ignored; put them in a folder named "
            "after their class",
        )
    _report_loops(root, warnings)
    rows = []
    for class_dir in _subdirs(root):
        found = _class_rows(class_dir, "", warnings, (root,))
        if not found:
            _warn(
                warnings,
                f"class folder {class_dir} has no images ({_EXTENSIONS_TEXT}); it is left out",
            )
        rows.extend(found)
    return rows


def _list_presplit(root: Path, split_dirs: dict[str, Path], warnings: list[str]) -> list[dict]:
    rows = []
    _report_loops(root, warnings)
    for split, split_dir in split_dirs.items():
        _report_loops(split_dir, warnings)
        for class_dir in _subdirs(split_dir):
            rows.extend(_class_rows(class_dir, split, warnings, (root, split_dir)))
    classes = {name for d in split_dirs.values() for name in (c.name for c in _subdirs(d))}
    present = {(r["label"], r["split"]) for r in rows}
    for name in sorted(classes):
        missing = [s for s in split_dirs if (name, s) not in present]
        if len(missing) == len(split_dirs):
            _warn(
                warnings,
                f"class {name!r} has no images in any split folder under {root}; it is left out",
            )
        elif (
            missing and "train" not in missing
        ):  # no train images at all is an error (check_training_classes)
            _warn(
                warnings,
                f"class {name!r} has no {'/'.join(missing)} images under {root}; its scores there "
                "are undefined",
            )
    return rows


def check_training_classes(table: pd.DataFrame, where: str | Path) -> None:
    """Raises DataError naming each class of a given split that has no train images.

    Such a class could never be learned, and before this check it surfaced only later, as an
    unnamed failure after the run folder had been written.
    """
    trained = set(table.loc[table["split"] == "train", "label"])
    for name in sorted(set(table["label"]) - trained):
        present = [s for s in SPLITS if ((table["label"] == name) & (table["split"] == s)).any()]
        raise DataError(
            f"class {name!r} has no train images (only {'/'.join(present)}) under {where}; "
            "a class needs training images: add some to its train split, or remove the class"
        )


def _presplit_dirs(root: Path, subdirs: list[Path]) -> dict[str, Path] | None:
    """The split folders of a pre-split root, None for a class-folder root, DataError when it mixes
    both."""
    named = {d: split_of_folder(d.name) for d in subdirs}
    split_dirs = [d for d, s in named.items() if s]
    if not split_dirs or not any(_subdirs(d) for d in split_dirs):
        return None
    others = [d.name for d, s in named.items() if not s]
    if others:
        raise DataError(
            f"{root} mixes split folders ({', '.join(d.name for d in split_dirs)}) with other "
            f"folders ({', '.join(others)}); keep only train/val/test folders there, or only class "
            "folders"
        )
    by_split: dict[str, Path] = {}
    for d in split_dirs:
        if named[d] in by_split:
            raise DataError(
                f"{root} has two {named[d]} folders ({by_split[named[d]].name}, {d.name}); keep one"
            )
        by_split[named[d]] = d
    for needed in ("train", "val"):
        if needed not in by_split:
            raise DataError(
                f"pre-split dataset {root} has no {needed} folder; add one (a name ending in "
                f"{needed})"
            )
    return {s: by_split[s] for s in SPLITS if s in by_split}


def utf8_text(path: Path, what: str) -> str:
    """The file's text, or a DataError naming the first byte that is not UTF-8 and its line.

    Spreadsheets often save CSVs in a legacy code page (é as byte 0xe9); the fix is to save again
    as UTF-8, not to change the header. A UTF-8 byte-order mark is accepted.
    """
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise DataError(
            f"{what} {path} is not UTF-8 text (byte 0x{data[err.start]:02x} on line {line}); "
            "re-save it as UTF-8 (in a spreadsheet: CSV UTF-8)"
        ) from err


def _read_manifest(csv_path: Path) -> pd.DataFrame:
    text = utf8_text(csv_path, "manifest")
    try:
        frame = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise DataError(
            f"manifest {csv_path} is not a readable CSV ({str(err).splitlines()[0]}); "
            "write it with a header row path,label[,split][,caption]"
        ) from err
    frame.columns = [str(c).strip().lower() for c in frame.columns]
    for column in ("path", "label"):
        if column not in frame.columns:
            raise DataError(
                f"manifest {csv_path} has no {column!r} column; "
                "give a header row path,label[,split][,caption]"
            )
    return frame


def _manifest_splits(csv_path: Path, frame: pd.DataFrame) -> list[str]:
    if "split" not in frame.columns or not frame["split"].str.strip().any():
        return [""] * len(frame)
    raw = frame["split"].str.strip().str.lower()
    bad = sorted({s for s in raw if s not in _SPLIT_NAMES})
    if bad:
        raise DataError(
            f"manifest {csv_path} has split values {bad}; use train, val or test on every row "
            "(or leave the split column out)"
        )
    return [_SPLIT_NAMES[s] for s in raw]


def _list_manifest(csv_path: Path, warnings: list[str]) -> list[dict]:
    frame = _read_manifest(csv_path)
    base = csv_path.parent.resolve()
    splits = _manifest_splits(csv_path, frame)
    captions = frame["caption"].str.strip() if "caption" in frame.columns else [""] * len(frame)
    rows, outside, missing, blank = [], [], [], []
    for number, (raw_path, label, split, caption) in enumerate(
        zip(frame["path"], frame["label"], splits, captions), start=2
    ):
        if not raw_path.strip() or not label.strip():
            blank.append(number)
            continue
        path = (base / raw_path.strip()).resolve()
        if not path.is_relative_to(base):
            outside.append(raw_path)
        elif not path.is_file():
            missing.append(raw_path)
        rows.append({"path": str(path), "label": label.strip(), "split": split, "caption": caption})
    if blank:
        raise DataError(
            f"manifest {csv_path} has an empty path or label on line(s) {_few(blank)}; fill them "
            "in or drop those rows"
        )
    if outside:
        raise DataError(
            f"manifest {csv_path} lists {len(outside)} path(s) outside its folder "
            f"({_few(outside)}); move the images under the manifest's folder and use relative paths"
        )
    if missing:
        raise DataError(
            f"manifest {csv_path} lists {len(missing)} file(s) that do not exist "
            f"({_few(missing)}); fix the paths (relative to the manifest's folder) or drop those "
            "rows"
        )
    return _drop_repeated_rows(csv_path, rows, warnings)


def _drop_repeated_rows(csv_path: Path, rows: list[dict], warnings: list[str]) -> list[dict]:
    """A file listed twice in one split is kept once (with a warning); in two splits it is a leak
    and an error."""
    seen: dict[str, dict] = {}
    for row in rows:
        first = seen.setdefault(row["path"], row)
        if first is not row and first["split"] != row["split"]:
            raise DataError(
                f"manifest {csv_path} puts {row['path']} in two splits ({first['split']}, "
                f"{row['split']}); keep it in one"
            )
        if first is not row and first["label"] != row["label"]:
            raise DataError(
                f"manifest {csv_path} gives {row['path']} two labels ({first['label']}, "
                f"{row['label']}); keep one"
            )
    if len(seen) < len(rows):
        _warn(
            warnings,
            f"manifest {csv_path} lists {len(rows) - len(seen)} file(s) more than once; each is "
            "used once",
        )
    return list(seen.values())


def _few(items: list, limit: int = 10) -> str:
    shown = ", ".join(str(i) for i in items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def list_source(source: str | Path) -> Listing:
    """Finds the dataset's files and labels; raises DataError for a missing or empty source."""
    path = Path(source).expanduser()
    if path.is_symlink() and is_symlink_loop(path):
        raise DataError(
            f"dataset {path} is a symlink loop (it leads back to itself); point it at a real "
            "folder or manifest"
        )
    if not path.exists():
        raise DataError(
            f"dataset {path} does not exist; pass a class-folder root, a pre-split root or a CSV "
            "manifest"
        )
    warnings: list[str] = []
    if path.is_file():
        if path.suffix.lower() != ".csv":
            raise DataError(
                f"dataset {path} is a file but not a .csv manifest; pass a folder or a CSV with "
                "columns path,label"
            )
        layout, rows = "manifest", _list_manifest(path, warnings)
    else:
        split_dirs = _presplit_dirs(path, _subdirs(path))
        if split_dirs:
            layout, rows = "presplit", _list_presplit(path, split_dirs, warnings)
        else:
            layout, rows = "folders", _list_folders(path, warnings)
    if not rows:
        raise DataError(
            f"no images ({_EXTENSIONS_TEXT}) found under {path}; put them in one folder per class"
        )
    table = pd.DataFrame(rows, columns=["path", "label", "split", "caption"])
    return Listing(layout, table, warnings)
