"""The linear probe on synthetic features: it separates what is separable, and only validation
chooses its regularisation (a test split that would pick otherwise is ignored)."""

import numpy as np

from benchmark.training.linear_probe import fit_probe

CLASSES = ["a", "b", "c"]


def blobs(rng, counts, dim=16) -> tuple[np.ndarray, np.ndarray]:
    """Linearly separable classes: class k sits at +4 on feature k, noise elsewhere."""
    labels = np.repeat(np.arange(len(counts)), counts)
    features = rng.normal(0.0, 1.0, (len(labels), dim))
    features[np.arange(len(labels)), labels] += 4.0
    return features, labels


def test_the_probe_separates_separable_features_and_validation_alone_picks_c():
    rng = np.random.default_rng(0)
    train, val, test = blobs(rng, (60, 30, 20)), blobs(rng, (20, 20, 20)), blobs(rng, (20, 20, 20))
    # Test labels all say "a": a nearly unregularised-away probe (tiny C predicts the majority
    # class, "a", everywhere) would score 1.0 there, so a probe that chose on test would pick it.
    test_labels = np.zeros_like(test[1])
    fit = fit_probe(
        {"train": train[0], "val": val[0], "test": test[0]},
        {"train": train[1], "val": val[1], "test": test_labels},
        CLASSES,
        c_grid=(1e-6, 10.0),
    )
    assert fit.C == 10.0
    assert fit.metrics["val"]["accuracy"] > 0.95
    assert fit.metrics["test"]["accuracy"] < 0.5  # scored once, with validation's choice
    assert len(fit.grid) == 4 and {p["class_weight"] for p in fit.grid} == {"none", "balanced"}
    tiny = [p for p in fit.grid if p["C"] == 1e-6 and p["class_weight"] == "none"][0]
    assert tiny["val_accuracy"] < 0.5  # the majority-class probe that test would have preferred
    chosen = max(fit.grid, key=lambda p: (p["val_accuracy"], p["val_macro_f1"]))
    assert chosen["val_accuracy"] == fit.metrics["val"]["accuracy"]
