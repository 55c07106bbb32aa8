"""Section ``cold``: ``domain-tune eval-sts`` as a fresh process (and ``import tensorflow``).

    python -m scripts.bench_speed.details --sections cold
"""

import re
import sys
import tempfile

from scripts.bench_speed.details.common import fmt, met, run_wall, section_result, wait_for_quiet
from scripts.bench_speed.details.settings import TARGETS
from scripts.bench_speed.harness import DOMAIN_TUNE, log, median


def run(b):
    exe = DOMAIN_TUNE
    py = sys.executable
    sts_dir = str(b.args.sts_dir)
    commands = {
        "eval-sts": [exe, "eval-sts", "--sts-dir", sts_dir],
        "import tensorflow": [py, "-c", "import tensorflow"],
        "import tensorflow, tensorflow_text + load use-m3": [
            py, "-c", "from domain_tune._env import import_tensorflow; import_tensorflow(); "
            "from domain_tune.models.loading import load_model; load_model('use-m3')"],
    }
    times = {k: [] for k in commands}
    eval_seconds = []
    pearson = None
    with tempfile.TemporaryDirectory() as cwd:
        for r in range(b.s["reps"]):
            wait_for_quiet("cold", b.s["quiet_wait"])
            for name, cmd in commands.items():
                t, out = run_wall(cmd, cwd)
                times[name].append(t)
                if name == "eval-sts":
                    m = re.search(r"Pearson ([\d.]+).*\[[^,]+, ([\d.]+) s\]", out)
                    if m:
                        pearson, secs = float(m.group(1)), float(m.group(2))
                        eval_seconds.append(secs)
                log(f"cold rep {r + 1}: {name}: {t:.2f} s")
    cold = median(times["eval-sts"])
    rows = [
        [f"`domain-tune eval-sts --sts-dir {sts_dir}` (start to exit)", fmt(cold, 2),
         f"<= {TARGETS['cold_start_seconds']:.0f} s: {met(cold <= TARGETS['cold_start_seconds'])}"],
        ["  of which the evaluation itself (the command's own `[use-m3, X s]`)",
         fmt(median(eval_seconds), 2) if eval_seconds else "-", "context"],
        ["`python -c \"import tensorflow\"`", fmt(median(times["import tensorflow"]), 2),
         "context"],
        ["`python -c` import TF + TF Text, then `load_model(\"use-m3\")`",
         fmt(median(times["import tensorflow, tensorflow_text + load use-m3"]), 2), "context"],
    ]
    target = {"name": "cold start of `domain-tune eval-sts` (fresh process)",
              "target": f"<= {TARGETS['cold_start_seconds']:.0f} s", "measured": f"{cold:.2f} s",
              "met": cold <= TARGETS["cold_start_seconds"]}
    notes = [f"Fresh processes (`subprocess.run`, wall time from start to exit), median of "
             f"{b.s['reps']}, the three commands interleaved; the child sees the environment "
             f"this script started with. eval-sts printed Pearson {pearson}."]
    return section_result("3. Cold start", ["command", "seconds", "target"], rows, notes,
                          {"seconds": times, "eval_seconds_reported": eval_seconds,
                           "pearson": pearson}, targets=[target])
