"""Which data phase 1 trains the head on: the online images, stored features, or the augmented
feature bank.

`--head-features auto` (the default) takes the cheapest path that trains the same head: with
augmentation on, the augmented feature bank (`benchmark.training.feature_bank`); without it, the
plain stored features (`benchmark.training.head_features`); online where the model has no frozen
pretrained image backbone to share (from scratch, `--weights none`, text, fusion). `cached` insists
on stored features (bank or plain) and is refused, in one line, for a model that cannot have them;
`online` always pushes every image through the backbone. The record's `head_features` says which
ran.
This module only decides; `benchmark.training.banks` builds the phase on the stored features.
"""

from __future__ import annotations

from benchmark.config.run_config import RunConfig
from benchmark.errors import UsageError
from benchmark.training.head_features import supports_cached_features
from data_pipeline import AugmentConfig


def phase1_mode(config: RunConfig, built, augment: AugmentConfig | None) -> str:
    """ "bank", "cached" or "online" for one built model under `config`."""
    if config.head_features == "online" or not supports_cached_features(built):
        if config.head_features == "cached":
            raise UsageError(
                "--head-features cached: this model has no frozen pretrained image backbone; "
                "use --head-features auto or online"
            )
        return "online"
    return "bank" if augment is not None else "cached"
