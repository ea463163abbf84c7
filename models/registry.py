"""The model registry: one registered entry per model, found by name or wildcard.

Learned from timm's `register_model`: adding a model is one builder function and one
`register_model(ModelEntry(...))` beside it, and everything the rest of the suite needs to know
about it (its kind, input size, preprocessing contract, how far to fine-tune) is declared there as
plain data, so the runner can hand it to the data pipeline. Table-driven families (Keras
applications, keras-hub presets, fusion) register one entry per row the same way.
"""

from __future__ import annotations

import difflib
import fnmatch
import re

from models.errors import ModelError
from models.spec import BuildSpec, BuiltModel, ModelEntry

_REGISTRY: dict[str, ModelEntry] = {}
_ALIASES: dict[str, str] = {}


def register_model(entry: ModelEntry) -> ModelEntry:
    """Adds `entry` to the registry (the one way to register a model) and returns it.

    `ModelEntry` checks its own values; a name registered twice raises, and its Keras class and
    keras-hub preset become aliases (`MobileNetV2`, `hub:<preset>`).
    """
    if entry.name in _REGISTRY:
        raise ValueError(f"model {entry.name!r} is registered twice")
    _REGISTRY[entry.name] = entry
    if entry.keras_class:
        _ALIASES[entry.keras_class.lower()] = entry.name
    if entry.preset and entry.name.startswith("hub_"):
        _ALIASES[f"hub:{entry.preset}".lower()] = entry.name
    return entry


def _natural_key(name: str) -> list:
    """Sorts `resnet50v2` before `resnet101v2` and `efficientnet_b2` before `efficientnet_b10`."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def list_models(pattern: str = "*", exclude: list[str] | tuple[str, ...] = ()) -> list[str]:
    """Registry names matching an fnmatch wildcard, minus `exclude` patterns, in natural order."""
    names = [n for n in _REGISTRY if fnmatch.fnmatch(n, pattern.lower())]
    names = [n for n in names if not any(fnmatch.fnmatch(n, ex) for ex in exclude)]
    return sorted(names, key=_natural_key)


def get_entry(name: str) -> ModelEntry:
    """Looks a model up by registry name or Keras class alias (case-insensitive)."""
    key = name.strip().lower()
    key = _ALIASES.get(key, key)
    if key in _REGISTRY:
        return _REGISTRY[key]
    close = difflib.get_close_matches(key, list(_REGISTRY), n=3, cutoff=0.6)
    hint = (
        f"; did you mean {', '.join(close)}? (--list-models lists them all)"
        if close
        else "; --list-models lists them all"
    )
    raise ModelError(f"unknown model {name!r}{hint}")


def build_model(name: str, spec: BuildSpec) -> BuiltModel:
    """Builds a registered model by name (or alias); its builder is handed its entry, which the
    built model carries.
    """
    entry = get_entry(name)
    if entry.zero_shot:
        raise ModelError(
            f"{entry.name} is a zero-shot row: it is scored against class prompts, "
            "not built for training (models.zero_shot.build_zero_shot)"
        )
    if entry.builder is None:
        raise ModelError(
            f"{entry.name} is combined from trained {' and '.join(entry.components)} "
            "cells, not built"
        )
    return entry.builder(entry, spec)


def resolve_model_names(patterns: list[str]) -> list[str]:
    """Expands a user's comma list (names, aliases, wildcards, `all`) into registry names, in
    order."""
    resolved: list[str] = []
    for pattern in patterns:
        pattern = pattern.strip()
        if not pattern:
            continue
        if pattern.lower() == "all":
            matches = list_models()
        elif any(ch in pattern for ch in "*?["):
            matches = list_models(pattern)
            if not matches:
                raise ModelError(
                    f"--models pattern {pattern!r} matches no registered model; see --list-models"
                )
        else:
            matches = [get_entry(pattern).name]
        resolved.extend(m for m in matches if m not in resolved)
    if not resolved:
        raise ModelError("--models names no model; see --list-models")
    return resolved


def list_image_models() -> list[str]:
    """Registered image-only models (the ones fusion models can be built on)."""
    return sorted((n for n, e in _REGISTRY.items() if e.modality == "image"), key=_natural_key)
