"""Child process of the ``memory`` section: resident memory after each call ``domain-tune train``
makes, in its order.

    python -m scripts.bench_speed.details.memory_steps SEED_PAIRS_CSV adam|lazy-adam

Prints one JSON list: per step its name and VmRSS, VmHWM (peak so far), RssAnon, RssFile in
kB from /proc/self/status.  Batch 8 of the seed pairs; no TensorBoard, plots or evaluation
passes (the evaluation model is compiled, not run).
"""

import json
import os
import shutil
import sys
import tempfile

import pandas as pd

MARKS = []


def mark(step):
    d = {"step": step}
    for line in open("/proc/self/status"):
        key = line.split(":")[0]
        if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
            d[key] = int(line.split()[1])
    MARKS.append(d)


def main(seed_pairs, optimizer):
    mark("python started (pandas imported)")
    from domain_tune._env import import_tensorflow

    import_tensorflow()
    mark("import tensorflow, tensorflow_text")
    import gc

    import tensorflow as tf

    from domain_tune.export import export_saved_model, save_keras
    from domain_tune.models.loading import load_model
    from domain_tune.training.fit import FitOptions, compile_siamese
    from domain_tune.training.state_io import load_variables, save_variables

    encoder = load_model("use-m3")
    mark("load_model('use-m3')")
    seed = pd.read_csv(seed_pairs).head(8)
    x = {"base": tf.constant(seed["base"].tolist()), "ref": tf.constant(seed["ref"].tolist())}
    y = tf.constant(seed["similarity"].astype("float32").to_numpy())
    options = FitOptions(batch_size=8, optimizer=optimizer)
    sparse = options.optimizer != "adam"  # as fit gives TrainingState
    siamese = compile_siamese(encoder, options)
    siamese.train_on_batch(x, y)
    mark("compile_siamese + first Adam step (builds both moment tables)")
    for _ in range(5):
        siamese.train_on_batch(x, y)
    mark("5 more steps")
    tmp = tempfile.mkdtemp()
    try:
        # TrainingState.on_epoch_end: the best weights when the loss improves, then the last state
        save_variables(os.path.join(tmp, "best.h5"), encoder.trainable_weights, sparse)
        mark("save_variables(best.h5) (fit's best weights: the encoder's trainable weights)")
        save_variables(os.path.join(tmp, "last.h5"),
                       list(siamese.trainable_weights) + list(siamese.optimizer.variables), sparse)
        mark("save_variables(last.h5) "
             "(fit's per-epoch last state: trainable + optimizer variables)")
        load_variables(os.path.join(tmp, "best.h5"), encoder.trainable_weights, sparse=True)
        mark("load_variables(best.h5, sparse=True) (fit restores the best weights at the end)")
        del siamese  # run: callbacks detached, the trained model dropped with its optimizer
        gc.collect()
        siamese = compile_siamese(encoder, options)
        mark("del siamese + gc.collect() + compile_siamese (optimizer freed; model for evaluation)")
        save_keras(encoder, os.path.join(tmp, "model.keras"))
        mark("save_keras(encoder, model.keras)")
        export_saved_model(encoder, os.path.join(tmp, "saved_model"))
        mark("export_saved_model")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(MARKS))


if __name__ == "__main__":
    main(*sys.argv[1:3])
