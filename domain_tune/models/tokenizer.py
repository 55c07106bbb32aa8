"""In-graph SentencePiece tokenizer for the encoder.

Strings go in, a padded batch of piece ids and a padding mask come out, all
inside the TensorFlow graph (``tensorflow_text.SentencepieceTokenizer``), so a
saved model takes raw strings just like the TF Hub module does.

The model proto travels with the layer: as an asset file in ``.keras``
archives (``save_assets``/``load_assets``) and as the tokenizer's own
trackable resource in SavedModels.
"""

import os

import keras
import tensorflow as tf
import tensorflow_text as tf_text

from domain_tune.errors import BadInputError

UNK_ID = 0
BOS_ID = 1
EOS_ID = 2
PROTO_ASSET = "sp.model"


def read_proto(proto):
    """Bytes of a SentencePiece model given bytes or a file path."""
    if isinstance(proto, (bytes, bytearray)):
        return bytes(proto)
    path = os.fspath(proto)
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise BadInputError(f"cannot read SentencePiece model {path}: {e.strerror}") from e


@keras.saving.register_keras_serializable(package="domain_tune")
class SentencePieceTokenizer(keras.layers.Layer):
    """Tokenize a batch of strings into padded piece ids.

    Matches the reference tokenization of USE-multilingual: a ``<s>`` id
    before and a ``</s>`` id after the pieces, and an ``<unk>`` piece for text
    that normalises to nothing (so an empty string still has one token).

    Args:
        proto: the SentencePiece model, as bytes or a path. May be omitted
            when the layer is being restored from a ``.keras`` archive, which
            supplies it through ``load_assets``.
        max_length: optional cap on tokens per text (``<s>`` and ``</s>``
            included); ``None`` keeps every piece, as the reference does.

    Call returns ``{"token_ids": int32 (batch, length), "padding_mask": bool
    (batch, length)}``; ``length`` is the longest text of this batch, never a
    global maximum.
    """

    def __init__(self, proto=None, max_length=None, **kwargs):
        kwargs.setdefault("trainable", False)
        super().__init__(**kwargs)
        self.max_length = max_length
        self._proto = None
        self._sp = None
        if proto is not None:
            self.set_proto(proto)

    def set_proto(self, proto):
        self._proto = read_proto(proto)
        try:
            self._sp = tf_text.SentencepieceTokenizer(model=self._proto, out_type=tf.int32)
            self._vocabulary_size = int(self._sp.vocab_size())
        except (tf.errors.InvalidArgumentError, tf.errors.InternalError) as e:
            raise BadInputError("not a valid SentencePiece model") from e

    @property
    def proto(self):
        return self._proto

    @property
    def vocabulary_size(self):
        self._check_ready()
        return self._vocabulary_size

    def _check_ready(self):
        if self._sp is None:
            raise ValueError(
                "SentencePieceTokenizer has no model proto; pass `proto=`. Its config does not "
                "hold the proto (a .keras file stores it as an asset), so a copy made from the "
                "config alone (from_config, keras.models.clone_model) needs "
                "`copy.set_proto(original.proto)`, or load the model with "
                "keras.saving.load_model / domain_tune.load_model instead.")

    def id_to_piece(self, ids):
        self._check_ready()
        return [p.decode("utf-8") for p in self._sp.id_to_string(tf.constant(ids, tf.int32)).numpy()]

    def tokenize(self, texts):
        """Piece ids as a Python list of lists (with ``<s>``/``</s>``)."""
        out = self(tf.constant(list(texts), tf.string))
        ids, mask = out["token_ids"].numpy(), out["padding_mask"].numpy()
        return [row[m].tolist() for row, m in zip(ids, mask)]

    def call(self, texts):
        self._check_ready()
        texts = tf.convert_to_tensor(texts, tf.string)
        if texts.shape.rank == 2:  # (batch, 1), as Keras likes to feed it
            texts = tf.squeeze(texts, axis=1)
        pieces = self._sp.tokenize(texts)  # ragged (batch, None)
        lengths = tf.cast(pieces.row_lengths(), tf.int32)
        width = tf.maximum(tf.reduce_max(tf.concat([lengths, [0]], 0)), 1)
        body = pieces.to_tensor(default_value=0, shape=tf.stack([tf.size(lengths), width]))
        # Text that normalises to nothing becomes one <unk> piece (reference behaviour).
        empty = tf.equal(lengths, 0)
        lengths = tf.maximum(lengths, 1)
        batch = tf.size(lengths)
        ids = tf.concat(
            [tf.fill([batch, 1], BOS_ID), body, tf.zeros([batch, 1], tf.int32)], axis=1
        )
        cols = tf.expand_dims(tf.range(width + 2), 0)
        ids = tf.where(tf.expand_dims(empty, 1) & tf.equal(cols, 1), UNK_ID, ids)
        ids = tf.where(tf.equal(cols, tf.expand_dims(lengths + 1, 1)), EOS_ID, ids)
        total = lengths + 2
        if self.max_length is not None:
            total = tf.minimum(total, self.max_length)
            ids = ids[:, : self.max_length]
            cols = cols[:, : self.max_length]
        mask = cols < tf.expand_dims(total, 1)
        ids = tf.where(mask, ids, 0)
        return {"token_ids": ids, "padding_mask": mask}

    def compute_output_spec(self, texts):
        shape = tuple(texts.shape[:1]) + (None,)
        return {
            "token_ids": keras.KerasTensor(shape, dtype="int32"),
            "padding_mask": keras.KerasTensor(shape, dtype="bool"),
        }

    def save_assets(self, dir_path):
        with open(os.path.join(dir_path, PROTO_ASSET), "wb") as f:
            f.write(self._proto)

    def load_assets(self, dir_path):
        self.set_proto(os.path.join(dir_path, PROTO_ASSET))

    def get_config(self):
        config = super().get_config()
        config.update({"max_length": self.max_length})
        return config
