"""The one exception for problems the user must fix in their data or flags, and how warnings are
kept."""

import logging


class DataError(ValueError):
    """A dataset file, folder or data flag the user must fix.

    The message is one line that names the path (or flag) and says what to do, so the command
    line can print it without a traceback.
    """


def record_warning(warnings: list[str], message: str, logger: logging.Logger) -> None:
    """Logs a warning and keeps it in `warnings`, so callers that print their own summary still see
    it."""
    logger.warning(message)
    warnings.append(message)
