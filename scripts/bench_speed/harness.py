"""The timing harness every section uses: instruction-set settings, child processes, medians.

Each figure runs in a fresh process per instruction-set setting, because oneDNN reads
``ONEDNN_MAX_CPU_ISA`` once, when TensorFlow starts:

* ``native``: whatever the CPU offers (AVX-512 or AVX2 only: results/speed.md names the host);
* ``avx2``: ``ONEDNN_MAX_CPU_ISA=AVX2`` caps TensorFlow's oneDNN kernels (matrix products,
  convolutions) at AVX2, and ``OPENBLAS_CORETYPE=Haswell`` does the same for numpy's
  OpenBLAS (the numpy reference).  Eigen's element-wise kernels and XLA's code are compiled
  for the host and are *not* capped: an AVX2-only host can still be slower than this cap.

Repetitions are interleaved (implementation A, B, next setting, ..., then again) so that
load from other processes on a shared machine hits every figure alike; medians are
reported with the CPU time (user + system) of each child, which load inflates far less
than wall time.
"""

import contextlib
import datetime
import json
import os
import pathlib
import platform
import statistics
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent.parent
SHARED = ROOT.parent / "shared" / "data"
PYTHON = sys.executable
DOMAIN_TUNE = str(pathlib.Path(sys.executable).with_name("domain-tune"))

ISA_ENV = {
    "native": {},
    "avx2": {"ONEDNN_MAX_CPU_ISA": "AVX2", "OPENBLAS_CORETYPE": "Haswell"},
}


def log(message):
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def child_env(isa, **extra):
    env = {k: v for k, v in os.environ.items()
           if k not in ("ONEDNN_MAX_CPU_ISA", "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
    env.update(ISA_ENV[isa])
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env


def run(cmd, isa, cwd=None, **extra_env):
    """Run ``cmd`` to completion: wall seconds, user and system CPU seconds, stdout.

    Resource usage comes from ``os.wait4`` on the child (it and its own children).
    """
    _children_usage_since()
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd or ROOT, env=child_env(isa, **extra_env),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = proc.communicate()
    wall = time.perf_counter() - started
    usage = _children_usage_since()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd))} failed ({proc.returncode}):\n{err[-2000:]}")
    return {"wall": wall, "user": usage[0], "sys": usage[1], "stdout": out}


_LAST = [0.0, 0.0]


def _children_usage_since():
    import resource

    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    user, sys_ = ru.ru_utime - _LAST[0], ru.ru_stime - _LAST[1]
    _LAST[:] = [ru.ru_utime, ru.ru_stime]
    return user, sys_


def interleaved(figures, isas, reps, log_each=True):
    """``{(name, isa): [result, ...]}``: every figure (name -> callable(isa)) ``reps`` times, round-robin.

    Each result is also logged as one JSON line as soon as it is measured (unless ``log_each``
    is false: in-process timings of a few milliseconds, repeated many times).
    """
    _children_usage_since()
    out = {}
    for rep in range(reps):
        for isa in isas:
            for name, fn in figures.items():
                result = fn(isa)
                out.setdefault((name, isa), []).append(result)
                if not log_each:
                    continue
                shown = {k: (round(v, 3) if isinstance(v, float) else v)
                         for k, v in result.items() if k != "stdout"}
                log(f"rep {rep + 1}/{reps} {isa}: {name}: {json.dumps(shown)}")
    return out


def script_parser():
    """The options every one-figure script shares: settings, output folder, and its child mode."""
    import argparse

    ap = argparse.ArgumentParser()
    ap.add_argument("--isa", default="native,avx2")
    ap.add_argument("--out-dir", default=str(ROOT / "results"))
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    return ap


def script_meta(module, argv):
    """The machine, and the command line of ``python -m module`` with ``argv`` (or sys.argv's)."""
    args = argv if argv is not None else sys.argv[1:]
    return {**machine_info(), "command": " ".join(["python -m", module, *args])}


def run_children(module, child_args, isas):
    """``python -m module --child *child_args`` once per setting: the JSON lines each printed."""
    results = {}
    for isa in isas:
        log(f"{isa}: measuring")
        r = run([PYTHON, "-m", module, "--child", *child_args], isa)
        results[isa] = [json.loads(line) for line in r["stdout"].splitlines()
                        if line.startswith("{")]
        if not results[isa]:
            raise SystemExit(f"{isa}: the measuring process printed no result")
    return results


def median(values):
    return statistics.median(values) if values else None


def summary(results, key):
    """Median of ``key`` over the repetitions of each figure."""
    return {k: median([r[key] for r in v]) for k, v in results.items()}


def load_average():
    with contextlib.suppress(OSError):
        return float(open("/proc/loadavg").read().split()[0])
    return None


def machine_info():
    cpu, flags = "unknown", []
    with contextlib.suppress(OSError):
        for line in open("/proc/cpuinfo", encoding="utf-8"):
            if line.startswith("model name") and cpu == "unknown":
                cpu = line.split(":", 1)[1].strip()
            if line.startswith("flags") and not flags:
                flags = line.split(":", 1)[1].split()
    simd = [f for f in flags if f.startswith(("avx", "fma", "sse4", "amx"))]
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "cores": os.cpu_count(),
        "cpu_model": cpu,
        "simd_flags": simd,
        "machine": platform.machine(),
        "python": platform.python_version(),
        "load_average_1min": load_average(),
        "commit": git_commit(),
    }


def git_commit():
    """The checkout's commit, with ``+changes`` when its files differ from it (None outside git)."""
    import subprocess

    def git(*args):
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True,
                              timeout=30).stdout.strip()

    try:
        commit = git("rev-parse", "--short", "HEAD")
        return commit + ("+changes" if git("status", "--porcelain", "--untracked-files=no") else "")
    except (OSError, subprocess.SubprocessError):
        return None


def onednn_isa(isa):
    """The instruction set oneDNN reports for its kernels in a child with ``isa``'s settings."""
    code = ("from domain_tune import _env; _env.import_tensorflow(); import tensorflow as tf; "
            "tf.matmul(tf.ones([64, 64]), tf.ones([64, 64])); "
            "tf.nn.conv1d(tf.ones([1, 32, 256]), tf.ones([3, 256, 256]), 1, 'SAME')")
    p = subprocess.run([PYTHON, "-c", code], env=child_env(isa, ONEDNN_VERBOSE="1"),
                       capture_output=True, text=True, cwd=ROOT)
    isa_line, kernels = "not reported", []
    for line in (p.stdout + p.stderr).splitlines():
        fields = line.split(",")
        if ",isa:" in line:
            isa_line = line.split("isa:", 1)[1].strip()
        elif len(fields) > 6 and fields[2:4] == ["primitive", "exec"]:
            kernels.append(f"{fields[5]} {fields[6]}".strip())
    return f"{isa_line} (kernels run: {', '.join(dict.fromkeys(kernels)) or 'none logged'})"


def write_json(path, data, default=str):
    """``data`` as indented JSON; ``default`` turns what JSON cannot hold into what it can."""
    path = pathlib.Path(path)
    path.write_text(json.dumps(data, indent=2, default=default) + "\n", encoding="utf-8")
