"""RandomAffine and RandomBrightnessContrast: identity at zero, known motions, Keras semantics,
seeding, shapes."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from data_pipeline import AugmentConfig, DataError, build_augmenter
from data_pipeline.augment import RandomAffine, RandomBrightnessContrast


def random_images(shape=(3, 9, 13, 3), seed=0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 255, shape).astype("float32")


def marked(height: int, width: int, row: int, col: int) -> np.ndarray:
    """One batch of one black image with a single white pixel."""
    image = np.zeros((1, height, width, 3), dtype="float32")
    image[0, row, col] = 255.0
    return image


def position_of_max(images) -> tuple[int, int]:
    plane = np.asarray(images)[0, ..., 0]
    return tuple(int(i) for i in np.unravel_index(plane.argmax(), plane.shape))


def test_zero_factors_are_the_identity():
    images = random_images()
    np.testing.assert_allclose(RandomAffine()(images), images, atol=1e-3)
    np.testing.assert_allclose(RandomBrightnessContrast()(images), images, atol=1e-3)


def test_quarter_turn_moves_a_marked_pixel_counter_clockwise():
    # 3 px right of the centre of a 9x9 image ends 3 px above it.
    out = RandomAffine(rotation=(0.25, 0.25))(marked(9, 9, 4, 7)).numpy()
    assert position_of_max(out) == (1, 4) and out[0, 1, 4, 0] == pytest.approx(255.0, abs=1e-2)


def test_translation_moves_a_marked_pixel_by_the_fraction_of_each_side():
    out = RandomAffine(translation=(0.25, 0.25))(
        marked(12, 8, 6, 4)
    ).numpy()  # 3 rows down, 2 columns right
    assert position_of_max(out) == (9, 6) and out[0, 9, 6, 0] == pytest.approx(255.0, abs=1e-2)


def test_zoom_in_spreads_pixels_away_from_the_centre():
    out = RandomAffine(zoom=(-0.5, -0.5))(
        marked(9, 9, 3, 4)
    ).numpy()  # samples half the size: 1 px above -> 2 px
    assert position_of_max(out) == (2, 4)


def test_shear_is_randomshears_matrix_about_the_centre():
    s, height, width = 0.2, 9.0, 13.0
    cx, cy = (width - 1) / 2, (height - 1) / 2
    transform = RandomAffine(shear=(s, s)).transforms(1, height, width).numpy()[0]
    np.testing.assert_allclose(transform, [1, s, -s * cy, s, 1, -s * cx, 0, 0], atol=1e-5)


@pytest.mark.parametrize(
    "ours, theirs",
    [
        (
            RandomAffine(rotation=(0.07, 0.07)),
            keras.layers.RandomRotation((0.07, 0.07), fill_mode="reflect"),
        ),
        (
            RandomAffine(zoom=(-0.3, -0.3)),
            keras.layers.RandomZoom((-0.3, -0.3), fill_mode="reflect"),
        ),
        (
            RandomAffine(translation=(0.2, 0.2)),
            keras.layers.RandomTranslation((0.2, 0.2), (0.2, 0.2), fill_mode="reflect"),
        ),
    ],
    ids=["rotation", "zoom", "translation"],
)
def test_fixed_factors_give_the_keras_layers_output(ours, theirs):
    images = random_images()
    np.testing.assert_allclose(ours(images), theirs(images), atol=1e-2)


def test_flip_mirrors_some_images_and_keeps_the_others():
    images = random_images((16, 6, 7, 3))
    out = RandomAffine(flip=True, seed=0)(images).numpy()
    mirrored = [np.allclose(o, i[:, ::-1], atol=1e-3) for o, i in zip(out, images)]
    kept = [np.allclose(o, i, atol=1e-3) for o, i in zip(out, images)]
    assert all(m != k for m, k in zip(mirrored, kept)) and any(mirrored) and any(kept)


def test_contrast_keeps_channel_means_and_brightness_shifts_whole_images():
    images = random_images((8, 6, 7, 3)) * 0.5 + 64  # 64..192: no clipping
    contrasted = RandomBrightnessContrast(contrast=0.3, seed=0)(images).numpy()
    np.testing.assert_allclose(contrasted.mean(axis=(1, 2)), images.mean(axis=(1, 2)), atol=1e-2)
    spread = contrasted.std(axis=(1, 2, 3)) / images.std(axis=(1, 2, 3))
    assert np.all((0.7 <= spread) & (spread <= 1.3)) and np.ptp(spread) > 0.01
    shift = RandomBrightnessContrast(brightness=0.2, seed=0)(images).numpy() - images
    np.testing.assert_allclose(shift, shift[:, :1, :1, :1] * np.ones_like(shift), atol=1e-3)
    assert np.all(np.abs(shift) <= 0.2 * 255 + 1e-3) and np.ptp(shift[:, 0, 0, 0]) > 1


def test_same_seed_repeats_the_sequence_and_each_call_differs():
    images = random_images()
    first, again, other = (build_augmenter(AugmentConfig(), seed) for seed in (7, 7, 8))
    calls = [first(images, training=True).numpy() for _ in range(2)]
    np.testing.assert_array_equal(calls[0], again(images, training=True))
    np.testing.assert_array_equal(calls[1], again(images, training=True))
    assert not np.allclose(calls[0], calls[1]) and not np.allclose(
        calls[0], other(images, training=True)
    )


def test_augmenter_keeps_shapes_and_dtype_and_clips_in_tf_data():
    images = random_images((5, 12, 20, 3)) * 1.5 - 60  # out of range on purpose
    augmenter = build_augmenter(AugmentConfig(strength=2.0), seed=0)
    ds = (
        tf.data.Dataset.from_tensor_slices(images)
        .batch(3)
        .map(lambda x: augmenter(x, training=True))
    )
    batches = list(ds)
    assert [b.shape for b in batches] == [(3, 12, 20, 3), (2, 12, 20, 3)] and all(
        b.dtype == tf.float32 for b in batches
    )
    out = np.concatenate(batches)
    assert 0.0 <= out.min() and out.max() <= 255.0


def test_augmenter_stays_float32_under_a_mixed_precision_policy():
    """The pipeline augments pixels before the model casts them: mixed_float16 (the GPU default)
    used to cast them to float16 and fail on the float32 random draws."""
    images = random_images()
    expected = build_augmenter(AugmentConfig(), seed=3)(images, training=True).numpy()
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16")
    try:
        augmenter = build_augmenter(AugmentConfig(), seed=3)
        out = tf.data.Dataset.from_tensors(images).map(lambda x: augmenter(x, training=True))
        batch = next(iter(out))
    finally:
        keras.config.set_dtype_policy(previous)
    assert batch.dtype == tf.float32
    np.testing.assert_allclose(batch.numpy(), expected, atol=1e-3)


def test_build_augmenter_fuses_the_transforms_into_two_layers():
    def kinds(cfg):
        return [type(layer).__name__ for layer in build_augmenter(cfg, seed=0).layers]

    assert kinds(AugmentConfig()) == ["RandomAffine", "RandomBrightnessContrast"]
    assert kinds(AugmentConfig(flip=False, rotation=0, zoom=0, translation=0, shear=0)) == [
        "RandomBrightnessContrast"
    ]


def test_zoom_that_would_collapse_the_image_is_refused():
    with pytest.raises(DataError, match="zoom must be < 1"):
        AugmentConfig(strength=7.0)
    with pytest.raises(ValueError, match="zoom must stay above -1"):
        RandomAffine(zoom=(-1.0, 0.0))
