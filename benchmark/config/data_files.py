"""Reading a YAML or JSON file a user names (`--config`, a preset, `--label-map`, `--space`).

Such a file holds a few keys of plain data, so anything else is refused at once in one line naming
the file: more than `MAX_BYTES`, bytes that are not UTF-8 text, or YAML aliases (`*name`). An
alias repeats a whole node, so a 1 KB file of nested aliases (the "billion laughs") expands to
gigabytes when anything walks it: it took 42 s and 3.5 GB to end in a MemoryError before this
check. JSON has no aliases; it is read by the same rules otherwise.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from benchmark.errors import UsageError, first_line

MAX_BYTES = 1 << 20  # a configuration or a label map of thousands of classes is a few KB


class _AliasRefused(Exception):
    """An alias met while composing; carries where it is."""


class _NoAliasLoader(yaml.SafeLoader):
    """`yaml.SafeLoader` that stops at the first alias, before anything is built from it."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark
            raise _AliasRefused(f"line {mark.line + 1}, column {mark.column + 1}")
        return super().compose_node(parent, index)


def read_data_file(path: str | Path, what: str) -> Any:
    """The data of a YAML or JSON (by its `.json` suffix) file; a `UsageError` that starts with
    `what` and the file's name for a file too large, not text, not parseable or with aliases."""
    path = Path(path)
    kind = "JSON" if path.suffix.lower() == ".json" else "YAML"
    where = f"{what} {str(path)!r}"
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise UsageError(
                f"{where} is {size / 2**20:.1f} MiB; a {kind} file of settings is at most "
                f"{MAX_BYTES // 2**20} MiB (is it the right file?)"
            )
        raw = path.read_bytes()
    except OSError as err:
        raise UsageError(f"{where} cannot be read ({err.strerror or err})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise UsageError(
            f"{where} is not {kind} text: byte {raw[err.start]:#04x} at offset {err.start} is "
            "not UTF-8 (is it the right file?)"
        ) from None
    try:
        if kind == "JSON":
            return json.loads(text)
        return yaml.load(text, Loader=_NoAliasLoader)  # a SafeLoader: plain data only
    except _AliasRefused as err:
        raise UsageError(
            f"{where} uses a YAML alias (*name, at {err}); settings files may not repeat nodes "
            "by alias: write the value out"
        ) from None
    except (ValueError, RecursionError, yaml.YAMLError) as err:  # RecursionError: deep nesting
        raise UsageError(f"{where} is not valid {kind}: {first_line(err, limit=300)}") from None
