"""Label maps and set-target scoring, checked against hand counts and scikit-learn, not against
themselves."""

import numpy as np
import pytest
from sklearn.metrics import f1_score

from benchmark.cross_dataset.label_map import read_label_map_file, resolve_label_map
from benchmark.cross_dataset.scoring import score_predictions, target_matrix
from benchmark.errors import UsageError

RUN = ["cardboard", "glass", "metal", "paper", "plastic", "trash"]


def test_classes_match_by_name_ignoring_case():
    label_map = resolve_label_map(["Glass", "PAPER"], RUN)
    assert label_map.targets == {"Glass": ("glass",), "PAPER": ("paper",)}
    assert label_map.by_name == ("Glass", "PAPER") and label_map.left_out == ()


def test_an_unmatched_class_without_a_map_is_one_line_naming_it_and_the_flag():
    with pytest.raises(UsageError) as error:
        resolve_label_map(["glass", "bottles"], RUN)
    message = str(error.value)
    assert (
        "'bottles'" in message
        and "--label-map" in message
        and "\n" not in message
        and "'glass'" not in message
    )


def test_a_map_gives_lists_nulls_and_falls_back_to_names():
    label_map = resolve_label_map(
        ["Glass", "food", "paper_and_cardboard", "tins"],
        RUN,
        {"paper_and_cardboard": ["Paper", "cardboard"], "food": None, "tins": "metal"},
        source="map.yaml",
    )
    assert label_map.targets == {
        "Glass": ("glass",),
        "paper_and_cardboard": ("cardboard", "paper"),
        "tins": ("metal",),
    }
    assert label_map.left_out == ("food",) and label_map.by_name == ("Glass",)
    assert (
        label_map.describe()[-1] == "food -> (left out)"
        and "paper_and_cardboard -> cardboard | paper" in label_map.describe()
    )


@pytest.mark.parametrize(
    "mapping, named",
    [
        ({"tins": "aluminium"}, "'aluminium'"),  # a target the run lacks
        ({"tins": ["metal", "steel"]}, "'steel'"),
        ({"cans": "metal"}, "'cans'"),  # a key that is not one of DATA's classes
        ({"tins": []}, "'tins'"),
        ({"tins": 3}, "'tins'"),
    ],
)
def test_a_bad_map_entry_is_one_line_naming_it(mapping, named):
    with pytest.raises(UsageError) as error:
        resolve_label_map(["glass", "tins"], RUN, mapping, source="map.yaml")
    assert (
        named in str(error.value)
        and "map.yaml" in str(error.value)
        and "\n" not in str(error.value)
    )


def test_a_map_leaving_everything_out_is_an_error():
    with pytest.raises(UsageError, match="leaves out every class"):
        resolve_label_map(["food", "wood"], RUN, {"food": None, "wood": None}, source="m.json")


def test_map_files_read_as_yaml_or_json_and_bad_ones_are_one_line(tmp_path):
    (tmp_path / "map.yaml").write_text("paper_and_cardboard: [paper, cardboard]\nfood: null\n")
    (tmp_path / "map.json").write_text(
        '{"paper_and_cardboard": ["paper", "cardboard"], "food": null}'
    )
    assert (
        read_label_map_file(tmp_path / "map.yaml")
        == read_label_map_file(tmp_path / "map.json")
        == {"paper_and_cardboard": ["paper", "cardboard"], "food": None}
    )
    (tmp_path / "bad.yaml").write_text("a: [b\n")
    (tmp_path / "list.yaml").write_text("- paper\n")
    for name, says in (
        ("bad.yaml", "not valid YAML"),
        ("list.yaml", "must be a mapping"),
        ("none.yaml", "does not exist"),
    ):
        with pytest.raises(UsageError, match=says) as error:
            read_label_map_file(tmp_path / name)
        assert name in str(error.value) and "\n" not in str(error.value)


