"""Weight averaging (--ema): the average is what is validated, early-stopped on, kept, evaluated and
backed up right."""

import json

import keras
import numpy as np
import pytest

from benchmark.training.averaging import average_variables
from benchmark.training.checkpoint import WEIGHTS, PhaseCheckpoint
from benchmark.training.optimizer import make_optimizer
from benchmark.training.recipe import RecipeSettings, train_two_phase
from models import BuildSpec, build_model
from tests.benchmark.test_recipe import SIZE, colour_images, dataset, get_simple_cnn_tiny


@pytest.fixture(scope="module")
def data():
    return dataset(*colour_images(24)), dataset(*colour_images(8, seed=1), shuffle=False)


def scratch_cnn():
    keras.utils.set_random_seed(0)
    return build_model(
        "simple_cnn", BuildSpec(num_classes=3, image_size=SIZE, simple_cnn=get_simple_cnn_tiny())
    )


def train(data, *, ema: bool, epochs: int, callbacks=(), checkpoint=None):
    built = scratch_cnn()
    settings = RecipeSettings(
        initial_epochs=epochs,
        fine_tune_epochs=0,
        initial_lr=1e-2,
        patience=10,
        ema=ema,
        ema_momentum=0.9,
    )
    result = train_two_phase(
        built,
        *data,
        settings,
        steps_per_epoch=5,
        verbose=0,
        callbacks=list(callbacks),
        checkpoint=checkpoint,
    )
    return built.model, result.phases[0]


def weights_of(model) -> list[np.ndarray]:
    return [keras.ops.convert_to_numpy(v) for v in model.trainable_variables]


def test_make_optimizer_passes_the_average_to_adamw():
    optimizer = make_optimizer(1e-3, 1e-4, "constant", 5, 10, 0, ema=True, ema_momentum=0.95)
    assert optimizer.use_ema and optimizer.ema_momentum == 0.95
    assert not make_optimizer(1e-3, 1e-4, "constant", 5, 10, 0).use_ema


def test_with_ema_the_model_ends_with_the_average_and_differs_from_plain_training(data):
    plain, _ = train(data, ema=False, epochs=1)
    averaged, phase = train(data, ema=True, epochs=1)
    # One epoch: its end is the best epoch, so the kept weights are the average as it stood then.
    for weight, average in zip(weights_of(averaged), average_variables(averaged)):
        np.testing.assert_array_equal(weight, keras.ops.convert_to_numpy(average))
    assert any(not np.allclose(a, b) for a, b in zip(weights_of(plain), weights_of(averaged)))


def test_validation_and_early_stopping_score_the_weights_that_are_kept(data):
    """Keras alone validates the raw weights and restores a raw snapshot over the average; here both
    are the average's."""
    model, phase = train(data, ema=True, epochs=4)
    best = phase.history["val_loss"][phase.best_epoch - 1]
    model.compile(loss=keras.losses.CategoricalCrossentropy(), metrics=["accuracy"])
    loss, _ = model.evaluate(data[1], verbose=0)
    assert loss == pytest.approx(best, rel=1e-4)
    assert phase.history["val_loss"][-1] != pytest.approx(
        phase.history["loss"][-1]
    )  # sanity: two different figures


def test_the_epoch_backup_holds_the_raw_weights_and_the_average_in_the_optimizer(data, tmp_path):
    """So a resumed cell trains on from the raw weights, not from an average swapped into their
    place."""
    raw_at_epoch_end = []

    class RawWeights(
        keras.callbacks.Callback
    ):  # runs after the backup, as the tracker's loggers do
        def on_epoch_end(self, epoch, logs=None):
            raw_at_epoch_end.append(weights_of(self.model))

    model, _ = train(
        data, ema=True, epochs=2, callbacks=[RawWeights()], checkpoint=PhaseCheckpoint(tmp_path)
    )
    assert json.loads((tmp_path / "single" / "state.json").read_text())["epoch"] == 1
    restored = scratch_cnn().model
    restored.load_weights(tmp_path / "single" / WEIGHTS)
    for saved, raw in zip(weights_of(restored), raw_at_epoch_end[-1]):
        np.testing.assert_array_equal(saved, raw)
    assert any(
        not np.allclose(a, b) for a, b in zip(weights_of(model), raw_at_epoch_end[-1])
    )  # kept: the average


def test_both_phases_of_a_pretrained_model_average_and_end_on_the_average(data):
    from tests.benchmark.test_recipe import tiny_built

    built = tiny_built()
    settings = RecipeSettings(
        initial_epochs=1, fine_tune_epochs=1, fine_tune_layers=2, patience=5, ema=True
    )
    result = train_two_phase(built, *data, settings, steps_per_epoch=5, verbose=0)
    assert [p.name for p in result.phases] == ["head", "fine_tune"]
    assert built.model.optimizer.use_ema  # the phase-2 optimizer averages too
    for weight, average in zip(weights_of(built.model), average_variables(built.model)):
        np.testing.assert_array_equal(weight, keras.ops.convert_to_numpy(average))


def test_mixed_precision_averages_inside_the_loss_scale_optimizer(data):
    """On a GPU the optimizer is wrapped in a LossScaleOptimizer; the average lives in the inner
    one."""
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model, _ = train(data, ema=True, epochs=1)
        assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
        for weight, average in zip(weights_of(model), average_variables(model)):
            np.testing.assert_array_equal(weight, keras.ops.convert_to_numpy(average))
    finally:
        keras.mixed_precision.set_global_policy("float32")
