"""Knobs of the text branch (text-only and fusion models), as plain data."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_TEXT_ENCODER = "distil_bert_base_en_uncased"


@dataclass(frozen=True)
class TextConfig:
    """The text branch.

    Args:
        encoder: keras-hub preset name or local preset / Hugging Face folder.
            Defaults to DistilBERT (`distil_bert_base_en_uncased`).
        sequence_length: tokens per caption, [CLS]/[SEP] included. Defaults to 32.
        fine_tune_layers: top transformer layers unfrozen in phase 2. Defaults to 2.
        pooling: "cls" ([CLS] token of the last layer) or "mean" (mask-aware mean). Defaults to
            "cls".
        branch_units: width of each fusion branch. Defaults to 512.
        branch_dropout: dropout in each fusion branch. Defaults to 0.3.
    """

    encoder: str = DEFAULT_TEXT_ENCODER
    sequence_length: int = 32
    fine_tune_layers: int = 2
    pooling: str = "cls"
    branch_units: int = 512
    branch_dropout: float = 0.3

    def __post_init__(self) -> None:
        if self.pooling not in ("cls", "mean"):
            raise ValueError(f"unknown text pooling {self.pooling!r}; expected 'cls' or 'mean'")
        if self.sequence_length < 4:
            raise ValueError(f"sequence_length must be at least 4, got {self.sequence_length}")
