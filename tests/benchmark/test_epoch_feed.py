"""Online cells train on the epochs the banks store, so online and banked cells are paired and a
resumed online cell trains the epochs it would have trained."""

import numpy as np
import pytest
from stand_ins import SIZE, colour_split

from benchmark.training.epoch_feed import EpochFeed, phase_data


def _constant_epoch(epoch: int):
    """Data epoch `epoch`: four rows whose every value is the epoch number."""
    import tensorflow as tf

    features = np.full((4, 2), float(epoch), np.float32)
    return tf.data.Dataset.from_tensor_slices((features, features[:, :1])).batch(2)


def test_each_epoch_reads_its_own_data_epoch_from_the_offset_on():
    import keras

    class FirstValue(keras.callbacks.Callback):
        """The value the model's input carries in each epoch (its bias-free output / weight)."""

        seen: list[float] = []

        def on_epoch_end(self, epoch, logs=None):
            self.seen.append(float(logs["loss"]))

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, use_bias=False)])
    model.compile(optimizer=keras.optimizers.SGD(0.0), loss="mse")  # frozen: loss shows the data
    model.layers[0].set_weights([np.zeros((2, 1), np.float32)])
    train, callbacks = phase_data(EpochFeed(_constant_epoch, steps=2), 5)
    model.fit(train, epochs=3, verbose=0, shuffle=False, callbacks=[*callbacks, FirstValue()])
    (feed,) = callbacks
    assert feed.epochs_read == [5, 6, 7]
    assert FirstValue.seen == pytest.approx([25.0, 36.0, 49.0])  # mse of 0 against the epoch
    assert int(model.optimizer.iterations) == 6  # the declared length: no step past the data


def test_a_plain_dataset_passes_through_unchanged():
    sentinel = object()
    assert phase_data(sentinel, 3) == (sentinel, [])


@pytest.mark.slow
def test_an_online_cell_ends_where_the_banked_cell_ends(tmp_path):
    """One alpha cell of EfficientNet-Lite0 with its ImageNet weights (head dropout, augmentation
    on), both phases online and both on the default (float32) banks: the same draws and the same
    stored numbers, so the same cell."""
    from benchmark.config.run_config import resolve_config
    from benchmark.run.folder import prepare_run
    from benchmark.run.loop import run_grid
    from benchmark.run.records import load_records
    from benchmark.training import feature_bank

    assert feature_bank.BANK_DTYPE == "float32"  # the one default both banks read
    data = tmp_path / "data"
    data.mkdir()
    colour_split(data)
    records = {}
    for mode in ("auto", "online"):
        config = resolve_config(
            None,
            None,
            {
                "models": ["efficientnet_lite0"],
                "alphas": [1.0],
                "data": str(data),
                "weights": "imagenet",
                "image_size": 32,
                "batch_size": 6,
                "initial_epochs": 3,
                "fine_tune_epochs": 3,
                "initial_lr": 0.01,
                "fine_tune_lr": 0.0001,
                "patience": 10,
                "head_features": mode,
                "fine_tune_features": mode,
                "save_models": "none",
                "profile": False,
            },
        )
        assert run_grid(prepare_run(config, tmp_path / mode), quiet=True) == 0
        (records[mode],) = load_records(tmp_path / mode)
    auto, online = records["auto"], records["online"]
    assert (auto.head_features, auto.fine_tune_features) == ("bank", "bank")
    assert (online.head_features, online.fine_tune_features) == ("online", "online")
    for key in ("loss", "val_loss"):
        np.testing.assert_allclose(auto.history[key], online.history[key], rtol=1e-4)
    assert auto.split_metrics("test")["accuracy"] == online.split_metrics("test")["accuracy"]


def test_an_online_cell_killed_mid_phase_resumes_bit_identical(tmp_path):
    """Augmentation on, head dropout: before the feed, a resumed online cell drew its epochs from a
    new reshuffling pipeline (other images than the cell never killed); now epoch e is epoch e."""
    import keras

    from benchmark.run.cell import CellInputs
    from benchmark.training.checkpoint import PhaseCheckpoint
    from benchmark.training.optimizer import make_optimizer
    from benchmark.training.recipe import RecipeSettings, run_phase
    from data_pipeline import AugmentConfig

    (tmp_path / "colours").mkdir()
    split = colour_split(tmp_path / "colours")
    inputs = CellInputs(
        image_size=SIZE, preprocess=None, modality="image", cache_dir=tmp_path / "c"
    )
    epochs, batch, steps = 6, 6, -(-len(split.subset("train")) // 6)
    settings = RecipeSettings(initial_epochs=epochs, fine_tune_epochs=0, patience=100)
    val = inputs.dataset(split, "val", batch)

    def online_phase(work, kill_in_epoch=None) -> list:
        keras.utils.set_random_seed(0)
        model = keras.Sequential(
            [
                keras.Input((SIZE, SIZE, 3)),
                keras.layers.Rescaling(1 / 255),
                keras.layers.Conv2D(4, 3, activation="relu"),
                keras.layers.GlobalAveragePooling2D(),
                keras.layers.Dropout(0.3),
                keras.layers.Dense(3, activation="softmax"),
            ]
        )

        def epoch_data(epoch):
            if epoch == kill_in_epoch:
                raise KeyboardInterrupt
            return inputs.dataset(
                split, "train", batch, augment=AugmentConfig(), shuffle_seed=0, epoch=epoch
            )

        train, feed = phase_data(EpochFeed(epoch_data, steps), 0)
        optimizer = make_optimizer(1e-2, settings.weight_decay, "cosine", epochs, steps, 0)
        run_phase(
            "single", model, train, val, epochs, optimizer, settings, feed, 0, PhaseCheckpoint(work)
        )
        return [np.asarray(w) for w in model.weights]

    uninterrupted = online_phase(tmp_path / "full")
    with pytest.raises(KeyboardInterrupt):
        online_phase(tmp_path / "work", kill_in_epoch=3)
    resumed = online_phase(tmp_path / "work")
    for before, after in zip(uninterrupted, resumed, strict=True):
        np.testing.assert_array_equal(after, before)
