"""Which path phase 2 takes: the bank where it is exact and fits, online with the reason elsewhere,
and the same path again when a cell resumes."""

from pathlib import Path

import keras
import pytest
from stand_ins import SIZE, colour_split, residual_stand_in

from benchmark.config.run_config import RunConfig
from benchmark.errors import UsageError
from benchmark.run.phase2 import plan_phase2
from benchmark.training.finetune_bank import bottom_randomness, find_cut
from benchmark.training.recipe import RecipeSettings
from models import BuiltModel, HeadConfig, attach_head


def test_a_cut_with_no_clean_boundary_below_goes_online_with_the_reason(tmp_path):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Conv2D(3, 3, padding="same", name="conv_a")(inputs)
    x = keras.layers.Conv2D(3, 3, padding="same", name="conv_b")(x)
    x = keras.layers.Add(name="add")([x, inputs])  # the raw image crosses every cut
    backbone = keras.Model(inputs, keras.layers.BatchNormalization(name="bn")(x))
    built = BuiltModel(
        model=attach_head(backbone, 3, HeadConfig(units=(4,)), name="m"),
        backbone=backbone,
        entry=None,
        weights="w",
    )
    cut, reason = find_cut(backbone, 2)
    assert cut is None and "no clean cut at or below 'add'" in reason and "conv_b" in reason
    settings = RecipeSettings(fine_tune_layers=2, fine_tune_epochs=2)
    plan = plan_phase2(RunConfig(), built, settings, num_train=18, num_val=9, folder=tmp_path)
    assert (plan.mode, plan.reason) == ("online", reason)
    with pytest.raises(UsageError, match="--fine-tune-features bank: no clean cut"):
        plan_phase2(
            RunConfig(fine_tune_features="bank"),
            built,
            settings,
            num_train=18,
            num_val=9,
            folder=tmp_path,
        )


def test_a_random_layer_below_the_cut_sends_phase_2_online(tmp_path):
    built = residual_stand_in(dropout_below=True)
    cut, _ = find_cut(built.backbone, 2)
    assert bottom_randomness(built.backbone, cut) == "drop_a"
    plan = plan_phase2(
        RunConfig(),
        built,
        RecipeSettings(fine_tune_layers=2),
        num_train=18,
        num_val=9,
        folder=tmp_path,
    )
    assert plan.mode == "online" and "'drop_a'" in plan.reason
    plain = plan_phase2(
        RunConfig(),
        residual_stand_in(),
        RecipeSettings(fine_tune_layers=2),
        num_train=18,
        num_val=9,
        folder=tmp_path,
    )
    assert plain.mode == "bank" and plain.cut.layer == "conv_c"


def test_over_the_size_limit_or_asked_online_runs_online_and_no_phase_2_is_none(tmp_path):
    built, settings = residual_stand_in(), RecipeSettings(fine_tune_layers=2, fine_tune_epochs=10)
    # 10 epochs x 18 images + 9 val, 12x12x8 float32 each: 0.7 MiB
    small = plan_phase2(
        RunConfig(fine_tune_bank_limit=0.1),
        built,
        settings,
        num_train=18,
        num_val=9,
        folder=tmp_path,
    )
    assert small.mode == "online" and "over --fine-tune-bank-limit 0.1" in small.reason
    asked = plan_phase2(
        RunConfig(fine_tune_features="online"),
        built,
        settings,
        num_train=18,
        num_val=9,
        folder=tmp_path,
    )
    assert asked.mode == "online"
    none = plan_phase2(
        RunConfig(),
        built,
        RecipeSettings(fine_tune_layers=0),
        num_train=18,
        num_val=9,
        folder=tmp_path,
    )
    assert none.mode == "none"


def test_old_run_folders_resume_and_old_records_read():
    """Folders and records from before the fine-tune bank: their phase 2 ran online."""
    import json

    from benchmark.config.config_diff import differing_keys
    from benchmark.run.records import CellRecord

    new_keys = ("fine_tune_features", "fine_tune_bank_limit")
    old = {k: v for k, v in RunConfig().to_dict().items() if k not in new_keys}
    assert differing_keys(old, RunConfig().to_dict()) == []
    changed = RunConfig(fine_tune_features="online").to_dict()
    assert differing_keys(old, changed) == ["fine_tune_features"]
    saved = Path(__file__).parent / "data" / "record_60ee30d_ok.json"
    assert CellRecord.from_json(json.loads(saved.read_text())).fine_tune_features == ""


@pytest.mark.slow
def test_an_alpha_sweep_fine_tunes_both_cells_on_one_bank(tmp_path):
    """Two alpha cells of a "pretrained" MobileNetV3Small (random weights from a file): one bank."""
    from benchmark.config.run_config import resolve_config
    from benchmark.run.folder import prepare_run
    from benchmark.run.loop import run_grid
    from benchmark.run.records import load_records
    from models import BuildSpec, build_model

    weights = tmp_path / "backbone.weights.h5"
    spec = BuildSpec(num_classes=2, image_size=32, weights="none")
    build_model("mobilenet_v3_small", spec).backbone.save_weights(weights)
    data = tmp_path / "data"
    data.mkdir()
    colour_split(data)
    config = resolve_config(
        None,
        None,
        {
            "models": ["mobilenet_v3_small"],
            "alphas": [0.0, 1.0],
            "data": str(data),
            "weights": str(weights),
            "image_size": 32,
            "batch_size": 8,
            "initial_epochs": 1,
            "fine_tune_epochs": 2,
            "patience": 5,
            "save_models": "none",
            "profile": False,
        },
    )
    assert run_grid(prepare_run(config, tmp_path / "run"), quiet=True) == 0
    records = sorted(load_records(tmp_path / "run"), key=lambda r: r.alpha)
    assert [r.fine_tune_features for r in records] == ["bank", "bank"]
    assert [r.timings["fine_tune_bank_epochs_computed"] for r in records] == [2, 0]
    assert [r.phases[1]["epochs"] for r in records] == [2, 2]
    banks = list((tmp_path / "run" / "fine_tune_bank").iterdir())
    names = sorted(p.name for p in banks[0].iterdir())
    assert len(banks) == 1 and names == ["epoch001.npz", "epoch002.npz", "val.npy"]


def test_a_resumed_cell_keeps_the_phase_2_path_its_backups_were_written_on(tmp_path):
    from benchmark.run.phase2 import phase2_on_resume, record_phase2_path

    fresh = tmp_path / "fresh"
    assert phase2_on_resume(fresh, "bank") == ("bank", "")  # nothing to resume
    old = (
        tmp_path / "old"
    )  # a folder from before the bank, killed in phase 2: backups, no path file
    (old / "fine_tune").mkdir(parents=True)
    mode, note = phase2_on_resume(old, "bank")
    assert mode == "online" and "resumes online" in note
    banked = tmp_path / "banked"  # killed in phase 2 on the bank, resumed with the bank ruled out
    record_phase2_path(banked, "bank")
    (banked / "fine_tune").mkdir()
    (banked / "head.done.json").write_text("{}")
    assert phase2_on_resume(banked, "bank") == ("bank", "")
    mode, note = phase2_on_resume(banked, "online")
    assert mode == "online" and "restarts online" in note
    assert sorted(p.name for p in banked.iterdir()) == ["fine_tune_features.txt", "head.done.json"]
