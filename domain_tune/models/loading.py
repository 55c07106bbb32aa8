"""Resolve ``--model``: a preset, a run directory, a SavedModel, a TF Hub handle.

Every branch returns a Keras model that maps a ``(batch,)`` string tensor to
``(batch, dim)`` float32 embeddings, trainable where the source allows it.
"""

import contextlib
import contextvars
import os
import re
import zipfile

import keras
import tensorflow as tf

from domain_tune.errors import BadInputError
from domain_tune.models import semi_frozen  # noqa: F401  (registers SemiFrozenEmbedding)
from domain_tune.models import weights as weights_lib
from domain_tune.models import layers as dt_layers
from domain_tune.models.presets import PRESETS
from domain_tune.models.sentence_encoder import SentenceEncoder
from domain_tune.models.tokenizer import SentencePieceTokenizer
from domain_tune.models.use_m3 import UniversalSentenceEncoderBackbone

KERAS_FILE = "model.keras"
# the folder of the .keras file being loaded: a SavedModelEncoder in it finds its SavedModel there
_KERAS_FOLDER = contextvars.ContextVar("domain_tune_keras_folder", default=None)
_HANDLE = re.compile(r"^(https?://|gs://|[\w.-]+/[\w.-]+/[\w.-]+(/\d+)?$)")


def from_preset(name="use-m3", max_length=None, embedding=None):
    """The preset's architecture with its real weights, ready to train."""
    if name not in PRESETS:
        raise BadInputError(f"unknown preset {name!r}; known: {', '.join(sorted(PRESETS))}")
    res = weights_lib.resources_dir()
    # the tokenizer first: a prefetch of the weights (see reference_arrays) finishes meanwhile
    tokenizer = SentencePieceTokenizer(os.path.join(res, "sp.model"), max_length=max_length)
    arrays, epsilon = weights_lib.reference_arrays(os.path.join(res, "weights.npz"))
    config = dict(PRESETS[name]["config"], layer_norm_epsilon=epsilon)
    table = contextlib.nullcontext()
    if embedding is None:
        # The real table is the variable's initial value (dt_layers.initial_table); the
        # config says zeros, what a copy built from it holds until weights are loaded.
        embedding = keras.layers.serialize(dt_layers.Embedding(
            config["vocabulary_size"], config["embedding_dim"], embeddings_initializer="zeros",
            name="token_embedding",
        ))
        table = dt_layers.initial_table(weights_lib.pretrained_table(arrays))
    with table:
        backbone = UniversalSentenceEncoderBackbone(**config, embedding=embedding,
                                                    name="backbone")
    weights_lib.assign_reference_weights(backbone, arrays)
    return SentenceEncoder(tokenizer, backbone, name=name.replace("-", "_"))


@keras.saving.register_keras_serializable(package="domain_tune")
class SavedModelEncoder(keras.layers.Layer):
    """A SavedModel that maps strings to embeddings, as a Keras 3 layer.

    Uses :class:`keras.layers.TFSMLayer`, which tracks the SavedModel's
    variables (so they can be fine-tuned).  ``endpoint`` is the callable to
    use; dictionary outputs are reduced to their single (or ``outputs``) entry.
    """

    def __init__(self, path, endpoint="serving_default", relative_path=None, **kwargs):
        super().__init__(**kwargs)
        self.saved_model_path = _locate_saved_model(path, relative_path)
        self.relative_path = relative_path
        if relative_path is not None and self.saved_model_path != os.path.abspath(path):
            # the run directory's own SavedModel, which domain-tune wrote: its signature is
            # serving_default, whatever the endpoint of the SavedModel the run was tuned from
            endpoint = "serving_default"
        self.endpoint = endpoint
        self.inner = keras.layers.TFSMLayer(self.saved_model_path, call_endpoint=endpoint,
                                            trainable=self.trainable)

    def call(self, texts, training=False):
        texts = tf.convert_to_tensor(texts, tf.string)
        if texts.shape.rank == 2:
            texts = tf.squeeze(texts, 1)
        out = self.inner(texts)
        if isinstance(out, dict):
            out = out["outputs"] if "outputs" in out else next(iter(out.values()))
        return tf.cast(out, tf.float32)

    def get_config(self):
        config = super().get_config()
        config.update({"path": self.saved_model_path, "endpoint": self.endpoint,
                       "relative_path": self.relative_path})
        return config


