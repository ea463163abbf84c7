"""Corruption robustness with test-time augmentation (`cross_dataset/robustness_tta.py`): each
image set scored with the softmax averaged over the first N views, the same images and severities
as the plain rows; one view count per run folder."""

import keras
import numpy as np
import pytest
from stand_ins import SIZE, colour_split

from benchmark.cross_dataset.robustness_tta import (
    VIEWS_FILE,
    check_views,
    claim_views,
    score_models_tta,
    stored_views,
)
from benchmark.errors import UsageError
from benchmark.run.robustness import (
    TTA,
    ScoredModel,
    image_sets,
    parts_dir,
    point_rows,
    score_models,
    scored_sets,
)
from data_pipeline.tta import tta_view


@pytest.fixture(scope="module")
def split(tmp_path_factory):
    return colour_split(tmp_path_factory.mktemp("colours"))  # 3 test images per class


def lopsided_model() -> keras.Model:
    """A model whose answer depends on where in the image the colour is (a flip or a crop moves
    it), so averaging views changes what it predicts."""
    keras.utils.set_random_seed(3)
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.Flatten()(x)
    return keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(x))


def scored(model) -> ScoredModel:
    return ScoredModel("m__alpha0__seed0", "m", 0.0, 0, model, "raw", ["a", "b", "c"])


def test_each_set_is_scored_with_the_views_averaged(split):
    model = lopsided_model()
    rows = score_models_tta([scored(model)], split, SIZE, views=4)["m__alpha0__seed0"]
    plain = score_models([scored(model)], split, SIZE)["m__alpha0__seed0"]
    key = [(r.corruption, r.severity, r.n) for r in plain]
    assert [(r.corruption, r.severity, r.n) for r in rows] == key
    # By hand: the four views of each set, predicted one by one, the softmax averaged.
    sets, truth = scored_sets(split, SIZE, 8)
    expected = []
    for name in image_sets():
        images = sets.images(name).astype("float32")
        views = [model.predict(np.asarray(tta_view(images, v)), verbose=0) for v in range(4)]
        predicted = np.argmax(np.mean(views, axis=0), axis=1)
        expected += point_rows(scored(model), name, sets, truth, predicted)
    assert [r.accuracy for r in rows] == pytest.approx([r.accuracy for r in expected])
    # Not the plain figures under another name: the views change some prediction.
    sets_images = sets.images(image_sets()[0]).astype("float32")
    first = model.predict(sets_images, verbose=0)
    flipped = model.predict(np.asarray(tta_view(sets_images, 1)), verbose=0)
    assert not np.allclose(first, flipped, atol=1e-3)


@pytest.mark.parametrize("views", [0, 1, 9, True, 2.5])
def test_a_view_count_that_is_not_2_to_8_is_refused(views):
    with pytest.raises(UsageError, match="--tta must be 2 to 8"):
        check_views(views)


def test_one_view_count_per_run_folder_unless_forced(tmp_path):
    assert stored_views(tmp_path) is None
    claim_views(tmp_path, 2, force=False)
    folder = parts_dir(tmp_path, TTA)
    assert (folder / VIEWS_FILE).read_text() == "2\n" and stored_views(tmp_path) == 2
    (folder / "m__alpha0__seed0.csv").write_text("rows scored with 2 views\n")
    with pytest.raises(UsageError, match="scored with --tta 2"):
        claim_views(tmp_path, 4, force=False)
    assert stored_views(tmp_path) == 2 and (folder / "m__alpha0__seed0.csv").is_file()
    claim_views(tmp_path, 2, force=False)  # the same count adds cells
    claim_views(tmp_path, 4, force=True)  # another count starts over
    assert stored_views(tmp_path) == 4 and not (folder / "m__alpha0__seed0.csv").exists()
