"""What a run configuration tells the recipe, as plain data: the recipe's knobs, and which side
schedules progressive resizing accepts.

No TensorFlow here: `RunConfig` takes its defaults and checks from this module, and the command
line checks a configuration before it imports TensorFlow.
"""

from __future__ import annotations

from dataclasses import dataclass

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

    @property
    def skips_phase2(self) -> bool:
        """No layer to unfreeze or no epoch to train it: the recipe ends after phase 1.

        The one place this is decided: the plan (`benchmark.plan.model_plan.has_phase2`) asks the
        same question of the configuration's knobs before the model is built.
        """
        return self.fine_tune_layers in (0, "0") or self.fine_tune_epochs == 0


def progressive_refusal(
    sizes: list[int] | tuple[int, ...],
    final: int | None = None,
    model: str = "",
    *,
    pretrained: bool = False,
) -> str | None:
    """Why a network cannot train on the side schedule `sizes` (None when it can): one line naming
    the flag.

    Without `final` only the schedule itself is judged (`RunConfig` does that); the run's model
    plan (`benchmark.plan`) adds the model's final side and whether it is pretrained. That the
    sides are whole numbers is `RunConfig`'s type check (its `list[int]` annotation).
    """
    if not sizes:
        return None
    if sizes[0] < MIN_SIDE or any(b <= a for a, b in zip(sizes, sizes[1:])):
        return (
            f"--progressive-sizes must rise strictly from at least {MIN_SIDE} px, got {list(sizes)}"
        )
    if final is None:
        return None
    if sizes[-1] >= final:
        return (
            f"--progressive-sizes {list(sizes)} must stay below the final side {final} px "
            f"(--image-size) of {model}"
        )
    if pretrained:
        return (
            "--progressive-sizes applies to the networks built to train from scratch "
            f"(simple_cnn); {model} is a pretrained backbone with a fixed input size: "
            "leave --progressive-sizes out"
        )
    return None
