"""A cell's phase paths are settled once (`benchmark.plan.phases.cell_phases`), from a plan that
holds no "auto", the built model's facts and the work folder's backups; nobody else decides them."""

import re
from pathlib import Path

import pytest

from benchmark.config.run_config import RunConfig
from benchmark.errors import UsageError
from benchmark.plan import resolve_plans
from benchmark.plan.phases import PhasePaths, TuneBankFacts, cell_phases
from benchmark.run.phase_paths import drop_tune_backups, record_phase2_path, resumed_tune_path
from models import list_models

ROOT = Path(__file__).resolve().parents[2]
CLEAN_CUT = TuneBankFacts(cut="a clean cut", memory=1, disk=1, free=2**40)


def plan_of(name: str, **overrides):
    return resolve_plans(RunConfig(models=[name], **overrides))[name]


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"augment": False},
        {"head_features": "online", "fine_tune_features": "online"},
        {"head_features": "cached", "fine_tune_features": "bank"},
        {"weights": "none"},
        {"fine_tune_layers": 0},
    ],
)
def test_no_resolved_plan_says_auto(overrides):
    for name in list_models():
        try:
            plan = plan_of(name, **overrides)
        except UsageError:  # a refusal of these flags for this model: nothing planned
            continue
        assert plan.head_features in ("bank", "cached", "online", "none"), (name, plan)
        assert plan.fine_tune_features in ("bank", "online", "none"), (name, plan)


def test_the_plan_chooses_the_stored_path_the_flags_prefer():
    assert plan_of("mobilenet_v2").head_features == "bank"  # augmentation on: the bank
    assert plan_of("mobilenet_v2", augment=False).head_features == "cached"
    assert plan_of("mobilenet_v2", head_features="online").head_features == "online"
    assert plan_of("simple_cnn").head_features == "online"  # nothing frozen to store
    auto, insisted = plan_of("mobilenet_v2"), plan_of("mobilenet_v2", fine_tune_features="bank")
    assert auto.fine_tune_features == insisted.fine_tune_features == "bank"
    assert not auto.fine_tune_bank_required and insisted.fine_tune_bank_required


def test_the_built_model_sends_an_auto_bank_online_and_refuses_an_insisted_one():
    no_cut = TuneBankFacts(cut=None, refusal="no clean cut at or below 'add'")
    paths = cell_phases(
        plan_of("mobilenet_v2"), RunConfig(), stores_features=True, tune_bank=lambda: no_cut
    )
    assert (paths.head, paths.tune, paths.reason) == ("bank", "online", no_cut.refusal)
    with pytest.raises(UsageError, match="--fine-tune-features bank: no clean cut"):
        config = RunConfig(fine_tune_features="bank")
        cell_phases(
            plan_of("mobilenet_v2", fine_tune_features="bank"),
            config,
            stores_features=True,
            tune_bank=lambda: no_cut,
        )
    big = TuneBankFacts(cut="c", memory=2**30, disk=2**31, free=2**40)
    paths = cell_phases(
        plan_of("mobilenet_v2"),
        RunConfig(fine_tune_bank_limit=100),
        stores_features=True,
        tune_bank=lambda: big,
    )
    assert paths.tune == "online" and "over --fine-tune-bank-limit 100" in paths.reason


def test_the_built_facts_are_not_asked_where_the_plan_settles_phase_2():
    def never():
        raise AssertionError("the bank's facts were asked for")

    for plan in (plan_of("simple_cnn"), plan_of("mobilenet_v2", fine_tune_features="online")):
        stores = plan.head_features != "online"
        cell_phases(plan, RunConfig(), stores_features=stores, tune_bank=never)


def test_a_plan_that_stores_features_of_a_model_built_without_them_is_a_bug_not_a_fallback():
    with pytest.raises(ValueError, match="entry and its builder disagree"):
        cell_phases(
            plan_of("mobilenet_v2"), RunConfig(), stores_features=False, tune_bank=lambda: CLEAN_CUT
        )


def test_a_resumed_cell_keeps_the_phase_2_path_its_backups_were_written_on(tmp_path):
    fresh = tmp_path / "fresh"
    assert resumed_tune_path(fresh) is None  # nothing to resume
    old = tmp_path / "old"  # a folder from before the bank, killed in phase 2: no path file
    (old / "fine_tune").mkdir(parents=True)
    assert resumed_tune_path(old) == "online"
    banked = tmp_path / "banked"  # killed in phase 2 on the bank
    record_phase2_path(banked, "bank")
    (banked / "fine_tune").mkdir()
    (banked / "head.done.json").write_text("{}")
    assert resumed_tune_path(banked) == "bank"

    config, bank = RunConfig(), plan_of("mobilenet_v2")
    online = plan_of("mobilenet_v2", fine_tune_features="online")

    def settle(plan, resumed):
        return cell_phases(
            plan, config, stores_features=True, tune_bank=lambda: CLEAN_CUT, resumed_tune=resumed
        )

    assert settle(bank, None) == PhasePaths("bank", "bank", "", CLEAN_CUT.cut)
    assert settle(bank, "bank") == settle(bank, None)
    kept = settle(bank, "online")
    assert kept.tune == "online" and "resumes online" in kept.note and not kept.drop_tune_backups
    restarted = settle(online, "bank")  # resumed with the bank ruled out
    assert restarted.tune == "online" and "restarts online" in restarted.note
    assert restarted.drop_tune_backups
    drop_tune_backups(banked)
    assert sorted(p.name for p in banked.iterdir()) == ["fine_tune_features.txt", "head.done.json"]
    assert settle(plan_of("mobilenet_v2", fine_tune_layers=0), "bank").tune == "none"


def source_lines(pattern: str, allowed: tuple[str, ...] = ("benchmark/plan/",)):
    found = []
    for path in sorted([*(ROOT / "benchmark").rglob("*.py"), ROOT / "run_benchmark.py"]):
        rel = path.relative_to(ROOT).as_posix()
        if rel.startswith(allowed):
            continue
        found += [
            f"{rel}:{n}"
            for n, line in enumerate(path.read_text().splitlines(), 1)
            if re.search(pattern, line)
        ]
    return found


def test_plans_are_resolved_only_where_a_run_makes_them():
    assert not source_lines(r"\bresolve_plan\("), "call resolve_plans where the run is set up"


def test_only_the_plan_package_decides_the_phase_paths():
    # The pieces of the old four-stage decision must not come back outside benchmark/plan/.
    assert not source_lines(r"\b(phase1_mode|plan_phase2|phase2_on_resume|Phase2Plan)\b")
    # ... and the one call of `cell_phases` is the cell's, in `settled_phases`.
    calls = source_lines(r"(?<!def )\bcell_phases\(", allowed=())
    assert len(calls) == 1 and calls[0].startswith("benchmark/run/phase_paths.py"), calls


def test_no_module_outside_the_plan_reads_the_registry_to_decide():
    # --list-models prints the registry (display only); everything else reads the plan, the
    # weights' origin (benchmark/plan/weights.py) or a record field.
    readers = source_lines(r"\bget_entry\b|\bmodel_kind\(", allowed=("benchmark/plan/",))
    assert all(line.startswith("benchmark/listing.py:") for line in readers), readers
    assert not source_lines(r"""["']late_fusion_["']"""), "a model's kind is not a name prefix"
