"""Progress bars on stderr for anything that takes more than a few seconds."""

import contextlib
import sys

import click


class _Null:
    def update(self, n):
        pass


@contextlib.contextmanager
def progress_bar(total, label, enabled=True):
    """A click progress bar on stderr over ``total`` items (no-op if disabled).

    Hidden automatically when stderr is not a terminal, so logs and captured
    output stay clean.
    """
    if not enabled or total <= 0 or not sys.stderr.isatty():
        yield _Null()
        return
    with click.progressbar(
        length=total, label=label, file=sys.stderr, show_pos=True, show_eta=True
    ) as bar:
        yield bar
