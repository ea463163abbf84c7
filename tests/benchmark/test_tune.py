"""The tune subcommand on tiny data: every output, resume, failures, importance, space errors, best
config.
"""

import os

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")  # as the CLI does: faster CPU kernels

import dataclasses  # noqa: E402
import math  # noqa: E402
import shutil  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import yaml  # noqa: E402
from PIL import Image  # noqa: E402

import benchmark.tune.trial_training as trial_training  # noqa: E402
from benchmark.config.run_config import RunConfig, resolve_config  # noqa: E402
from benchmark.errors import UsageError  # noqa: E402
from benchmark.run.cell import build_spec, recipe_settings  # noqa: E402
from benchmark.tune.search import TuneOptions, tune_command  # noqa: E402
from benchmark.tune.space import apply_values, default_space_path, load_space, to_hyperparameters  # noqa: E402
from benchmark.tune.trials import importance_table  # noqa: E402
from data_pipeline import SplitTable  # noqa: E402

CLASSES = ("glass", "paper", "plastic")
# Three knobs of a one-block, 4-8 filter CNN: each trial traces and trains in a few seconds.
SPACE = {
    "simple_cnn.base_filters": {"type": "choice", "values": [4, 8]},
    "simple_cnn.conv_activation": {"type": "choice", "values": ["relu", "gelu"]},
    "initial_lr": {"type": "float", "min": 1.0e-3, "max": 1.0e-2, "log": True},
}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """Eight 32 px PNGs per class, each class its own dominant colour."""
    root = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    for k, name in enumerate(CLASSES):
        (root / name).mkdir()
        for i in range(8):
            pixels = rng.integers(0, 70, (32, 32, 3)) + np.array(
                [170 if c == k else 30 for c in range(3)]
            )
            Image.fromarray(pixels.clip(0, 255).astype("uint8")).save(
                root / name / f"{name}_{i}.png"
            )
    return root


def base_config(data_dir) -> RunConfig:
    return RunConfig(
        models=["simple_cnn"],
        alphas=[0.0],
        data=str(data_dir),
        weights="none",
        image_size=32,
        batch_size=8,
        initial_epochs=3,
        fine_tune_epochs=0,
        augment=False,
        simple_cnn={"blocks": 1, "base_filters": 4, "dense_units": 0},
    )


def write_space(path, space=SPACE):
    path.write_text(yaml.safe_dump(space))
    return path


def options(space_file, max_trials=3, **kwargs) -> TuneOptions:
    return TuneOptions(
        model="simple_cnn",
        tuner="random",
        max_trials=max_trials,
        max_epochs=1,
        space=str(space_file),
        **kwargs,
    )


@pytest.fixture(scope="module")
def searched(tmp_path_factory, data_dir):
    """A finished random search of 3 real one-epoch trials; tests copy it before changing it."""
    root = tmp_path_factory.mktemp("search")
    space = write_space(root / "space.yaml")
    out = root / "tune"
    assert tune_command(base_config(data_dir), options(space), str(out), force=False) == 0
    return out, space


def copy_search(searched, tmp_path):
    out, space = searched
    shutil.copytree(out, tmp_path / "tune")
    return tmp_path / "tune", space


