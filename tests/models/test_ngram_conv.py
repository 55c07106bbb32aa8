"""MaskedNGramConv: the matrix-product path equals the convolution, and which one runs."""

import numpy as np
import pytest
import tensorflow as tf

from domain_tune.models import layers
from domain_tune.models.layers import MaskedNGramConv


@pytest.fixture
def dispatch(monkeypatch):
    """Set the environment of :func:`layers.conv_as_matmul` and clear its cache."""

    def set_env(**env):
        for key in ("DOMAIN_TUNE_NGRAM_CONV", "ONEDNN_MAX_CPU_ISA"):
            monkeypatch.delenv(key, raising=False)
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        layers.conv_as_matmul.cache_clear()
        return layers.conv_as_matmul()

    yield set_env
    layers.conv_as_matmul.cache_clear()


@pytest.mark.parametrize("order", [2, 3, 5])
def test_matmul_path_equals_the_convolution(dispatch, order):
    rng = np.random.default_rng(order)
    x = tf.constant(rng.normal(size=(3, 11, 16)).astype("float32"))
    lengths = np.array([11, 4, 0])
    mask = tf.constant(np.arange(11)[None, :] < lengths[:, None])
    layer = MaskedNGramConv(order, 16)
    layer.build(x.shape)
    layer.conv.bias.assign(rng.normal(size=16).astype("float32"))
    assert dispatch(DOMAIN_TUNE_NGRAM_CONV="conv") is False
    conv = layer(x, mask).numpy()
    assert dispatch(DOMAIN_TUNE_NGRAM_CONV="matmul") is True
    matmul = layer(x, mask).numpy()
    np.testing.assert_allclose(matmul, conv, rtol=1e-5, atol=1e-5)
    # the window reads no padding: a text's outputs do not depend on what follows it
    changed = x.numpy().copy()
    changed[1, 4:] = 100.0
    out = layer(tf.constant(changed), mask).numpy()
    np.testing.assert_allclose(out[1, :4], matmul[1, :4], rtol=1e-5, atol=1e-5)


def test_matmul_path_gradients_equal_the_convolution(dispatch):
    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(size=(2, 7, 8)).astype("float32"))
    mask = tf.constant(np.arange(7)[None, :] < np.array([[7], [5]]))
    layer = MaskedNGramConv(3, 8)
    layer.build(x.shape)
    grads = []
    for path in ("conv", "matmul"):
        dispatch(DOMAIN_TUNE_NGRAM_CONV=path)
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(layer(x, mask) ** 2)
        grads.append([g.numpy() for g in tape.gradient(loss, [x, *layer.trainable_weights])])
    for a, b in zip(*grads):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_dispatch_follows_the_onednn_cap_and_the_override(dispatch):
    assert dispatch(ONEDNN_MAX_CPU_ISA="AVX2") is True
    assert dispatch(ONEDNN_MAX_CPU_ISA="avx2_vnni") is True
    assert dispatch(ONEDNN_MAX_CPU_ISA="AVX2", DOMAIN_TUNE_NGRAM_CONV="conv") is False
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            flags = next((line for line in f if line.startswith("flags")), "").split()
        host_has_avx512 = "avx512f" in flags
    except OSError:  # not Linux: the convolution
        host_has_avx512 = True
    assert dispatch() is (not host_has_avx512)
    assert dispatch(ONEDNN_MAX_CPU_ISA="AVX512_CORE") is (not host_has_avx512)


@pytest.mark.parametrize("order", [2, 3, 5])
def test_tap_products_give_the_layer_output(order):
    """One sequence of table rows with masked slots inside it: the tap-product form equals
    the layer."""
    rng = np.random.default_rng(10 + order)
    layer = MaskedNGramConv(order, 16)
    layer.build((1, 13, 16))
    layer.conv.bias.assign(rng.normal(size=16).astype("float32"))
    # a table of 4 distinct rows and a zero row; the sequence reads them in any order
    distinct = rng.normal(size=(4, 16)).astype("float32")
    positions = np.array([4, 0, 1, 2, 1, 4, 4, 3, 0, 0, 2, 3, 4])  # 4: the zero row
    x = np.concatenate([distinct, np.zeros((1, 16), "float32")])[positions]
    mask = positions < 4
    expected = layer(tf.constant(x[None]), tf.constant(mask[None])).numpy()[0]
    table = np.concatenate([distinct, np.zeros((1, 16), "float32")])
    products = layer.tap_products(tf.constant(table))
    assert len(products) == order
    products = np.stack([p.numpy() for p in products])
    assert products.shape == (order, 5, 16)
    kernel = layer.conv.kernel.numpy()
    np.testing.assert_allclose(products[1, 3], distinct[3] @ kernel[1], rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(products[:, 4], 0.0)
    out = layer.call_on_tap_products([tf.constant(p) for p in products], tf.constant(positions),
                                     tf.constant(x)).numpy()
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("path", ["conv", "matmul"])
@pytest.mark.parametrize("order", [2, 3, 5])
def test_call_sequence_equals_a_batch_of_one(dispatch, path, order):
    rng = np.random.default_rng(20 + order)
    x = rng.normal(size=(12, 16)).astype("float32")
    mask = np.ones(12, bool)
    mask[[0, 4, 5, 11]] = False
    layer = MaskedNGramConv(order, 16)
    layer.build((1, 12, 16))
    layer.conv.bias.assign(rng.normal(size=16).astype("float32"))
    dispatch(DOMAIN_TUNE_NGRAM_CONV=path)
    expected = layer(tf.constant(x[None]), tf.constant(mask[None])).numpy()[0]
    out = layer.call_sequence(tf.constant(x), tf.constant(mask)).numpy()
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
