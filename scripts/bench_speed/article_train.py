"""The article's own training code, on a SavedModel exported by ``domain-tune export``.

tf_keras (Keras 2) with ``hub.KerasLayer(path, trainable=True)`` shared by both texts of a
pair, angular similarity, MSE, Adam(1e-5, 0.9, 0.9999, 1e-7, clipnorm=1.0); then the tuned
encoder is saved as a SavedModel.  Prints one JSON line: epoch times (s), whole fit time, pairs.

    python -m scripts.bench_speed.article_train SAVED_MODEL PAIRS.csv --epochs 10 --batch-size 8
"""

import argparse
import json
import math
import os
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ["TF_USE_LEGACY_KERAS"] = "1"


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("saved_model")
    ap.add_argument("pairs")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--validation-split", type=float, default=0.2)
    args = ap.parse_args(argv)

    import numpy as np
    import pandas as pd
    import tensorflow as tf
    import tensorflow_hub as hub
    import tensorflow_text  # noqa: F401  (SentencePiece ops)
    import tf_keras

    df = pd.read_csv(args.pairs)
    base = np.array(df["base"].astype(str), dtype=object)
    ref = np.array(df["ref"].astype(str), dtype=object)
    y = df["similarity"].astype("float32").to_numpy()

    class AngularSimilarity(tf_keras.layers.Layer):
        def call(self, inputs):
            x, z = inputs
            cos = tf.reduce_sum(tf.nn.l2_normalize(x, 1) * tf.nn.l2_normalize(z, 1), axis=1)
            return 1.0 - tf.acos(tf.clip_by_value(cos, -0.99999, 0.99999)) / math.pi

    layer = hub.KerasLayer(args.saved_model, input_shape=[], dtype=tf.string, trainable=True)
    a = tf_keras.layers.Input(shape=[], dtype=tf.string)
    b = tf_keras.layers.Input(shape=[], dtype=tf.string)
    model = tf_keras.Model([a, b], AngularSimilarity()([layer(a), layer(b)]))
    model.compile(tf_keras.optimizers.Adam(1e-5, beta_1=0.9, beta_2=0.9999, epsilon=1e-7,
                                           clipnorm=1.0), loss="mse", metrics=["mae"])
    times = []

    class Timer(tf_keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.t = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            times.append(time.perf_counter() - self.t)

    started = time.perf_counter()
    model.fit([base, ref], y, batch_size=args.batch_size, epochs=args.epochs,
              validation_split=args.validation_split, callbacks=[Timer()], verbose=0)
    fit_s = time.perf_counter() - started
    with tempfile.TemporaryDirectory() as tmp:
        tf.saved_model.save(layer, os.path.join(tmp, "encoder"))  # the tuned encoder
    n_train = len(y) - int(len(y) * args.validation_split) if args.validation_split else len(y)
    print(json.dumps({"epoch_s": times, "fit_s": fit_s, "train_pairs": n_train}))


if __name__ == "__main__":
    sys.exit(main())