def test_search_writes_every_output(searched):
    out, _ = searched
    for name in (
        "trials.csv",
        "trials.md",
        "importance.csv",
        "best_config.yaml",
        "tune_request.yaml",
        "splits.csv",
    ):
        assert (out / name).is_file(), name
    assert sorted(p.name for p in (out / "plots").iterdir()) == [
        "importance.png",
        "objective_vs_hyperparameters.png",
        "parallel_coordinates.png",
    ]
    trials = pd.read_csv(out / "trials.csv")
    assert len(trials) == 3 and set(trials["status"]) == {"ok"}
    for column in ("trial_id", *SPACE, "objective", "epochs", "seconds", "status"):
        assert column in trials.columns, column
    # A from-scratch CNN has no frozen trunk to store: each trial trains on images.
    assert set(trials["head_features"]) == {"online"}
    assert set(trials["fine_tune_features"]) == {"none"}
    assert (trials["epochs"] == 1).all()  # --max-epochs 1 capped the 3-epoch budget
    assert trials["objective"].is_monotonic_decreasing  # val_accuracy: best first
    assert trials["objective"].equals(trials["val_accuracy"])
    importance = pd.read_csv(out / "importance.csv")
    assert sorted(importance["hyperparameter"]) == sorted(SPACE)
    assert (
        dict(zip(importance["hyperparameter"], importance["kind"]))["simple_cnn.conv_activation"]
        == "categorical"
    )
    header = (out / "trials.md").read_text().splitlines()[2]
    assert all(column in header for column in ("trial_id", *SPACE, "objective", "status"))


def test_trials_of_one_pretrained_backbone_share_both_banks(tmp_path, data_dir):
    """Trials differing only in rates train above the stored tensors: one phase-1 bank and one
    fine-tune bank serve both, and the second trial computes no epoch of either."""
    config = dataclasses.replace(
        base_config(data_dir),
        models=["efficientnet_lite0"],
        weights="imagenet",
        initial_epochs=1,
        fine_tune_epochs=1,
        augment=True,
        simple_cnn={},
    )
    space = write_space(
        tmp_path / "space.yaml",
        {
            "initial_lr": {"type": "choice", "values": [1.0e-3, 1.0e-2]},
            "fine_tune_lr": {"type": "choice", "values": [1.0e-4, 1.0e-5]},
        },
    )
    out = tmp_path / "tune"
    chosen = TuneOptions(model="efficientnet_lite0", tuner="random", max_trials=2, space=str(space))
    assert tune_command(config, chosen, str(out), force=False) == 0
    trials = pd.read_csv(out / "trials.csv")
    assert len(trials) == 2 and set(trials["status"]) == {"ok"}
    assert len(trials[["initial_lr", "fine_tune_lr"]].drop_duplicates()) == 2
    assert set(trials["head_features"]) == {"bank"}
    assert set(trials["fine_tune_features"]) == {"bank"}
    for bank_root in (out / "features", out / "fine_tune_bank"):
        banks = [path for path in bank_root.iterdir() if path.is_dir()]
        assert len(banks) == 1, banks  # one key: the rates are not part of it
        epochs = sorted(path.name for path in banks[0].glob("epoch*"))
        assert len(epochs) == 1, epochs  # one data epoch, computed by the first trial only


def test_rerun_with_more_trials_adds_one_and_never_reads_the_test_split(
    searched, tmp_path, data_dir, monkeypatch
):
    out, space = copy_search(searched, tmp_path)
    before = pd.read_csv(out / "trials.csv").set_index("trial_id")
    parts, train_trial, subset = [], trial_training.train_trial, SplitTable.subset

    def spying_train_trial(context, config, max_epochs, **kwargs):
        with monkeypatch.context() as patch:
            patch.setattr(
                SplitTable, "subset", lambda self, part: parts.append(part) or subset(self, part)
            )
            return train_trial(context, config, max_epochs, **kwargs)

    monkeypatch.setattr(trial_training, "train_trial", spying_train_trial)
    assert (
        tune_command(base_config(data_dir), options(space, max_trials=4), str(out), force=False)
        == 0
    )
    after = pd.read_csv(out / "trials.csv").set_index("trial_id")
    assert len(after) == 4 and set(before.index) < set(after.index)
    # Finished trials were reloaded, not trained again: their timings are the recorded ones.
    pd.testing.assert_series_equal(
        before["seconds"].sort_index(), after.loc[before.index, "seconds"].sort_index()
    )
    assert {"train", "val"} <= set(parts) and "test" not in parts


