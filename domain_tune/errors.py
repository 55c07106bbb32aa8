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


class OptionError(BadInputError):
    """Bad input in one or more named options: the message names them by their Python name
    (``learning_rate must be a positive number``); the command line names them by their flag
    (``--learning-rate must be a positive number``), in one place (:mod:`domain_tune.cli.main`).

    ``template`` holds ``{0}``, ``{1}``, ... for the names of ``names``.
    """

    def __init__(self, template, *names):
        self.template, self.names = template, tuple(names)
        super().__init__(template.format(*names))

    def spelt(self, spell):
        """The message with each name spelt by ``spell(name)`` (e.g. as a flag)."""
        return self.template.format(*(spell(n) for n in self.names))


def bad_option(name, problem):
    """An :class:`OptionError` about one option: ``"<name> <problem>"``."""
    return OptionError("{0} " + problem.replace("{", "{{").replace("}", "}}"), name)


class TrainingInterrupted(RuntimeError):
    """Training stopped by a signal; carries the exit code to use."""

    def __init__(self, message, exit_code=130):
        super().__init__(message)
        self.exit_code = exit_code


class DomainTuneWarning(UserWarning):
    """Input accepted with a caveat the user should see (duplicates, long texts)."""


class OptionWarning(DomainTuneWarning):
    """Options given that another option makes ineffective: the message names them by their
    Python names; :attr:`cli` holds the command line's wording, with ``{0}``, ``{1}``, ... for
    the names of :attr:`names`, spelt as flags in one place (:mod:`domain_tune.cli.main`)."""

    def __init__(self, message, cli, names):
        super().__init__(message)
        self.cli, self.names = cli, tuple(names)

    def spelt(self, spell):
        return self.cli.format(*(spell(n) for n in self.names))


def caller_stacklevel():
    """The ``stacklevel`` (for ``warnings.warn`` in the calling function) of the first frame
    outside domain-tune: a warning about a call points at the user's line."""
    package = os.path.dirname(os.path.abspath(__file__)) + os.sep
    frame, level = inspect.currentframe().f_back, 1
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(package):
        frame, level = frame.f_back, level + 1
    return level
