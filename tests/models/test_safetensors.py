"""Checkpoint formats behind one reader interface: safetensors files this test writes, ported
through the same checks as PyTorch ones, and chosen by file name or first bytes."""

from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from models.checkpoints import (
    CheckpointError,
    CheckpointReader,
    load_ported_weights,
    read_checkpoint,
    read_safetensors,
    read_state_dict,
    reader_for,
    register_reader,
)
from models.checkpoints import readers as readers_module
from tests.models.port_stub import TINY, StubModel
from tests.models.torch_writer import legacy_checkpoint

W = np.arange(6, dtype="float32").reshape(2, 3)
B = np.array([0.5, 1.5, 2.5], dtype="float16")


def _write(path: Path, tensors: dict) -> Path:
    """`save_file` writes an array's memory as it lies (safetensors 0.8): a strided view, as
    `read_state_dict` returns for TensorFlow-ordered tensors, must be made C-ordered first."""
    save_file({name: np.ascontiguousarray(array) for name, array in tensors.items()}, str(path))
    return path


def _port(path: Path, tmp_path: Path) -> StubModel:
    model = StubModel(w=(2, 3), b=(3,))
    load_ported_weights(model, path, TINY, tmp_path / "cache")
    return model


def test_a_safetensors_file_ports_through_the_interface(tmp_path):
    path = _write(
        tmp_path / "tiny.safetensors",
        {"w": W, "b": B, "bn.num_batches_tracked": np.array(7, dtype="int64")},
    )
    assert reader_for(path).format == "safetensors"
    model = _port(path, tmp_path)
    np.testing.assert_array_equal(model.variables["w"].value, W)
    np.testing.assert_array_equal(model.variables["b"].value, B.astype("float32"))
    assert model.variables["b"].value.dtype == np.float32


@pytest.mark.parametrize(
    "tensors, message",
    [
        ({"w": W.T.copy(), "b": B}, r"w has shape \(3, 2\), the model needs \(2, 3\)"),
        ({"b": B}, r"does not fit tiny: it lacks w, 1 tensors in all"),
        ({"w": W, "b": B, "head.w": W}, r"head\.w has no place in the model"),
        ({"w": W.astype("int64"), "b": B}, r"w is int64, which a float layer cannot take"),
        ({"w": np.full((2, 3), np.nan, "float32"), "b": B}, r"w holds NaN or infinite values"),
    ],
    ids=["wrong-shape", "missing-key", "unused-key", "integer-dtype", "nan"],
)
def test_a_safetensors_file_that_does_not_fit_is_refused_in_one_line(tmp_path, tensors, message):
    path = _write(tmp_path / "bad.safetensors", tensors)
    with pytest.raises(CheckpointError, match=message) as refusal:
        _port(path, tmp_path)
    assert str(path) in str(refusal.value) and "\n" not in str(refusal.value)


def test_a_file_named_safetensors_that_is_not_one_is_refused_naming_it(tmp_path):
    pickled = legacy_checkpoint({"w": ("0", 0, (2, 3), (3, 1))}, {"0": W.ravel().tolist()})
    (tmp_path / "real.pth").write_bytes(pickled)
    assert read_checkpoint(tmp_path / "real.pth")["w"].shape == (2, 3)  # fine under its name
    for name, data in (("pickle.safetensors", pickled), ("junk.safetensors", b"{not json}")):
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(CheckpointError, match=rf"{name} refused: ") as refusal:
            read_checkpoint(path)
        assert "\n" not in str(refusal.value)


def test_a_file_of_another_name_goes_to_the_reader_its_first_bytes_match(tmp_path):
    safetensors = _write(tmp_path / "weights.ckpt", {"w": W})
    pickled = tmp_path / "weights.bin"
    pickled.write_bytes(legacy_checkpoint({"w": ("0", 0, (2, 3), (3, 1))}, {"0": W.ravel()}))
    assert reader_for(safetensors).format == "safetensors"
    assert reader_for(pickled).format == "PyTorch pickle"
    for path in (safetensors, pickled):
        np.testing.assert_array_equal(read_checkpoint(path)["w"], W)


def test_the_model_sees_every_description_before_any_number_is_read(tmp_path, monkeypatch):
    path = _write(tmp_path / "seen.safetensors", {"w": W, "b": B})
    seen = {}

    def refuse(specs):
        seen.update(specs)
        raise CheckpointError("refused by the model's check")

    with pytest.raises(CheckpointError, match="^refused by the model's check$"):
        read_safetensors(path, check=refuse)
    assert {name: (spec.shape, spec.is_float) for name, spec in seen.items()} == {
        "w": ((2, 3), True),
        "b": ((3,), True),
    }


def test_a_safetensors_file_costing_more_than_the_model_needs_is_refused_unread(tmp_path):
    path = _write(tmp_path / "big.safetensors", {"w": np.zeros((64, 64), "float32")})
    with pytest.raises(CheckpointError, match=r"big\.safetensors refused: its tensors declare"):
        read_safetensors(path, max_bytes=1024)
    huge = tmp_path / "huge.safetensors"
    with open(huge, "wb") as handle:
        handle.truncate(1 << 30)  # sparse: a gigabyte that takes no disk
    with pytest.raises(CheckpointError, match=r"huge\.safetensors refused: it is 1073741824 bytes"):
        _port(huge, tmp_path)


def test_a_new_format_is_one_registered_reader(tmp_path, monkeypatch):
    """What a family with a format of its own adds: a `CheckpointReader`, nothing in the port."""
    monkeypatch.setattr(readers_module, "READERS", list(readers_module.READERS))

    def read_npz(path, max_bytes, check):
        with np.load(path, allow_pickle=False) as archive:
            return {name: archive[name] for name in archive.files}

    register_reader(CheckpointReader("numpy archive", (".npz",), lambda head: False, read_npz))
    path = tmp_path / "tiny.npz"
    np.savez(path, w=W, b=B)
    np.testing.assert_array_equal(_port(path, tmp_path).variables["w"].value, W)
    with pytest.raises(ValueError, match="registered twice"):
        register_reader(CheckpointReader("other", (".safetensors",), bool, read_npz))


def test_efficientnet_lite0_ports_the_same_from_safetensors_as_from_pth(tmp_path):
    """The packaged Lite0 state dict, converted to safetensors here, fills the network exactly as
    the .pth does (through `--weights FILE`'s path: `load_lite_weights`)."""
    from models.efficientnet_lite import (
        VARIANTS,
        lite_backbone,
        load_lite_weights,
        packaged_checkpoint,
    )

    pth = packaged_checkpoint(VARIANTS[0])
    converted = _write(tmp_path / "lite0.safetensors", read_state_dict(pth))
    models = []
    for source in (pth, converted):
        model = lite_backbone(VARIANTS[0], (32, 32, 3))
        load_lite_weights(model, VARIANTS[0], str(source), cache=False)
        models.append(model)
    for ported, expected in zip(models[1].get_weights(), models[0].get_weights()):
        np.testing.assert_array_equal(ported, expected)
    assert not (tmp_path / "cache").exists()
