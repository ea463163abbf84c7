"""Maps a registry entry's preprocessing contract to the Keras function that implements it.

The data pipeline applies the returned function exactly once, after augmentation; "raw" means the
model rescales inside itself and must receive 0..255 pixels untouched.
"""
from __future__ import annotations

from collections.abc import Callable

import keras

_FUNCTIONS: dict[str, Callable | None] = {
    "raw": None,
    # x / 127.5 - 1 (MobileNet, MobileNetV2, ResNet V2 all share Keras's "tf" mode).
    "tf": keras.applications.mobilenet_v2.preprocess_input,
    # RGB -> BGR and ImageNet mean subtraction (ResNet V1).
    "caffe": keras.applications.resnet.preprocess_input,
    # x / 255, then ImageNet mean/std normalisation (DenseNet-style).
    "torch": keras.applications.densenet.preprocess_input,
}


def preprocess_function(contract: str) -> Callable | None:
    """The function to apply to 0..255 float pixels for `contract`, or None for raw input."""
    if contract not in _FUNCTIONS:
        raise ValueError(f"unknown preprocess contract {contract!r}; expected one of {sorted(_FUNCTIONS)}")
    return _FUNCTIONS[contract]
