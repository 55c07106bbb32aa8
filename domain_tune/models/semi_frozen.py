"""A token embedding whose pretrained rows can stay frozen while domain rows train.

:class:`SemiFrozenEmbedding` holds the table in two weights:

* ``pretrained_embeddings`` (``pretrained_rows x dim``): the rows of the
  original vocabulary, ids ``0 .. pretrained_rows - 1``;
* ``new_embeddings`` (``new_rows x dim``): rows of pieces added for a domain
  (:mod:`domain_tune.models.vocabulary`), ids ``pretrained_rows ..``.

Its ``mode`` is one of the embedding strategies of training:

=============== ===================== ===============
mode            pretrained rows       new rows
=============== ===================== ===============
``semi-frozen`` frozen                trainable
``trainable``   trainable             trainable
``frozen``      frozen                frozen
=============== ===================== ===============

A frozen part is a non-trainable variable, so an optimizer never sees it and
its values stay bit-identical; a trainable part gets a sparse gradient
(``tf.IndexedSlices`` of the rows of the batch), as a ``keras.layers.Embedding``
does, and only those rows: neither table is read at the other's positions, so
a lazy optimizer that updates the rows of a sparse gradient touches nothing else.
The mode is fixed when the layer is made (it is part of the config);
:func:`with_strategy` gives a copy of an encoder with another mode.  Setting
``layer.trainable = False`` freezes both tables, and setting it back to
``True`` restores the mode (Keras toggles only the variables made trainable).

:func:`replace_embedding` and :func:`with_strategy` rebuild a
:class:`~domain_tune.models.sentence_encoder.SentenceEncoder` around this layer,
copying every other weight; :func:`domain_tune.models.vocabulary.extend_encoder`
uses them to add domain rows.
"""

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from domain_tune.errors import BadInputError
from domain_tune.models.layers import VariableArray, gather_rows
from domain_tune.models.sentence_encoder import SentenceEncoder
from domain_tune.models.tokenizer import SentencePieceTokenizer
from domain_tune.models.use_m3 import UniversalSentenceEncoderBackbone

STRATEGIES = ("semi-frozen", "trainable", "frozen")


