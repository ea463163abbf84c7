"""Test-time views: fixed, deterministic, made on 0..255 before the family's preprocessing (applied
once per view)."""

import numpy as np
import pytest
import tensorflow as tf

from data_pipeline import (
    MAX_TTA_VIEWS,
    TTA_VIEWS,
    DataError,
    make_dataset,
    make_prediction_batch,
    scan_dataset,
    split_dataset,
    tta_view,
    validate_tta,
)
from data_pipeline.decode import resize_image


def batch(seed: int = 0, size: int = 16) -> tf.Tensor:
    return tf.constant(np.random.default_rng(seed).uniform(0, 255, (2, size, size, 3)), tf.float32)


def test_the_views_are_fixed_distinct_and_deterministic():
    images = batch()
    views = [tta_view(images, v).numpy() for v in range(MAX_TTA_VIEWS)]
    assert len(TTA_VIEWS) == MAX_TTA_VIEWS == 8 and TTA_VIEWS[:2] == ("identity", "flip")
    np.testing.assert_array_equal(views[0], images.numpy())
    np.testing.assert_array_equal(views[1], images.numpy()[:, :, ::-1])
    for v in range(MAX_TTA_VIEWS):
        assert views[v].shape == images.shape and 0 <= views[v].min() and views[v].max() <= 255
        np.testing.assert_array_equal(
            tta_view(images, v).numpy(), views[v]
        )  # same input, same view
        for w in range(v):
            assert not np.allclose(views[v], views[w]), (TTA_VIEWS[v], TTA_VIEWS[w])


def test_crops_keep_seven_eighths_of_each_side_and_resize_back():
    images = batch(size=16)  # 14 of 16 pixels kept: centre offset 1, corners at 0 or 2
    expected = {
        2: images[:, 1:15, 1:15],
        4: images[:, 0:14, 0:14],
        5: images[:, 0:14, 2:16],
        6: images[:, 2:16, 0:14],
        7: images[:, 2:16, 2:16],
    }
    for view, crop in expected.items():
        np.testing.assert_allclose(
            tta_view(images, view).numpy(), resize_image(crop, (16, 16)).numpy(), atol=1e-4
        )
    np.testing.assert_allclose(
        tta_view(images, 3).numpy(), tta_view(images, 2).numpy()[:, :, ::-1], atol=1e-4
    )


def test_view_numbers_and_counts_are_checked():
    with pytest.raises(DataError, match="view 8"):
        tta_view(batch(), 8)
    assert validate_tta(0) == 0 and validate_tta(8) == 8
    for bad in (-1, 9, 2.5, True):
        with pytest.raises(DataError, match="--tta"):
            validate_tta(bad)


def test_datasets_and_prediction_batches_make_the_view_before_preprocessing_once(folders):
    split = split_dataset(scan_dataset(folders))
    frame = split.subset("val")
    halve = lambda x: x / 2 - 1  # noqa: E731 (a stand-in family preprocessing; twice would be x/4 - 1.5)

    def images(**kwargs):
        return np.concatenate(
            [
                x.numpy()
                for x, _ in make_dataset(
                    frame, split.class_names, image_size=16, batch_size=4, **kwargs
                )
            ]
        )

    plain = images()
    for view in (1, 2, 6):
        expected = tta_view(tf.constant(plain), view).numpy() / 2 - 1
        np.testing.assert_allclose(images(preprocess=halve, view=view), expected, atol=1e-4)
        np.testing.assert_allclose(
            make_prediction_batch(frame["path"], 16, halve, view=view), expected, atol=1e-4
        )
