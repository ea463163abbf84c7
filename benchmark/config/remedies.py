"""The augmentation remedies of issue 37 as run-configuration keys: their checks and their
`AugmentConfig`.

Plain Python at import (no TensorFlow), so a bad value is refused before anything loads; the
`AugmentConfig` is only made when a cell trains.
"""

from __future__ import annotations

import math
from typing import Any

# Config key -> its flag, for messages.
REMEDY_FLAGS = {
    "augment_policy": "--augment-policy",
    "random_erasing": "--random-erasing",
    "mixup": "--mixup",
    "cutmix": "--cutmix",
}


def remedy_refusal(config: Any) -> str:
    """Why the remedies in `config` cannot run ("" when they can); one line naming the flag."""
    for key in ("random_erasing", "mixup", "cutmix"):
        value = getattr(config, key)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"{REMEDY_FLAGS[key]} must be a number, got {value!r}"
        if not math.isfinite(value) or value < 0:
            return f"{REMEDY_FLAGS[key]} must be a finite number >= 0 (0 = off), got {value!r}"
    if config.random_erasing > 1:
        return f"--random-erasing is a probability in [0, 1], got {config.random_erasing!r}"
    if not config.augment:
        chosen = [flag for key, flag in REMEDY_FLAGS.items() if active(config, key)]
        if chosen:
            return (
                f"{', '.join(chosen)}: training augmentation is off (--no-augment); "
                "drop one or the other"
            )
    return ""


def active(config: Any, key: str) -> bool:
    """Whether the remedy `key` is switched on in `config`."""
    value = getattr(config, key)
    return value != "basic" if key == "augment_policy" else value > 0


def mixes_labels(config: Any) -> bool:
    """MixUp or CutMix: training batches carry mixed labels, which the feature banks cannot store
    (they keep one label per image)."""
    return bool(config.augment) and (config.mixup > 0 or config.cutmix > 0)


def mixing_flags(config: Any) -> str:
    """The label-mixing flags `config` sets, as a user typed them ("--mixup 0.2 --cutmix 1")."""
    return " ".join(
        f"{REMEDY_FLAGS[key]} {getattr(config, key):g}"
        for key in ("mixup", "cutmix")
        if getattr(config, key) > 0
    )


def augment_config(config: Any):
    """The `AugmentConfig` a training image cell of `config` uses (augmentation on)."""
    from data_pipeline import AugmentConfig  # loads Keras: only when a cell trains

    return AugmentConfig(
        strength=config.augment_strength,
        policy=config.augment_policy,
        random_erasing=config.random_erasing,
        mixup=config.mixup,
        cutmix=config.cutmix,
    )
