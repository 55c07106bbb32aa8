"""The project's exception for bad input.

Library code raises :class:`BadInputError` for anything the user can fix (a
missing file or column, an empty data set, a score out of range, an unknown
model).  The CLI turns it into a one-line message and exit code 2 in one
place (:mod:`domain_tune.cli`).
"""

import inspect
import os


class BadInputError(ValueError):
    """Input that the user can fix; the message names the file or option."""


class TrainingInterrupted(RuntimeError):
    """Training stopped by a signal; carries the exit code to use."""

    def __init__(self, message, exit_code=130):
        super().__init__(message)
        self.exit_code = exit_code


class DomainTuneWarning(UserWarning):
    """Input accepted with a caveat the user should see (duplicates, long texts)."""


def caller_stacklevel():
    """The ``stacklevel`` (for ``warnings.warn`` in the calling function) of the first frame
    outside domain-tune: a warning about a call points at the user's line."""
    package = os.path.dirname(os.path.abspath(__file__)) + os.sep
    frame, level = inspect.currentframe().f_back, 1
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(package):
        frame, level = frame.f_back, level + 1
    return level
