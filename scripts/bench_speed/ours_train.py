"""domain-tune's training loop with epoch times, for the per-epoch figure of the train section.

The same calls as ``domain-tune train`` (``compile_siamese`` + ``fit``), on the same pairs and
split as the article's code.  Prints one JSON line like article_train.py.

    python -m scripts.bench_speed.ours_train PAIRS.csv --epochs 3 --batch-size 8 --optimizer adam
"""

import argparse
import json
import sys
import tempfile
import time


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("pairs")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--optimizer", default="adam")
    ap.add_argument("--validation-split", type=float, default=0.2)
    args = ap.parse_args(argv)

    from domain_tune import _env

    _env.import_tensorflow()
    import keras

    from domain_tune.datasets.pairs import read_pairs, split_pairs
    from domain_tune.models.loading import load_model
    from domain_tune.training.fit import FitOptions, compile_siamese, fit

    pairs = read_pairs(args.pairs)
    train, val = split_pairs(pairs, args.validation_split, 42)
    options = FitOptions(epochs=args.epochs, batch_size=args.batch_size, optimizer=args.optimizer,
                         patience=args.epochs + 1)
    model = compile_siamese(load_model("use-m3"), options, len(train))
    times = []

    class Timer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.t = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            times.append(time.perf_counter() - self.t)

    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        fit(model, train, val, options, tmp, callbacks=[Timer()], verbose=0, final_state=False)
    print(json.dumps({"epoch_s": times, "fit_s": time.perf_counter() - started,
                      "train_pairs": len(train)}))


if __name__ == "__main__":
    sys.exit(main())
