"""What a run configuration tells the recipe, as plain data: the recipe's knobs, and which side
schedules progressive resizing accepts.

No TensorFlow here: `RunConfig` takes its defaults and checks from this module, and the command
line checks a configuration before it imports TensorFlow.
"""

from __future__ import annotations

from dataclasses import dataclass

from models import ModelError, get_entry

MIN_SIDE = 16  # five 2x2 poolings still leave a 1x1 map


@dataclass
class RecipeSettings:
    """The recipe's knobs for one cell (taken from the run configuration)."""

    initial_epochs: int = 10
    fine_tune_epochs: int = 10
    initial_lr: float = 1e-3
    fine_tune_lr: float = 1e-5
    fine_tune_layers: int | str = 30  # "all" unfreezes everything; 0 skips phase 2
    text_fine_tune_layers: int = 2  # top transformer layers of a text encoder unfrozen in phase 2
    weight_decay: float = 1e-4
    label_smoothing: float = 0.0
    lr_schedule: str = "constant"
    warmup_epochs: int = 0
    patience: int = 3
    monitor: str = "val_loss"
    ema: bool = False  # evaluate (and early-stop on) an exponential moving average of the weights
    ema_momentum: float = 0.99  # per step: the average forgets a step's weights over about
    #                             1 / (1 - momentum) steps
    jit_compile: bool | str = False  # XLA: never on CPU (far slower there), Keras's "auto" on GPU


def progressive_refusal(sizes: list[int], image_size: int | None, model: str) -> str | None:
    """Why `model` cannot train on the side schedule `sizes` (None when it can): one line naming
    the flag.

    That the sides are whole numbers is `RunConfig`'s type check (its `list[int]` annotation).
    """
    if not sizes:
        return None
    if sizes[0] < MIN_SIDE or any(b <= a for a, b in zip(sizes, sizes[1:])):
        return f"--progressive-sizes must rise strictly from at least {MIN_SIDE} px, got {sizes}"
    try:
        entry = get_entry(model)
    except ModelError:
        return None  # the unknown name is reported where the grid is resolved
    final = image_size or entry.input_size
    if sizes[-1] >= final:
        return (
            f"--progressive-sizes {sizes} must stay below the final side {final} px "
            f"(--image-size) of {model}"
        )
    if entry.pretrained:
        return (
            "--progressive-sizes applies to the networks built to train from scratch "
            f"(simple_cnn); {model} is a pretrained backbone with a fixed input size: "
            "leave --progressive-sizes out"
        )
    return None
