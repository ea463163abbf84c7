"""What each cell of a grid will do and roughly how long it takes, before anything is built.

`--dry-run` prints, per cell, its image side, its epochs, the data path of each phase and an
ESTIMATE of its time; the progress line counts a cell's epochs from `cell_epochs`. The estimate is
a deliberately simple cost model, not a measurement of this machine:

    cell seconds = SETUP + train images x sum over phases of (epochs x seconds per image-epoch)

with seconds per image-epoch per model family and data path measured on a 2-core CPU at 128 px
(`COSTS`, how they were measured is in docs/first-run.md), scaled by (side / 128)^2 for the
work that sees images. Paths: phase 1 on the feature bank costs a backbone pass per image-epoch in
the cell that fills the bank (the first alpha of a model) and almost nothing in the others; phase 2
on the fine-tune bank costs the top of the backbone, plus the bottom's pass where it fills the
bank; online phases pass every image through the backbone every epoch. A family not measured here
takes `UNMEASURED` (the largest measured backbone's costs), and the dry run says so.
"""

from __future__ import annotations

from dataclasses import dataclass

from benchmark.config.run_config import RunConfig
from benchmark.plan.model_plan import ModelPlan

REFERENCE_SIDE = 128


@dataclass(frozen=True)
class FamilyCost:
    """Seconds per training image per epoch at 128 px on 2 idle cores, by data path."""

    image_pass: float  # the frozen backbone's forward pass (filling the feature bank, or online)
    cut_pass: float  # the frozen bottom's pass up to the fine-tune cut (filling the fine-tune bank)
    head: float  # training the head on stored features (the feature bank)
    fine_tune: float  # training the unfrozen top and the head on stored activations
    whole: float  # training a whole network from images (from scratch)
    setup: float  # seconds per cell outside the epochs: build, trace, evaluate, save


# By registry name, else by family (`ModelEntry.family`). Measured on the shared 2-core Intel Xeon
# (one cell of each at 128 px, phase times from the records), scaled to an idle machine as
# docs/first-run.md ("The cost model") describes: estimates, good to about a third.
COSTS: dict[str, FamilyCost] = {
    "efficientnet_lite0": FamilyCost(
        image_pass=0.0047, cut_pass=0.0031, head=0.00045, fine_tune=0.0059, whole=0.0, setup=14.0
    ),
    "efficientnet_lite1": FamilyCost(
        image_pass=0.0038, cut_pass=0.0030, head=0.00045, fine_tune=0.0087, whole=0.0, setup=13.0
    ),
    "efficientnet_lite2": FamilyCost(
        image_pass=0.0053, cut_pass=0.0032, head=0.00045, fine_tune=0.0079, whole=0.0, setup=12.0
    ),
    "scratch": FamilyCost(  # simple_cnn, and any network trained from scratch
        image_pass=0.0, cut_pass=0.0, head=0.0, fine_tune=0.0, whole=0.020, setup=5.6
    ),
}
# A model whose name and family are unmeasured takes the largest measured pretrained backbone's
# costs, a guess the dry run marks with "?" (a bigger backbone takes longer).
UNMEASURED = COSTS["efficientnet_lite2"]
RUN_SETUP_SECONDS = 17.0  # importing TensorFlow, splitting, the tables and the report
PROFILE_SECONDS = 62.0  # the deployment profile (Keras, LiteRT, ONNX exports) of one model


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
    "bank*" is a phase-2 bank the built model may still send online (its cut, the bank's size),
    where `--fine-tune-features auto` chose it.
    """
    fills = "fills" if first_of_model else "reuses"
    if not plan.trains:
        return "none", "none"
    if plan.from_scratch:
        return "online (whole net)", "none"
    head = plan.head_features
    if head in ("bank", "cached"):
        head = f"bank, {fills}" if head == "bank" else f"stored, {fills}"
    tune = plan.fine_tune_features
    if tune == "bank":
        tune = f"bank, {fills}" if plan.fine_tune_bank_required else f"bank*, {fills}"
    return head, tune


def estimate_seconds(
    plan: ModelPlan, config: RunConfig, train_images: int, first_of_model: bool
) -> tuple[float, bool]:
    """(estimated seconds of one cell, whether its family was measured); see the module
    docstring."""
    cost = COSTS.get(plan.name) or COSTS.get(plan.entry.family)
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
        per_image += tune_epochs * scale * (cost.fine_tune + (cost.cut_pass if tune_fill else 0))
    return cost.setup + train_images * per_image, measured


@dataclass(frozen=True)
class CellEstimate:
    """What the dry run states of one cell."""

    side: int
    epochs: tuple[int, int]  # (phase 1, phase 2)
    phase1: str
    phase2: str
    seconds: float
    measured: bool  # whether its family's costs were measured (else `UNMEASURED`'s guess)


def grid_estimates(cells, plans: dict[str, ModelPlan], config: RunConfig, train_images) -> list:
    """One `CellEstimate` per cell of `cells` (grid order): the first cell of a model, seed and fold
    fills the banks that the later ones reuse. `train_images(fold)` is the fold's training count."""
    seen, estimates = set(), []
    for cell in cells:
        plan = plans[cell.model]
        first = (cell.model, cell.seed, cell.fold) not in seen
        seen.add((cell.model, cell.seed, cell.fold))
        seconds, measured = estimate_seconds(plan, config, train_images(cell.fold), first)
        estimates.append(
            CellEstimate(
                plan.image_size,
                cell_epochs(plan, config),
                *phase_paths(plan, config, first),
                seconds,
                measured,
            )
        )
    return estimates


def run_overhead_seconds(config: RunConfig, models: int) -> float:
    """The run's time outside its cells: start-up, tables and report, and the deployment profile
    of each model's best cell (with `profile`)."""
    return RUN_SETUP_SECONDS + (PROFILE_SECONDS * models if config.profile else 0.0)
