"""SavedModel export: reloadable by TF Hub and plain TensorFlow, without domain_tune."""

import json
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from domain_tune.errors import BadInputError
from domain_tune.export import export_saved_model
from domain_tune.models.loading import load_model

TEXTS = ["data scientist", "infermiere", "Datenanalyst", ""]

CLIENT = r"""
import json, sys
import numpy as np
import tensorflow as tf
import tensorflow_text  # registers the SentencePiece ops
import tensorflow_hub as hub
assert not any(m.startswith("domain_tune") for m in sys.modules)
texts = tf.constant(json.loads(sys.argv[2]))
module = hub.load(sys.argv[1])
hub_out = module(texts).numpy()
# called by keyword too, with the argument name of the TF Hub modules
assert np.array_equal(module(inputs=texts).numpy(), hub_out)
sig = tf.saved_model.load(sys.argv[1]).signatures["serving_default"]
sig_out = sig(inputs=texts)["outputs"].numpy()
print(json.dumps({"hub": hub_out.tolist(), "signature": sig_out.tolist()}))
"""


def _reload_in_clean_process(path):
    out = subprocess.run(
        [sys.executable, "-c", CLIENT, str(path), json.dumps(TEXTS)],
        capture_output=True, text=True, check=True, env={"TF_CPP_MIN_LOG_LEVEL": "3", "PATH": ""},
    )
    data = json.loads(out.stdout.strip().splitlines()[-1])
    return np.array(data["hub"]), np.array(data["signature"])


def test_tiny_export_round_trip(tiny_encoder, tmp_path):
    expected = tiny_encoder(tf.constant(TEXTS)).numpy()
    path = export_saved_model(tiny_encoder, tmp_path / "sm")
    hub_out, sig_out = _reload_in_clean_process(path)
    np.testing.assert_allclose(hub_out, expected, atol=1e-6)
    np.testing.assert_allclose(sig_out, expected, atol=1e-6)
    # and domain-tune reads it back as --model, with trainable variables
    reloaded = load_model(str(path))
    np.testing.assert_allclose(reloaded(tf.constant(TEXTS)).numpy(), expected, atol=1e-6)
    assert len(reloaded.trainable_weights) == len(tiny_encoder.trainable_weights)


def test_export_refuses_existing(tiny_encoder, tmp_path):
    with pytest.raises(BadInputError, match="already exists"):
        export_saved_model(tiny_encoder, tmp_path)


@pytest.mark.real
def test_real_export_round_trip(use_m3, tmp_path):
    expected = use_m3(tf.constant(TEXTS)).numpy()
    hub_out, sig_out = _reload_in_clean_process(export_saved_model(use_m3, tmp_path / "sm"))
    np.testing.assert_allclose(hub_out, expected, atol=1e-5)
    np.testing.assert_allclose(sig_out, expected, atol=1e-5)


KERAS_LAYER_CLIENT = r"""
import sys
import numpy as np
import tensorflow as tf
import tensorflow_hub as hub
import tensorflow_text  # noqa: F401
import tf_keras
assert not any(m.startswith("domain_tune") for m in sys.modules)
layer = hub.KerasLayer(sys.argv[1], input_shape=[], dtype=tf.string, trainable=True)
a = tf_keras.layers.Input(shape=[], dtype=tf.string)
b = tf_keras.layers.Input(shape=[], dtype=tf.string)
cos = tf_keras.layers.Dot(axes=1, normalize=True)([layer(a), layer(b)])
model = tf_keras.Model([a, b], cos)
model.compile(tf_keras.optimizers.Adam(1e-3), "mse")
x1, x2 = np.array(["data scientist", "nurse"]), np.array(["data analyst", "chef"])
before = [w.numpy().copy() for w in layer.trainable_weights]
model.fit([x1, x2], np.array([0.9, 0.1]), epochs=1, verbose=0)
changed = sum(not np.array_equal(w0, w.numpy()) for w0, w in zip(before, layer.trainable_weights))
print(len(layer.trainable_weights), changed)
"""


