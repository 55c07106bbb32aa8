"""Scripts start as quietly as the CLI: no TensorFlow C++ start-up lines on stderr."""

import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT


@pytest.mark.parametrize("script", ["check_parity.py", "bench_match.py"])
def test_scripts_hide_tensorflow_start_up_lines(script):
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "DOMAIN_TUNE_DEBUG")}
    # the script as __main__, then whether it imported TensorFlow (so that its quiet start-up
    # is not just a script that never loaded TensorFlow)
    runner = ("import runpy, sys\n"
              f"sys.argv = [{str(ROOT / 'scripts' / script)!r}, '--help']\n"
              "try:\n    runpy.run_path(sys.argv[0], run_name='__main__')\n"
              "except SystemExit as e:\n    assert not e.code, e.code\n"
              "print('tensorflow imported:', 'tensorflow' in sys.modules)\n")
    result = subprocess.run([sys.executable, "-c", runner], capture_output=True, text=True,
                            env=env, timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert result.stdout.startswith("usage:")
    assert result.stdout.rstrip().endswith("tensorflow imported: True")
