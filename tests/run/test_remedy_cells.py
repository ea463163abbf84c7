"""A tiny 32-px Lite0 cell trains under each augmentation remedy, and its record says which remedy
made it; MixUp/CutMix cells train both phases online (the banks keep one label per image)."""

import os
import sys
from pathlib import Path

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from benchmark.config.run_config import RunConfig  # noqa: E402
from benchmark.run.folder import prepare_run  # noqa: E402
from benchmark.run.loop import run_grid  # noqa: E402
from benchmark.run.records import load_records  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "cli"))
from cli_helpers import make_images  # noqa: E402

# Three cells cover the five options: the two policies, erasing, and both label mixers together.
pytestmark = pytest.mark.slow  # three cells that train: minutes on 2 shared cores

REMEDIES = {
    "randaugment_erasing": {"augment_policy": "randaugment", "random_erasing": 0.5},
    "augmix": {"augment_policy": "augmix"},
    "mixup_cutmix": {"mixup": 0.4, "cutmix": 1.0},
}


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return make_images(tmp_path_factory.mktemp("remedy_cells") / "data", per_class=8, size=32)


@pytest.mark.parametrize("name", sorted(REMEDIES))
def test_a_tiny_cell_trains_under_each_remedy(tmp_path, data, name):
    config = RunConfig(
        data=str(data),
        models=["efficientnet_lite0"],
        alphas=[0.0],
        image_size=32,
        batch_size=8,
        initial_epochs=1,
        fine_tune_epochs=1,
        profile=False,
        robustness="off",
        save_models="none",
        **REMEDIES[name],
    )
    run = prepare_run(config, tmp_path / name)
    assert run_grid(run, quiet=True) == 0
    (record,) = load_records(run.run_dir)
    assert record.ok, record.error
    for key, value in REMEDIES[name].items():
        assert record.config[key] == value
    assert np.isfinite(record.history["loss"]).all()
    assert 0.0 <= record.metrics["test"]["accuracy"] <= 1.0
    mixing = "mixup" in REMEDIES[name]
    assert record.head_features == ("online" if mixing else "bank")
    if mixing:
        assert record.fine_tune_features == "online"
