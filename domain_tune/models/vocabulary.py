"""Domain vocabulary: whole-word pieces added to the SentencePiece model.

USE-multilingual splits domain words it rarely saw into several pieces
("kubernetes" -> ``▁kub er net es``).  :func:`add_pieces` adds such a term as
one piece of its own, :func:`mine_terms` finds candidates in training texts,
:func:`initial_rows` starts their embedding rows, and :func:`extend_encoder`
puts it together: a new encoder whose tokenizer knows the terms and whose
:class:`~domain_tune.models.semi_frozen.SemiFrozenEmbedding` has one new row
per term.

How a term becomes a piece
--------------------------
* **Normalisation.**  The term is normalised exactly as the model normalises
  text, by tokenizing it with the model itself and joining its pieces: NFKC
  (full-width letters become ASCII, ``ǅ`` becomes ``Dž``), runs of whitespace
  collapsed, leading and trailing whitespace dropped, and every space written
  as ``▁`` (U+2581) with one ``▁`` in front (the model's dummy prefix).  The
  model does **not** lowercase: ``Kubernetes`` and ``kubernetes`` are
  different terms (``mine_terms`` counts each casing on its own).
* **Word-initial.**  The piece keeps that leading ``▁``, so it matches only at
  the start of a word (after whitespace or at the start of the text):
  ``"(kubernetes)"`` and ``"prekubernetes"`` tokenize as before.  Text that
  merely starts with the term does use the new piece: ``"kubernetes-based"``
  becomes ``▁kubernetes - based``.
* **Multi-word terms** become a single piece with ``▁`` between the words
  (``"machine learning engineer"`` -> ``▁machine▁learning▁engineer``), so the
  phrase, wherever its words follow each other, is one token with one row.
  SentencePiece's encoder matches such pieces like any other.  A hyphenated
  term (``"sous-chef"``) is one word already: ``▁sous-chef``.
* **Ids.**  New pieces are appended after the existing ones, so every existing
  piece keeps its id, and the vocabulary grows by the number added.
* **Score.**  Every new piece gets the same score, half-way between the best
  score of the existing pieces (``▁``, -3.34 in USE-multilingual) and 0.  As
  scores are negative log-probabilities, any segmentation into two or more
  pieces then scores lower than one new piece, so a term alone always
  tokenizes to exactly its own id, even when one added term contains another
  ("kubernetes" and "kubernetes-based").  :func:`add_pieces` checks this with
  the in-graph tokenizer before returning.
* **Other text is untouched.**  A new piece can only appear in a text whose
  normalised form contains it (``▁kubernetes``); for every other text the
  Viterbi lattice is the same as before, so its ids are the same.
* **Skipped terms.**  A term that already is a single piece, or whose piece
  exists in the vocabulary (with a score too low to be chosen), is not added.

The model proto is edited with protobuf's own descriptor tools: a minimal
schema of the fields used here (pieces, and the model type and vocabulary size
of the trainer spec); protobuf keeps every other field as it was.
"""

import collections
import functools
import re
import unicodedata

import numpy as np
import tensorflow as tf
import tensorflow_text as tf_text
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from domain_tune.errors import BadInputError
from domain_tune.models.semi_frozen import (
    STRATEGIES,
    check_encoder,
    replace_embedding,
    split_table,
)
from domain_tune.models.tokenizer import UNK_ID, SentencePieceTokenizer, read_proto

DEFAULT_MAX_NEW_PIECES = 256
INIT_METHODS = ("pieces", "mean")
NORMAL = 1  # SentencePiece.Type.NORMAL
UNIGRAM = 1  # TrainerSpec.ModelType.UNIGRAM
# A candidate word: starts with a letter or digit, may hold inner - ' . and end in + or #
# ("sous-chef", "node.js", "c++", "c#"), never ends in - ' or . (sentence punctuation).
WORD = re.compile(r"\w(?:[\w'’.+#-]*[\w+#])?")
MAX_WORD_CHARS = 40