def _locate_saved_model(path, relative_path=None):
    """The SavedModel a :class:`SavedModelEncoder` wraps, as an absolute path.

    A model saved in a run directory names the run's own ``saved_model/``
    (``relative_path``, from the ``.keras`` file's folder), so that the run
    loads wherever it is moved and whether or not the SavedModel it was tuned
    from still exists; ``path`` (where the SavedModel was first loaded from)
    is the fallback.
    """
    folder = _KERAS_FOLDER.get()
    if relative_path is not None and folder is not None:
        candidate = os.path.join(folder, relative_path)
        if os.path.isdir(candidate):
            return candidate
    if not os.path.isdir(path) and relative_path is not None:
        raise BadInputError(
            f"the model wraps the SavedModel {relative_path}/ beside its .keras file, which is "
            f"missing (nor is {path} there)"
        )
    return os.path.abspath(path)


@contextlib.contextmanager
def saved_models_beside(model, relative_path):
    """While saving ``model`` as a ``.keras`` file, its SavedModel layers name ``relative_path``
    (from the file's folder) as their SavedModel: a run directory's ``saved_model/``."""
    layers = [layer for layer in model._flatten_layers() if isinstance(layer, SavedModelEncoder)]
    before = [layer.relative_path for layer in layers]
    for layer in layers:
        layer.relative_path = relative_path
    try:
        yield
    finally:
        for layer, value in zip(layers, before):
            layer.relative_path = value


def _takes_one_string_batch(fn):
    """Whether the restored function ``fn`` has a trace that takes one ``(batch,)`` string tensor
    (further arguments, such as ``training``, being Python values with defaults)."""
    for concrete in getattr(fn, "concrete_functions", ()):
        args, kwargs = concrete.structured_input_signature
        specs = [a for a in tf.nest.flatten((args, kwargs)) if isinstance(a, tf.TensorSpec)]
        if (len(specs) == 1 and specs[0].dtype == tf.string and specs[0].shape.rank == 1
                and args and isinstance(args[0], tf.TensorSpec)):
            return True
    return False


def _string_endpoint(loaded, path):
    """Name of a callable of ``loaded`` that takes one string batch: a signature (TF Hub's and
    Keras' exports have one), else the object's ``__call__`` (a TF2 reusable SavedModel without
    signatures, as ``hub.KerasLayer`` calls it)."""
    signatures = getattr(loaded, "signatures", {})
    for name, fn in signatures.items():
        args = fn.structured_input_signature[1]
        if len(args) == 1 and next(iter(args.values())).dtype == tf.string:
            return name
    if _takes_one_string_batch(getattr(loaded, "__call__", None)):
        return "__call__"
    layers = _string_layers(loaded)
    if len(layers) == 1:  # e.g. the shared encoder of a tf_keras siamese model
        return layers[0]
    found = "; ".join(f"{name}({', '.join(sorted(fn.structured_input_signature[1]))})"
                      for name, fn in signatures.items()) or "none"
    hint = ""
    if layers:
        hint = (f" Its layers {', '.join(layers)} each take strings: save the encoder alone "
                "(tf.keras.Model(text, encoder_layer(text)).save(DIR)) and pass that")
    raise BadInputError(f"SavedModel {path} has no signature or __call__ that maps one batch of "
                        f"strings to embeddings (signatures: {found}).{hint}")


def _string_layers(loaded):
    """Names of the distinct children of ``loaded`` (the layers of a tf_keras SavedModel) whose
    ``__call__`` takes one string batch."""
    found = {}
    for name, child in sorted(vars(loaded).items()):
        if not name.startswith("_") and _takes_one_string_batch(getattr(child, "__call__", None)):
            found.setdefault(id(child), name)
    return list(found.values())


