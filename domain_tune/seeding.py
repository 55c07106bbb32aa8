"""Seeding that is safe to call while models are loaded.

``tf.random.set_seed`` (and ``keras.utils.set_random_seed``, which calls it)
clears TensorFlow's kernel cache, and with it the kernel-owned resource of
every ``tensorflow_text.SentencepieceTokenizer`` already created: the
tokenizer then fails with "Resource ... SentencepieceResource does not exist".
domain-tune therefore never calls them.  Keras 3 initializers draw their seeds
from Python's ``random``, shuffling uses NumPy, and ``tf.data`` gets explicit
seeds, so seeding those two is enough for reproducible runs.
"""

import random

import numpy as np


def seed_everything(seed):
    """Seed Python and NumPy (and so Keras initializers); keeps TF resources alive."""
    if seed is None:
        return
    random.seed(seed)
    np.random.seed(seed % (2**32))
