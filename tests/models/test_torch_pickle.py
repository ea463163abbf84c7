"""The torch-free checkpoint reader on checkpoints this test writes itself: layouts and attacks."""

import numpy as np
import pytest

from models.checkpoints import CheckpointError, read_state_dict
from tests.models.torch_writer import (
    legacy_checkpoint,
    state_pickle,
    system_call_pickle,
    zip_checkpoint,
)

# A 2x3 matrix stored column-major (TensorFlow's layout exported as is): stride (1, 2), not (3, 1).
MATRIX = np.arange(6, dtype="float32").reshape(2, 3)
STORAGES = {"0": MATRIX.T.ravel().tolist(), "1": [9.0, 9.0, 1.5, 2.5, 3.5]}
TENSORS = {"strided": ("0", 0, (2, 3), (1, 2)), "offset": ("1", 2, (3,), (1,))}


@pytest.mark.parametrize("write", [legacy_checkpoint, zip_checkpoint])
def test_strided_and_offset_tensors_read_as_stored(tmp_path, write):
    path = tmp_path / "tiny.pth"
    path.write_bytes(write(TENSORS, STORAGES))
    state = read_state_dict(path)
    assert list(state) == ["strided", "offset"]
    np.testing.assert_array_equal(state["strided"], MATRIX)
    np.testing.assert_array_equal(state["offset"], [1.5, 2.5, 3.5])
    assert state["strided"].flags.writeable  # a copy, not a view into the file's buffer


def test_a_tensor_overrunning_its_storage_is_refused_naming_the_file(tmp_path):
    path = tmp_path / "overrun.pth"
    path.write_bytes(legacy_checkpoint({"big": ("1", 3, (3,), (1,))}, {"1": STORAGES["1"]}))
    with pytest.raises(CheckpointError, match=r"overrun\.pth.*tensor big overruns its storage"):
        read_state_dict(path)


def test_a_truncated_checkpoint_is_refused(tmp_path):
    path = tmp_path / "cut.pth"
    path.write_bytes(legacy_checkpoint(TENSORS, STORAGES)[:-7])
    with pytest.raises(CheckpointError, match=r"cut\.pth.*(truncated|ends)"):
        read_state_dict(path)


@pytest.mark.parametrize("write", [legacy_checkpoint, zip_checkpoint])
def test_a_checkpoint_that_calls_os_system_is_refused_and_runs_nothing(tmp_path, write):
    witness = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    path.write_bytes(write({}, {}, main=system_call_pickle(f"touch {witness}")))
    with pytest.raises(CheckpointError) as refusal:
        read_state_dict(path)
    message = str(refusal.value)
    assert "evil.pth" in message and "os.system" in message and "\n" not in message
    assert not witness.exists()


def test_a_non_tensor_entry_and_a_garbage_file_are_refused(tmp_path):
    # A state dict holding a plain string where a tensor belongs.
    main = state_pickle(TENSORS, STORAGES)[:-2] + b"X\x01\x00\x00\x00kX\x01\x00\x00\x00vu."
    path = tmp_path / "odd.pth"
    path.write_bytes(legacy_checkpoint(TENSORS, STORAGES, main=main))
    with pytest.raises(CheckpointError, match=r"odd\.pth.*entry .k. is not a named tensor"):
        read_state_dict(path)
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="garbage.pth"):
        read_state_dict(garbage)
    with pytest.raises(CheckpointError, match="cannot be read"):
        read_state_dict(tmp_path / "absent.pth")