def test_one_to_one_map_scores_as_scikit_learn_over_the_mapped_classes():
    label_map = resolve_label_map(["Glass", "paper", "plastic"], RUN)
    targets = target_matrix(label_map, RUN)
    rng = np.random.default_rng(1)
    true = rng.integers(0, 3, 300)
    pred = rng.integers(0, 6, 300)  # also run classes no DATA class maps to: misses only
    score = score_predictions(true, pred, targets, list(label_map.targets))
    as_run = np.array([RUN.index(c) for c in ("glass", "paper", "plastic")])[true]
    assert score.accuracy == pytest.approx(np.mean(as_run == pred))
    assert score.macro_f1 == pytest.approx(
        f1_score(as_run, pred, labels=[1, 3, 4], average="macro")
    )
    assert score.accuracy_ci[0] < score.accuracy < score.accuracy_ci[1]
    assert score.macro_f1_ci[0] < score.macro_f1 < score.macro_f1_ci[1]
    assert (
        np.array(score.confusion).shape == (3, 6)
        and np.array(score.confusion).sum(axis=1).tolist() == np.bincount(true).tolist()
    )


def test_a_list_target_counts_any_of_its_classes_and_f1_follows_the_definition():
    # DATA: 0 = paper_and_cardboard -> {cardboard, paper}, 1 = glass -> {glass}
    label_map = resolve_label_map(
        ["glass", "paper_and_cardboard"], RUN, {"paper_and_cardboard": ["paper", "cardboard"]}
    )
    targets = target_matrix(label_map, RUN)
    data = list(label_map.targets)
    assert data == ["glass", "paper_and_cardboard"]
    p, c, g, t = RUN.index("paper"), RUN.index("cardboard"), RUN.index("glass"), RUN.index("trash")
    true = np.array([1, 1, 1, 1, 0, 0, 0, 0])
    pred = np.array([p, c, g, t, g, g, c, t])
    score = score_predictions(true, pred, targets, data)
    assert score.accuracy == pytest.approx(
        4 / 8
    )  # paper, cardboard right for the mixed class; two glass right
    assert score.per_class["paper_and_cardboard"]["recall"] == pytest.approx(2 / 4)
    assert score.per_class["glass"]["recall"] == pytest.approx(2 / 4)
    # glass: TP 2, FP 1 (a mixed photo called glass), FN 2 -> 4/7; mixed: TP 2, FP 1 (glass called
    # cardboard), FN 2 -> 4/7
    assert score.per_class["glass"]["f1"] == pytest.approx(4 / 7)
    assert score.per_class["paper_and_cardboard"]["f1"] == pytest.approx(4 / 7)
    assert score.macro_f1 == pytest.approx(4 / 7)


def test_two_data_classes_sharing_a_run_class_count_each_other_in_precision_only():
    label_map = resolve_label_map(
        ["bags", "bottles"], RUN, {"bags": "plastic", "bottles": "plastic"}
    )
    targets = target_matrix(label_map, RUN)
    true = np.array([0, 0, 1, 1])
    pred = np.full(4, RUN.index("plastic"))  # a perfect plastic detector
    score = score_predictions(true, pred, targets, list(label_map.targets))
    assert score.accuracy == 1.0 and score.per_class["bags"]["recall"] == 1.0
    assert score.per_class["bags"]["precision"] == pytest.approx(
        0.5
    ) and score.macro_f1 == pytest.approx(2 / 3)


def test_bootstrap_is_seeded_and_stratified():
    targets = target_matrix(resolve_label_map(["glass", "paper"], RUN), RUN)
    true = np.array([0] * 30 + [1] * 10)
    pred = np.where(np.arange(40) % 3 == 0, RUN.index("trash"), np.array([1] * 30 + [3] * 10))
    first = score_predictions(true, pred, targets, ["glass", "paper"], n_resamples=250)
    again = score_predictions(true, pred, targets, ["glass", "paper"], n_resamples=250)
    assert first.accuracy_ci == again.accuracy_ci and first.macro_f1_ci == again.macro_f1_ci
    perfect = score_predictions(true, np.array([1] * 30 + [3] * 10), targets, ["glass", "paper"])
    assert perfect.accuracy_ci == (1.0, 1.0) and perfect.macro_f1_ci == (1.0, 1.0)
