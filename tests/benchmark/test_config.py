"""Configuration: precedence, unknown keys, validation naming the flag, change detection."""

import json

import pytest
import yaml

from benchmark.config.config_diff import differing_keys
from benchmark.config.run_config import RunConfig, list_presets, read_config_file, resolve_config
from benchmark.errors import UsageError


def test_precedence_defaults_preset_file_flags(tmp_path):
    config_file = tmp_path / "c.yaml"
    config_file.write_text("batch_size: 8\nalphas: [0.0, 0.5]\n")
    config = resolve_config("smoke", str(config_file), {"alphas": [1.0], "batch_size": None})
    assert config.image_size == 128  # from the preset
    assert config.batch_size == 8  # file over preset
    assert config.alphas == [1.0]  # flag over file
    assert RunConfig().fine_tune_lr == 1e-5


def test_the_no_argument_run_is_the_default_comparison_at_the_samples_side():
    """The default grid (docs/first-run.md): Lite0, Lite2 and the CNN, alphas 0 and 1, at 128 px;
    naming models, a preset or a config file keeps each model's own side."""
    from benchmark.run.grid import build_grid

    config = resolve_config(None, None, {"models": None, "image_size": None})
    assert config.models == ["efficientnet_lite0", "efficientnet_lite2", "simple_cnn"]
    assert (config.alphas, config.seeds, config.image_size) == ([0.0, 1.0], [0], 128)
    assert len(build_grid(config)) == 6
    assert resolve_config(None, None, {"image_size": 96}).image_size == 96
    assert resolve_config(None, None, {"models": ["mobilenet_v2"]}).image_size is None
    assert resolve_config("full").image_size is None


def test_unknown_keys_are_named(tmp_path):
    config_file = tmp_path / "c.json"
    config_file.write_text(json.dumps({"batch_size": 8, "learning_rat": 1, "zzz": 2}))
    with pytest.raises(UsageError, match="unknown keys: learning_rat, zzz"):
        read_config_file(config_file)


def test_bad_values_name_the_flag():
    with pytest.raises(UsageError, match="--alphas value -1"):
        RunConfig(alphas=[-1.0])
    with pytest.raises(UsageError, match="--alphas value nan"):
        RunConfig(alphas=[float("nan")])
    with pytest.raises(UsageError, match="--split"):
        RunConfig(split=[0.5, 0.5, 0.5])
    with pytest.raises(UsageError, match="--fine-tune-layers"):
        RunConfig(fine_tune_layers="some")
    with pytest.raises(UsageError, match="--tta"):
        RunConfig(tta=9)
    with pytest.raises(UsageError, match="--ema-momentum"):
        RunConfig(ema_momentum=1.0)
    with pytest.raises(UsageError, match="--folds must be at least 2"):
        RunConfig(folds=1)
    with pytest.raises(UsageError, match="--split-file and --folds exclude each other"):
        RunConfig(folds=3, split_file="other/splits.csv")
    with pytest.raises(UsageError, match="folds .* must be int or empty"):
        RunConfig(folds="five")
    with pytest.raises(UsageError, match="unknown --preset 'fast'"):
        resolve_config("fast")


def test_presets_ship_and_load():
    assert {"smoke", "full"} <= set(list_presets())
    for name in list_presets():
        resolve_config(name)


def test_tta_and_ema_come_from_flags_files_and_presets(tmp_path):
    from benchmark.cli.grid_parsers import build_run_parser

    args = vars(build_run_parser().parse_args(["--tta", "3", "--ema", "--ema-momentum", "0.9"]))
    assert (args["tta"], args["ema"], args["ema_momentum"]) == (3, True, 0.9)
    assert (RunConfig().tta, RunConfig().ema, RunConfig().ema_momentum) == (0, False, 0.99)
    config_file = tmp_path / "levers.yaml"
    config_file.write_text("tta: 2\nema: true\n")
    config = resolve_config("scratch_trashnet", str(config_file))
    assert (config.tta, config.ema, config.initial_epochs) == (
        2,
        True,
        84,
    )  # the file over the preset


def test_a_saved_config_from_before_tta_and_ema_ran_without_them():
    old = {
        k: v for k, v in RunConfig().to_dict().items() if k not in ("tta", "ema", "ema_momentum")
    }
    assert differing_keys(old, RunConfig().to_dict()) == []
    assert differing_keys(old, RunConfig(tta=2, ema=True).to_dict()) == ["ema", "tta"]


def test_ema_momentum_without_ema_is_refused_and_never_counts_as_a_change(tmp_path):
    with pytest.raises(UsageError, match="--ema-momentum 0.9 sets the weight average of --ema"):
        resolve_config(None, None, {"ema_momentum": 0.9})
    (tmp_path / "off.yaml").write_text("ema: false\nema_momentum: 0.9\n")
    with pytest.raises(UsageError, match="--ema-momentum"):
        resolve_config(None, str(tmp_path / "off.yaml"))
    assert resolve_config(None, None, {"ema": True, "ema_momentum": 0.9}).ema_momentum == 0.9
    (tmp_path / "saved.yaml").write_text(yaml.safe_dump(RunConfig().to_dict()))  # as a run saves it
    assert resolve_config(None, str(tmp_path / "saved.yaml")).ema_momentum == 0.99
    saved = {**RunConfig().to_dict(), "ema_momentum": 0.9}  # a folder saved before the refusal
    assert differing_keys(saved, RunConfig().to_dict()) == []
    assert differing_keys(saved, RunConfig(ema=True).to_dict()) == ["ema", "ema_momentum"]


def test_differing_keys_ignores_yaml_number_and_list_spelling():
    saved = RunConfig(alphas=[0, 1]).to_dict()
    assert differing_keys(saved, RunConfig(alphas=[0.0, 1.0]).to_dict()) == []
    assert differing_keys(saved, RunConfig(alphas=[0.0, 1.0], batch_size=8).to_dict()) == [
        "batch_size"
    ]


def test_every_grid_flag_sets_a_config_key_and_offers_its_choices():
    """One definition: flag destinations are RunConfig fields, and choice flags offer exactly
    CHOICES."""
    import dataclasses

    from benchmark.cli.grid_parsers import build_run_parser, build_slurm_parser, build_tune_parser
    from benchmark.config.choices import CHOICES
    from benchmark.config.flags import grid_keys

    fields = {f.name for f in dataclasses.fields(RunConfig)}
    for parser in (build_run_parser(), build_slurm_parser(), build_tune_parser()):
        keys = grid_keys(parser)
        # 42, two fine-tune bank flags, robustness, four augmentation remedies
        assert len(keys) == 49 and set(keys) <= fields
        for action in parser._actions:
            if action.dest in CHOICES:
                assert tuple(action.choices) == CHOICES[action.dest]