@keras.saving.register_keras_serializable(package="domain_tune")
class SemiFrozenEmbedding(keras.layers.Layer):
    """Look up ids in a pretrained table followed by a table of new rows.

    Args:
        pretrained_rows: rows of the pretrained vocabulary.
        new_rows: rows added after them (may be 0).
        output_dim: size of each row.
        mode: ``"semi-frozen"`` (default), ``"trainable"`` or ``"frozen"``;
            see the module docstring.
        embeddings_initializer: initializer of both tables before
            :meth:`set_pretrained` / :meth:`set_new_rows` assign them.

    Call maps int ids of any shape to ``ids.shape + (output_dim,)``; id ``i``
    reads ``pretrained_embeddings[i]`` when ``i < pretrained_rows`` and
    ``new_embeddings[i - pretrained_rows]`` otherwise, so the output equals a
    plain lookup in :meth:`full_table`.
    """

    def __init__(
        self,
        pretrained_rows,
        new_rows,
        output_dim,
        mode="semi-frozen",
        embeddings_initializer="uniform",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if mode not in STRATEGIES:
            raise ValueError(f"mode must be one of {', '.join(STRATEGIES)}; got {mode!r}")
        if int(pretrained_rows) < 1 or int(new_rows) < 0 or int(output_dim) < 1:
            raise ValueError(
                "need pretrained_rows >= 1, new_rows >= 0 and output_dim >= 1; got "
                f"{pretrained_rows}, {new_rows}, {output_dim}"
            )
        self.pretrained_rows = int(pretrained_rows)
        self.new_rows = int(new_rows)
        self.output_dim = int(output_dim)
        self.mode = mode
        self.embeddings_initializer = keras.initializers.get(embeddings_initializer)
        self.pretrained_embeddings = None
        self.new_embeddings = None
        self.sparse_reads = True  # run-time choice, not config: see layers.use_sparse_reads

    @property
    def input_dim(self):
        """Size of the whole vocabulary (pretrained plus new rows)."""
        return self.pretrained_rows + self.new_rows

    def build(self, input_shape=None):
        if self.built:
            return
        self.pretrained_embeddings = self.add_weight(
            name="pretrained_embeddings",
            shape=(self.pretrained_rows, self.output_dim),
            initializer=self.embeddings_initializer,
            trainable=self.mode == "trainable",
        )
        if self.new_rows:
            self.new_embeddings = self.add_weight(
                name="new_embeddings",
                shape=(self.new_rows, self.output_dim),
                # A fresh instance: an unseeded Keras initializer repeats its
                # values, which would make new rows copies of the first rows.
                initializer=keras.initializers.get(
                    keras.initializers.serialize(self.embeddings_initializer)
                ),
                trainable=self.mode != "frozen",
            )
        self.built = True

    def call(self, inputs):
        ids = inputs if "int" in str(inputs.dtype) else ops.cast(inputs, "int32")
        if self.new_rows:
            out = self._split_lookup(ids)
        else:
            out = gather_rows(self.pretrained_embeddings, ids, self._sparse(self.pretrained_embeddings))
        return ops.cast(out, self.compute_dtype)

    def _sparse(self, table):
        # a frozen table is never updated, so sparse reads cost nothing
        return self.sparse_reads or not table.trainable or not self.trainable

    def _split_lookup(self, ids):
        # Each table is read at the positions of its own ids only, so each
        # gradient holds exactly the rows of the batch: a lazy optimizer (one
        # that updates the rows of a sparse gradient only) touches no other row.
        flat = tf.reshape(ids, [-1])
        part = tf.cast(flat >= self.pretrained_rows, tf.int32)
        old_ids, new_ids = tf.dynamic_partition(flat, part, 2)
        old_pos, new_pos = tf.dynamic_partition(tf.range(tf.size(flat)), part, 2)
        rows = tf.dynamic_stitch(
            [old_pos, new_pos],
            [
                gather_rows(self.pretrained_embeddings, old_ids, self._sparse(self.pretrained_embeddings)),
                gather_rows(self.new_embeddings, new_ids - self.pretrained_rows,
                            self._sparse(self.new_embeddings)),
            ],
        )
        return tf.reshape(rows, tf.concat([tf.shape(ids), [self.output_dim]], axis=0))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape) + (self.output_dim,)

    # --- assigning and reading the tables ---

    def set_pretrained(self, table):
        """Assign the pretrained rows; the new rows are left as they are.

        ``table`` has ``pretrained_rows`` rows (the reference table of the
        original vocabulary).
        """
        self.build()
        table = np.asarray(table)
        expected = (self.pretrained_rows, self.output_dim)
        if table.shape != expected:
            raise ValueError(f"pretrained table must have shape {expected}; got {table.shape}")
        self.pretrained_embeddings.assign(table)

    def set_new_rows(self, array):
        """Assign the ``new_rows x output_dim`` domain rows."""
        self.build()
        array = np.asarray(array)
        expected = (self.new_rows, self.output_dim)
        if array.shape != expected:
            raise ValueError(f"new rows must have shape {expected}; got {array.shape}")
        if self.new_rows:
            self.new_embeddings.assign(array)

    def full_table(self):
        """The whole ``input_dim x output_dim`` table as one numpy array."""
        self.build()
        parts = [ops.convert_to_numpy(self.pretrained_embeddings)]
        if self.new_rows:
            parts.append(ops.convert_to_numpy(self.new_embeddings))
        return np.concatenate(parts, axis=0)

    # --- saving: the tables in a fixed order, whatever the mode ---

    def _tables(self):
        return [self.pretrained_embeddings] + ([self.new_embeddings] if self.new_rows else [])

    def save_own_variables(self, store):
        for i, v in enumerate(self._tables()):
            store[str(i)] = VariableArray(v)

    def load_own_variables(self, store):
        tables = self._tables()
        if len(store.keys()) != len(tables):
            raise ValueError(
                f"layer {self.name!r} expects {len(tables)} tables; "
                f"the file has {len(store.keys())}"
            )
        for i, v in enumerate(tables):
            v.assign(store[str(i)])

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "pretrained_rows": self.pretrained_rows,
                "new_rows": self.new_rows,
                "output_dim": self.output_dim,
                "mode": self.mode,
                "embeddings_initializer": keras.initializers.serialize(
                    self.embeddings_initializer
                ),
            }
        )
        return config