def test_best_config_loads_unchanged_and_carries_the_winner(searched):
    out, _ = searched
    path = out / "best_config.yaml"
    saved = yaml.safe_load(path.read_text())
    config = resolve_config(None, str(path), {})
    assert config.to_dict() == saved
    best = pd.read_csv(out / "trials.csv").iloc[0]
    assert config.models == ["simple_cnn"]
    assert config.simple_cnn["base_filters"] == best["simple_cnn.base_filters"]
    assert config.simple_cnn["conv_activation"] == best["simple_cnn.conv_activation"]
    assert math.isclose(config.initial_lr, best["initial_lr"], rel_tol=1e-6)
    assert config.initial_epochs == 3  # the search's epoch cap is not carried into the benchmark


def test_changed_space_is_refused_without_force_and_restarts_with_it(searched, tmp_path, data_dir):
    out, _ = copy_search(searched, tmp_path)
    narrower = {**SPACE, "simple_cnn.base_filters": {"type": "choice", "values": [4, 6]}}
    changed = write_space(tmp_path / "changed.yaml", narrower)
    with pytest.raises(UsageError, match=r"different search \(space\).*--force"):
        tune_command(base_config(data_dir), options(changed), str(out), force=False)
    assert (
        tune_command(base_config(data_dir), options(changed, max_trials=1), str(out), force=True)
        == 0
    )
    trials = pd.read_csv(out / "trials.csv")
    assert len(trials) == 1 and trials["simple_cnn.base_filters"].iloc[0] in (4, 6)


def test_unknown_space_name_is_a_usage_error_naming_it(tmp_path, data_dir):
    bad = write_space(
        tmp_path / "bad.yaml", {**SPACE, "learning_rat": {"type": "float", "min": 0.1, "max": 1.0}}
    )
    with pytest.raises(UsageError, match="unknown hyperparameters: learning_rat") as caught:
        tune_command(base_config(data_dir), options(bad), str(tmp_path / "out"), force=False)
    assert "\n" not in str(caught.value)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "space, message",
    [
        (
            {"simple_cnn.filter_size": {"type": "choice", "values": [3, 7]}},
            "simple_cnn.filter_size=7 is not a valid",
        ),
        (
            {"head_width": {"type": "choice", "values": [64]}},
            "tunes head_width, which simple_cnn does not use",
        ),
        ({"initial_lr": {"type": "float", "min": 0.1}}, "initial_lr needs `max`"),
        ({"dropout": {"type": "range"}}, "needs `type: choice`"),
    ],
)
def test_bad_space_entries_are_named(tmp_path, space, message):
    with pytest.raises(UsageError, match=message):
        load_space(
            write_space(tmp_path / "s.yaml", space), RunConfig(models=["simple_cnn"]), "simple_cnn"
        )


@pytest.mark.parametrize("model", ["simple_cnn", "mobilenet_v2"])
def test_shipped_spaces_default_to_the_untuned_baseline(model):
    base = RunConfig(models=[model])
    space = load_space(default_space_path(model), base, model)
    baseline = apply_values(base, to_hyperparameters(space, base, model).values)
    assert build_spec(baseline, 6) == build_spec(base, 6)
    assert recipe_settings(baseline, model) == recipe_settings(base, model)
    assert baseline.alphas[0] == base.alphas[0] and baseline.batch_size == base.batch_size


def fake_training(failures: int, budgets: list):
    """Stands in for training: the first `failures` trials run out of memory, the rest score by
    learning rate.
    """
    calls = []

    def train_trial(context, config, max_epochs, **kwargs):
        calls.append(config)
        budgets.append(max_epochs)
        if len(calls) <= failures:
            raise MemoryError("out of memory")
        score = config.initial_lr * 10
        return (
            {
                "val_accuracy": score,
                "val_loss": 1 - score,
                "val_macro_f1": score,
            },
            max_epochs or 1,
            {"head_features": "online", "fine_tune_features": "none"},
        )

    return train_trial


