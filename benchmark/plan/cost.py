"""What each cell of a grid will do and roughly how long it takes, before anything is built.

`--dry-run` prints, per cell, its image side, its epochs, the data path of each phase and an
ESTIMATE of its time; the progress line counts a cell's epochs from `cell_epochs`. The estimate is
a deliberately simple cost model, not a measurement of this machine:

    cell seconds = SETUP + train images x sum over phases of (epochs x seconds per image-epoch)

with seconds per image-epoch per model family and data path measured on a 2-core CPU at 128 px
(`FAMILY_COSTS`, how they were measured is in docs/first-run.md), scaled by (side / 128)^2 for the
work that sees images. Paths: phase 1 on the feature bank costs a backbone pass per image-epoch in
the cell that fills the bank (the first alpha of a model) and almost nothing in the others; phase 2
on the fine-tune bank costs the top of the backbone, plus the bottom's pass where it fills the
bank; online phases pass every image through the backbone every epoch. A family not measured here
takes `UNMEASURED` (a mid-sized ImageNet CNN), and the dry run says so.
"""

from __future__ import annotations

from dataclasses import dataclass

from benchmark.config.run_config import RunConfig
from benchmark.plan.model_plan import ModelPlan

REFERENCE_SIDE = 128


@dataclass(frozen=True)
class FamilyCost:
    """Seconds per training image per epoch at 128 px on the reference machine (2 idle cores)."""

    image_pass: float  # the frozen backbone's forward pass (filling a bank, or an online phase 1)
    head: float  # training the head on stored features (the feature bank)
    fine_tune: float  # training the unfrozen top on stored activations (the fine-tune bank)
    whole: float  # training a whole network from images (from scratch)
    setup: float  # seconds per cell outside the epochs: build, trace, evaluate, save


FAMILY_COSTS: dict[str, FamilyCost] = {}
UNMEASURED = FamilyCost(image_pass=0.0, head=0.0, fine_tune=0.0, whole=0.0, setup=0.0)


def cell_epochs(plan: ModelPlan, config: RunConfig) -> tuple[int, int]:
    """(phase 1, phase 2) epochs planned for one cell of `plan`'s model; early stopping may end a
    phase sooner. A from-scratch network trains once with the budget of both phases."""
    if not plan.trains:
        return 0, 0
    if plan.from_scratch:
        return config.initial_epochs + config.fine_tune_epochs, 0
    tune = 0 if plan.fine_tune_features == "none" else config.fine_tune_epochs
    return config.initial_epochs, tune


def phase_paths(plan: ModelPlan, config: RunConfig, first_of_model: bool) -> tuple[str, str]:
    """How phase 1 and phase 2 of a cell get their data, as the dry run states them.

    "bank, fills" is the model's first cell (it computes the bank), "bank, reuses" the others;
    "auto" phase 2 is settled by the built model (bank where its cut allows, else online).
    """
    fills = "fills" if first_of_model else "reuses"
    if not plan.trains:
        return "none", "none"
    if plan.from_scratch:
        return "online (whole net)", "none"
    head = plan.head_features
    if head in ("auto", "cached"):
        head = f"bank, {fills}" if config.augment else f"stored, {fills}"
    tune = plan.fine_tune_features
    if tune == "auto":
        tune = f"bank*, {fills}"
    elif tune == "bank":
        tune = f"bank, {fills}"
    return head, tune


def estimate_seconds(
    plan: ModelPlan, config: RunConfig, train_images: int, first_of_model: bool
) -> tuple[float, bool]:
    """(estimated seconds of one cell, whether its family was measured); see the module
    docstring."""
    cost = FAMILY_COSTS.get(plan.entry.family)
    measured = cost is not None
    cost = cost or UNMEASURED
    scale = (plan.image_size / REFERENCE_SIDE) ** 2
    head_epochs, tune_epochs = cell_epochs(plan, config)
    head_path, tune_path = phase_paths(plan, config, first_of_model)
    if not plan.trains:
        return cost.setup, measured
    if plan.from_scratch:
        per_image = head_epochs * cost.whole * scale
    else:
        filling = first_of_model or head_path.startswith("online")
        per_image = head_epochs * (cost.head + (cost.image_pass * scale if filling else 0.0))
        tune_fill = first_of_model or tune_path.startswith("online")
        per_image += tune_epochs * scale * (cost.fine_tune + (cost.image_pass if tune_fill else 0))
    return cost.setup + train_images * per_image, measured
