"""Crafted checkpoints that cost time or memory, rewrite the reader, or smuggle the wrong dtype.

Each costly file is read in a child process with its address space capped at 1 GiB above what it
started with, so a reader that would blow up fails the test instead of the machine; the child
reports the refusal, the seconds and the traced peak memory of the read.
"""

import json
import re
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

from models.checkpoints import CheckpointError, read_state_dict
from models.checkpoints.pickle_scan import describe
from models.checkpoints.port import load_ported_weights
from tests.models.port_stub import TINY, StubModel
from tests.models.torch_writer import (
    BOMB_BZ2,
    BOMB_CRC,
    BOMB_SIZE,
    _global,
    _int,
    _str,
    legacy_checkpoint,
    raw_zip,
    state_pickle,
)

REPO = Path(__file__).resolve().parents[2]
CHILD = r"""
import json, resource, sys, time, tracemalloc
from models.checkpoints import CheckpointError, read_state_dict
status = open("/proc/self/status").read().split("VmSize:")[1].split()[0]
resource.setrlimit(resource.RLIMIT_AS, (int(status) * 1024 + (1 << 30), resource.RLIM_INFINITY))
tracemalloc.start()
start = time.perf_counter()
try:
    read_state_dict(sys.argv[1])
    message = "accepted"
except CheckpointError as err:
    message = str(err)
seconds = time.perf_counter() - start
print(json.dumps({"message": message, "seconds": seconds,
                  "peak_mb": tracemalloc.get_traced_memory()[1] / 2**20}))
"""
ORDERED_DICT = b"\x80\x02" + _global("collections", "OrderedDict") + b")R"


def _keyed(key: bytes) -> bytes:
    """A state-dict pickle whose one entry has the given (pickled) key."""
    return ORDERED_DICT + key + _int(1) + b"s."


def _zip_of(pickled: bytes, storage: tuple[bytes, int, int, int]) -> bytes:
    return raw_zip(
        [
            ("archive/data.pkl", pickled, 0, zlib.crc32(pickled), len(pickled)),
            ("archive/data/0", *storage),
        ]
    )


ONE_VIEW = {"w": ("0", 0, (4,), (1,))}
COSTLY = {
    # t = (); t = (t, t) sixty times: 2**60 nodes to hash or repr, 130 bytes to write.
    "dag_key": (
        lambda: legacy_checkpoint({}, {}, main=_keyed(b")" + b"2\x86" * 60)),
        r"nests objects more than 32 levels deep",
    ),
    # Thirty times, within the depth bound: still 2**30 nodes.
    "shallow_dag_key": (
        lambda: legacy_checkpoint({}, {}, main=_keyed(b")" + b"2\x86" * 30)),
        r"a dict key that is a tuple, not a name",
    ),
    "deep_key": (
        lambda: legacy_checkpoint({}, {}, main=_keyed(b")" + b"\x85" * 100_000)),
        r"nests objects more than 32 levels deep",
    ),
    "huge_memo_index": (
        lambda: legacy_checkpoint({}, {}, main=ORDERED_DICT + b"r\xf0\xff\xff\xff."),
        r"a memo index of 4294967280",
    ),
    "stride_0_view": (
        lambda: legacy_checkpoint({"w": ("0", 0, (1 << 28,), (0,))}, {"0": [1.0]}),
        r"tensor w \(shape \(268435456,\), stride \(0,\)\) brings its views to 1073741824 bytes",
    ),
    # A 16-byte storage whose archive entry decompresses to 384 MiB.
    "zip_entry_bomb": (
        lambda: _zip_of(
            state_pickle(ONE_VIEW, {"0": [0.0] * 4}, legacy=False),
            (BOMB_BZ2, 12, BOMB_CRC, BOMB_SIZE),
        ),
        r"storage '0' is 402653184 bytes in the archive, its reference says 16",
    ),
    # The same entry, honestly referenced: still over what a read may cost.
    "zip_storage_over_budget": (
        lambda: _zip_of(
            state_pickle(ONE_VIEW, {"0": [0.0] * 4}, legacy=False, numels={"0": BOMB_SIZE // 4}),
            (BOMB_BZ2, 12, BOMB_CRC, BOMB_SIZE),
        ),
        r"its storages declare 402653184 bytes, more than the 134217728 allowed",
    ),
}


@pytest.mark.parametrize("case", list(COSTLY))
def test_a_costly_crafted_file_is_refused_in_one_line_quickly_and_cheaply(tmp_path, case):
    write, reason = COSTLY[case]
    path = tmp_path / f"{case}.pth"
    path.write_bytes(write())
    assert path.stat().st_size < 120_000  # tiny files (the deep key needs 100,000 opcodes)
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(path)],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=REPO,
    )
    assert done.stdout, done.stderr[-2000:]
    report = json.loads(done.stdout.splitlines()[-1])
    message = report["message"]
    assert message.startswith(f"checkpoint {path} refused: ") and "\n" not in message
    assert len(message) < 400
    assert re.search(reason, message), message
    assert report["seconds"] < 2 and report["peak_mb"] < 200, report


def test_describing_an_untrusted_object_never_walks_it():
    dag = ()
    for _ in range(60):
        dag = (dag, dag)
    assert describe(dag) == "a tuple of 2 items"
    assert describe(1 << 100_000) == "an int of 100001 bits"
    assert describe("x" * 10_000).endswith("... (10000 long)")


