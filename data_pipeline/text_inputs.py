"""Captions to fixed-length token ids inside tf.data, for text and image+text models."""

from __future__ import annotations

from collections.abc import Callable

import keras_hub
import tensorflow as tf


def make_packer(tokenizer: object, sequence_length: int) -> keras_hub.layers.StartEndPacker:
    """Pads/truncates to `sequence_length`, adding the tokenizer's start/end tokens when it declares
    them.

    BERT-family tokenizers expose `start_token_id`, `end_token_id` and `pad_token_id` ([CLS], [SEP],
    [PAD]); the encoder was trained with them, so they must be there. A bare tokenizer gets plain
    padding with 0.
    """
    ids = {name: getattr(tokenizer, f"{name}_token_id", None) for name in ("start", "end", "pad")}
    return keras_hub.layers.StartEndPacker(
        sequence_length=sequence_length,
        start_value=ids["start"],
        end_value=ids["end"],
        pad_value=ids["pad"] if ids["pad"] is not None else 0,
        return_padding_mask=True,
    )


def make_tokenize(
    tokenizer: Callable, sequence_length: int
) -> Callable[[tf.Tensor], dict[str, tf.Tensor]]:
    """A function for `ds.map`: a caption (scalar string) -> `{"token_ids": int32[L],
    "padding_mask": bool[L]}`."""
    packer = make_packer(tokenizer, sequence_length)

    def tokenize(caption: tf.Tensor) -> dict[str, tf.Tensor]:
        token_ids, padding_mask = packer(tokenizer(caption))
        return {
            "token_ids": tf.cast(token_ids, tf.int32),
            "padding_mask": tf.cast(padding_mask, tf.bool),
        }

    return tokenize
