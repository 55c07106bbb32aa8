"""Load test of ``domain-tune serve`` on the loopback interface, against ``embed`` in the same run.

For each instruction-set setting (``native``, and ``avx2``: oneDNN capped at AVX2) it starts
``domain-tune serve --model MODEL --host 127.0.0.1 --port P`` as a child process and

1. **concurrency**: sends ``--concurrency`` (100) ``POST /embed`` requests of
   ``--texts-per-request`` (8) STS-B dev sentences at once, over as many keep-alive
   connections, and checks every reply against the rows ``embed`` writes for the same texts
   (``domain_tune.api.encode``, the function behind ``embed``; largest difference reported);
2. **throughput**: repeats that burst ``--bursts`` times and compares texts per second with
   warm ``encode`` of the same texts in one call (the ``embed`` rate: no HTTP, no JSON), in a
   fresh process of the same setting;
3. **memory**: sends ``--requests`` (10,000) requests, ``--concurrency`` at a time, and reads
   the server's resident memory (``/proc/PID/status``) every 500 requests: flat means the
   last reading within 5% (or 32 MiB) of the reading after the first 1,000 requests.

Bounded: the server is stopped with SIGTERM at the end or after ``--max-seconds``; nothing
listens beyond 127.0.0.1.  Writes ``results/serve.md`` and ``results/serve.json``.

    python scripts/bench_serve.py
    python scripts/bench_serve.py --isa native --requests 2000     # a quick look
"""

import argparse
import asyncio
import json
import pathlib
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import orjson  # the [serve] extra's JSON library: the load generator shares the cores

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from bench_speed import harness  # noqa: E402

ROOT = harness.ROOT
STS_DEV = harness.SHARED / "stsbenchmark" / "sts-dev.csv"
FLAT_SHARE, FLAT_BYTES = 0.05, 32 * 2**20


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="use-m3")
    p.add_argument("--isa", default="native,avx2")
    p.add_argument("--concurrency", type=int, default=100)
    p.add_argument("--texts-per-request", type=int, default=8)
    p.add_argument("--bursts", type=int, default=5)
    p.add_argument("--requests", type=int, default=10_000)
    p.add_argument("--max-seconds", type=float, default=1800, help="Stop the server after this long.")
    p.add_argument("--out", default=str(ROOT / "results" / "serve.md"))
    p.add_argument("--reference", help=argparse.SUPPRESS)  # child: texts file -> rows + rate
    return p.parse_args(argv)


def sentences():
    from domain_tune.datasets.sts import read_sts

    if not STS_DEV.is_file():
        raise SystemExit(f"{STS_DEV} not found: the benchmark embeds STS-B dev sentences")
    sts = read_sts(str(STS_DEV))
    return list(dict.fromkeys([*sts.sentences1, *sts.sentences2]))