AddedPiece = collections.namedtuple("AddedPiece", ["term", "piece", "id", "old_ids"])
AddedPiece.__doc__ = """An added term: its text, its piece, its id, the ids it split into before."""


@functools.cache
def _model_proto_class():
    """``ModelProto`` with the fields used here; others survive as unknown fields."""
    f = descriptor_pb2.FieldDescriptorProto
    file = descriptor_pb2.FileDescriptorProto(
        name="domain_tune/sentencepiece_model_subset.proto",
        package="domain_tune.sentencepiece",
        syntax="proto2",
    )

    def message(name, *fields):
        msg = file.message_type.add(name=name)
        for field_name, number, kind, label, extra in fields:
            msg.field.add(name=field_name, number=number, type=kind, label=label, **extra)

    opt, rep = f.LABEL_OPTIONAL, f.LABEL_REPEATED
    package = ".domain_tune.sentencepiece."
    message(
        "SentencePiece",
        ("piece", 1, f.TYPE_STRING, opt, {}),
        ("score", 2, f.TYPE_FLOAT, opt, {}),
        ("type", 3, f.TYPE_INT32, opt, {"default_value": str(NORMAL)}),  # an enum on the wire
    )
    message(
        "TrainerSpec",
        ("model_type", 3, f.TYPE_INT32, opt, {"default_value": str(UNIGRAM)}),  # enum
        ("vocab_size", 4, f.TYPE_INT32, opt, {"default_value": "8000"}),
    )
    message(
        "ModelProto",
        ("pieces", 1, f.TYPE_MESSAGE, rep, {"type_name": package + "SentencePiece"}),
        ("trainer_spec", 2, f.TYPE_MESSAGE, opt, {"type_name": package + "TrainerSpec"}),
    )
    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(file.SerializeToString())
    return message_factory.GetMessageClass(
        pool.FindMessageTypeByName("domain_tune.sentencepiece.ModelProto")
    )


def parse_model_proto(proto):
    """A SentencePiece model (bytes or a path) as a protobuf message.

    The message knows ``pieces`` (``piece``, ``score``, ``type``) and
    ``trainer_spec.model_type`` / ``vocab_size``; it keeps every other field
    as protobuf's unknown fields, written back unchanged by ``SerializeToString``.
    """
    model = _model_proto_class()()
    try:
        model.ParseFromString(read_proto(proto))
    except Exception as e:  # protobuf's DecodeError and friends
        raise BadInputError("not a valid SentencePiece model") from e
    if not model.pieces:
        raise BadInputError("not a valid SentencePiece model: it has no pieces")
    return model


def _sp_ops(proto_bytes):
    try:
        return (
            tf_text.SentencepieceTokenizer(model=proto_bytes, out_type=tf.int32),
            tf_text.SentencepieceTokenizer(model=proto_bytes, out_type=tf.string),
        )
    except (tf.errors.InvalidArgumentError, tf.errors.InternalError) as e:
        raise BadInputError("not a valid SentencePiece model") from e


def _split(sp_ids, sp_pieces, texts, batch_size=4096):
    """``[(ids, pieces)]`` of each text (no ``<s>``/``</s>``); pieces are normalised text."""
    out = []
    for start in range(0, len(texts), batch_size):
        batch = tf.constant(list(texts[start : start + batch_size]), tf.string)
        ids = sp_ids.tokenize(batch).to_list()
        pieces = sp_pieces.tokenize(batch).to_list()
        out.extend(
            (row, [p.decode("utf-8") for p in prow]) for row, prow in zip(ids, pieces)
        )
    return out


def _new_piece_score(model):
    normal = [p.score for p in model.pieces if p.type == NORMAL]
    best = max(normal) if normal else 0.0
    if best >= 0.0:
        raise BadInputError(
            "cannot add pieces: the model's scores are not log-probabilities (best score "
            f"{best}); only unigram SentencePiece models are supported"
        )
    return best / 2.0


