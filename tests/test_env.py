"""glibc malloc tuning applied by domain_tune._env before TensorFlow loads."""

import os
import subprocess
import sys
import textwrap

import pytest

from tests.conftest import MALLOC_VARS, glibc_malloc

# A 4 MiB block: above glibc's initial mmap threshold (128 KiB), below the tuned one.
PROBE = textwrap.dedent(
    """
    import ctypes, json
    import domain_tune._env as env

    class Mallinfo2(ctypes.Structure):
        _fields_ = [(name, ctypes.c_size_t) for name in
                    ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
                     "uordblks", "fordblks", "keepcost")]

    libc = ctypes.CDLL("libc.so.6")
    libc.mallinfo2.restype = Mallinfo2
    libc.malloc.restype = ctypes.c_void_p
    libc.free.argtypes = [ctypes.c_void_p]
    mapped = []
    for _ in range(8):
        before = libc.mallinfo2().hblks
        block = libc.malloc(4 << 20)
        mapped.append(libc.mallinfo2().hblks - before)
        libc.free(block)
    # does a block that another thread allocates land in the main heap (the [heap] mapping,
    # grown by brk), or in an arena of the thread's own (mapped elsewhere)?  (mallinfo2 sums
    # every arena, so it cannot tell.)
    import threading
    in_main_heap = []

    def in_heap(address):
        with open("/proc/self/maps") as maps:
            for line in maps:
                if line.rstrip().endswith("[heap]"):
                    low, high = (int(x, 16) for x in line.split()[0].split("-"))
                    return low <= address < high
        return False

    def other_thread():
        block = libc.malloc(4 << 20)
        in_main_heap.append(in_heap(block))
        libc.free(block)

    worker = threading.Thread(target=other_thread)
    worker.start()
    worker.join()
    print(json.dumps({"tuned": env.malloc_tuned, "mapped": mapped,
                      "thread_in_main_heap": in_main_heap[0]}))
    """
)


def _probe(**env_overrides):
    import json

    env = {k: v for k, v in os.environ.items() if k not in MALLOC_VARS}
    env.update(env_overrides)
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout)


pytestmark = pytest.mark.skipif(not glibc_malloc(), reason="glibc (2.33 or newer) only")


def test_mallopt_takes_effect_on_import():
    result = _probe()
    from domain_tune import _env

    assert result["tuned"] == _env.MALLOC_SETTINGS
    # every 4 MiB block comes from the heap: no mapping made and unmapped per allocation
    assert result["mapped"] == [0] * 8
    # and so do other threads' blocks (one arena): glibc unmaps a thread arena's heap as soon
    # as it is free, whatever the trim threshold
    assert result["thread_in_main_heap"] is True


def test_untuned_glibc_maps_the_first_block_and_the_opt_out_is_honoured():
    result = _probe(DOMAIN_TUNE_NO_MALLOPT="1")
    assert result["tuned"] == {}
    assert result["mapped"][0] == 1  # glibc's default: above 128 KiB -> its own mmap
    assert result["thread_in_main_heap"] is False  # glibc's default: an arena per thread


def test_user_settings_of_glibc_are_left_alone():
    assert _probe(MALLOC_MMAP_THRESHOLD_="1048576")["tuned"] == {}
    assert _probe(MALLOC_ARENA_MAX="4")["tuned"] == {}
