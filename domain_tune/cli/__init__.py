"""The ``domain-tune`` command line: each command parses, calls one function of
:mod:`domain_tune.api`, and prints.

:mod:`domain_tune.cli.main` holds the click group, the one place where errors
become one line and an exit code, and the options the commands share; the
commands live by theme in the other modules, each registered on the group when
this package is imported.
"""

from domain_tune.cli.main import _count, main  # noqa: F401
from domain_tune.cli import data, deploy, evaluate, train, use  # noqa: F401,E402  (register the commands)

__all__ = ["main"]
