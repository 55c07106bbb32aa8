"""The real weights: parity with the numpy reference forward pass."""

import numpy as np
import pandas as pd
import pytest

from domain_tune.datasets.sts import read_sts
from domain_tune.embedding import encode
from domain_tune.models.weights import WEIGHT_MAP, dequantize_table, resources_dir

pytestmark = pytest.mark.real


def _cosines(a, b):
    return np.einsum("ij,ij->i", a, b) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def _check_parity(model, reference_use, sts_dir, seed_pairs):
    dev = read_sts(str(sts_dir / "sts-dev.csv")).head(250)
    seed = pd.read_csv(seed_pairs)
    texts = dev.sentences1 + dev.sentences2 + seed["base"].tolist() + seed["ref"].tolist()
    ours = encode(model, texts, batch_size=64)
    ref = reference_use.encode(texts)
    cos = _cosines(ours, ref)
    assert cos.mean() >= 0.99999
    assert cos.min() >= 0.999


def test_parity_with_reference(use_m3, reference_use, sts_dir, seed_pairs):
    _check_parity(use_m3, reference_use, sts_dir, seed_pairs)


@pytest.mark.parametrize("path", ["conv", "matmul"])
def test_parity_of_both_ngram_paths(path, reference_use, sts_dir, seed_pairs, monkeypatch):
    """Either way of computing the n-gram convolutions (chosen per CPU) is the reference."""
    from domain_tune.models import layers
    from domain_tune.models.loading import from_preset

    monkeypatch.setenv("DOMAIN_TUNE_NGRAM_CONV", path)
    layers.conv_as_matmul.cache_clear()
    try:
        assert layers.conv_as_matmul() is (path == "matmul")
        _check_parity(from_preset("use-m3"), reference_use, sts_dir, seed_pairs)
    finally:
        monkeypatch.delenv("DOMAIN_TUNE_NGRAM_CONV")
        layers.conv_as_matmul.cache_clear()


def test_dequantised_table_matches_reference_rows():
    with np.load(f"{resources_dir()}/weights.npz") as npz:
        table = dequantize_table(npz, 128000)
        # row 17*5 + 3 is chunk 3 (q4), row 5 of it
        expected = npz["q4"][5].astype(np.float32) * npz["scale"][3] + npz["lo"][3]
    assert table.shape == (128000, 512)
    np.testing.assert_allclose(table[17 * 5 + 3], expected, rtol=1e-6)


def test_weight_map_covers_every_weight(use_m3):
    mapped = {f"{layer}/{name}" for layer, name, _ in WEIGHT_MAP} | {"token_embedding/embeddings"}
    assert len(mapped) == len(use_m3.backbone.weights)


def test_prefetched_arrays_equal_a_direct_read():
    from domain_tune.models import weights

    weights.prefetch_reference_arrays()
    weights.prefetch_reference_arrays()  # a second call starts nothing new
    assert len(weights._PREFETCHED) == 1
    prefetched, eps1 = weights.reference_arrays()
    assert not weights._PREFETCHED  # taken, not kept
    direct, eps2 = weights.reference_arrays()
    assert eps1 == eps2 and prefetched.keys() == direct.keys()
    for key in direct:
        np.testing.assert_array_equal(prefetched[key], direct[key], err_msg=key)
    # either way the table is a view of a tensor TensorFlow owns, which a variable takes as it is
    from domain_tune.models.buffers import shared_tensor

    for arrays in (prefetched, direct):
        table = arrays[weights.TABLE]
        assert shared_tensor(table) is shared_tensor(table)


def test_a_read_started_before_tensorflow_dequantises_its_table_once_told():
    """The prefetch's path: the file read at once, the table made in TensorFlow when told."""
    import threading

    from domain_tune.models import weights
    from domain_tune.models.buffers import shared_tensor

    class Later(threading.Event):  # not set until waited for
        waited = False

        def wait(self, timeout=None):
            self.waited = True
            self.set()
            return True

    ready = Later()
    weights_path = f"{resources_dir()}/weights.npz"
    arrays, _ = weights._read_reference_arrays(weights_path, 128000, tensorflow_ready=ready)
    assert ready.waited
    table = arrays[weights.TABLE]
    assert shared_tensor(table) is shared_tensor(table)
    with np.load(weights_path) as npz:
        np.testing.assert_array_equal(table, dequantize_table(npz, 128000))