def test_export_fine_tunes_as_hub_keras_layer(tiny_encoder, tmp_path):
    """The article's way: hub.KerasLayer(..., trainable=True) inside a tf.keras model."""
    path = export_saved_model(tiny_encoder, tmp_path / "sm")
    out = subprocess.run([sys.executable, "-c", KERAS_LAYER_CLIENT, str(path)],
                         capture_output=True, text=True, env={"TF_CPP_MIN_LOG_LEVEL": "3", "PATH": ""})
    assert out.returncode == 0, out.stderr[-3000:]
    n_weights, changed = map(int, out.stdout.split()[-2:])
    assert n_weights == len(tiny_encoder.trainable_weights)
    assert changed == n_weights


def test_export_serves_the_models_own_inference_function(tiny_encoder, tmp_path):
    from domain_tune.embedding import encode, inference_fn

    expected = encode(tiny_encoder, TEXTS)
    fn = inference_fn(tiny_encoder)
    assert fn.experimental_get_tracing_count() == 1
    path = export_saved_model(tiny_encoder, tmp_path / "sm")
    # the SavedModel's __call__ and signature call this function's concrete function:
    # saving does not trace it again (in TensorFlow's save context, or in a signature's graph)
    assert fn.experimental_get_tracing_count() == 1
    export_saved_model(tiny_encoder, tmp_path / "again")
    assert fn.experimental_get_tracing_count() == 1
    hub_out, _ = _reload_in_clean_process(path)
    np.testing.assert_allclose(hub_out, expected, atol=1e-6)


def test_plain_saved_model_save_of_the_encoder_serves_strings(tiny_encoder, tmp_path):
    # tf.saved_model.save(model) without signatures uses the model's default signature
    expected = tiny_encoder(tf.constant(TEXTS)).numpy()
    tf.saved_model.save(tiny_encoder, str(tmp_path / "plain"))
    loaded = tf.saved_model.load(str(tmp_path / "plain"))
    served = loaded.signatures["serving_default"](inputs=tf.constant(TEXTS))
    np.testing.assert_allclose(next(iter(served.values())).numpy(), expected, atol=1e-6)


def test_export_of_a_saved_model_writes_each_weight_once(tiny_encoder, tmp_path):
    """Re-exporting a SavedModel (or a run tuned from one) kept Keras' mirror of every restored
    variable beside it: twice the weights on disk (the USE-m3 export: 269 MB -> 529 MB)."""
    source = export_saved_model(tiny_encoder, tmp_path / "source")
    expected = tiny_encoder(tf.constant(TEXTS)).numpy()
    again = export_saved_model(load_model(str(source)), tmp_path / "again")
    names = [n for n, _ in tf.train.list_variables(f"{again}/variables/variables")]
    assert len(names) == len(tf.train.list_variables(f"{source}/variables/variables"))
    hub_out, sig_out = _reload_in_clean_process(again)
    np.testing.assert_allclose(hub_out, expected, atol=1e-6)
    np.testing.assert_allclose(sig_out, expected, atol=1e-6)
    out = subprocess.run([sys.executable, "-c", KERAS_LAYER_CLIENT, str(again)],
                         capture_output=True, text=True, env={"TF_CPP_MIN_LOG_LEVEL": "3", "PATH": ""})
    assert out.returncode == 0, out.stderr[-3000:]
    n_weights, changed = map(int, out.stdout.split()[-2:])
    assert n_weights == changed == len(tiny_encoder.trainable_weights)


def test_keras_save_writes_the_weights_in_place_and_matches_keras_own(tiny_encoder, tmp_path):
    """The weights file is the archive's first entry, its bytes where HDF5 wrote them (after
    a local header in the HDF5 user block); the archive holds what ``model.save`` writes."""
    import zipfile

    import h5py
    import keras

    from domain_tune.export import save_keras
    from domain_tune.keras_archive import USER_BLOCK

    path = tmp_path / "ours" / "model.keras"
    path.parent.mkdir()
    save_keras(tiny_encoder, path)
    assert [p.name for p in path.parent.iterdir()] == ["model.keras"]
    tiny_encoder.save(tmp_path / "keras.keras")
    with zipfile.ZipFile(path) as ours, zipfile.ZipFile(tmp_path / "keras.keras") as theirs:
        assert ours.testzip() is None
        assert sorted(ours.namelist()) == sorted(theirs.namelist())  # (Keras' order varies)
        assert ours.read("config.json") == theirs.read("config.json")
        for name in ours.namelist():
            if name.startswith("assets/"):
                assert ours.read(name) == theirs.read(name)
        entry = ours.getinfo("model.weights.h5")
        assert entry.header_offset == 0 and entry.compress_type == zipfile.ZIP_STORED
        with open(path, "rb") as f:
            assert f.read(4) == b"PK\x03\x04"
            f.seek(USER_BLOCK)
            assert f.read(8) == b"\x89HDF\r\n\x1a\n"
        (tmp_path / "a.h5").write_bytes(ours.read("model.weights.h5"))
        (tmp_path / "b.h5").write_bytes(theirs.read("model.weights.h5"))
    with h5py.File(tmp_path / "a.h5") as a, h5py.File(tmp_path / "b.h5") as b:
        datasets = []
        b.visititems(lambda name, obj: datasets.append(name) if isinstance(obj, h5py.Dataset)
                     else None)
        assert datasets
        for name in datasets:
            np.testing.assert_array_equal(a[name][()], b[name][()])
    reloaded = keras.saving.load_model(path, compile=False)
    np.testing.assert_allclose(reloaded(tf.constant(TEXTS)).numpy(),
                               tiny_encoder(tf.constant(TEXTS)).numpy(), atol=1e-6)


