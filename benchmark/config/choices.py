"""Every configuration key whose value is one of a fixed set.

`RunConfig.validate` checks these and the command-line flags offer them, so the two never disagree.
Plain data, so the parser can read it without importing TensorFlow.
"""

CHOICES: dict[str, tuple[str, ...]] = {
    "lr_schedule": ("constant", "cosine"),
    "monitor": ("val_loss", "val_accuracy"),
    "text_pooling": ("cls", "mean"),
    "head_features": ("auto", "cached", "online"),
    "fine_tune_features": ("auto", "bank", "online"),
    "precision": ("auto", "float32", "mixed_float16", "mixed_bfloat16"),
    "strategy": ("auto", "mirrored", "none"),
    "save_models": ("best", "all", "none"),
    "isolate_cells": ("auto", "on", "off"),
    "robustness": ("on", "off"),
    "augment_policy": ("basic", "randaugment", "augmix"),  # data_pipeline.remedies.POLICIES
}
