"""A stand-in model and key map for porting checkpoints without building Keras layers: the
checkpoint tests (PyTorch pickles, safetensors) port tiny state dicts into it."""

from pathlib import Path

from models.checkpoints import KeyMap, Target


class StubVariable:
    def __init__(self, shape):
        self.shape, self.value = shape, None

    def assign(self, value):
        self.value = value


class StubModel:
    """Just enough of a Keras model for the port: variables, and weights files to save."""

    def __init__(self, **shapes):
        self.variables = {key: StubVariable(shape) for key, shape in shapes.items()}

    def save_weights(self, path):
        Path(path).write_bytes(b"")

    def load_weights(self, path):
        raise ValueError("never cached")


TINY = KeyMap(
    "tiny",
    lambda model: {key: Target(var) for key, var in model.variables.items()},
    optional=(r".*\.num_batches_tracked",),
)
