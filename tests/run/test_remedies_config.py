"""The augmentation remedies as run options: checked before TensorFlow loads (one line naming the
flag, exit 2, nothing written), planned (MixUp/CutMix send phases 1 and 2 online, refuse the
stored banks), and part of what a resume compares."""

import subprocess
import sys
from pathlib import Path

import pytest

from benchmark.config.config_diff import differing_keys
from benchmark.config.remedies import augment_config
from benchmark.config.run_config import RunConfig, resolve_config
from benchmark.errors import UsageError
from benchmark.plan import resolve_plan

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "cli"))
from cli_helpers import one_line_error, run_cli  # noqa: E402

LITE0 = "efficientnet_lite0"


@pytest.mark.parametrize(
    "overrides, words",
    [
        ({"mixup": -1.0}, "--mixup must be a finite number >= 0"),
        ({"cutmix": float("inf")}, "--cutmix must be finite"),
        ({"random_erasing": 1.5}, "--random-erasing is a probability in [0, 1]"),
        ({"augment_policy": "autoaugment"}, "--augment-policy must be one of"),
        ({"augment": False, "mixup": 0.2}, "--mixup: training augmentation is off"),
        ({"augment": False, "augment_policy": "augmix"}, "--augment-policy: training"),
    ],
)
def test_bad_remedy_values_name_the_flag(overrides, words):
    with pytest.raises(UsageError, match=words.replace("[", r"\[").replace("]", r"\]")):
        resolve_config(overrides={"models": [LITE0], **overrides})


def test_defaults_are_todays_augmentation():
    config = RunConfig(models=[LITE0])
    assert (config.augment_policy, config.random_erasing, config.mixup, config.cutmix) == (
        "basic",
        0.0,
        0.0,
        0.0,
    )
    chosen = augment_config(RunConfig(models=[LITE0], augment_policy="randaugment", mixup=0.2))
    assert (chosen.policy, chosen.mixup, chosen.cutmix) == ("randaugment", 0.2, 0.0)


@pytest.mark.parametrize("flags", [{"mixup": 0.2}, {"cutmix": 1.0}])
def test_mixing_plans_both_phases_online_and_refuses_the_banks(flags):
    plan = resolve_plan(RunConfig(models=[LITE0], **flags), LITE0)
    assert (plan.head_features, plan.fine_tune_features) == ("online", "online")
    assert "one label per image" in plan.fine_tune_reason
    with pytest.raises(UsageError, match=r"^--head-features cached: MixUp/CutMix \(--"):
        resolve_plan(RunConfig(models=[LITE0], head_features="cached", **flags), LITE0)
    with pytest.raises(UsageError, match=r"^--fine-tune-features bank: MixUp/CutMix"):
        resolve_plan(RunConfig(models=[LITE0], fine_tune_features="bank", **flags), LITE0)


def test_image_level_remedies_keep_the_banks():
    for flags in ({"augment_policy": "augmix"}, {"random_erasing": 0.5}):
        plan = resolve_plan(RunConfig(models=[LITE0], **flags), LITE0)
        assert (plan.head_features, plan.fine_tune_features) == ("auto", "auto")


def test_mixing_refuses_a_fusion_model():
    name = "fusion_mobilenet_v2"
    with pytest.raises(UsageError, match="image\\+text input"):
        resolve_plan(RunConfig(models=[name], mixup=0.2), name)


def test_a_changed_remedy_is_a_changed_cell_and_old_folders_resume():
    saved = RunConfig(models=[LITE0]).to_dict()
    for key, value in (("augment_policy", "augmix"), ("mixup", 0.2), ("random_erasing", 0.1)):
        assert differing_keys(saved, {**saved, key: value}) == [key]
    old_folder = {
        k: v
        for k, v in saved.items()
        if k not in ("augment_policy", "random_erasing", "mixup", "cutmix")
    }
    assert differing_keys(old_folder, saved) == []


def test_a_bad_remedy_flag_exits_2_before_tensorflow_and_writes_nothing(tmp_path):
    out = tmp_path / "run"
    done = run_cli("--models", LITE0, "--mixup", "-1", "--output", str(out), timeout=120)
    assert "--mixup" in one_line_error(done)
    done = run_cli(
        "--models", LITE0, "--cutmix", "1", "--head-features", "cached", "--output", str(out)
    )
    assert "--head-features cached" in one_line_error(done)
    assert not out.exists()
    probe = (
        "import sys\nfrom benchmark.config.run_config import resolve_config\n"
        "try:\n    resolve_config(overrides={'random_erasing': 2.0})\n"
        "except Exception as err:\n    print(type(err).__name__)\n"
        "print('tensorflow' in sys.modules, 'keras' in sys.modules)"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert done.stdout.split() == ["UsageError", "False", "False"], done.stderr
