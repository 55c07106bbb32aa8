"""Peak memory and training cost of in-batch steps with and without cached gradients (GradCache).

Builds ESCO training pairs (``pairs esco --max-pairs``, with one mined hard
negative per positive pair), then trains one epoch with ``--loss
in-batch-symmetric`` for each ``--runs`` spec, each in a fresh ``domain-tune
train`` process whose peak resident memory is read from the kernel (``wait4``
rusage).  A spec is ``B`` (batch B, the whole batch through the encoder),
``B:M`` (batch B, ``--mini-batch-size M``), with ``+hn`` to train on the hard
negatives.  The training cost is the CPU time of the fit (all threads, from
``metrics.json``), which a busy machine does not inflate as it does wall time.
Writes ``results/gradcache_memory.md`` and ``.json``.

    python scripts/bench_gradcache_memory.py
    python scripts/bench_gradcache_memory.py --runs 1024 1024:64 64 256:128+hn --pairs 2048
"""

import argparse
import datetime
import json
import os
import pathlib
import platform
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shared", default=str(ROOT.parent / "shared" / "data"))
    p.add_argument("--out-dir", default=str(ROOT / "results"))
    p.add_argument("--runs", nargs="+", default=["1024", "1024:64"],
                   help="Specs: B, B:M, with +hn to use the hard negatives.")
    p.add_argument("--pairs", type=int, default=2048, help="Training pairs (one epoch).")
    return p.parse_args()


def peak_rss(cmd):
    """``(exit code, peak RSS in MB, seconds)`` of a child process."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=False)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode(errors="replace")
    if proc.returncode != 0:
        print(err[-3000:], file=sys.stderr)
    return proc.returncode, usage.ru_maxrss / 1024.0, time.perf_counter() - start


def parse_spec(spec):
    hn = spec.endswith("+hn")
    batch, _, mini = spec.removesuffix("+hn").partition(":")
    return int(batch), (int(mini) if mini else None), hn


def main():
    import pandas as pd

    args = parse_args()
    specs = [parse_spec(s) for s in args.runs]
    work = tempfile.mkdtemp(prefix="gradcache-memory-")
    esco = os.path.join(args.shared, "esco", "occupations_en.csv")
    pairs = os.path.join(work, "pairs")
    cli = [sys.executable, "-m", "domain_tune.cli"]
    hn = any(h for _, _, h in specs)
    subprocess.run([*cli, "pairs", "esco", esco, "--out", pairs, "--max-pairs", str(args.pairs),
                    *(["--hard-negatives"] if hn else [])], check=True, stdout=subprocess.DEVNULL)
    with_hn = os.path.join(pairs, "train.csv")
    plain = os.path.join(work, "train_plain.csv")
    frame = pd.read_csv(with_hn, keep_default_na=False)
    frame.drop(columns=[c for c in frame.columns if c.startswith("negative")]).to_csv(plain,
                                                                                     index=False)
    rows = []
    for batch, mini, use_hn in specs:
        out = os.path.join(work, f"run-{batch}-{mini or 'full'}-{int(use_hn)}")
        cmd = [*cli, "train", with_hn if use_hn else plain, "--out", out, "--loss",
               "in-batch-symmetric", "--batch-size", str(batch), "--epochs", "1", "--optimizer",
               "lazy-adam", "--learning-rate", "1e-4", "--validation-split", "0", "--no-sts",
               "--quiet"]
        if mini:
            cmd += ["--mini-batch-size", str(mini)]
        code, rss, seconds = peak_rss(cmd)
        metrics = {}
        if code == 0:
            with open(os.path.join(out, "metrics.json")) as f:
                metrics = json.load(f)
        history = os.path.join(out, "history.csv")
        rows.append({"batch_size": batch, "mini_batch_size": mini, "hard_negatives": use_hn,
                     "exit_code": code, "peak_rss_mb": round(rss),
                     "process_seconds": round(seconds, 1),
                     "fit_cpu_seconds": metrics.get("fit_cpu_seconds"),
                     "train_pairs": metrics.get("train_pairs"),
                     "epoch_loss": float(pd.read_csv(history)["loss"].iloc[-1])
                     if os.path.isfile(history) else None})
        print(rows[-1], file=sys.stderr)
    result = {"pairs": args.pairs, "runs": rows,
              "machine": {"arch": platform.machine(), "cores": os.cpu_count(),
                          "python": platform.python_version()},
              "date": datetime.date.today().isoformat(),
              "command": " ".join(["python", "scripts/bench_gradcache_memory.py", *sys.argv[1:]])}
    os.makedirs(args.out_dir, exist_ok=True)
    with open(os.path.join(args.out_dir, "gradcache_memory.json"), "w") as f:
        json.dump(result, f, indent=2)
    lines = ["# In-batch training steps: whole batch vs cached gradients (GradCache)", "",
             f"`domain-tune train` on {rows[0]['train_pairs'] or args.pairs} ESCO pairs (one mined "
             "hard negative per positive pair where marked), one epoch, `--loss "
             "in-batch-symmetric --optimizer lazy-adam`, each in a fresh process. Peak resident "
             "set size from the kernel (the process also holds the model and its optimizer, "
             "about 2 GB); training cost as CPU time of the fit, all threads.", "",
             "| batch | encoder sees at once | hard negatives | peak RSS | fit CPU time | "
             "epoch loss |", "| --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        texts = 3 if r["hard_negatives"] else 2
        seen = (f"{r['mini_batch_size']} texts" if r["mini_batch_size"]
                else f"{texts * r['batch_size']} texts (whole batch)")
        loss = f"{r['epoch_loss']:.4f}" if r["epoch_loss"] is not None else "failed"
        cpu = f"{r['fit_cpu_seconds']:.0f} s" if r["fit_cpu_seconds"] is not None else "n/a"
        lines.append(f"| {r['batch_size']} | {seen} | {'1' if r['hard_negatives'] else 'none'} "
                     f"| {r['peak_rss_mb'] / 1024:.2f} GB | {cpu} | {loss} |")
    lines += ["", f"Machine: {result['machine']}; {result['date']}; command `{result['command']}`."]
    pathlib.Path(args.out_dir, "gradcache_memory.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
