"""Progressive resizing (--progressive-sizes): each epoch trains at its stage's side, evaluation
stays at the full size.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from benchmark.cli.grid_parsers import build_run_parser
from benchmark.config.run_config import RunConfig
from benchmark.errors import UsageError
from benchmark.plan import resolve_plan, resolve_plans
from benchmark.training.progressive import ProgressiveResizing, stage_sides
from benchmark.training.recipe import RecipeSettings, train_two_phase
from data_pipeline import AugmentConfig, make_dataset
from models import BuiltModel
from tests.benchmark.stand_ins import colour_split


def test_the_epochs_split_evenly_across_the_stages_and_always_end_at_the_full_side():
    assert stage_sides([32, 48], 64, 7) == [32, 32, 32, 48, 48, 64, 64]
    assert stage_sides([32, 48], 64, 6) == [32, 32, 48, 48, 64, 64]
    assert stage_sides([32, 48], 64, 2) == [
        32,
        64,
    ]  # fewer epochs than stages: the last is still the full side
    assert stage_sides([], 64, 3) == [64, 64, 64]


def test_schedules_a_network_cannot_follow_are_refused_in_one_line_naming_the_flag():
    def refusal(sizes, size, model):
        try:
            resolve_plan(RunConfig(models=[model], image_size=size, progressive_sizes=sizes), model)
        except UsageError as err:
            return str(err)
        return None

    assert refusal([], 96, "mobilenet_v2") is None
    assert refusal([48, 64], 96, "simple_cnn") is None
    assert refusal([48, 64], None, "simple_cnn") is None  # simple_cnn's own side is 128
    for sizes, size, model, words in (
        ([64, 48], 96, "simple_cnn", "rise strictly"),
        ([8, 64], 96, "simple_cnn", "at least 16"),
        ([64, 96], 96, "simple_cnn", "below the final side 96"),
        ([128], None, "simple_cnn", "below the final side 128"),
        ([64], 96, "mobilenet_v2", "pretrained backbone"),
    ):
        reason = refusal(sizes, size, model)
        assert reason.startswith("--progressive-sizes") and words in reason, reason
    with pytest.raises(UsageError, match="--progressive-sizes"):
        resolve_plans(
            RunConfig(models=["simple_cnn", "mobilenet_v2"], image_size=96, progressive_sizes=[64])
        )


def test_the_flag_and_config_files_set_it_and_old_runs_without_it_resume():
    from benchmark.config.config_diff import differing_keys

    args = vars(build_run_parser().parse_args(["--progressive-sizes", "48,64"]))
    assert args["progressive_sizes"] == [48, 64]
    assert RunConfig().progressive_sizes == []
    saved = {k: v for k, v in RunConfig().to_dict().items() if k != "progressive_sizes"}
    assert "progressive_sizes" not in differing_keys(saved, RunConfig().to_dict())


def test_training_batches_take_the_side_the_variable_holds_when_they_are_made(tmp_path):
    split = colour_split(tmp_path)
    frame = split.subset("train")
    resizing = ProgressiveResizing([8 * 2], 32)
    with_side = make_dataset(
        frame, split.class_names, image_size=32, batch_size=4, side=resizing.side
    )
    plain = make_dataset(frame, split.class_names, image_size=32, batch_size=4)
    assert next(iter(with_side))[0].shape == (4, 16, 16, 3)
    resizing.side.assign(32)
    for (x, y), (x0, y0) in zip(
        with_side, plain
    ):  # at the full side nothing is resized: the very same batches
        np.testing.assert_array_equal(x.numpy(), x0.numpy())
        np.testing.assert_array_equal(y.numpy(), y0.numpy())


class SeenSide(keras.layers.Layer):
    """Remembers the smallest and largest image side it saw in training since the last reset."""

    def build(self, input_shape):
        self.low = self.add_weight(
            shape=(),
            dtype="int32",
            initializer=keras.initializers.Constant(10_000),
            trainable=False,
        )
        self.high = self.add_weight(shape=(), dtype="int32", initializer="zeros", trainable=False)

    def call(self, x, training=False):
        if training:
            side = tf.shape(x)[1]
            self.low.assign(tf.minimum(self.low, side))
            self.high.assign(tf.maximum(self.high, side))
        return x


class SidesPerEpoch(keras.callbacks.Callback):
    def __init__(self, layer):
        super().__init__()
        self.layer, self.sides = layer, []

    def on_epoch_begin(self, epoch, logs=None):
        self.layer.low.assign(10_000)
        self.layer.high.assign(0)

    def on_epoch_end(self, epoch, logs=None):
        self.sides.append((int(self.layer.low.numpy()), int(self.layer.high.numpy())))


def test_each_epoch_trains_whole_at_its_stage_side_and_the_built_model_keeps_its_fixed_input(
    tmp_path,
):
    split = colour_split(tmp_path)
    keras.utils.set_random_seed(0)
    seen = SeenSide(name="seen")
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Rescaling(1 / 255)(seen(inputs))
    x = keras.layers.BatchNormalization()(
        keras.layers.Conv2D(8, 3, padding="same", activation="relu")(x)
    )
    outputs = keras.layers.Dense(3, activation="softmax")(keras.layers.GlobalAveragePooling2D()(x))
    built = BuiltModel(
        model=keras.Model(inputs, outputs), backbone=None, entry=None, weights="none"
    )
    before = [w.numpy().copy() for w in built.model.trainable_weights]
    resizing = ProgressiveResizing([16, 24], 32)
    train = make_dataset(
        split.subset("train"),
        split.class_names,
        image_size=32,
        batch_size=4,
        shuffle_seed=0,
        side=resizing.side,
        augment=AugmentConfig(),
    )  # the augmentation takes any side too
    val = make_dataset(split.subset("val"), split.class_names, image_size=32, batch_size=4)
    sides = SidesPerEpoch(seen)
    settings = RecipeSettings(initial_epochs=3, fine_tune_epochs=0, initial_lr=1e-2, patience=5)
    train_two_phase(
        built,
        train,
        val,
        settings,
        steps_per_epoch=5,
        verbose=0,
        callbacks=[sides],
        progressive=resizing,
    )

    assert sides.sides == [
        (16, 16),
        (24, 24),
        (32, 32),
    ]  # every batch of an epoch, none left over from the last
    assert built.model.input_shape == (None, 32, 32, 3)
    assert any(
        not np.allclose(a, w.numpy()) for a, w in zip(before, built.model.trainable_weights)
    )  # trained in place
    assert (
        int(resizing.side.numpy()) == 32
    )  # and left at the full side for whoever reads the dataset next


def test_a_pretrained_network_is_refused_by_the_recipe_too():
    from tests.benchmark.stand_ins import stand_in_pretrained

    with pytest.raises(ValueError, match="from scratch"):
        train_two_phase(
            stand_in_pretrained(),
            None,
            None,
            RecipeSettings(),
            steps_per_epoch=1,
            progressive=ProgressiveResizing([8], 16),
        )


def test_a_tiny_run_trains_progressively_and_saves_a_model_of_the_full_side(tmp_path):
    import sys
    from pathlib import Path

    import keras

    from benchmark.run.folder import prepare_run
    from benchmark.run.loop import run_grid
    from benchmark.run.records import load_records

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "cli"))
    from cli_helpers import make_images

    data = make_images(tmp_path / "data", per_class=8, size=32)
    config = RunConfig(
        data=str(data),
        models=["simple_cnn"],
        alphas=[0.0],
        weights="none",
        image_size=32,
        batch_size=8,
        initial_epochs=2,
        fine_tune_epochs=0,
        progressive_sizes=[16],
        profile=False,
        save_models="best",
    )
    ctx = prepare_run(config, tmp_path / "run")
    assert run_grid(ctx, quiet=True) == 0
    (record,) = load_records(ctx.run_dir)
    assert (
        record.status == "ok"
        and record.image_size == 32
        and record.config["progressive_sizes"] == [16]
    )
    assert record.phases[0]["epochs"] == 2
    (saved,) = (ctx.run_dir / "saved_models").glob("*.keras")
    assert keras.models.load_model(saved, compile=False).input_shape == (None, 32, 32, 3)