def check_encoder(encoder):
    """Raise :class:`BadInputError` unless ``encoder`` is a :class:`SentenceEncoder`."""
    if not isinstance(encoder, SentenceEncoder):
        raise BadInputError(
            "the embedding strategy and vocabulary extension need a domain-tune Keras encoder "
            "(a preset or a run's model.keras), not a SavedModel or TF Hub module"
        )


def replace_embedding(encoder, pretrained, new=None, strategy="semi-frozen", tokenizer=None):
    """A copy of ``encoder`` whose backbone embeds tokens with a :class:`SemiFrozenEmbedding`.

    Args:
        encoder: a :class:`~domain_tune.models.sentence_encoder.SentenceEncoder`.
        pretrained: ``(pretrained_rows, dim)`` array, the rows that ``"semi-frozen"``
            freezes.
        new: ``(new_rows, dim)`` array of the rows after them, or ``None``.
        strategy: the layer's mode, one of :data:`STRATEGIES`.
        tokenizer: the tokenizer of the copy; ``None`` gives a copy of
            ``encoder``'s.

    Every other backbone weight (and its layer's ``trainable`` flag) is copied;
    the backbone's ``vocabulary_size`` becomes ``pretrained_rows + new_rows``.
    """
    check_encoder(encoder)
    if strategy not in STRATEGIES:
        raise BadInputError(
            f"unknown embedding strategy {strategy!r}; known: {', '.join(STRATEGIES)}"
        )
    old = encoder.backbone
    pretrained = np.asarray(pretrained)
    new = np.zeros((0, pretrained.shape[1]), pretrained.dtype) if new is None else np.asarray(new)
    embedding = SemiFrozenEmbedding(
        pretrained.shape[0],
        new.shape[0],
        pretrained.shape[1],
        mode=strategy,
        name="token_embedding",
        dtype=old.token_embedding.dtype_policy,
    )
    config = dict(
        old.get_config(),
        vocabulary_size=embedding.input_dim,
        embedding=keras.layers.serialize(embedding),
    )
    backbone = UniversalSentenceEncoderBackbone.from_config(config)
    backbone.token_embedding.set_pretrained(pretrained)
    backbone.token_embedding.set_new_rows(new)
    for layer in old.layers:
        if layer is old.token_embedding or not layer.weights:
            continue
        target = backbone.get_layer(layer.name)
        target.set_weights(layer.get_weights())
        target.trainable = layer.trainable
    if tokenizer is None:
        old_tok = encoder.tokenizer
        tokenizer = SentencePieceTokenizer(
            old_tok.proto, max_length=old_tok.max_length, name=old_tok.name
        )
    return SentenceEncoder(tokenizer, backbone, name=encoder.name)


def split_table(layer):
    """``(pretrained, new)`` rows of a token embedding; ``new`` is ``None`` for a plain one."""
    if isinstance(layer, SemiFrozenEmbedding):
        table = layer.full_table()
        return table[: layer.pretrained_rows], table[layer.pretrained_rows :]
    return ops.convert_to_numpy(layer.embeddings), None


def with_strategy(encoder, strategy):
    """A copy of ``encoder`` whose token embedding follows ``strategy``.

    A plain embedding counts as all pretrained rows; a :class:`SemiFrozenEmbedding`
    keeps its split between pretrained and new rows.  (On a plain embedding,
    ``"semi-frozen"`` has no new rows to train and equals ``"frozen"``.)
    """
    check_encoder(encoder)
    pretrained, new = split_table(encoder.backbone.token_embedding)
    return replace_embedding(encoder, pretrained, new, strategy=strategy)
