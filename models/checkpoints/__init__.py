"""Pretrained weights from checkpoints of other frameworks, read without those frameworks.

Each format is a `CheckpointReader` (`format`), chosen per file by `readers`: `torch_pickle` reads
a PyTorch state dict (legacy or zip serialisation) with a restricted unpickler and no PyTorch;
`safetensors_file` reads a `.safetensors` file (no code in it to run). `port` copies the state
dict into a Keras model through a family's key map, checking every shape, and caches the result
as a native Keras weights file keyed by the checkpoint's hash.
A checkpoint is untrusted input: `pickle_scan` walks each pickle before it runs, `unpickler` and
`containers` admit only what a state dict needs, and every cost is bounded by what the model
needs before anything is decompressed or copied (docs/checkpoints.md).
"""

from models.checkpoints.format import CheckpointError, CheckpointReader, TensorSpec
from models.checkpoints.port import (
    KeyMap,
    Target,
    file_sha256,
    load_ported_weights,
    port_state_dict,
)
from models.checkpoints.readers import read_checkpoint, reader_for, register_reader
from models.checkpoints.safetensors_file import read_safetensors
from models.checkpoints.torch_pickle import read_state_dict

__all__ = [
    "CheckpointError",
    "CheckpointReader",
    "KeyMap",
    "TensorSpec",
    "Target",
    "file_sha256",
    "load_ported_weights",
    "port_state_dict",
    "read_checkpoint",
    "read_safetensors",
    "read_state_dict",
    "reader_for",
    "register_reader",
]