def _declared_string_signature(path):
    """The name of a signature of the SavedModel at ``path`` that takes one string tensor, read
    from ``saved_model.pb`` alone (no variables loaded; ``serving_default`` first), or None."""
    from tensorflow.python.saved_model import loader_impl

    try:
        signatures = loader_impl.parse_saved_model(path).meta_graphs[0].signature_def
    except Exception:  # unreadable: the full load below says why
        return None
    for name in sorted(signatures, key=lambda n: (n != "serving_default", n)):
        inputs = list(signatures[name].inputs.values())
        if len(inputs) == 1 and inputs[0].dtype == tf.string.as_datatype_enum:
            return name
    return None


def from_saved_model(path):
    # The SavedModel layer loads the model itself; a signature found in the proto saves
    # loading it a second time (2-3 s for USE-m3) just to find what to call.
    endpoint = _declared_string_signature(path)
    try:
        if endpoint is None:
            endpoint = _string_endpoint(tf.saved_model.load(path), path)
        encoder = SavedModelEncoder(path, endpoint=endpoint, name="saved_model")
    except BadInputError:
        raise
    except Exception as e:  # corrupt or foreign files
        raise BadInputError(f"cannot load SavedModel {path}: {str(e).splitlines()[0]}") from e
    inputs = keras.Input(shape=(), dtype="string", name="inputs")
    return keras.Model(inputs, encoder(inputs), name=_scope_name(path))


def _scope_name(path):
    """The folder name made a valid TensorFlow name scope (ASCII letters, digits, ``._-``)."""
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", os.path.basename(os.path.normpath(path)))
    return name if re.match(r"[A-Za-z0-9.]", name) else "saved_model" + name


def from_hub(handle):
    import tensorflow_hub as hub

    try:
        path = hub.resolve(handle)
    except Exception as e:
        if "://" not in handle:  # TF Hub resolves only URLs; anything else is a local path to it
            raise BadInputError(
                f"unknown model {handle!r}: no such directory, and a TF Hub model is named by its "
                f"URL (https://tfhub.dev/{handle} or its Kaggle Models URL)"
            ) from e
        raise BadInputError(
            f"cannot fetch TF Hub model {handle!r} ({type(e).__name__}); "
            "download it where you have network and pass its directory to --model"
        ) from e
    return from_saved_model(path)


def from_keras_file(path):
    if str(path).lower().endswith(".keras") and os.path.isfile(path) and not zipfile.is_zipfile(path):
        raise BadInputError(f"cannot load Keras model {path}: not a .keras file (those are zip "
                            "archives)")
    token = _KERAS_FOLDER.set(os.path.dirname(os.path.abspath(path)))
    try:
        return keras.saving.load_model(path, compile=False)
    except Exception as e:
        raise BadInputError(f"cannot load Keras model {path}: {str(e).splitlines()[0]}") from e
    finally:
        _KERAS_FOLDER.reset(token)


def load_model(spec="use-m3", option="--model"):
    """Resolve a ``--model`` value to a strings-to-embeddings Keras model; ``option`` names the
    option it came from in errors (``--base``, ``--compare``)."""
    spec = os.fspath(spec)
    if spec.startswith("file://"):  # a local TF Hub handle
        spec = spec[len("file://"):]
    if spec in PRESETS:
        return from_preset(spec)
    if os.path.isdir(spec):
        if os.path.isfile(os.path.join(spec, KERAS_FILE)):
            return from_keras_file(os.path.join(spec, KERAS_FILE))
        if os.path.isfile(os.path.join(spec, "saved_model.pb")):
            return from_saved_model(spec)
        raise BadInputError(
            f"{option} {spec}: directory holds neither {KERAS_FILE} nor saved_model.pb"
        )
    if not os.path.isfile(spec) and os.path.isfile(spec.rstrip("/" + os.sep)):
        spec = spec.rstrip("/" + os.sep)  # a file named with a trailing slash (shell completion)
    if os.path.isfile(spec):
        if spec.endswith(".keras"):
            return from_keras_file(spec)
        raise BadInputError(f"{option} {spec}: a file must be a .keras archive")
    if _HANDLE.match(spec):
        return from_hub(spec)
    where = "" if option == "--model" else f"{option}: "
    raise BadInputError(
        f"{where}unknown model {spec!r}: use a preset ({', '.join(sorted(PRESETS))}), "
        "a domain-tune run directory, a SavedModel directory or a TF Hub handle"
    )
