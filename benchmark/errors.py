"""Errors that stop a run before (or between) cells: a file or flag the user must fix."""

from data_pipeline import DataError
from models import ModelError


class UsageError(ValueError):
    """A bad flag, config file or run folder; the message is one line that says what to do."""


# Every error the CLI turns into one line on stderr and exit status 2, without a traceback.
USER_ERRORS = (UsageError, DataError, ModelError)


def first_line(error: BaseException, *, limit: int = 160, default: str | None = None) -> str:
    """An exception as one line for a message or a table cell: its first line, cut to `limit`
    characters.

    An exception with no message gives `default`, or its type name when no default is given.
    """
    text = str(error).strip()
    if not text:
        return type(error).__name__ if default is None else default
    return text.splitlines()[0][:limit]


def error_line(error: BaseException, *, limit: int = 160, default: str | None = None) -> str:
    """An exception as `<Type>: <first line>` for a warning or a record's error field: the type
    says what kind of failure (a damaged file reads differently from a missing one), the first
    line says which. `limit` and `default` are `first_line`'s."""
    return f"{type(error).__name__}: {first_line(error, limit=limit, default=default)}"


# Lines TensorFlow puts before or around the message that says what went wrong.
_BOILERPLATE = (
    "graph execution error",
    "detected at node",
    "defined at",
    'file "',
    "stack trace",
    "[[",
    "traceback",
)


def error_summary(error: BaseException, *, limit: int = 300) -> str:
    """The line of an exception's message that names the cause, for a table cell.

    TensorFlow's op errors start with `Graph execution error:` and a node location; the cause
    (`OOM when allocating tensor with shape[...]`) comes later. Prefers an out-of-memory line, then
    the first line that is not such boilerplate.
    """
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    for line in lines:
        if "OOM" in line or "out of memory" in line.lower():
            return line[:limit]
    for line in lines:
        if not line.lower().startswith(_BOILERPLATE):
            return line[:limit]
    return first_line(error, limit=limit, default="")
