"""Running the CLI in tests and reading its one-line errors."""

from click.testing import CliRunner

from domain_tune.cli import main


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def error_line(result):
    """The single ``Error:`` line on stderr (warnings aside); fails on a traceback."""
    lines = [line for line in result.stderr.splitlines()
             if line.strip() and not line.startswith("Warning: ")]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: ")
    assert "Traceback" not in result.output
    return lines[0]
