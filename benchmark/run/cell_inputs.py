"""How the data pipeline feeds one cell's model, and how a trained model is scored on it.

`CellInputs` (its side, preprocessing, tokenizer and shared image cache), `build_spec` (what the
builder receives) and `evaluated_probabilities` (val and test, with test-time augmentation) are
shared by the trained cells (`benchmark.run.cell`), the zero-shot rows and `tune`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmark.config.run_config import RunConfig
from benchmark.plan import ModelPlan
from benchmark.training.metrics import predict_probabilities
from data_pipeline import SplitTable, fill_shared_cache, make_dataset
from models import BuildSpec, HeadConfig, TextConfig, preprocess_function

# RunConfig key -> TextConfig field: the text branch's knobs carry a `text_`/`fusion_` prefix on the
# command line.
TEXT_KEYS = {
    "text_encoder": "encoder",
    "sequence_length": "sequence_length",
    "text_fine_tune_layers": "fine_tune_layers",
    "text_pooling": "pooling",
    "fusion_units": "branch_units",
    "fusion_dropout": "branch_dropout",
}


def build_spec(config: RunConfig, num_classes: int, image_size: int | None = None) -> BuildSpec:
    """What the builder receives; `image_size` is the plan's side (None only to validate knobs)."""
    return BuildSpec(
        num_classes=num_classes,
        image_size=image_size,
        weights=config.weights,
        head=HeadConfig(units=tuple(config.head_units), dropout=config.dropout),
        simple_cnn=config.simple_cnn_config(),
        text=TextConfig(**{field: getattr(config, key) for key, field in TEXT_KEYS.items()}),
    )


@dataclass
class CellInputs:
    """How the data pipeline must feed one model: its size, preprocessing, text tokenizer and
    image cache.

    `cache_dir` holds the decoded, resized images (and token ids) of each split, shared by every
    cell that feeds the same inputs (`fill_shared_cache`): a sweep decodes each image once, not
    once per cell.
    """

    image_size: int
    preprocess: object
    modality: str
    cache_dir: Path
    tokenizer: object = None
    sequence_length: int = 32

    @classmethod
    def for_model(cls, config: RunConfig, plan: ModelPlan, built, cache_root: Path) -> CellInputs:
        """How the model of `plan`, built as `built`, is fed; caches under `cache_root` by what
        they hold."""
        size, modality = plan.image_size, plan.modality
        key = f"{size}px_{modality.replace('+', '_')}"
        if modality != "image":  # token ids depend on the tokenizer and the sequence length
            key += (
                f"_{hashlib.sha1(config.text_encoder.encode()).hexdigest()[:8]}"
                f"_{config.sequence_length}tok"
            )
        return cls(
            image_size=size,
            preprocess=preprocess_function(plan.preprocess),
            modality=modality,
            cache_dir=Path(cache_root) / key,
            tokenizer=built.tokenizer,
            sequence_length=config.sequence_length,
        )

    def dataset(self, split: SplitTable, part: str, batch_size: int, **kwargs):
        frame = split.subset(part)
        rows = "\n".join(f"{path}\t{label}" for path, label in zip(frame["path"], frame["label"]))
        prefix = self.cache_dir / f"{part}_{hashlib.sha1(rows.encode()).hexdigest()[:12]}"
        cache = fill_shared_cache(
            frame,
            split.class_names,
            prefix,
            image_size=self.image_size,
            inputs=self.modality,
            tokenizer=self.tokenizer,
            sequence_length=self.sequence_length,
        )
        return make_dataset(
            frame,
            split.class_names,
            image_size=self.image_size,
            batch_size=batch_size,
            preprocess=self.preprocess,
            cache=cache,
            inputs=self.modality,
            tokenizer=self.tokenizer,
            sequence_length=self.sequence_length,
            **kwargs,
        )


def evaluated_probabilities(
    model, inputs: CellInputs, split: SplitTable, batch_size: int, tta: int
) -> dict:
    """Val and test probabilities as `evaluation_record` takes them: the plain view, or averaged
    over `tta` views.

    Both splits get exactly the same views (`data_pipeline.tta`, made on 0..255 before the model's
    preprocessing). View 0 is the image itself, so the plain figures come from the first pass and
    cost nothing extra. A text-only model has no image to vary: it is evaluated once and records
    tta 0.
    """
    parts = [part for part in ("val", "test") if not split.subset(part).empty]
    plain = {
        part: predict_probabilities(model, inputs.dataset(split, part, batch_size))
        for part in parts
    }
    views = tta if inputs.modality != "text" else 0
    if views < 1:
        return {"probabilities": plain}
    averaged = {
        part: np.mean(
            [
                plain[part],
                *(
                    predict_probabilities(model, inputs.dataset(split, part, batch_size, view=view))
                    for view in range(1, views)
                ),
            ],
            axis=0,
        )
        for part in parts
    }
    return {"probabilities": averaged, "plain_probabilities": plain, "tta": views}
