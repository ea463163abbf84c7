"""Captions from file names and the label-leak fraction."""

import pandas as pd
import pytest

from data_pipeline import caption_from_filename, caption_leak_fraction


@pytest.mark.parametrize(
    "name, caption",
    [
        ("paper_gift_bag_1859.png", "paper gift bag"),
        ("glass12.jpg", "glass"),
        ("/x/y/old-tin-can_03.JPEG", "old tin can"),
        ("1234.jpg", ""),
        ("cardboard box.webp", "cardboard box"),
    ],
)
def test_caption_from_filename(name, caption):
    assert caption_from_filename(name) == caption


def test_leak_fraction_counts_whole_words_ignoring_case():
    table = pd.DataFrame(
        {
            "label": ["glass", "glass", "paper", "paper", "brown_glass"],
            "caption": ["Glass jar", "fiberglass sheet", "a newspaper", "", "brown glass bottle"],
        }
    )
    # non-empty captions: 4; "Glass jar" and "brown glass bottle" name their class,
    # "fiberglass"/"newspaper" do not
    assert caption_leak_fraction(table, ["brown_glass", "glass", "paper"]) == pytest.approx(0.5)
    assert caption_leak_fraction(table.assign(caption=""), ["glass", "paper"]) == 0.0
