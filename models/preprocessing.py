"""Maps a registry entry's preprocessing contract to the Keras function that implements it.

The data pipeline applies the returned function exactly once, after augmentation; "raw" means the
model rescales inside itself and must receive 0..255 pixels untouched.
"""

from __future__ import annotations

from collections.abc import Callable

# Contract -> the `keras.applications` module whose `preprocess_input` implements it (looked up when
# asked, so importing the registry does not import TensorFlow).
_MODULES: dict[str, str | None] = {
    "raw": None,
    # x / 127.5 - 1 (MobileNet, MobileNetV2, ResNet V2 all share Keras's "tf" mode)
    "tf": "mobilenet_v2",
    "caffe": "resnet",  # RGB -> BGR and ImageNet mean subtraction (ResNet V1)
    "torch": "densenet",  # x / 255, then ImageNet mean/std normalisation (DenseNet-style)
}


def preprocess_function(contract: str) -> Callable | None:
    """The function to apply to 0..255 float pixels for `contract`, or None for raw input."""
    if contract not in _MODULES:
        raise ValueError(
            f"unknown preprocess contract {contract!r}; expected one of {sorted(_MODULES)}"
        )
    if _MODULES[contract] is None:
        return None
    import keras

    return getattr(keras.applications, _MODULES[contract]).preprocess_input
