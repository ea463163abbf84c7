"""The data paths of one cell's two phases, settled in one place from its plan and its built model.

The plan (`benchmark.plan.model_plan`) chooses each phase's path from the entry and the flags. Two
facts only the built model knows can still send a stored path online: whether the model has the
pooled, frozen backbone that phase 1's stored features need, and phase 2's cut and the size of
its bank (`TuneBankFacts`). A resumed cell adds one more: its phase-2 backups hold the weights
of the model that wrote them (the full model online, the model from the cut on the bank), so it
keeps that path. `cell_phases` weighs all of them, once per cell; the cell, the tuner and the
records read its answer and decide nothing again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from benchmark.config.run_config import RunConfig
from benchmark.errors import UsageError
from benchmark.plan.model_plan import ModelPlan
from benchmark.training.finetune_bank import MIB


@dataclass(frozen=True)
class TuneBankFacts:
    """What the built model says about phase 2 on the fine-tune bank.

    `cut` is its clean fine-tune cut (None with `refusal` saying why there is none); `memory` and
    `disk` are the bank's bytes (an epoch in memory, all epochs on disk); `free` is the disk's free
    space under the run folder.
    """

    cut: object | None
    refusal: str = ""
    memory: int = 0
    disk: int = 0
    free: int = 0


@dataclass(frozen=True)
class PhasePaths:
    """What one cell's phases train on, and why.

    `head` is "bank", "cached" or "online"; `tune` is "bank", "online" or "none". `reason` says why
    phase 2 is not on the bank ("" when it is); `cut` is the bank's cut. `note` is the line a
    resumed cell prints when its backups change the path, and `drop_tune_backups` says that the
    phase-2 backups were written on the bank and must go before phase 2 restarts online.
    """

    head: str
    tune: str
    reason: str = ""
    cut: object | None = None
    note: str = ""
    drop_tune_backups: bool = False


def bank_size_refusal(config: RunConfig, facts: TuneBankFacts) -> str:
    """Why a bank with a clean cut still cannot be stored: over the limit, or over the free disk."""
    if max(facts.memory, facts.disk) > config.fine_tune_bank_limit * MIB:
        return (
            f"the bank would take {facts.disk / MIB:.1f} MiB on disk "
            f"({facts.memory / MIB:.1f} MiB an epoch in "
            f"memory), over --fine-tune-bank-limit {config.fine_tune_bank_limit:g}"
        )
    if facts.disk > facts.free:
        return (
            f"the bank would take {facts.disk / MIB:.1f} MiB, "
            f"more than the {facts.free / MIB:.1f} MiB free on disk"
        )
    return ""


def planned_tune(
    plan: ModelPlan, config: RunConfig, tune_bank: Callable[[], TuneBankFacts]
) -> tuple[str, str, object | None]:
    """Phase 2's path before any resume: (path, reason it is not the bank, cut)."""
    if plan.fine_tune_features != "bank":
        return plan.fine_tune_features, plan.fine_tune_reason, None
    facts = tune_bank()
    reason = facts.refusal if facts.cut is None else bank_size_refusal(config, facts)
    if reason and plan.fine_tune_bank_required:
        raise UsageError(
            f"--fine-tune-features bank: {reason}; use --fine-tune-features auto or online"
        )
    return ("online", reason, None) if reason else ("bank", "", facts.cut)


def cell_phases(
    plan: ModelPlan,
    config: RunConfig,
    *,
    stores_features: bool,
    tune_bank: Callable[[], TuneBankFacts],
    resumed_tune: str | None = None,
) -> PhasePaths:
    """The paths of one cell's phases (see the module docstring).

    `stores_features`: the built model has the frozen backbone and pooled head that stored
    features need. `tune_bank` gives the built model's `TuneBankFacts`, asked only where the plan
    wants the bank. `resumed_tune`: the path the cell's phase-2 backups were written on (None
    where it has none, as a fresh cell or a tune trial).
    """
    head = plan.head_features
    if head in ("bank", "cached") and not stores_features:
        raise ValueError(
            f"{plan.name}: the plan stores phase-1 features, but the built model has no frozen "
            "pretrained backbone with a pooled head (its entry and its builder disagree)"
        )
    tune, reason, cut = planned_tune(plan, config, tune_bank)
    if tune == "none" or resumed_tune is None or resumed_tune == tune:
        return PhasePaths(head, tune, reason, cut)
    if resumed_tune == "online":
        return PhasePaths(
            head,
            "online",
            reason,
            note="phase 2 resumes online, the path its backups were written on",
        )
    return PhasePaths(
        head,
        tune,
        reason,
        cut,
        note=f"phase 2 restarts {tune}: its backups were written on the fine-tune bank",
        drop_tune_backups=True,
    )
