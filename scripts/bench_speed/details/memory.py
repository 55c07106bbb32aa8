"""Section ``memory``: peak RSS of ``domain-tune train`` (adam, lazy-adam) and of
``domain-tune embed`` (a small and a 10x larger input), and a step-by-step breakdown of
training's memory (child process ``memory_steps``).

    python -m scripts.bench_speed.details --sections memory
"""

import contextlib
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time

from scripts.bench_speed.details.common import BASE_ENV, fmt, section_result
from scripts.bench_speed.details.settings import TARGETS
from scripts.bench_speed.harness import DOMAIN_TUNE, ROOT, log


def _status_kb(pid):
    out = {}
    with contextlib.suppress(OSError):
        for line in open(f"/proc/{pid}/status", encoding="utf-8"):
            key = line.split(":", 1)[0]
            if key in ("VmRSS", "RssAnon", "RssFile", "RssShmem"):
                out[key] = int(line.split()[1])
    return out


def _children(pid):
    with contextlib.suppress(OSError):
        return [int(c) for c in open(f"/proc/{pid}/task/{pid}/children").read().split()]
    return []


def run_measured(cmd, cwd):
    """Run ``cmd``: wall seconds, peak RSS (kB) and sampled peaks of RssAnon / RssFile.

    The peak RSS is `/usr/bin/time -v`'s "Maximum resident set size" where that program
    exists, else ``getrusage(RUSAGE_CHILDREN).ru_maxrss`` in a fresh wrapper process.  The
    process is also sampled every 50 ms (/proc/PID/status) to split the peak into anonymous
    memory and file-backed pages (for instance a memory-mapped .npy output).
    """
    if os.path.exists("/usr/bin/time"):
        full, how = ["/usr/bin/time", "-v", *cmd], "/usr/bin/time -v"
    else:
        wrapper = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[1:]).returncode; "
                   "print('Maximum resident set size (kbytes):', "
                   "resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); "
                   "sys.exit(r)")
        full, how = [sys.executable, "-c", wrapper, *cmd], "getrusage(RUSAGE_CHILDREN) wrapper"
    peaks = {"RssAnon": 0, "RssFile": 0, "VmRSS": 0}
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        p = subprocess.Popen(full, cwd=cwd, env=BASE_ENV, stdout=out, stderr=err, text=True)
        while p.poll() is None:
            for child in _children(p.pid):
                for k, v in _status_kb(child).items():
                    if k in peaks:
                        peaks[k] = max(peaks[k], v)
            time.sleep(0.05)
        seconds = time.perf_counter() - start
        err.seek(0)
        stderr = err.read()
    if p.returncode != 0:
        raise RuntimeError(f"{shlex.join(cmd)} exited {p.returncode}: {stderr.strip()[-800:]}")
    m = re.search(r"Maximum resident set size \(kbytes\):\s*(\d+)", stderr)
    return {"seconds": seconds, "max_rss_kb": int(m.group(1)) if m else None, "how": how,
            "sampled_peak_kb": peaks}


