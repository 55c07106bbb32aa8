"""``--model`` as SavedModels written by other tools: TF Hub's layouts, Keras 3's ``export``."""

import numpy as np
import pytest
import tensorflow as tf

from domain_tune.errors import BadInputError
from domain_tune.export import export_saved_model
from domain_tune.models.loading import load_model

TEXTS = ["data scientist", "infermiere", ""]


class _CallOnly(tf.Module):
    """A TF2 reusable SavedModel without signatures: only ``__call__`` (hub.KerasLayer's way)."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def __call__(self, texts):
        return self.inner(texts)


def test_a_saved_model_without_signatures_is_called_as_tf_hub_does(tiny_encoder, tmp_path):
    expected = tiny_encoder(tf.constant(TEXTS)).numpy()
    source = tf.saved_model.load(export_saved_model(tiny_encoder, tmp_path / "exported"))
    tf.saved_model.save(_CallOnly(source), str(tmp_path / "nosig"), signatures={})
    assert not tf.saved_model.load(str(tmp_path / "nosig")).signatures
    model = load_model(str(tmp_path / "nosig"))
    np.testing.assert_allclose(model(tf.constant(TEXTS)).numpy(), expected, atol=1e-6)
    assert len(model.trainable_weights) == len(tiny_encoder.trainable_weights)


def _two_input_saved_model(path, first, second):
    """A SavedModel of two string inputs (as the article's siamese model) whose children are
    ``first`` and ``second``."""

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="input_1"),
                                  tf.TensorSpec([None], tf.string, name="input_2")])
    def similarity(input_1, input_2):
        return {"similarity": tf.reduce_sum(first(input_1) * second(input_2), axis=1)}

    module = tf.Module()
    module.first, module.second = first, second
    module.optimizer_slot = tf.Variable(tf.zeros([3]))  # a variable the encoder does not use
    tf.saved_model.save(module, str(path), signatures={"serving_default": similarity})
    return str(path)


def test_the_shared_encoder_of_a_siamese_saved_model_is_the_model(tiny_encoder, sp_model_path,
                                                                   tmp_path):
    """A tf_keras save of the article's siamese model: its one layer that takes strings (the
    shared hub.KerasLayer) is the encoder; two such layers are refused, naming both."""
    from tests.conftest import make_tiny_encoder

    source = tf.saved_model.load(export_saved_model(tiny_encoder, tmp_path / "exported"))
    siamese = _two_input_saved_model(tmp_path / "siamese", source, source)
    model = load_model(siamese)
    np.testing.assert_allclose(model(tf.constant(TEXTS)).numpy(),
                               tiny_encoder(tf.constant(TEXTS)).numpy(), atol=1e-6)
    assert len(model.trainable_weights) == len(tiny_encoder.trainable_weights)
    # exported (and a run's saved_model/) with the encoder's variables only
    again = export_saved_model(model, tmp_path / "again")
    assert (len(tf.train.list_variables(f"{again}/variables/variables"))
            == len(tf.train.list_variables(f"{tmp_path / 'exported'}/variables/variables")))
    np.testing.assert_allclose(load_model(again)(tf.constant(TEXTS)).numpy(),
                               tiny_encoder(tf.constant(TEXTS)).numpy(), atol=1e-6)
    other = tf.saved_model.load(export_saved_model(make_tiny_encoder(sp_model_path, seed=5),
                                                   tmp_path / "other"))
    two = _two_input_saved_model(tmp_path / "two", source, other)
    with pytest.raises(BadInputError) as error:
        load_model(two)
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith(f"SavedModel {two} has no signature or __call__ ")
    assert "(signatures: serving_default(input_1, input_2))" in message
    assert "Its layers first, second each take strings: save the encoder alone" in message


def test_a_run_tuned_from_a_saved_model_reloads_whatever_its_endpoint(tiny_encoder, tmp_path):
    """The run's model.keras names the run's own saved_model/, whose signature is
    serving_default, not the endpoint of the SavedModel it was tuned from ("embed" here, "serve"
    for a Keras export): the run failed to load."""
    from domain_tune.export import save_model_dir

    source = tf.saved_model.load(export_saved_model(tiny_encoder, tmp_path / "exported"))

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    def embed(text):
        return {"embedding": source(text)}

    module = tf.Module()
    module.source = source
    tf.saved_model.save(module, str(tmp_path / "embed"), signatures={"embed": embed})
    model = load_model(str(tmp_path / "embed"))
    (tmp_path / "run").mkdir()
    save_model_dir(model, str(tmp_path / "run"))
    reloaded = load_model(str(tmp_path / "run"))
    np.testing.assert_allclose(reloaded(tf.constant(TEXTS)).numpy(),
                               tiny_encoder(tf.constant(TEXTS)).numpy(), atol=1e-6)


def test_keras_export_of_the_encoder_needs_no_input_signature(sp_model_path, tmp_path):
    """``model.export(DIR)`` of an encoder straight from its constructor (as
    ``load_model("use-m3")`` returns it): Keras refused it as "not yet been built", and could
    not infer a string input."""
    from tests.conftest import make_tiny_encoder

    encoder = make_tiny_encoder(sp_model_path, seed=2)
    assert encoder.built and encoder.tokenizer.built  # summary() shows no "unbuilt" layer
    encoder.export(str(tmp_path / "exported"), verbose=False)
    expected = encoder(tf.constant(TEXTS)).numpy()
    reloaded = tf.saved_model.load(str(tmp_path / "exported"))
    np.testing.assert_allclose(reloaded.serve(tf.constant(TEXTS)).numpy(), expected, atol=1e-6)
    model = load_model(str(tmp_path / "exported"))
    np.testing.assert_allclose(model(tf.constant(TEXTS)).numpy(), expected, atol=1e-6)


def test_tf_hub_handles_local_cache_and_file_urls(tiny_encoder, tmp_path, monkeypatch):
    """A URL found in ``$TFHUB_CACHE_DIR`` loads offline; ``file://DIR`` is DIR; a handle that is
    not a URL (TF Hub resolves only URLs) says so instead of blaming the network."""
    import hashlib

    url = "https://tfhub.dev/google/universal-sentence-encoder-multilingual/3"
    cache = tmp_path / "hub"
    cache.mkdir()
    monkeypatch.setenv("TFHUB_CACHE_DIR", str(cache))
    exported = export_saved_model(tiny_encoder, cache / hashlib.sha1(url.encode()).hexdigest())
    expected = tiny_encoder(tf.constant(TEXTS)).numpy()
    for spec in (url, f"file://{exported}"):
        np.testing.assert_allclose(load_model(spec)(tf.constant(TEXTS)).numpy(), expected,
                                   atol=1e-6)
    with pytest.raises(BadInputError, match="^unknown model 'google/universal-sentence-encoder-"
                                            "multilingual/3': no such directory, and a TF Hub "
                                            "model is named by its URL \\(https://tfhub.dev/"):
        load_model("google/universal-sentence-encoder-multilingual/3")


def test_a_saved_model_with_a_string_signature_is_loaded_once(tiny_encoder, tmp_path, monkeypatch):
    path = export_saved_model(tiny_encoder, tmp_path / "exported")
    real_load, loads = tf.saved_model.load, []

    def counting_load(*args, **kwargs):
        loads.append(args[0] if args else kwargs.get("export_dir"))
        return real_load(*args, **kwargs)

    monkeypatch.setattr(tf.saved_model, "load", counting_load)
    model = load_model(str(path))
    assert len(loads) == 1  # the SavedModel layer's own load; the signature came from the proto
    np.testing.assert_allclose(model(tf.constant(TEXTS)).numpy(),
                               tiny_encoder(tf.constant(TEXTS)).numpy(), atol=1e-6)
    (tmp_path / "corrupt").mkdir()
    (tmp_path / "corrupt" / "saved_model.pb").write_bytes(b"not a protocol buffer")
    with pytest.raises(BadInputError, match="cannot load SavedModel"):
        load_model(str(tmp_path / "corrupt"))


# Logical devices must be set before TensorFlow starts its runtime: a process of its own.
_PRESET_UNDER_MIRRORED = """
from domain_tune._env import import_tensorflow
import_tensorflow()
import numpy as np
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from domain_tune.models import weights
from domain_tune.models.loading import from_preset
with tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]).scope():
    model = from_preset("use-m3")
table = model.backbone.token_embedding.embeddings
assert type(table.value).__name__ == "MirroredVariable", type(table.value)
arrays, _ = weights.reference_arrays()
want = arrays["token_embedding/embeddings"]
for replica in table.value.values:
    np.testing.assert_array_equal(replica.numpy(), want)
print("ok")
"""


def test_the_preset_loads_its_table_under_a_mirrored_strategy():
    """The preset's table is its variable's initial value, also for mirrored variables
    (``train --distribute mirrored`` loads the model in the strategy's scope)."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", _PRESET_UNDER_MIRRORED], capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stderr[-3000:]
