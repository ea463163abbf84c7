"""Which data sources a run trains and tests on: repeated `--data` folders, or a sources YAML.

One `--data` is one dataset, handled exactly as before (`scan_dataset`, `split_dataset`). Several,
or one `.yaml`/`.yml` file listing them, are merged by `data_pipeline.merge`. This module only
reads and checks the description (names, paths, keys, label maps) and decodes no image, so the
command line can refuse a bad sources file in a second, before TensorFlow is imported.

A sources YAML is a list of entries (or a mapping with one key `sources` holding that list):

    - path: ../shared/trashnet          # relative paths are relative to the YAML's folder
      name: trashnet                    # default: the folder's (or manifest's) name
    - path: photos/taco
      name: taco
      label_map: taco_map.yaml          # the `evaluate --label-map` format: class -> class or null
      test_only: true                   # never trained on: every image goes to test
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from data_pipeline.errors import DataError

SOURCE_KEYS = ("path", "name", "label_map", "test_only")
SOURCES_SUFFIXES = (".yaml", ".yml")
# Source names become leaderboard column names (`test_accuracy_on_<name>`) and CSV cells.
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass(frozen=True)
class SourceSpec:
    """One data source of a merged run.

    Args:
        path: a class-folder root, pre-split root or CSV manifest (as `scan_dataset` takes).
        name: names the source in `splits.csv` and in the leaderboard's per-source columns.
        label_map: the source's class -> the run's class, or None to leave the class out; classes
            not named keep their own name. Empty: every class keeps its name.
        test_only: every image goes to test; the source is never trained or validated on.
        map_file: where `label_map` was read from ("" when none or given inline), for messages.
    """

    path: Path
    name: str
    label_map: dict[str, str | None] = field(default_factory=dict)
    test_only: bool = False
    map_file: str = ""


def is_sources_file(data: str | Path) -> bool:
    """Whether a single `--data` names a sources YAML rather than a dataset."""
    return Path(data).suffix.lower() in SOURCES_SUFFIXES


def is_multi_source(data: str | list[str] | None) -> bool:
    """Whether `--data` asks for a merge (several sources or a sources YAML), not one dataset."""
    if isinstance(data, list):
        return len(data) > 1 or (len(data) == 1 and is_sources_file(data[0]))
    return data is not None and is_sources_file(data)


def name_of_path(path: str | Path) -> str:
    """The default source name: the folder's name (a manifest's stem), with characters a column name
    should not hold replaced by `_`."""
    path = Path(path).expanduser()
    base = path.stem if path.suffix.lower() == ".csv" else path.name
    if not base:
        base = path.resolve().name
    return re.sub(r"[^A-Za-z0-9_.-]", "_", base).lstrip("._-") or "source"


def read_sources(data: str | list[str]) -> list[SourceSpec]:
    """The sources `--data` names: one per repeated folder, or the entries of a sources YAML.

    Raises DataError (one line naming the file or flag) for a missing path, an unknown key, a bad
    name, a bad label map or two sources of one name.
    """
    values = [data] if isinstance(data, str | Path) else list(data)
    files = [v for v in values if is_sources_file(v)]
    if files and len(values) > 1:
        raise DataError(
            f"--data {files[0]} is a sources YAML; give it as the only --data (list every source "
            "in it), or repeat --data with folders only"
        )
    if files:
        specs = read_sources_file(files[0])
    else:
        specs = []
        for value in values:
            path = Path(value).expanduser()
            if not path.exists():
                raise DataError(
                    f"--data {value} does not exist; pass a class-folder root, a pre-split root or "
                    "a CSV manifest"
                )
            specs.append(SourceSpec(path, name_of_path(path)))
    check_unique_names(specs)
    return specs


def check_unique_names(specs: list[SourceSpec]) -> None:
    """Two sources of one name would share a leaderboard column; the second is refused."""
    seen: dict[str, Path] = {}
    for spec in specs:
        if spec.name in seen:
            raise DataError(
                f"two sources are named {spec.name!r} ({seen[spec.name]}, {spec.path}); give "
                "them different names (`name:` in a sources YAML)"
            )
        seen[spec.name] = spec.path


def read_sources_file(path: str | Path) -> list[SourceSpec]:
    """The entries of a sources YAML (see the module docstring), checked one by one."""
    path = Path(path).expanduser()
    where = f"sources file {path}"
    if not path.is_file():
        raise DataError(f"{where} does not exist; give a YAML list of sources (path, name, ...)")
    entries = _load_yaml(path, where)
    if isinstance(entries, dict) and set(entries) == {"sources"}:
        entries = entries["sources"]
    if not isinstance(entries, list) or not entries:
        raise DataError(
            f"{where} must hold a non-empty list of sources, each a mapping with a `path` "
            "(and optionally name, label_map, test_only)"
        )
    return [_entry(entry, number, path.parent, where) for number, entry in enumerate(entries, 1)]


def _load_yaml(path: Path, where: str):
    try:
        text = path.read_text(encoding="utf-8")
        return json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (OSError, UnicodeDecodeError, ValueError, yaml.YAMLError) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise DataError(f"{where} is not valid YAML ({reason}); fix it") from None


def _entry(entry, number: int, base: Path, where: str) -> SourceSpec:
    """One checked source entry; `number` counts from 1, for messages."""
    at = f"{where}, source {number}"
    if not isinstance(entry, dict) or "path" not in entry:
        raise DataError(f"{at} is {entry!r}; give a mapping with at least a `path` key")
    unknown = sorted(str(key) for key in entry if key not in SOURCE_KEYS)
    if unknown:
        raise DataError(
            f"{at} has unknown key(s) {', '.join(map(repr, unknown))}; the keys are "
            f"{', '.join(SOURCE_KEYS)}"
        )
    if not isinstance(entry["path"], str) or not entry["path"].strip():
        raise DataError(f"{at}: path must be a folder or CSV manifest, got {entry['path']!r}")
    path = (base / Path(entry["path"]).expanduser()).resolve()
    if not path.exists():
        raise DataError(f"{at}: path {entry['path']!r} ({path}) does not exist")
    name = entry.get("name", name_of_path(path))
    if not isinstance(name, str) or not _NAME.match(name):
        raise DataError(
            f"{at}: name {name!r} must be letters, digits, '_', '-' or '.' (it names a "
            "leaderboard column)"
        )
    test_only = entry.get("test_only", False)
    if not isinstance(test_only, bool):
        raise DataError(f"{at}: test_only must be true or false, got {test_only!r}")
    mapping, map_file = entry.get("label_map"), ""
    if isinstance(mapping, str):
        map_file = str((base / Path(mapping).expanduser()).resolve())
        mapping = read_class_map(map_file, f"{at}: label_map")
    elif mapping is not None:
        mapping = _checked_map(mapping, f"{at}: label_map")
    return SourceSpec(path, name, mapping or {}, test_only, map_file)


def read_class_map(path: str | Path, where: str = "label map") -> dict[str, str | None]:
    """A label-map file in the `evaluate --label-map` format (YAML or JSON: class -> class, a
    one-class list, or null), as a plain dict.

    Training needs one label per image, so a class mapped to several classes (which `evaluate`
    reads as "any of them is right") is refused here.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{where} {str(path)!r} does not exist; give a YAML or JSON file")
    return _checked_map(_load_yaml(path, f"{where} {str(path)!r}"), f"{where} {str(path)!r}")


def _checked_map(mapping, where: str) -> dict[str, str | None]:
    if not isinstance(mapping, dict) or not mapping:
        raise DataError(
            f"{where} must be a mapping of the source's class -> the run's class or null "
            "(one per line: `Papier: paper`)"
        )
    checked: dict[str, str | None] = {}
    for key, value in mapping.items():
        if isinstance(value, list) and len(value) == 1:
            value = value[0]
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise DataError(
                f"{where}: {key!r} maps to {value!r}; a trained-on image needs one class: give "
                "one class name, or null to leave the class out"
            )
        checked[str(key)] = value.strip() if isinstance(value, str) else None
    return checked