def run(b):
    exe = DOMAIN_TUNE
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        epochs = b.s["memory_train_epochs"]
        cmd = [exe, "train", str(b.args.seed_pairs), "--epochs", str(epochs), "--no-sts",
               "--quiet", "--out", os.path.join(tmp, "run")]
        log(f"memory: domain-tune train --epochs {epochs} --no-sts")
        results["train"] = run_measured(cmd, tmp)
        results["train"]["command"] = (f"domain-tune train {b.args.seed_pairs.name} --epochs "
                                       f"{epochs} --no-sts --quiet --out TMP/run")
        log(f"memory: domain-tune train --epochs {epochs} --no-sts --optimizer lazy-adam")
        cmd = cmd[:-1] + [os.path.join(tmp, "run_lazy"), "--optimizer", "lazy-adam"]
        results["train_lazy"] = run_measured(cmd, tmp)
        results["train_lazy"]["command"] = (results["train"]["command"]
                                            + " --optimizer lazy-adam")
        sentences = b.train_sentences()
        for n in b.s["memory_embed_lines"]:
            path = os.path.join(tmp, f"lines_{n}.txt")
            with open(path, "w", encoding="utf-8") as f:
                for i in range(n):
                    f.write(f"{sentences[i % len(sentences)]} #{i}\n")
            out = os.path.join(tmp, f"emb_{n}.npy")
            log(f"memory: domain-tune embed {n:,} lines")
            r = run_measured([exe, "embed", path, "--out", out], tmp)
            r["command"] = f"domain-tune embed lines_{n}.txt --out emb_{n}.npy"
            r["lines"] = n
            results[f"embed_{n}"] = r
            os.remove(out)
    gb = 1e9 / 1024  # kB (KiB, as /proc and time -v report them) per GB (10^9 bytes)
    rows = []
    for key, r in results.items():
        pk = r["sampled_peak_kb"]
        rows.append([f"`{r['command']}`", fmt(r["max_rss_kb"] / gb, 2),
                     fmt(pk["RssAnon"] / gb, 2), fmt(pk["RssFile"] / gb, 2), fmt(r["seconds"], 1)])
    small, large = b.s["memory_embed_lines"]
    e_small, e_large = results[f"embed_{small}"], results[f"embed_{large}"]
    growth_mb = (e_large["max_rss_kb"] - e_small["max_rss_kb"]) / 1024
    train_gb = results["train"]["max_rss_kb"] / gb
    # "does not grow": the larger input's peak within 5% of the smaller's
    flat = growth_mb <= 0.05 * e_small["max_rss_kb"] / 1024
    targets = [
        {"name": "peak RSS of `domain-tune train` (seed sample)",
         "target": f"<= {TARGETS['train_peak_rss_gb']:.0f} GB", "measured": f"{train_gb:.2f} GB",
         "met": train_gb <= TARGETS["train_peak_rss_gb"]},
        {"name": f"peak RSS of `domain-tune embed` does not grow from {small:,} to {large:,} lines",
         "target": "growth <= 5%", "measured":
         f"{growth_mb:+.0f} MB ({100 * growth_mb * 1024 / e_small['max_rss_kb']:+.1f}%)",
         "met": flat},
    ]
    notes = [
        f"Peak RSS from {results['train']['how']} (\"Maximum resident set size\"), one run each "
        "(peak memory varies little between runs; a second repetition would add minutes). "
        "Anonymous / file-backed: the highest RssAnon and RssFile seen when sampling "
        "/proc/PID/status every 50 ms (approximate; file-backed pages include the mapped "
        "TensorFlow libraries and, for embed, the memory-mapped .npy output, which the kernel can "
        "drop at will).",
        f"Embed inputs: STS train sentences repeated with a counter suffix (`... #i`), one per "
        f"line, {small:,} and {large:,} lines, written to a temporary directory; output .npy.",
    ]
    log("memory: breakdown of the training flow, step by step")
    results["breakdown"] = marks = memory_breakdown(b, "adam")
    results["breakdown_lazy"] = lazy = memory_breakdown(b, "lazy-adam")
    breakdown_rows = [[m["step"], fmt(m["VmRSS"] / gb, 2), fmt(m["VmHWM"] / gb, 2),
                       fmt(m["RssAnon"] / gb, 2), fmt(z["VmRSS"] / gb, 2),
                       fmt(z["VmHWM"] / gb, 2)] for m, z in zip(marks, lazy)]
    extra = [{
        "title": "Where the peak of training comes from (library calls, step by step)",
        "header": ["after", "RSS GB (adam)", "peak so far GB (adam)", "anonymous GB (adam)",
                   "RSS GB (lazy-adam)", "peak so far GB (lazy-adam)"],
        "rows": [[m["step"].replace("Adam", "optimizer")] + r[1:]
                 for m, r in zip(marks, breakdown_rows)],
        "notes": ["A fresh process per optimizer running the calls `domain-tune train` makes, "
                  "in its order (batch 8 of seed pairs; no TensorBoard, plots or evaluation "
                  "passes: the evaluation model is compiled, not run), "
                  "printing its own VmRSS, VmHWM (peak) and RssAnon from /proc/self/status after "
                  "each. Context for the peaks above, not a substitute for them."]}]
    return section_result("5. Peak memory (RSS)",
                          ["command", "peak RSS GB", "anonymous GB (sampled)",
                           "file-backed GB (sampled)", "wall s"], rows, notes, results,
                          targets=targets, extra_tables=extra)


def memory_breakdown(b, optimizer):
    p = subprocess.run([sys.executable, "-m", "scripts.bench_speed.details.memory_steps",
                        str(b.args.seed_pairs), optimizer],
                       env=BASE_ENV, capture_output=True, text=True, cwd=ROOT)
    if p.returncode != 0:
        raise RuntimeError(f"memory breakdown failed: {p.stderr.strip()[-800:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])
