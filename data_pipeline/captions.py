"""Captions for the text modality, and a check that they do not simply spell out the label."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

_SEPARATORS = re.compile(r"[_\-\s]+")
_TRAILING_NUMBERS = re.compile(r"[\s\d]+$")


def caption_from_filename(path: str | Path) -> str:
    """A caption from a file name: `paper_gift_bag_1859.png` -> `paper gift bag`, `glass12.jpg`
    -> `glass`.

    The extension and trailing numbers (camera counters, `_<digits>`, digits glued to a word) carry
    no meaning, so they are dropped; `_` and `-` become spaces. A name made only of digits gives "".
    """
    words = _SEPARATORS.sub(" ", Path(path).stem).strip()
    return _TRAILING_NUMBERS.sub("", words).strip()


def _mentions(caption: str, label: str) -> bool:
    """Whether `caption` contains `label` as a whole word (also with `_`/`-` read as spaces),
    ignoring case."""
    forms = {label, _SEPARATORS.sub(" ", label).strip()}
    return any(
        re.search(rf"\b{re.escape(form)}\b", caption, flags=re.IGNORECASE) for form in forms if form
    )


def caption_leak_fraction(table: pd.DataFrame, class_names: list[str]) -> float:
    """Fraction of non-empty captions that contain their own class name (0.0 when there are none).

    A text model fed such captions reads the answer instead of learning it, so its scores overstate
    what a caption can tell. `class_names` limits the check to known classes.
    """
    known = set(class_names)
    pairs = [
        (str(c), str(label))
        for c, label in zip(table["caption"].fillna(""), table["label"])
        if str(c).strip() and label in known
    ]
    if not pairs:
        return 0.0
    return sum(_mentions(caption, label) for caption, label in pairs) / len(pairs)