def test_keras_save_pads_a_zip64_header_too():
    """A weights file past zipfile's 2 GiB limit gets a ZIP64 local header, which still fits
    the user block."""
    import zipfile

    from domain_tune.keras_archive import USER_BLOCK, _local_header

    entry = zipfile.ZipInfo("model.weights.h5", (2026, 1, 1, 0, 0, 0))
    entry.file_size = entry.compress_size = 5 * 2**30
    entry.CRC = 0
    header = _local_header(entry, USER_BLOCK)
    assert len(header) == USER_BLOCK and entry.extra == b""
    assert header[:4] == b"PK\x03\x04" and b"model.weights.h5" in header


def test_export_saves_no_unused_default_signatures(tiny_encoder, tmp_path):
    """TensorFlow traces ``_default_save_signature`` of every object it saves; the export's
    root serves the encoder itself, so its Keras models' own signatures (the backbone's padded
    pass) are neither traced nor saved, and they are back afterwards."""
    from tensorflow.python.saved_model import loader_impl

    path = export_saved_model(tiny_encoder, tmp_path / "sm")
    functions = loader_impl.parse_saved_model(str(path)).meta_graphs[0].graph_def.library.function
    names = [f.signature.name for f in functions]
    assert sum(n.startswith("__inference_serving_default") for n in names) == 1, names
    assert tiny_encoder.backbone._default_save_signature is not None
    assert tiny_encoder._default_save_signature is not None


def test_save_model_dir_writes_both_formats_at_once(tiny_encoder, tmp_path, monkeypatch):
    """The .keras file (on a worker thread) and the SavedModel are written together; both load
    and embed as the model does; an error of either is raised, the export's first."""
    import threading
    import zipfile

    from domain_tune import load_model
    from domain_tune.embedding import encode
    from domain_tune.export import save_model_dir

    export = sys.modules[save_model_dir.__module__]
    threads = {}
    for name in ("write_keras_archive", "export_saved_model"):
        def spy(*args, _real=getattr(export, name), _name=name):
            threads[_name] = threading.current_thread().name
            return _real(*args)
        monkeypatch.setattr(export, name, spy)
    (tmp_path / "run").mkdir()
    save_model_dir(tiny_encoder, str(tmp_path / "run"))
    assert threads["export_saved_model"] == threading.main_thread().name
    assert threads["write_keras_archive"].startswith("save-keras")
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["model.keras", "saved_model"]
    assert zipfile.ZipFile(tmp_path / "run" / "model.keras").testzip() is None
    texts = ["nurse", "data scientist", ""]
    want = encode(tiny_encoder, texts)
    for path in ("model.keras", "saved_model"):
        np.testing.assert_allclose(encode(load_model(str(tmp_path / "run" / path)), texts), want,
                                   atol=1e-6)

    def fails(what):
        def raise_(*args):
            raise OSError(f"{what} failed")
        return raise_

    monkeypatch.setattr(export, "write_keras_archive", fails("keras"))
    (tmp_path / "a").mkdir()
    with pytest.raises(OSError, match="keras failed"):
        save_model_dir(tiny_encoder, str(tmp_path / "a"))
    monkeypatch.setattr(export, "export_saved_model", fails("export"))
    (tmp_path / "b").mkdir()
    with pytest.raises(OSError, match="export failed"):
        save_model_dir(tiny_encoder, str(tmp_path / "b"))
