"""Type checks for configuration values, read from `RunConfig`'s own annotations.

A config file can hold anything YAML parses (`batch_size: big`, `alphas: 0.5`), and a wrong type
must be one line naming the key, not a `TypeError` deep inside training. The annotations are the
one description of each key's type, so nothing is restated here.
"""

from __future__ import annotations

import math
from typing import Any

_SCALARS = {"int": int, "float": (int, float), "str": str, "bool": bool}


def value_matches(value: Any, annotation: str) -> bool:
    """Whether `value` fits an annotation such as `int | str | None` or `list[float]`.

    bool is not a number.
    """
    for option in (part.strip() for part in annotation.split("|")):
        if option == "None" and value is None:
            return True
        if option == "Any":
            return True
        if option.startswith("list[") and isinstance(value, list):
            if all(value_matches(item, option[5:-1]) for item in value):
                return True
        elif option.startswith("dict[") and isinstance(value, dict):
            return True
        elif option in _SCALARS:
            if isinstance(value, bool) and option != "bool":
                continue
            if isinstance(value, _SCALARS[option]):
                return True
    return False


def type_errors(values: dict[str, Any], annotations: dict[str, str]) -> list[str]:
    """One message per key whose value does not fit its annotation."""
    return [
        f"{key} (--{key.replace('_', '-')}) must be "
        f"{annotation.replace(' | None', ' or empty')}, got {values[key]!r}"
        for key, annotation in annotations.items()
        if not value_matches(values[key], annotation)
    ]


def non_finite_keys(values: dict[str, Any]) -> list[str]:
    """Keys holding NaN or an infinity (alone or in a list).

    A learning rate of NaN trains nothing.
    """

    def finite(value: Any) -> bool:
        return not isinstance(value, float) or math.isfinite(value)

    return [
        key
        for key, value in values.items()
        if not all(finite(v) for v in (value if isinstance(value, list) else [value]))
    ]