def test_a_file_cannot_rewrite_the_stand_ins_for_later_loads(tmp_path):
    # BUILD on torch.FloatStorage with {"dtype": "<i4"}, then an ordinary state dict.
    rewrite = _global("torch", "FloatStorage") + b"}" + _str("dtype") + _str("<i4") + b"sb0"
    tensors, storages = {"w": ("0", 0, (3,), (1,))}, {"0": [1.5, 2.5, 3.5]}
    evil = tmp_path / "rewrite.pth"
    evil.write_bytes(
        legacy_checkpoint(
            tensors, storages, main=b"\x80\x02" + rewrite + state_pickle(tensors, storages)[2:]
        )
    )
    with pytest.raises(CheckpointError, match=r"rewrite\.pth.*rewrites torch\.FloatStorage.*BUILD"):
        read_state_dict(evil)
    clean = tmp_path / "clean.pth"
    clean.write_bytes(legacy_checkpoint(tensors, storages))
    state = read_state_dict(clean)
    assert state["w"].dtype == np.float32
    np.testing.assert_array_equal(state["w"], [1.5, 2.5, 3.5])


def test_a_duplicate_zip_entry_is_refused(tmp_path):
    pickled = state_pickle(ONE_VIEW, {"0": [0.0] * 4}, legacy=False)
    first, second = np.zeros(4, "<f4").tobytes(), np.ones(4, "<f4").tobytes()
    path = tmp_path / "twice.pth"
    path.write_bytes(
        raw_zip(
            [
                ("archive/data.pkl", pickled, 0, zlib.crc32(pickled), len(pickled)),
                ("archive/data/0", first, 0, zlib.crc32(first), 16),
                ("archive/data/0", second, 0, zlib.crc32(second), 16),
            ]
        )
    )
    with pytest.raises(CheckpointError, match=r"twice\.pth.*holds 'archive/data/0' twice"):
        read_state_dict(path)


def _port(tmp_path, name, array, size=(2, 3), stride=(3, 1)):
    path = tmp_path / f"{name}.pth"
    tensors = {"w": ("0", 0, size, stride), "bn.num_batches_tracked": ("1", 0, (), ())}
    path.write_bytes(legacy_checkpoint(tensors, {"0": array, "1": np.array([7], "int64")}))
    model = StubModel(w=(2, 3))
    load_ported_weights(model, path, TINY, tmp_path / "cache")
    return model.variables["w"].value


@pytest.mark.parametrize("dtype", ["int64", "bool"])
def test_an_integer_or_bool_tensor_for_a_float_layer_is_refused_naming_key_and_dtype(
    tmp_path, dtype
):
    with pytest.raises(CheckpointError, match=rf"{dtype}\.pth: w is {dtype}, which a float layer"):
        _port(tmp_path, dtype, np.arange(6).astype(dtype))


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float64"])
def test_float_tensors_of_any_width_are_read(tmp_path, dtype):
    import ml_dtypes  # noqa: F401 (registers bfloat16 with numpy)

    ported = _port(tmp_path, dtype, np.arange(6).astype(dtype))
    np.testing.assert_array_equal(ported, np.arange(6, dtype="float32").reshape(2, 3))


def test_a_view_is_held_to_what_the_models_variables_need(tmp_path):
    # 16 MiB of one number: under the generic limit, far over a 2x3 variable's.
    with pytest.raises(CheckpointError, match=r"tensor w .*brings its views to 16777216 bytes"):
        _port(tmp_path, "wide", np.ones(1, "float32"), size=(1 << 22,), stride=(0,))


def test_a_pickle_longer_than_a_state_dict_needs_is_refused_before_it_is_walked_through(tmp_path):
    # 1.2 MB of NONE, POP: 600,000 opcodes doing nothing, then an ordinary state dict.
    tensors, storages = {"w": ("0", 0, (3,), (1,))}, {"0": [1.5, 2.5, 3.5]}
    padded = b"\x80\x02" + b"N0" * 600_000 + state_pickle(tensors, storages)[2:]
    path = tmp_path / "long.pth"
    path.write_bytes(legacy_checkpoint(tensors, storages, main=padded))
    with pytest.raises(CheckpointError, match=r"long\.pth.*its pickle runs past \d+ bytes"):
        read_state_dict(path)


@pytest.mark.parametrize(
    "size", [(1 << 64,), (1,) * 17], ids=["a dimension past int64", "17 dimensions"]
)
def test_a_size_no_tensor_can_have_is_refused(tmp_path, size):
    path = tmp_path / "odd_size.pth"
    path.write_bytes(legacy_checkpoint({"w": ("0", 0, size, (0,) * len(size))}, {"0": [1.0]}))
    with pytest.raises(CheckpointError, match=r"odd_size\.pth.*malformed offset, size or stride"):
        read_state_dict(path)


def test_a_file_larger_than_the_model_can_need_is_refused_before_it_is_hashed(
    tmp_path, monkeypatch
):
    from models.checkpoints import port

    hashed = []
    monkeypatch.setattr(port, "_hash_file", hashed.append)
    path = tmp_path / "huge.pth"
    with open(path, "wb") as handle:
        handle.truncate(1 << 30)  # sparse: a gigabyte that takes no disk
    with pytest.raises(CheckpointError, match=r"huge\.pth refused: it is 1073741824 bytes, more"):
        load_ported_weights(StubModel(w=(2, 3)), path, TINY, tmp_path / "cache")
    assert not hashed


def test_a_container_filled_after_it_was_nested_is_refused(tmp_path):
    # a = []; t = (a,); a.append([]): done in a loop, this nests without any depth being seen.
    path = tmp_path / "late.pth"
    path.write_bytes(legacy_checkpoint({}, {}, main=ORDERED_DICT + b"]q\x00\x85h\x00]a."))
    with pytest.raises(CheckpointError, match=r"late\.pth.*fills a list after placing it inside"):
        read_state_dict(path)
