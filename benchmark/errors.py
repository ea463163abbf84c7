"""Errors that stop a run before (or between) cells: a file or flag the user must fix."""
from data_pipeline import DataError
from models import ModelError


class UsageError(ValueError):
    """A bad flag, config file or run folder; the message is one line that says what to do."""


# Every error the CLI turns into one line on stderr and exit status 2, without a traceback.
USER_ERRORS = (UsageError, DataError, ModelError)
