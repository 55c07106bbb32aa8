"""No training step, embedding batch or save makes a table-sized buffer.

The dense Adam of the article's recipe used to create and free temporaries
as large as the embedding table on every step (Keras' Adam makes nine per
step for a sparse table gradient); glibc maps each buffer above its mmap
threshold afresh, so every step paid a page fault per 4 KiB of each.  The
probe (``step_faults_probe.py``, a process of its own) counts the minor page
faults of each step after the first epoch, with a 65.5 MB table: above the
largest mmap threshold, so any table-sized buffer written in a step shows up
as about 16,000 faults.  Keras' Adam is the positive control.

The probe runs TensorFlow's own CPU allocator (``TF_ENABLE_ONEDNN_OPTS=0``):
where TensorFlow turns on oneDNN's custom operations by default (CPUs with
AVX512_VNNI, AVX512_BF16 or AMX), large buffers come from oneDNN's pooling
allocator, which reuses them without a fault, so the faults would not show
what a step allocates (Keras' Adam, the positive control, measured 0 faults
on most steps of an Intel AVX-512 host; 144,009 with the variable).

The same probe checks what happens once per run: the optimizer's moments of a
table are not written where training leaves them zero, and the first read of
a table built from TensorFlow-owned memory (the preset's) does not copy it.
"""

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import MALLOC_VARS, glibc_malloc

PROBE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "step_faults_probe.py")


def _probe_env():
    env = {k: v for k, v in os.environ.items() if k not in MALLOC_VARS}
    return {**env, "TF_ENABLE_ONEDNN_OPTS": "0"}  # TensorFlow's allocator (see above)


@pytest.mark.skipif(not glibc_malloc(), reason="Linux with glibc 2.33 or newer only (prctl, "
                    "the mmap threshold domain-tune sets)")
def test_no_step_makes_a_table_sized_buffer(tmp_path):
    env = _probe_env()
    out = subprocess.run([sys.executable, PROBE, str(tmp_path), "keras-adam", "adam",
                          "lazy-adam", "encode", "save"], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    faults = json.loads(out.stdout.strip().splitlines()[-1])
    table = faults["pages"]
    assert table == 16000
    # the probe sees table-sized temporaries: Keras' Adam writes several per step
    assert len(faults["keras-adam"]) == 12
    assert min(faults["keras-adam"]) > 2 * table
    # the recipe's optimizers and the inference path write none (a step of the tiny model
    # touches a few pages at most)
    for case in ("adam", "lazy-adam"):
        assert len(faults[case]) == 12, case
        assert max(faults[case]) < table // 50, (case, faults[case])
    assert len(faults["encode"]) == 6
    assert max(faults["encode"]) < table // 50, faults["encode"]
    # saving reads the table in place, not a copy of it (a table read sparsely copies itself
    # on every whole read unless told otherwise: 16,005 faults per .keras save)
    assert faults["save"][0] < table // 50, faults["save"]


@pytest.mark.skipif(not glibc_malloc(), reason="Linux with glibc 2.33 or newer only (prctl, "
                    "madvise)")
def test_moments_and_the_first_read_write_no_table(tmp_path):
    env = _probe_env()
    out = subprocess.run([sys.executable, PROBE, str(tmp_path), "start", "first-gather"],
                         capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    faults = json.loads(out.stdout.strip().splitlines()[-1])
    table = faults["pages"]
    # Keras fills both moments with zeros: two tables' worth of pages written at once
    assert faults["start"]["keras-adam"] > 1.5 * table
    # ours write the pages of the updated rows only
    for case in ("adam", "lazy-adam"):
        assert faults["start"][case] < table // 50, faults["start"]
    # a table TensorFlow does not own is copied at its first sparse read; the preset's is not
    assert faults["first-gather"]["numpy"] > 0.9 * table
    assert faults["first-gather"]["tensorflow"] < table // 50, faults["first-gather"]
