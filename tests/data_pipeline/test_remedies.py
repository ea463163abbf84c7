"""The augmentation remedies (data_pipeline.remedies): each changes the training images, the same
seed gives the same pixels, and MixUp/CutMix mix labels (summing to 1) and class weights alike."""

import os

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from dp_helpers import write_image  # noqa: E402

from data_pipeline import AugmentConfig, DataError  # noqa: E402
from data_pipeline.remedies import LabelMixer  # noqa: E402
from data_pipeline.tfdata import make_dataset  # noqa: E402

CLASS_WEIGHTS = np.array([1.0, 3.0], dtype=np.float32)
REMEDIES = {
    "randaugment": AugmentConfig(policy="randaugment"),
    "augmix": AugmentConfig(policy="augmix"),
    "random_erasing": AugmentConfig(random_erasing=0.5),
    "mixup": AugmentConfig(mixup=0.4),
    "cutmix": AugmentConfig(cutmix=1.0),
}


@pytest.fixture(scope="module")
def frame(tmp_path_factory) -> pd.DataFrame:
    root = tmp_path_factory.mktemp("remedy_images")
    paths = [write_image(root / f"{i}.png", seed=i, size=(40, 40)) for i in range(12)]
    return pd.DataFrame({"path": [str(p) for p in paths], "label": ["a", "b"] * 6})


def epoch_batches(frame, augment, seed=0, epoch=1):
    dataset = make_dataset(
        frame,
        ["a", "b"],
        image_size=32,
        batch_size=6,
        augment=augment,
        sample_weights=CLASS_WEIGHTS,
        shuffle_seed=seed,
        epoch=epoch,
    )
    return [tuple(np.asarray(part) for part in batch) for batch in dataset]


@pytest.fixture(scope="module")
def basic(frame):
    return epoch_batches(frame, AugmentConfig())


@pytest.mark.parametrize("name", sorted(REMEDIES))
def test_each_remedy_changes_the_images_and_repeats_them_per_seed(frame, basic, name):
    first, again = epoch_batches(frame, REMEDIES[name]), epoch_batches(frame, REMEDIES[name])
    other_seed = epoch_batches(frame, REMEDIES[name], seed=1)
    for (images, labels, weights), (images2, labels2, weights2) in zip(first, again):
        np.testing.assert_array_equal(images, images2)
        np.testing.assert_array_equal(labels, labels2)
        np.testing.assert_array_equal(weights, weights2)
    assert any(not np.array_equal(a[0], b[0]) for a, b in zip(first, basic))
    assert any(not np.array_equal(a[0], b[0]) for a, b in zip(first, other_seed))
    assert all(np.isfinite(batch[0]).all() for batch in first)


@pytest.mark.parametrize("name", ["mixup", "cutmix"])
def test_mixing_keeps_labels_summing_to_one_and_mixes_the_class_weights(frame, name):
    images, labels, weights = epoch_batches(frame, REMEDIES[name])[0]
    np.testing.assert_allclose(labels.sum(axis=1), 1.0, atol=1e-6)
    assert ((labels > 0) & (labels < 1)).any()  # some images really are mixed
    # The weight is the same blend of the two images' class weights as the label.
    np.testing.assert_allclose(weights, labels @ CLASS_WEIGHTS, rtol=1e-5)
    assert ((weights > 1.0) & (weights < 3.0)).any()


def test_unmixed_remedies_keep_one_hot_labels_and_their_class_weights(frame):
    for name in ("randaugment", "augmix", "random_erasing"):
        for _, labels, weights in epoch_batches(frame, REMEDIES[name]):
            assert set(np.unique(labels)) <= {0.0, 1.0}
            np.testing.assert_array_equal(weights, labels @ CLASS_WEIGHTS)


def test_cutmix_label_share_is_the_pasted_area():
    images = np.zeros((4, 10, 10, 3), np.float32)
    images[2:] = 255.0  # images 0, 1 black, 2, 3 white
    labels = np.eye(2, dtype=np.float32)[[0, 0, 1, 1]]
    mixed, soft, _ = LabelMixer(0.0, 1.0, seed=3)(images, labels)
    mixed, soft = np.asarray(mixed), np.asarray(soft)
    white_share = (mixed[..., 0] == 255.0).mean(axis=(1, 2))
    np.testing.assert_allclose(soft[:, 1], white_share, atol=1e-6)


def test_bad_remedy_values_are_refused():
    with pytest.raises(DataError, match="policy"):
        AugmentConfig(policy="autoaugment")
    with pytest.raises(DataError, match="random_erasing"):
        AugmentConfig(random_erasing=1.5)
    with pytest.raises(DataError, match="mixup"):
        AugmentConfig(mixup=-0.1)


def test_bank_key_holds_the_remedies_only_when_set():
    assert AugmentConfig().key() == {
        k: v
        for k, v in AugmentConfig().__dict__.items()
        if k not in ("policy", "random_erasing", "mixup", "cutmix")
    }
    assert AugmentConfig(policy="augmix").key()["policy"] == "augmix"
    assert AugmentConfig(random_erasing=0.25).key() != AugmentConfig().key()
