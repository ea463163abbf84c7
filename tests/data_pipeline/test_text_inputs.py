"""Token ids and padding masks built inside tf.data with a tiny WordPiece tokenizer."""

import keras_hub
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from data_pipeline import make_dataset

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "a", "green", "glass", "bottle", "old", "paper"]
FRAME = pd.DataFrame(
    {
        "path": ["unused.png"] * 3,
        "label": ["glass", "paper", "glass"],
        "caption": [
            "a green glass bottle",
            "old paper",
            "a green glass bottle a green glass bottle",
        ],
    }
)


def tokenizer(bert_like: bool):
    tok = keras_hub.tokenizers.WordPieceTokenizer(vocabulary=VOCAB, lowercase=True)
    if bert_like:  # what BertTokenizer declares: [CLS] ... [SEP], padded with [PAD]
        tok.start_token_id, tok.end_token_id, tok.pad_token_id = 2, 3, 0
    return tok


def test_text_inputs_pad_and_truncate_to_the_sequence_length():
    x, y = next(
        iter(
            make_dataset(
                FRAME,
                ["glass", "paper"],
                image_size=8,
                batch_size=3,
                inputs="text",
                tokenizer=tokenizer(False),
                sequence_length=6,
            )
        )
    )
    assert set(x) == {"token_ids", "padding_mask"}
    assert (
        x["token_ids"].dtype == tf.int32
        and x["padding_mask"].dtype == tf.bool
        and x["token_ids"].shape == (3, 6)
    )
    np.testing.assert_array_equal(
        x["token_ids"].numpy(), [[4, 5, 6, 7, 0, 0], [8, 9, 0, 0, 0, 0], [4, 5, 6, 7, 4, 5]]
    )
    np.testing.assert_array_equal(x["padding_mask"].numpy().sum(1), [4, 2, 6])
    np.testing.assert_array_equal(y.numpy().argmax(1), [0, 1, 0])


def test_start_and_end_tokens_are_added_when_the_tokenizer_declares_them():
    x, _ = next(
        iter(
            make_dataset(
                FRAME,
                ["glass", "paper"],
                image_size=8,
                batch_size=3,
                inputs="text",
                tokenizer=tokenizer(True),
                sequence_length=6,
            )
        )
    )
    np.testing.assert_array_equal(
        x["token_ids"].numpy(), [[2, 4, 5, 6, 7, 3], [2, 8, 9, 3, 0, 0], [2, 4, 5, 6, 7, 3]]
    )
    np.testing.assert_array_equal(x["padding_mask"].numpy().sum(1), [6, 4, 6])


def test_image_plus_text_gives_all_three_inputs(folders):
    from data_pipeline import scan_dataset

    table = scan_dataset(folders).table
    x, _ = next(
        iter(
            make_dataset(
                table,
                ["cat", "dog", "eel"],
                image_size=8,
                batch_size=4,
                inputs="image+text",
                tokenizer=tokenizer(True),
                sequence_length=5,
            )
        )
    )
    assert set(x) == {"image", "token_ids", "padding_mask"}
    assert x["image"].shape == (4, 8, 8, 3) and x["token_ids"].shape == (4, 5)


def test_text_inputs_need_a_tokenizer():
    with pytest.raises(ValueError, match="needs a tokenizer"):
        make_dataset(FRAME, ["glass", "paper"], image_size=8, batch_size=3, inputs="text")
