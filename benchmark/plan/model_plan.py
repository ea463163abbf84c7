"""One plan per model, resolved once from the configuration and the registry entry before any cell.

Every fact a cell needs about its model (what kind it is, the side it is fed at, the preprocessing
contract, where its weights come from, which feature paths its phases may take) is decided here,
and every flag the model cannot honour is refused here, in one line naming the flag. The grid
runner, the cell, `tune` and the checks before a run read the plan instead of deriving these
facts again, so a new model family is added in `models/` and is picked up here without edits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from benchmark.config.remedies import mixes_labels, mixing_flags
from benchmark.config.run_config import RunConfig
from benchmark.errors import UsageError
from benchmark.plan.weights import check_weights_file, weight_source
from benchmark.training.settings import progressive_refusal
from models import ModelEntry, SimpleCNNConfig, get_entry, resolve_model_names

# What the runner does with a model: train it (three ways), score it without training, or combine
# trained cells. `benchmark.run.loop.train_or_combine` dispatches on it in one place.
Kind = Literal["trained_backbone", "scratch", "text", "fusion", "zero_shot", "late_fusion"]

# Why phase 1 and 2 run online under MixUp/CutMix ({} is the flags as given).
MIXED_LABELS = (
    "MixUp/CutMix ({}) mix the labels of each batch, and the stored banks keep one label per image"
)
NO_STORED_FEATURES = (
    "no frozen pretrained image backbone under the shared head (scratch, text, fusion or hub)"
)


@dataclass(frozen=True)
class ModelPlan:
    """What one model of the grid is and how the run will treat it (see the module docstring).

    `head_features` and `fine_tune_features` are what the entry and the flags allow: "online" and
    "none" (nothing to train) are final; "auto", "cached" and "bank" are settled by the built
    model (its cut, the bank's size) in `run/phase1.py` and `run/phase2.py`.
    """

    name: str
    entry: ModelEntry
    kind: Kind
    image_size: int  # the side images are fed at (a text-only model's is unchecked: it sees none)
    preprocess: str
    modality: str
    weights: str  # what the builder receives: "imagenet", "none" or a file
    weight_source: str  # see `benchmark.plan.weights.WEIGHT_SOURCES`
    fine_tune_layers: int | str
    head_features: str
    fine_tune_features: str
    fine_tune_reason: str  # why phase 2 is "online" or "none" ("" otherwise)
    progressive_sizes: tuple[int, ...]
    components: tuple[str, ...]
    simple_cnn: SimpleCNNConfig | None  # the knobs, for the network that reads them

    @property
    def trains(self) -> bool:
        """Whether the model's cells train (zero-shot rows score prompts; late fusion combines)."""
        return self.kind not in ("zero_shot", "late_fusion")

    @property
    def from_scratch(self) -> bool:
        """An image-only network without pretrained weights: one phase, nothing to store."""
        return from_scratch(self.kind, self.modality, self.weight_source)


def model_kind(entry: ModelEntry) -> Kind:
    """The kind a registry entry declares (`ModelEntry.kind`, the same values as `Kind`)."""
    return entry.kind


def image_side(entry: ModelEntry, image_size: int | None) -> int:
    """The side `--image-size` (None: the entry's own) gives `entry`, checked against its limits."""
    side = image_size or entry.input_size
    if side < entry.min_input_size:
        raise UsageError(
            f"--image-size {side} is below {entry.name}'s minimum of "
            f"{entry.min_input_size} px; use at least {entry.min_input_size}, "
            f"or leave --image-size out ({entry.input_size} px)"
        )
    if entry.max_input_size is not None and side > entry.max_input_size:
        fixed = entry.max_input_size == entry.min_input_size
        limit = (
            f"runs at a fixed {entry.max_input_size} px"
            if fixed
            else f"accepts at most {entry.max_input_size} px"
        )
        raise UsageError(
            f"--image-size {side}: {entry.name} {limit}; leave --image-size out, "
            "or run it in a grid of its own"
        )
    return side


def head_features_refusal(kind: Kind, name: str, modality: str, scratch: bool) -> str:
    """Why phase 1 cannot train on stored backbone features ("" when it can, or has no phase 1)."""
    if kind in ("zero_shot", "late_fusion"):
        return ""  # they train no head
    if modality != "image":
        return f"{name} has a {modality} input: its phase 1 must run online"
    if scratch:
        return (
            f"{name} trains from scratch here (no frozen pretrained backbone to store features of)"
        )
    return ""


def phase2_features(
    config: RunConfig, entry: ModelEntry, kind: Kind, scratch: bool, layers: int | str
) -> tuple[str, str]:
    """Phase 2's data path as far as the entry and the flags decide it, and why."""
    if not kind_trains(kind) or scratch or layers in (0, "0") or config.fine_tune_epochs == 0:
        return "none", "no phase 2"
    if config.fine_tune_features == "online":
        return "online", "--fine-tune-features online"
    if mixes_labels(config):
        if config.fine_tune_features == "bank":
            raise UsageError(
                f"--fine-tune-features bank: {MIXED_LABELS.format(mixing_flags(config))}; "
                "use --fine-tune-features auto or online"
            )
        return "online", MIXED_LABELS.format(mixing_flags(config))
    if kind in ("text", "fusion") or entry.preset:
        if config.fine_tune_features == "bank":
            raise UsageError(
                f"--fine-tune-features bank: {entry.name} has {NO_STORED_FEATURES}; "
                "use --fine-tune-features auto or online"
            )
        return "online", NO_STORED_FEATURES
    return config.fine_tune_features, ""


def mixing_refusal(config: RunConfig, kind: Kind, name: str, modality: str) -> str:
    """Why `name` cannot train with MixUp/CutMix ("" when it can, or they are off)."""
    if mixes_labels(config) and kind_trains(kind) and modality == "image+text":
        return (
            f"{mixing_flags(config)}: {name} has an image+text input, and a mixed image would "
            "keep one image's caption; drop the flag, or run the model in a grid of its own"
        )
    return ""


def kind_trains(kind: Kind) -> bool:
    return kind not in ("zero_shot", "late_fusion")


def from_scratch(kind: Kind, modality: str, source: str) -> bool:
    """Random image-only weights: the recipe trains the whole network in one phase (as
    `models.BuiltModel.from_scratch` says of the built model)."""
    return modality == "image" and kind_trains(kind) and source == "none"


def resolve_plan(config: RunConfig, name: str) -> ModelPlan:
    """The plan of one model under `config`; a flag the model cannot honour is a `UsageError`."""
    entry = get_entry(name)
    kind = model_kind(entry)
    size = (
        image_side(entry, config.image_size)
        if kind != "text"
        else config.image_size or entry.input_size
    )  # feeds no image: nothing to check
    source = weight_source(entry, config.weights)
    scratch = from_scratch(kind, entry.modality, source)
    if reason := mixing_refusal(config, kind, entry.name, entry.modality):
        raise UsageError(reason)
    if config.head_features == "cached":
        if reason := head_features_refusal(kind, entry.name, entry.modality, scratch):
            raise UsageError(
                f"--head-features cached: {reason}; use --head-features auto or online"
            )
        if mixes_labels(config) and kind_trains(kind):
            raise UsageError(
                f"--head-features cached: {MIXED_LABELS.format(mixing_flags(config))}; "
                "use --head-features auto or online"
            )
    if not kind_trains(kind):
        head = "none"
    elif head_features_refusal(kind, entry.name, entry.modality, scratch) or mixes_labels(config):
        head = "online"
    else:
        head = config.head_features
    layers = entry.fine_tune_layers if config.fine_tune_layers is None else config.fine_tune_layers
    tune, why = phase2_features(config, entry, kind, scratch, layers)
    if reason := progressive_refusal(
        config.progressive_sizes, size, entry.name, pretrained=entry.pretrained
    ):
        raise UsageError(reason)
    return ModelPlan(
        name=entry.name,
        entry=entry,
        kind=kind,
        image_size=size,
        preprocess=entry.preprocess,
        modality=entry.modality,
        weights=config.weights,
        weight_source=source,
        fine_tune_layers=layers,
        head_features=head,
        fine_tune_features=tune,
        fine_tune_reason=why,
        progressive_sizes=tuple(config.progressive_sizes),
        components=entry.components,
        simple_cnn=config.simple_cnn_config() if kind == "scratch" else None,
    )


def expand_components(models: list[str]) -> list[str]:
    """Each late-fusion model's trained components before it, unless the grid has them already."""
    ordered: list[str] = []
    for model in models:
        for component in get_entry(model).components:
            if component not in ordered:
                ordered.append(component)
        if model not in ordered:
            ordered.append(model)
    return ordered


def resolve_plans(config: RunConfig) -> dict[str, ModelPlan]:
    """Every model of the grid (late fusion's components included), in grid order, planned once.

    Refusals that concern the grid as a whole (zero-shot rows beside another `--image-size`, a
    weights file no model reads) are reported for all the models they concern at once.
    """
    names = expand_components(resolve_model_names(config.models))
    entries = [get_entry(name) for name in names]
    fixed = [
        entry
        for entry in entries
        if model_kind(entry) == "zero_shot"
        and config.image_size
        and config.image_size != entry.input_size
    ]
    if fixed:
        sides = ", ".join(f"{entry.name} ({entry.input_size} px)" for entry in fixed)
        raise UsageError(
            f"--image-size {config.image_size} cannot apply to zero-shot rows, which "
            f"run at their preset's side: {sides}; drop --image-size, or run them in "
            "a grid of their own"
        )
    check_weights_file(names, config.weights)
    return {name: resolve_plan(config, name) for name in names}
