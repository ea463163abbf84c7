"""The one error type of `models/`: something the user must fix (a model name, a weights file)."""


class ModelError(ValueError):
    """A bad model name, weights setting or weights file; the message is one line that says what to
    do."""