def test_failed_trials_are_recorded_and_the_search_goes_on(tmp_path, data_dir, monkeypatch):
    monkeypatch.setattr(
        trial_training, "train_trial", fake_training(failures=3, budgets=[])
    )  # KerasTuner alone stops at 3
    space = write_space(tmp_path / "space.yaml")
    assert (
        tune_command(
            base_config(data_dir), options(space, max_trials=5), str(tmp_path / "out"), force=False
        )
        == 0
    )
    trials = pd.read_csv(tmp_path / "out" / "trials.csv")
    assert list(trials["status"]) == ["ok", "ok", "failed", "failed", "failed"]
    assert set(trials["error"].dropna()) == {"MemoryError: out of memory"}
    assert trials["rank"].isna().sum() == 3


def test_a_user_error_inside_a_trial_stops_the_search_as_itself(tmp_path, data_dir, monkeypatch):
    def needs_a_fix(context, config, max_epochs, **kwargs):
        raise UsageError("--weights file 'w.h5' does not exist")

    monkeypatch.setattr(trial_training, "train_trial", needs_a_fix)
    space = write_space(tmp_path / "space.yaml")
    with pytest.raises(UsageError, match="w.h5"):
        tune_command(base_config(data_dir), options(space), str(tmp_path / "out"), force=False)


@pytest.mark.filterwarnings(
    "ignore::sklearn.exceptions.ConvergenceWarning"
)  # the GP on five fake trials
@pytest.mark.parametrize("tuner_name", ["bayesian", "hyperband"])
def test_other_tuners_run_the_same_trials(tmp_path, data_dir, monkeypatch, tuner_name):
    budgets = []
    monkeypatch.setattr(trial_training, "train_trial", fake_training(failures=0, budgets=budgets))
    space = write_space(tmp_path / "space.yaml")
    opts = TuneOptions(
        model="simple_cnn", tuner=tuner_name, max_trials=5, max_epochs=3, space=str(space)
    )
    assert tune_command(base_config(data_dir), opts, str(tmp_path / "out"), force=False) == 0
    assert len(pd.read_csv(tmp_path / "out" / "trials.csv")) == 5
    assert max(budgets) <= 3 and (tuner_name == "bayesian") == (
        set(budgets) == {3}
    )  # hyperband starts small


def test_importance_follows_a_known_monotone_relation():
    rng = np.random.default_rng(0)
    lr = np.linspace(1e-4, 1e-2, 12)
    trials = pd.DataFrame(
        {
            "initial_lr": lr,
            "noise": rng.permutation(12).astype(float),
            "activation": ["relu", "gelu"] * 6,
            "objective": 0.2 + 40 * lr,  # rises strictly with the learning rate, ignores the rest
            "status": ["ok"] * 12,
        }
    )
    table = importance_table(trials, ["initial_lr", "noise", "activation"]).set_index(
        "hyperparameter"
    )
    assert table.loc["initial_lr", "spearman_rho"] == pytest.approx(1.0)
    assert (
        table.loc["initial_lr", "kind"] == "numeric"
        and table.loc["activation", "kind"] == "categorical"
    )
    assert math.isnan(table.loc["activation", "spearman_rho"])
    objective = trials["objective"]
    assert table.loc["activation", "level_means"] == (
        f"gelu={objective[1::2].mean():.4f} (6); relu={objective[0::2].mean():.4f} (6)"
    )
    assert table.index[0] == "initial_lr"  # the largest permutation importance comes first
    assert table.loc["initial_lr", "permutation_importance"] > 10 * abs(
        table.loc["noise", "permutation_importance"]
    )
    assert (table["note"].fillna("") == "").all()


def test_importance_needs_three_finished_trials():
    trials = pd.DataFrame(
        {
            "initial_lr": [1e-3, 1e-2, 5e-3],
            "activation": ["relu", "gelu", "relu"],
            "objective": [0.5, 0.6, math.nan],
            "status": ["ok", "ok", "failed"],
        }
    )
    table = importance_table(trials, ["initial_lr", "activation"])
    assert table[["spearman_rho", "permutation_importance"]].isna().all().all()
    assert table["note"].str.contains("only 2 finished trial").all()
