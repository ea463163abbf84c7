"""`--list-models`: the registry as a table, answered in well under a second.

It imports neither TensorFlow nor Keras: the registry is plain data, and parameter counts are
registry data too (`models.parameter_counts`, checked against real builds by a test), so nothing
is built. Huge backbones (ConvNeXt Base and up) carry their own `params_m`; text, fusion, keras-hub
and zero-shot rows are blank, as their counts depend on `--text-encoder` or on the preset's config.
"""

from __future__ import annotations

from tabulate import tabulate

from benchmark.output import say
from models import get_entry, list_models
from models.parameter_counts import PARAMETER_COUNTS

COLUMNS = [
    "model",
    "family",
    "params_m",
    "input",
    "preprocess",
    "fine_tune_layers",
    "pretrained",
    "modality",
    "weights_from",
]


def weights_from(entry) -> str:
    """Where `--weights imagenet` comes from: a package installed with the suite, or a download."""
    if entry.weights_source:
        return entry.weights_source
    if entry.zero_shot or entry.preset:
        return "keras-hub download"
    if entry.image_model:  # early fusion: its image branch's source, and the text encoder's
        return f"{weights_from(get_entry(entry.image_model))} + keras-hub text encoder"
    if entry.modality != "image":
        return "keras-hub download (text encoder)"
    return "Keras download" if entry.pretrained else ""


def registry_rows() -> list[list]:
    rows = []
    for name in list_models():
        entry = get_entry(name)
        count = PARAMETER_COUNTS.get(name) if entry.modality == "image" else None
        millions = (
            entry.params_m if entry.params_m is not None else (count / 1e6 if count else None)
        )
        rows.append(
            [
                name,
                entry.family,
                f"{millions:.2f}" if millions is not None else "",
                entry.input_size,
                entry.preprocess,
                entry.fine_tune_layers,
                "yes" if entry.pretrained else "no",
                entry.modality,
                weights_from(entry),
            ]
        )
    return rows


def list_models_command() -> int:
    say(tabulate(registry_rows(), headers=COLUMNS, tablefmt="github"))
    return 0
