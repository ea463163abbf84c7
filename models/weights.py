"""Where pretrained weights come from, and a clear stop when they cannot be had.

Keras downloads ImageNet weights on first use into `$KERAS_HOME/models` (default `~/.keras/models`).
Machines without network (build machines, cluster compute nodes) fail there; we never fall back to
random weights silently, because a table of randomly initialised "pretrained" models is worse than
no table.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from models.errors import ModelError


def keras_cache_dir() -> Path:
    """The folder Keras reads and fills with downloaded application weights."""
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return Path(home) / "models"


def keras_weights_argument(weights: str) -> str | None:
    """Maps our weights setting to the `weights=` argument of a Keras application."""
    if weights == "imagenet":
        return "imagenet"
    if weights in ("none", "", None):
        return None
    path = Path(weights).expanduser()
    if not path.is_file():
        raise ModelError(
            f"--weights file {weights!r} does not exist; pass imagenet, none or an existing "
            "weights file"
        )
    return str(path)


def weights_unavailable_message(model_name: str, cause: BaseException) -> str:
    """One line naming the model, the cache folder and the remedies."""
    reason = str(cause).splitlines()[0][:160] if str(cause) else type(cause).__name__
    return (
        f"ImageNet weights for {model_name} could not be loaded ({reason}); they are not in "
        f"{keras_cache_dir()}: pre-fetch them on a connected machine (python run_benchmark.py "
        f"fetch-weights --models {model_name}), point KERAS_HOME at a filled cache, or pass "
        "--weights none (then try the suite offline with --preset smoke)"
    )


def build_with_weights(model_name: str, weights: str, construct: Callable[[str | None], object]):
    """Calls `construct(keras_weights)`, turning a failed ImageNet download into a `ModelError`."""
    keras_weights = keras_weights_argument(weights)
    try:
        return construct(keras_weights)
    except ModelError:
        raise
    except Exception as err:  # urllib, OSError, ValueError from get_file: all mean "not available"
        if keras_weights == "imagenet":
            raise ModelError(weights_unavailable_message(model_name, err)) from err
        if keras_weights is not None:
            raise ModelError(
                f"--weights file {weights!r} does not fit {model_name}: "
                f"{str(err).splitlines()[0][:200]}"
            ) from err
        raise
