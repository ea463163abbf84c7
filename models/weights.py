"""Where pretrained weights come from, and a clear stop when they cannot be had.

Keras downloads ImageNet weights on first use into `$KERAS_HOME/models` (default `~/.keras/models`).
Machines without network (build machines, cluster compute nodes) fail there; we never fall back to
random weights silently, because a table of randomly initialised "pretrained" models is worse than
no table.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable
from pathlib import Path

from models.errors import ModelError


def keras_cache_dir() -> Path:
    """The folder Keras reads and fills with downloaded application weights."""
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return Path(home) / "models"


def weights_file_problem(path: Path) -> str | None:
    """Why `path` cannot be read as a weights file, in words ("is a folder"), or None.

    A folder or a symbolic-link loop is not "missing": saying so sends the user looking for a
    file that is there.
    """
    try:
        mode = path.stat().st_mode
    except OSError as err:
        if path.is_symlink():
            target = os.readlink(path)
            if err.errno == errno.ELOOP:
                return f"is a symbolic link that loops ({target!r})"
            return f"is a symbolic link to {target!r}, which does not exist"
        if err.errno == errno.ENOENT:
            return "does not exist"
        return f"cannot be read ({err.strerror or err})"
    if stat.S_ISDIR(mode):
        return "is a folder, not a file"
    if not stat.S_ISREG(mode):
        return "is not a regular file (a device, pipe or socket)"
    return None


def keras_weights_argument(weights: str) -> str | None:
    """Maps our weights setting to the `weights=` argument of a Keras application."""
    if weights == "imagenet":
        return "imagenet"
    if weights in ("none", "", None):
        return None
    path = Path(weights).expanduser()
    problem = weights_file_problem(path)
    if problem:
        raise ModelError(
            f"--weights file {weights!r} {problem}; pass imagenet, none or an existing weights file"
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
