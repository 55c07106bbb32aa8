"""Embedding strategies in training: what semi-frozen + --freeze-encoder guarantees."""

import numpy as np
import pytest
import tensorflow as tf

from domain_tune.datasets.pairs import Pairs
from domain_tune.training.embeddings import EmbeddingOptions, prepare_encoder
from domain_tune.training.fit import FitOptions, compile_siamese, fit
from tests.conftest import make_tiny_encoder

TERMS = ["kubernetes", "terraform"]
OLD_TEXTS = ["data analyst", "senior nurse", "chef", "a pilot and a baker"]
NEW_TEXTS = ["kubernetes engineer", "terraform developer"]


def _domain_pairs(n=32):
    rng = np.random.default_rng(0)
    jobs = ["engineer", "developer", "administrator", "architect"]
    base, ref, sim = [], [], []
    for k in range(n):
        term = TERMS[k % 2]
        base.append(f"{term} {jobs[rng.integers(len(jobs))]}")
        ref.append(f"{TERMS[rng.integers(2)]} specialist" if k % 3 else "senior nurse")
        sim.append(1.0 if term in ref[-1] else 0.3)
    return Pairs(base, ref, np.array(sim, np.float32), "domain.csv")


@pytest.mark.parametrize("strategy, optimizer", [
    ("semi-frozen", "adam"), ("semi-frozen", "lazy-adam"),
    ("trainable", "lazy-adam"),  # the control: the same training moves the old texts
])
def test_semi_frozen_with_frozen_encoder_keeps_pretrained_texts_bit_identical(
    sp_model_path, tmp_path, strategy, optimizer
):
    base = make_tiny_encoder(sp_model_path, seed=3)
    terms = tmp_path / "terms.txt"
    terms.write_text("".join(t + "\n" for t in TERMS), encoding="utf-8")
    before_old = base(tf.constant(OLD_TEXTS)).numpy()
    encoder, added = prepare_encoder(
        base, EmbeddingOptions(strategy=strategy, add_vocab=str(terms), freeze_encoder=True)
    )
    assert [a.term for a in added] == TERMS
    # the texts of the index use pretrained pieces only; the domain texts use the new ones
    new_ids = {a.id for a in added}
    assert not new_ids.intersection(i for row in encoder.tokenizer.tokenize(OLD_TEXTS) for i in row)
    assert all(new_ids.intersection(row) for row in encoder.tokenizer.tokenize(NEW_TEXTS))
    before_new = encoder(tf.constant(NEW_TEXTS)).numpy()

    pairs = _domain_pairs()
    options = FitOptions(epochs=3, batch_size=8, learning_rate=3e-2, patience=3, seed=1,
                         optimizer=optimizer)
    siamese = compile_siamese(encoder, options, len(pairs))
    state = fit(siamese, pairs, None, options, str(tmp_path / "state"), verbose=0)
    assert len(state.history) == 3

    after_old = encoder(tf.constant(OLD_TEXTS)).numpy()
    after_new = encoder(tf.constant(NEW_TEXTS)).numpy()
    if strategy == "semi-frozen":
        assert np.array_equal(after_old, before_old)  # bit-identical: an old index stays valid
    else:
        assert not np.allclose(after_old, before_old, atol=1e-4)
    assert not np.allclose(after_new, before_new, atol=1e-4)  # the new rows did train


@pytest.mark.parametrize("strategy, add_vocab, named", [
    ("frozen", None, "embeddings frozen leaves nothing"),
    ("frozen", "terms", "embeddings frozen leaves nothing"),
    ("semi-frozen", None, "embeddings semi-frozen and no add_vocab leaves nothing"),
])
def test_nothing_left_to_train_is_refused_before_the_model_loads(tmp_path, strategy, add_vocab,
                                                                 named):
    from domain_tune.errors import BadInputError

    terms = tmp_path / "terms.txt"
    terms.write_text("kubernetes\n", encoding="utf-8")
    options = EmbeddingOptions(strategy=strategy, freeze_encoder=True,
                               add_vocab=str(terms) if add_vocab else None)
    with pytest.raises(BadInputError, match=named):
        options.validate()


def test_semi_frozen_with_frozen_encoder_and_no_term_added_is_refused(sp_model_path):
    from domain_tune.errors import BadInputError

    # every domain text is made of pieces the tokenizer already has: "auto" adds no term
    options = EmbeddingOptions(strategy="semi-frozen", add_vocab="auto", freeze_encoder=True)
    options.validate()
    base = make_tiny_encoder(sp_model_path)
    with pytest.raises(BadInputError, match="nothing to train: .* no domain term was added"):
        prepare_encoder(base, options, texts=["a", "b"])
    # the same with the encoder left trainable is fine: the rest of the encoder trains
    encoder, added = prepare_encoder(make_tiny_encoder(sp_model_path),
                                     EmbeddingOptions(strategy="semi-frozen", add_vocab="auto"),
                                     texts=["a", "b"])
    assert added == [] and encoder.trainable_weights
