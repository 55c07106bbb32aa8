"""Scripts start as quietly as the CLI: no TensorFlow C++ start-up lines on stderr."""

import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT


@pytest.mark.parametrize("script", ["check_parity.py", "bench_match.py"])
def test_scripts_hide_tensorflow_start_up_lines(script):
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "DOMAIN_TUNE_DEBUG")}
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / script), "--help"],
                            capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "tensorflow" in sys.modules  # the scripts import it; this process did too
    assert result.stderr == ""
    assert result.stdout.startswith("usage:")
