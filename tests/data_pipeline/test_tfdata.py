"""make_dataset: shapes, value ranges, order, preprocessing once, augmentation, weights, caching;
decoding formats."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
from dp_helpers import write_image

from data_pipeline import (
    AugmentConfig,
    DataError,
    fill_shared_cache,
    make_dataset,
    make_prediction_batch,
    scan_dataset,
    split_dataset,
)
from data_pipeline.images import decode_rgb


@pytest.fixture
def split(folders):
    return split_dataset(scan_dataset(folders))


def images_of(ds) -> np.ndarray:
    return np.concatenate([batch[0].numpy() for batch in ds])


def test_shapes_dtypes_and_ranges(split):
    train = split.subset("train")
    batches = list(make_dataset(train, split.class_names, image_size=(12, 20), batch_size=4))
    x, y = batches[0]
    assert (
        x.shape == (4, 12, 20, 3)
        and x.dtype == tf.float32
        and y.shape == (4, 3)
        and y.dtype == tf.float32
    )
    assert sum(len(b[0]) for b in batches) == len(train)
    images = images_of(batches)
    assert 0 <= images.min() and images.max() <= 255 and images.max() > 200
    labels = np.concatenate([b[1].numpy() for b in batches])
    np.testing.assert_array_equal(labels.argmax(1), split.label_indices("train"))
    np.testing.assert_array_equal(labels.sum(1), 1)


def test_unshuffled_order_is_file_order_and_matches_prediction_batches(split):
    val = split.subset("val")
    images = images_of(make_dataset(val, split.class_names, image_size=16, batch_size=3))
    np.testing.assert_allclose(
        images, make_prediction_batch(list(val["path"]), 16, None), atol=1e-3
    )


def test_shuffle_is_seeded_and_reshuffles_each_epoch(split):
    train = split.subset("train")
    ds = make_dataset(train, split.class_names, image_size=8, batch_size=32, shuffle_seed=3)
    first, second = images_of(ds), images_of(ds)
    again = images_of(
        make_dataset(train, split.class_names, image_size=8, batch_size=32, shuffle_seed=3)
    )
    assert not np.array_equal(first, second)
    np.testing.assert_array_equal(first, again)
    assert np.isclose(np.sort(first.ravel()), np.sort(second.ravel())).all()


@pytest.mark.parametrize("cache", [None, "memory", "file"])
def test_preprocess_is_applied_exactly_once(split, tmp_path, cache):
    train = split.subset("train")
    raw = images_of(make_dataset(train, split.class_names, image_size=16, batch_size=4))
    ds = make_dataset(
        train,
        split.class_names,
        image_size=16,
        batch_size=4,
        preprocess=lambda x: 2.0 * x + 1000.0,
        cache=str(tmp_path / "cache") if cache == "file" else cache,
    )
    for _ in range(2):  # a second epoch reads the cache: still once
        np.testing.assert_allclose(images_of(ds), 2.0 * raw + 1000.0, rtol=1e-6)
    if cache == "file":
        assert list(tmp_path.glob("cache*"))


def test_keras_preprocess_input_gives_the_same_pixels_in_both_paths(split):
    import keras

    val, preprocess = split.subset("val"), keras.applications.mobilenet_v2.preprocess_input
    images = images_of(
        make_dataset(val, split.class_names, image_size=16, batch_size=8, preprocess=preprocess)
    )
    assert -1.0 <= images.min() and images.max() <= 1.0
    np.testing.assert_allclose(
        images, make_prediction_batch(list(val["path"]), 16, preprocess), atol=1e-5
    )


def test_augmentation_only_when_asked_seeded_and_clipped(split):
    train = split.subset("train")

    def run(augment, seed=0):
        return make_dataset(
            train,
            split.class_names,
            image_size=16,
            batch_size=4,
            augment=augment,
            shuffle_seed=seed,
        )

    plain = images_of(run(None))
    ds = run(AugmentConfig())
    first, second = images_of(ds), images_of(ds)
    assert not np.allclose(first, plain) and not np.allclose(
        first, second
    )  # augmented, and anew each epoch
    np.testing.assert_array_equal(first, images_of(run(AugmentConfig())))  # same seed, same images
    assert not np.allclose(first, images_of(run(AugmentConfig(), seed=1)))
    assert 0.0 <= first.min() and first.max() <= 255.0
    np.testing.assert_array_equal(images_of(run(AugmentConfig(strength=0.0, flip=False))), plain)


def test_augment_config_resolves_strength_and_overrides():
    cfg = AugmentConfig(strength=2.0, rotation=0.0, zoom=0.3)
    assert (
        cfg.factor("rotation") == 0.0
        and cfg.factor("zoom") == 0.3
        and cfg.factor("shear") == pytest.approx(0.2)
    )


def test_sample_weights_give_each_element_its_class_weight(split):
    weights = np.array([0.5, 1.0, 4.0])
    ds = make_dataset(
        split.subset("train"),
        split.class_names,
        image_size=8,
        batch_size=5,
        sample_weights=weights,
        shuffle_seed=0,
    )
    for x, y, w in ds:
        assert w.dtype == tf.float32 and w.shape == (len(x),)
        np.testing.assert_allclose(w.numpy(), weights[y.numpy().argmax(1)])


@pytest.mark.parametrize(
    "name, fmt",
    [
        ("a.png", "PNG"),
        ("a.bmp", "BMP"),
        ("a.gif", "GIF"),
        ("a.webp", "WEBP"),
        ("a.jpg", "JPEG"),
        ("tiff_named.png", "TIFF"),
    ],
)
def test_every_format_decodes_to_the_pixels_pil_sees(tmp_path, name, fmt):
    path = write_image(tmp_path / "x" / name, 1, size=(30, 20), fmt=fmt)
    frame = pd.DataFrame({"path": [str(path)], "label": ["x"]})
    (image,) = images_of(make_dataset(frame, ["x", "y"], image_size=(20, 30), batch_size=1))
    np.testing.assert_array_equal(make_prediction_batch([path], (20, 30))[0], image)
    pil = decode_rgb(path).astype(np.float32)  # same size: the resize leaves the pixels alone
    # one decoder for scan, training and prediction: exactly the same pixels, JPEG included
    np.testing.assert_allclose(image, pil, atol=1e-3)


def test_prediction_batch_rejects_an_unreadable_file(tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_text("hello")
    with pytest.raises(DataError, match=r"cannot read image .*bad.jpg \(not an image\)"):
        make_prediction_batch([bad], 16)


def test_a_shared_cache_is_committed_whole_and_read_by_later_datasets(split, tmp_path):
    prefix = tmp_path / "cache" / "train"
    frame = split.subset("train")
    Path(f"{tmp_path / 'cache'}").mkdir()
    Path(f"{prefix}_0.lockfile").write_text(
        ""
    )  # what a killed tf.data writer leaves behind: never read
    assert fill_shared_cache(frame, split.class_names, prefix, image_size=8) == prefix
    assert Path(f"{prefix}.index").is_file() and not list(prefix.parent.glob(".*tmp*"))
    first = [
        np.asarray(b[0])
        for b in make_dataset(frame, split.class_names, image_size=8, batch_size=4, cache=prefix)
    ]
    Path(frame["path"].iloc[0]).unlink()  # a finished cache never touches the image files again
    again = [
        np.asarray(b[0])
        for b in make_dataset(frame, split.class_names, image_size=8, batch_size=4, cache=prefix)
    ]
    np.testing.assert_array_equal(np.concatenate(first), np.concatenate(again))


def test_a_stand_alone_epoch_is_a_pure_function_of_seed_and_epoch(split):
    frame = split.subset("train")

    def images(epoch):
        ds = make_dataset(
            frame,
            split.class_names,
            image_size=8,
            batch_size=4,
            augment=AugmentConfig(),
            shuffle_seed=3,
            epoch=epoch,
        )
        return np.concatenate([np.asarray(b[0]) for b in ds])

    np.testing.assert_array_equal(images(1), images(1))  # rebuilt from scratch: the same draws
    assert not np.allclose(images(1), images(2))  # another epoch: other order and draws
