"""Pieces of the runner proven on tiny data: each family's preprocessing through the real pipeline,
cached head features, late-fusion rules and precision choices."""

from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from stand_ins import SIZE, colour_split, stand_in_pretrained

from benchmark.run.cell_inputs import CellInputs
from benchmark.run.devices import resolve_precision
from benchmark.run.late_fusion import choose_image_weight, confidence_selection, weighted_average
from benchmark.training.head_features import (
    cached_features,
    feature_dataset,
    head_model,
    supports_cached_features,
)
from benchmark.training.recipe import CachedHeadPhase, RecipeSettings, train_two_phase
from models import get_entry, preprocess_function


@pytest.fixture(scope="module")
def split(tmp_path_factory):
    return colour_split(tmp_path_factory.mktemp("colours"))


def first_batch(split, model_name: str, tmp_path) -> np.ndarray:
    entry = get_entry(model_name)
    inputs = CellInputs(
        image_size=SIZE,
        preprocess=preprocess_function(entry.preprocess),
        modality="image",
        cache_dir=tmp_path / model_name,
    )
    return np.asarray(next(iter(inputs.dataset(split, "train", 64)))[0])


def test_each_family_gets_its_own_preprocessing_through_the_pipeline(split, tmp_path):
    raw = first_batch(split, "simple_cnn", tmp_path)
    assert raw.min() >= 0 and raw.max() > 200  # 0..255 pixels: the model rescales them itself
    for name in ("mobilenet_v3_small", "efficientnet_b0"):
        np.testing.assert_allclose(
            first_batch(split, name, tmp_path), raw
        )  # raw contract: rescaled inside the model
    for name in ("mobilenet", "mobilenet_v2", "resnet152v2"):
        np.testing.assert_allclose(
            first_batch(split, name, tmp_path), raw / 127.5 - 1, atol=1e-5
        )  # "tf" contract, applied once
    caffe = first_batch(
        split, "resnet50", tmp_path
    )  # RGB -> BGR, ImageNet means subtracted, no scaling
    np.testing.assert_allclose(caffe[..., 0], raw[..., 2] - 103.939, atol=1e-3)


def test_cells_feeding_the_same_inputs_share_one_decoded_cache(split, tmp_path):
    inputs = CellInputs(
        image_size=SIZE, preprocess=None, modality="image", cache_dir=tmp_path / "cache"
    )
    first = [np.asarray(x) for x, _ in inputs.dataset(split, "val", 4)]
    assert len(list((tmp_path / "cache").glob("val_*.index"))) == 1
    paths = list(split.subset("val")["path"])
    try:
        for path in paths:
            Path(path).rename(
                f"{path}.moved"
            )  # a second cell's dataset must read the cache, not the files
        again = [np.asarray(x) for x, _ in inputs.dataset(split, "val", 4)]
    finally:
        for path in paths:
            Path(f"{path}.moved").rename(path)
    np.testing.assert_array_equal(np.concatenate(first), np.concatenate(again))


def test_cached_features_are_the_models_pooled_output_and_are_reused(split, tmp_path):
    built = stand_in_pretrained()
    assert supports_cached_features(built)
    inputs = CellInputs(
        image_size=SIZE, preprocess=None, modality="image", cache_dir=tmp_path / "cache"
    )
    cache = tmp_path / "features.npy"
    features = cached_features(built, inputs.dataset(split, "train", 4), cache)
    images = np.concatenate([np.asarray(x) for x, _ in inputs.dataset(split, "train", 64)])
    expected = np.asarray(built.backbone(images, training=False)).mean(axis=(1, 2))
    np.testing.assert_allclose(features, expected, rtol=1e-4, atol=1e-5)
    np.save(cache, np.zeros_like(features))  # a second call must read the file, not recompute
    reread = cached_features(built, inputs.dataset(split, "train", 4), cache)
    assert not reread.any()  # (a damaged file is computed again: see test_feature_bank.py)


def test_head_on_cached_features_matches_the_online_head(split, tmp_path):
    """Same seed, no augmentation: phase 1 on stored features ends where phase 1 on images does."""
    inputs = CellInputs(
        image_size=SIZE, preprocess=None, modality="image", cache_dir=tmp_path / "cache"
    )
    labels = {part: split.label_indices(part) for part in ("train", "val")}
    settings = RecipeSettings(initial_epochs=6, fine_tune_epochs=0, initial_lr=1e-2, patience=10)
    probabilities = {}
    for mode in ("online", "cached"):
        built = stand_in_pretrained(seed=3)
        train = inputs.dataset(split, "train", 6, shuffle_seed=0)
        val = inputs.dataset(split, "val", 6)
        cached = None
        if mode == "cached":
            parts = {
                p: cached_features(built, inputs.dataset(split, p, 6), tmp_path / f"{p}.npy")
                for p in labels
            }
            cached = CachedHeadPhase(
                model=head_model(built),
                train=feature_dataset(parts["train"], labels["train"], 3, 6, shuffle_seed=0),
                val=feature_dataset(parts["val"], labels["val"], 3, 6),
            )
        train_two_phase(
            built,
            train,
            val,
            settings,
            steps_per_epoch=3,
            verbose=0,
            cached_head=cached,
            single_phase=False,
        )
        probabilities[mode] = built.model.predict(
            val, verbose=0
        )  # the full model, head weights from either path
    # The same batches in the same order reach the same head: only float summation order may differ.
    np.testing.assert_allclose(probabilities["cached"], probabilities["online"], atol=1e-4)


def test_confidence_selection_takes_the_surer_model_and_ties_go_to_the_image():
    image = np.array([[0.9, 0.1], [0.6, 0.4], [0.5, 0.5]])
    text = np.array([[0.2, 0.8], [0.1, 0.9], [0.5, 0.5]])
    chosen = confidence_selection(image, text)
    np.testing.assert_array_equal(chosen, [image[0], text[1], image[2]])


def test_weighted_average_weight_is_chosen_on_validation():
    y = np.array([0, 0, 1, 1])
    image = np.array([[0.9, 0.1], [0.8, 0.2], [0.6, 0.4], [0.7, 0.3]])  # right on class 0 only
    text = np.array([[0.4, 0.6], [0.45, 0.55], [0.1, 0.9], [0.2, 0.8]])  # right on class 1 only
    weight = choose_image_weight(image, text, y)
    assert np.mean(weighted_average(image, text, weight).argmax(1) == y) == 1.0
    np.testing.assert_allclose(weighted_average(image, text, 1.0), image)
    assert choose_image_weight(image, image, y) == 0.5  # every weight ties: the balanced one


def test_precision_auto_is_float32_on_cpu_and_explicit_choices_pass_through():
    if tf.config.list_physical_devices("GPU"):
        pytest.skip("this machine has a GPU")
    assert resolve_precision("auto") == "float32"
    assert resolve_precision("mixed_bfloat16") == "mixed_bfloat16"


def test_mixed_precision_keeps_the_softmax_in_float32():
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        built = stand_in_pretrained()
        assert built.model.layers[-1].compute_dtype == "float32"
        assert built.model(np.zeros((1, SIZE, SIZE, 3), "float32")).dtype == "float32"
    finally:
        keras.mixed_precision.set_global_policy("float32")
