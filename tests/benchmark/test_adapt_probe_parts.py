"""The probe curve's weighting and the gap columns, without TensorFlow."""

import numpy as np
import pytest

from benchmark.adapt.curve import AdaptRow, adaptation_table
from benchmark.adapt.plan import TargetWeighting, adapt_weighting
from benchmark.errors import UsageError


def test_share_weighting_gives_each_class_a_share_of_its_source_photos():
    weights = TargetWeighting("share", 0.5).factors(np.array([400.0, 10.0]), np.array([5.0, 5.0]))
    assert weights.tolist() == [40.0, 1.0]  # 5 x 40 = half of 400; never below one photo
    assert TargetWeighting("copies", copies=3).factors(np.ones(2), np.ones(2)).tolist() == [3, 3]


def test_flags_a_curve_does_not_read_are_refused():
    assert adapt_weighting("probe", None, None, None) == TargetWeighting()
    assert adapt_weighting("probe", None, 4, None) == TargetWeighting("copies", copies=4)
    assert adapt_weighting("finetune", None, 2, None) is None
    for args in [("finetune", "share", None, None), ("probe", "copies", None, 0.3)]:
        with pytest.raises(UsageError):
            adapt_weighting(*args)


def row(shots, accuracy, in_domain):
    return AdaptRow(
        "m", 0.0, shots, accuracy, None, None, None, None, 10, "probe", "", 1.0, in_domain
    )


def test_gap_recovered_is_measured_from_k0_to_the_in_domain_figure():
    frame = adaptation_table([row(10, 0.8, 0.9), row(0, 0.6, 0.9), row(5, 0.7, 0.9)])
    assert frame["shots"].tolist() == [0, 5, 10]
    assert frame["k0_target_accuracy"].tolist() == [0.6] * 3
    assert np.allclose(frame["gap_recovered"], [0.0, 1 / 3, 2 / 3])
    no_gap = adaptation_table([row(0, 0.6, 0.5), row(5, 0.7, 0.5)])
    assert no_gap["gap_recovered"].isna().all()  # in-domain below k0: nothing to recover
    finetune = adaptation_table([row(0, 0.6, None), row(5, 0.7, None)])
    assert finetune["gap_recovered"].isna().all()


def test_aligning_standardises_each_domain_by_its_own_unlabelled_statistics():
    from benchmark.adapt.features import StoredFeatures
    from benchmark.adapt.probe_curve import CurveData, align_domains

    rng = np.random.default_rng(0)
    source = rng.normal(0, 1, (40, 3))
    target = 5 + 3 * rng.normal(0, 1, (20, 3))  # the same features moved and stretched
    paths = [f"s{i}" for i in range(40)] + [f"t{i}" for i in range(20)]
    stored = StoredFeatures("m", 8, "w", paths, np.concatenate([source, target]), [])
    data = CurveData(
        {"train": (paths[:30], None), "val": (paths[30:35], None), "test": (paths[35:40], None)},
        (paths[50:], None),  # target test: never informs the statistics
        (paths[40:50], None, None),
    )
    aligned = align_domains(stored, data, "standardise")
    pool, train = aligned.rows(paths[40:50]), aligned.rows(paths[:30])
    assert np.allclose(pool.mean(0), 0, atol=1e-5) and np.allclose(pool.std(0), 1, atol=1e-4)
    assert np.allclose(train.mean(0), 0, atol=1e-5) and np.allclose(train.std(0), 1, atol=1e-4)
    expected = (target[10:] - target[:10].mean(0)) / target[:10].std(0)
    assert np.allclose(aligned.rows(paths[50:]), expected, atol=1e-5)
    assert align_domains(stored, data, "none") is stored
    with pytest.raises(UsageError, match="--align-features"):
        adapt_weighting("finetune", None, None, None, "standardise")
    assert adapt_weighting("probe", None, None, None, "standardise").align == "standardise"