def reference_child(args):
    """In a fresh process: ``encode`` the texts once to warm up, then time it; rows to .npy."""
    from domain_tune._env import import_tensorflow

    import_tensorflow()
    from domain_tune.api import encode, load_model

    texts = pathlib.Path(args.reference).read_text(encoding="utf-8").split("\n")
    model = load_model(args.model)
    encode(model, texts)
    times = []
    for _ in range(args.bursts):
        started = time.perf_counter()
        rows = encode(model, texts)
        times.append(time.perf_counter() - started)
    np.save(args.reference + ".npy", rows)
    print(json.dumps({"seconds": statistics.median(times), "texts": len(texts)}))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_bytes(pid):
    for line in open(f"/proc/{pid}/status", encoding="utf-8"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


class Connection:
    """One keep-alive HTTP/1.1 connection to the service (enough of a client for JSON posts)."""

    def __init__(self, port):
        self.port, self.reader, self.writer = port, None, None

    async def post(self, path, payload):
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        body = orjson.dumps(payload)
        self.writer.write(f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json"
                          f"\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
        await self.writer.drain()
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
        length = int(headers.get("content-length", headers.get("Content-Length", 0)))
        return status, orjson.loads(await self.reader.readexactly(length))

    def close(self):
        if self.writer is not None:
            self.writer.close()


async def burst(conns, batches):
    """One request per connection at once: the replies, in order."""
    return await asyncio.gather(*(c.post("/embed", {"texts": b}) for c, b in zip(conns, batches)))


async def load(conns, batches, requests, pid, every=500):
    """``requests`` requests, one connection each ``len(conns)`` at a time: RSS readings, errors."""
    readings, errors, sent = [], 0, 0
    while sent < requests:
        n = min(len(conns), requests - sent)
        replies = await burst(conns[:n], [batches[(sent + i) % len(batches)] for i in range(n)])
        errors += sum(status != 200 for status, _ in replies)
        sent += n
        if sent % every < n or sent == requests:
            readings.append((sent, rss_bytes(pid)))
    return readings, errors


def wait_ready(port, proc, timeout=300):
    import urllib.request

    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited ({proc.returncode}):\n{proc.stderr.read()[-2000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                return json.loads(r.read())
        except OSError:
            time.sleep(0.5)
    raise SystemExit("the server did not answer /health in time")


def measure(args, isa, texts, folder):
    k, c = args.texts_per_request, args.concurrency
    pool = texts[: k * c]
    batches = [pool[i * k:(i + 1) * k] for i in range(c)]
    ref_file = folder / f"texts-{isa}.txt"
    ref_file.write_text("\n".join(pool), encoding="utf-8")
    ref_run = harness.run([harness.PYTHON, __file__, "--reference", str(ref_file), "--model", args.model,
                           "--bursts", str(args.bursts)], isa)
    ref = json.loads(ref_run["stdout"].strip().splitlines()[-1])
    rows = np.load(str(ref_file) + ".npy")

    port = free_port()
    started = time.time()
    proc = subprocess.Popen([harness.DOMAIN_TUNE, "serve", "--model", args.model, "--host", "127.0.0.1",
                             "--port", str(port)], env=harness.child_env(isa), cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        health = wait_ready(port, proc)
        ready_s = time.time() - started

        async def session():
            conns = [Connection(port) for _ in range(c)]
            try:
                await burst(conns, batches)  # warm-up: the model's first calls trace
                replies = await burst(conns, batches)
                bad = [s for s, _ in replies if s != 200]
                got = np.array([row for _, body in replies if "embeddings" in body
                                for row in body["embeddings"]], dtype=np.float32)
                diff = float(np.abs(got - rows).max()) if got.shape == rows.shape else float("inf")
                times = []
                for _ in range(args.bursts):
                    t = time.perf_counter()
                    await burst(conns, batches)
                    times.append(time.perf_counter() - t)
                base = rss_bytes(proc.pid)
                readings, errors = await asyncio.wait_for(
                    load(conns, batches, args.requests, proc.pid),
                    max(1.0, args.max_seconds - (time.time() - started)))
                return bad, diff, times, base, readings, errors
            finally:
                for conn in conns:
                    conn.close()

        bad, diff, times, base, readings, errors = asyncio.run(session())
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
    after_1k = next((r for n, r in readings if n >= 1000), readings[0][1])
    last = readings[-1][1]
    serve_rate = len(pool) / statistics.median(times)
    embed_rate = ref["texts"] / ref["seconds"]
    return {
        "isa": isa, "ready_seconds": round(ready_s, 1), "health": health,
        "burst": {"requests": c, "texts_per_request": k, "errors": len(bad), "max_abs_diff": diff,
                  "equal": diff <= 1e-5},
        "serve_texts_per_s": round(serve_rate, 1), "embed_texts_per_s": round(embed_rate, 1),
        "ratio": round(serve_rate / embed_rate, 3),
        "memory": {"requests": args.requests, "errors": errors, "rss_before_mib": round(base / 2**20, 1),
                   "rss_after_1000_mib": round(after_1k / 2**20, 1), "rss_last_mib": round(last / 2**20, 1),
                   "flat": last - after_1k <= max(FLAT_SHARE * after_1k, FLAT_BYTES),
                   "readings": [(n, round(r / 2**20, 1)) for n, r in readings]},
        "server_exit": proc.returncode,
    }


def render(r):
    lines = [
        "# `domain-tune serve` under load (loopback)",
        "",
        f"{r['machine']['date']}, commit {r['machine']['commit']}, {r['machine']['cores']} cores, "
        f"{r['machine']['cpu_model']}; SIMD flags: {' '.join(r['machine']['simd_flags'])}; "
        f"load average at start {r['machine']['load_average_1min']}.",
        "",
        f"Command: `{r['command']}` ({r['seconds']:.0f} s). Model `{r['model']}`; texts: STS-B dev "
        "sentences. `embed` = `domain_tune.api.encode` (the function behind `domain-tune embed`) on "
        "the same texts in one warm call, in a fresh process of the same setting; the service's rate "
        "is the median of the bursts after a warm-up burst, HTTP and JSON included.",
        "",
        "| setting | burst | errors | largest difference from `embed` | service texts/s | "
        "`embed` texts/s | ratio | RSS after 1,000 requests | RSS at the end | requests | flat |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for x in r["settings"]:
        b, m = x["burst"], x["memory"]
        lines.append(
            f"| {x['isa']} | {b['requests']} x {b['texts_per_request']} texts | {b['errors']} + "
            f"{m['errors']} | {b['max_abs_diff']:.1e} | {x['serve_texts_per_s']:,.0f} | "
            f"{x['embed_texts_per_s']:,.0f} | {x['ratio']:.2f}x | {m['rss_after_1000_mib']:,.0f} MiB | "
            f"{m['rss_last_mib']:,.0f} MiB | {m['requests']:,} | {'yes' if m['flat'] else 'no'} |")
    lines += ["", "Targets: every reply equal to `embed`'s rows (1e-5), no error, throughput within 2x "
              "of `embed` (ratio >= 0.5), memory flat over the requests (the last reading within 5% "
              "or 32 MiB of the reading after 1,000 requests).", "",
              "Resident memory of the server, MiB, by requests answered:", ""]
    for x in r["settings"]:
        lines.append(f"- {x['isa']}: " + ", ".join(f"{n:,}: {v:,.0f}" for n, v in x["memory"]["readings"]))
    return "\n".join(lines) + "\n"


def main(argv=None):
    args = parse_args(argv)
    if args.reference:
        return reference_child(args)
    started = time.time()
    meta = harness.machine_info()
    texts = sentences()
    need = args.texts_per_request * args.concurrency
    if len(texts) < need:
        raise SystemExit(f"{need} texts needed, {len(texts)} found")
    settings = []
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as tmp:
        for isa in args.isa.split(","):
            harness.log(f"{isa}: serving")
            settings.append(measure(args, isa, texts, pathlib.Path(tmp)))
            harness.log(json.dumps({k: v for k, v in settings[-1].items() if k != "health"}))
    result = {"command": "python scripts/bench_serve.py " + " ".join(sys.argv[1:] if argv is None else argv),
              "model": args.model, "machine": meta, "settings": settings,
              "seconds": round(time.time() - started, 1)}
    out = pathlib.Path(args.out)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    out.write_text(render(result), encoding="utf-8")
    print(render(result))
    failed = [x["isa"] for x in settings if x["burst"]["errors"] or x["memory"]["errors"]
              or not x["burst"]["equal"]]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
