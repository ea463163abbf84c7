"""The one folder name of both banks: the names earlier runs wrote still find their banks, and the
two banks agree on what a recipe is, `augment=None` included."""

import dataclasses
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from benchmark.training.banks import BankInputs, bank_key
from data_pipeline import AugmentConfig


@pytest.fixture
def split_file(tmp_path) -> Path:
    path = tmp_path / "splits.csv"
    path.write_text("path,label,part\na.png,glass,train\n")
    return path


def bank_inputs(split_file: Path, **changes) -> BankInputs:
    """A cell's bank inputs; the key reads only the built model's weights and the feeding side."""
    fields = dict(
        model_name="mobilenet_v3_small",
        built=SimpleNamespace(weights="imagenet"),
        inputs=SimpleNamespace(image_size=32),
        split=None,
        split_file=split_file,
        root=split_file.parent,
        batch_size=8,
        class_weights=np.ones(3, np.float32),
        seed=0,
        augment=AugmentConfig(strength=1.0),
    )
    return BankInputs(**{**fields, **changes})


def test_the_names_earlier_runs_wrote_are_kept(split_file):
    """Made by `bank_key` and `tune_bank_key` before they became one function: a resumed run or a
    tune search finds the banks it stored. (A new AugmentConfig field changes them, rightly: the
    stored epochs were drawn without it.)"""
    augmented = bank_inputs(split_file)
    assert bank_key(augmented) == "mobilenet_v3_small_32px_5b4170e93bd5_bank-6b0130abea_seed0"
    other = bank_inputs(split_file, augment=AugmentConfig(strength=0.5), seed=1)
    assert (
        bank_key(other, dtype="float16")
        == "mobilenet_v3_small_32px_5b4170e93bd5_bank-1a544a692e_seed1"
    )
    assert (
        bank_key(augmented, cut="conv_c")
        == "mobilenet_v3_small_32px_5b4170e93bd5_conv_c_tune-a86332bd59_seed0"
    )
    plain = bank_inputs(split_file, augment=None)
    assert (
        bank_key(plain, cut="conv_c")
        == "mobilenet_v3_small_32px_5b4170e93bd5_conv_c_tune-443804fac4_seed0"
    )


@pytest.mark.parametrize("cut", [None, "conv_c"])
def test_both_banks_key_no_augmentation_as_a_recipe_of_its_own(split_file, cut):
    """The feature bank's key raised a TypeError on `augment=None` where the fine-tune bank's wrote
    null: now both write null, and that recipe never shares a folder with an augmented one."""
    plain = bank_key(bank_inputs(split_file, augment=None), cut=cut)
    assert plain != bank_key(bank_inputs(split_file), cut=cut)
    assert plain == bank_key(bank_inputs(split_file, augment=None), cut=cut)  # stable


def test_the_key_holds_what_decides_the_stored_tensors_and_nothing_else(split_file, tmp_path):
    base = bank_inputs(split_file)
    same = [  # alpha cells share their banks; a search's trials share them across rates
        bank_inputs(split_file, class_weights=np.array([1.0, 2.0, 0.5])),
        bank_inputs(split_file, root=tmp_path / "elsewhere"),
    ]
    assert {bank_key(b) for b in same} == {bank_key(base)}
    moved = tmp_path / "fold1.csv"
    moved.write_text("path,label,part\nb.png,glass,train\n")
    changed = [
        bank_inputs(split_file, model_name="efficientnet_lite0"),
        bank_inputs(split_file, built=SimpleNamespace(weights="other.weights.h5")),
        bank_inputs(split_file, inputs=SimpleNamespace(image_size=64)),
        bank_inputs(moved),
        bank_inputs(split_file, batch_size=16),
        bank_inputs(split_file, seed=1),
        bank_inputs(split_file, augment=dataclasses.replace(base.augment, flip=False)),
        bank_inputs(split_file, augment=dataclasses.replace(base.augment, random_erasing=0.25)),
    ]
    keys = [bank_key(b) for b in changed] + [bank_key(base), bank_key(base, dtype="float16")]
    assert len(set(keys)) == len(keys)
    assert bank_key(base, cut="conv_b") != bank_key(base, cut="conv_c")