def add_pieces(proto_bytes, terms):
    """Add each term as one whole piece at the end of a SentencePiece model.

    Args:
        proto_bytes: the model, as bytes (or a path).
        terms: the terms, in order; see the module docstring for how each
            becomes a piece.

    Returns:
        ``(new_proto_bytes, added)`` where ``added`` lists one
        :data:`AddedPiece` ``(term, piece, id, old_ids)`` per added term, in
        the order of ``terms``; ``old_ids`` are the ids the term tokenized to
        before (without ``<s>``/``</s>``).  With nothing added,
        ``new_proto_bytes`` is the input unchanged.

    Raises:
        BadInputError: a term that normalises to nothing, or a model that is
            not a unigram SentencePiece model.
    """
    proto_bytes = read_proto(proto_bytes)
    terms = [str(t) for t in terms]
    model = parse_model_proto(proto_bytes)
    if model.trainer_spec.model_type != UNIGRAM:
        raise BadInputError("cannot add pieces: only unigram SentencePiece models are supported")
    if not terms:
        return proto_bytes, []
    score = _new_piece_score(model)
    sp_ids, sp_pieces = _sp_ops(proto_bytes)
    known = {p.piece for p in model.pieces}
    added = []
    for term, (ids, pieces) in zip(terms, _split(sp_ids, sp_pieces, terms)):
        piece = "".join(pieces)
        if not piece:
            raise BadInputError(f"term {term!r} is empty once normalised")
        if (len(ids) == 1 and ids[0] != UNK_ID) or piece in known:
            continue
        known.add(piece)
        added.append(AddedPiece(term, piece, len(model.pieces), tuple(ids)))
        model.pieces.add(piece=piece, score=score)
    if not added:
        return proto_bytes, []
    model.trainer_spec.vocab_size = len(model.pieces)
    new_bytes = model.SerializeToString()
    _check_added(new_bytes, added, len(model.pieces))
    return new_bytes, added


def _check_added(new_bytes, added, vocab_size):
    sp_ids, _ = _sp_ops(new_bytes)
    if int(sp_ids.vocab_size()) != vocab_size:
        raise RuntimeError("the extended SentencePiece model has an unexpected vocabulary size")
    got = sp_ids.tokenize(tf.constant([a.term for a in added])).to_list()
    wrong = [a.term for a, ids in zip(added, got) if ids != [a.id]]
    if wrong:  # pragma: no cover - the score rule above rules this out
        raise RuntimeError(f"added terms still split into several pieces: {wrong}")


def _spaced_script(word):
    """False for words with CJK, kana, Thai & co, where spaces do not delimit words."""
    for ch in word:
        if unicodedata.east_asian_width(ch) in ("W", "F"):
            return False
        if "\u0e00" <= ch <= "\u0eff" or "\u1000" <= ch <= "\u109f" or "\u1780" <= ch <= "\u17ff":
            return False  # Thai, Lao, Myanmar, Khmer
    return True


def _candidate(word):
    return (
        len(word) <= MAX_WORD_CHARS
        and any(ch.isalpha() for ch in word)
        and _spaced_script(word)
    )


def mine_terms(
    texts, tokenizer, min_pieces=3, max_new_pieces=DEFAULT_MAX_NEW_PIECES, min_count=2
):
    """Frequent words of ``texts`` that the model splits into many pieces.

    Args:
        texts: the training texts (str).
        tokenizer: a :class:`~domain_tune.models.tokenizer.SentencePieceTokenizer`,
            or a SentencePiece model as bytes or a path.
        min_pieces: keep words that tokenize to at least this many pieces.
        max_new_pieces: at most this many terms are returned.
        min_count: keep words seen at least this many times.

    Words are runs of letters and digits that may hold inner ``- ' .`` and end
    in ``+`` or ``#`` (``sous-chef``, ``node.js``, ``c++``), counted with their
    case as written.  Words without a letter (numbers), longer than
    :data:`MAX_WORD_CHARS` characters, or in scripts written without spaces
    between words (Chinese, Japanese, Thai, ...) are not candidates.

    Returns:
        the words, most frequent first (ties: more pieces first, then
        alphabetical).
    """
    if min_pieces < 2:
        raise BadInputError("min_pieces must be at least 2 (a single piece needs no new one)")
    if max_new_pieces < 0 or min_count < 1:
        raise BadInputError("max_new_pieces must be >= 0 and min_count >= 1")
    if isinstance(tokenizer, SentencePieceTokenizer):
        proto = tokenizer.proto
    else:
        proto = read_proto(tokenizer)
    counts = collections.Counter()
    for text in texts:
        counts.update(WORD.findall(str(text)))
    words = sorted(w for w, c in counts.items() if c >= min_count and _candidate(w))
    if not words or not max_new_pieces:
        return []
    sp_ids, sp_pieces = _sp_ops(proto)
    n_pieces = {w: len(ids) for w, (ids, _) in zip(words, _split(sp_ids, sp_pieces, words))}
    kept = [w for w in words if n_pieces[w] >= min_pieces]
    kept.sort(key=lambda w: (-counts[w], -n_pieces[w], w))
    return kept[:max_new_pieces]


def initial_rows(table, old_piece_ids_list, how="pieces"):
    """Starting embedding rows of added pieces, one per entry of ``old_piece_ids_list``.

    ``how="pieces"`` (default): the mean of the rows of the pieces the term
    used to split into (``AddedPiece.old_ids``), so that the term starts where
    its pieces put it.  ``how="mean"``: the mean of all rows of ``table``.
    """
    if how not in INIT_METHODS:
        raise BadInputError(f"unknown initialisation {how!r}; known: {', '.join(INIT_METHODS)}")
    table = np.asarray(table)
    rows = np.empty((len(old_piece_ids_list), table.shape[1]), dtype=table.dtype)
    if how == "mean":
        rows[:] = table.mean(axis=0)
        return rows
    for i, ids in enumerate(old_piece_ids_list):
        ids = np.asarray(ids, dtype=np.int64)
        if ids.size == 0:
            raise BadInputError("initial_rows: a term has no old piece ids")
        rows[i] = table[ids].mean(axis=0)
    return rows


def extend_encoder(encoder, terms, init="pieces", strategy="semi-frozen"):
    """A copy of ``encoder`` whose vocabulary also holds ``terms``.

    The copy's tokenizer has the extended model proto (:func:`add_pieces`); its
    token embedding is a :class:`~domain_tune.models.semi_frozen.SemiFrozenEmbedding`
    in mode ``strategy`` whose pretrained rows are ``encoder``'s whole table
    (an earlier extension's rows included) and whose new rows start as
    :func:`initial_rows` says (``init``).  Every other weight is copied.

    Returns:
        ``(new_encoder, added)``, ``added`` as from :func:`add_pieces`.  With no
        term added, the copy has no new rows.
    """
    if strategy not in STRATEGIES:
        raise BadInputError(
            f"unknown embedding strategy {strategy!r}; known: {', '.join(STRATEGIES)}"
        )
    if init not in INIT_METHODS:
        raise BadInputError(f"unknown initialisation {init!r}; known: {', '.join(INIT_METHODS)}")
    check_encoder(encoder)
    tokenizer = encoder.tokenizer
    pretrained, new = split_table(encoder.backbone.token_embedding)
    if new is not None:
        pretrained = np.concatenate([pretrained, new], axis=0)
    if tokenizer.vocabulary_size != len(pretrained):
        raise BadInputError(
            f"cannot extend this encoder: its tokenizer has {tokenizer.vocabulary_size} "
            f"pieces but its embedding {len(pretrained)} rows"
        )
    new_proto, added = add_pieces(tokenizer.proto, terms)
    rows = initial_rows(pretrained, [a.old_ids for a in added], how=init)
    new_tokenizer = SentencePieceTokenizer(
        new_proto, max_length=tokenizer.max_length, name=tokenizer.name
    )
    new_encoder = replace_embedding(
        encoder, pretrained, rows, strategy=strategy, tokenizer=new_tokenizer
    )
    return new_encoder, added
