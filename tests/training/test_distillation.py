"""Alignment-preserving training (multilingual distillation) on a tiny random encoder."""

import numpy as np
import pytest
import tensorflow as tf

from domain_tune.datasets.parallel import ParallelSentences
from domain_tune.errors import BadInputError, TrainingInterrupted
from domain_tune.training.distillation import (
    AlignOptions, ParallelBatches, alignment_loss, contrastive_alignment_loss, distillation_loss,
    prepare, similarity_distillation_loss, teacher_embeddings,
)
from domain_tune.training.fit import FitOptions, compile_siamese, fit, train_dataset
from tests.conftest import make_tiny_encoder
from tests.training.test_fit import FAST, _SignalAt, toy_pairs

SOURCES = ["the nurse works", "the chef cooks", "a pilot flies", "the judge decides",
           "a clerk files", "the baker bakes", "a driver drives", "the teacher teaches"]
TRANSLATIONS = ["die Pflegerin arbeitet", "der Koch kocht", "ein Pilot fliegt",
                "der Richter entscheidet", "ein Angestellter legt ab", "der Bäcker backt",
                "ein Fahrer fährt", "der Lehrer lehrt"]


def parallel(n=8):
    return ParallelSentences(SOURCES[:n], TRANSLATIONS[:n], "parallel.csv")


def batch(encoder, sources, translations, teacher="base"):
    x = {"source": tf.constant(sources), "translation": tf.constant(translations)}
    if teacher == "base":
        index, table = teacher_embeddings(encoder, sources)
        x["teacher"] = tf.constant(table[index])
    return x


def test_distillation_loss_values():
    s = np.array([[1.0, 0.0], [0.0, 1.0]])
    r = np.array([[0.6, 0.8], [0.0, -1.0]])
    t = np.array([[1.0, 0.0], [0.0, 1.0]])
    # |s - t|^2 = 0, 0; |r - t|^2 = 0.16 + 0.64, 4
    expected = ((0 + 0.8) + (0 + 4.0)) / 2 / 2
    assert float(distillation_loss(s, r, t)) == pytest.approx(expected, rel=1e-6)
    assert float(distillation_loss(t, t, t)) == 0.0
    assert float(distillation_loss(np.zeros((0, 2)), np.zeros((0, 2)), np.zeros((0, 2)))) == 0.0


def test_similarity_distillation_loss_values():
    s = np.array([[1.0, 0.0], [0.0, 1.0]])
    r = np.array([[0.6, 0.8], [0.0, -1.0]])
    t = np.array([[1.0, 0.0], [0.0, 1.0]])  # T = identity
    # r s^T = [[0.6, 0.8], [0, -1]]: squared errors 0.16, 0.64, 0, 4 -> mean 1.2
    # r r^T = [[1, -0.8], [-0.8, 1]]: 0, 0.64, 0.64, 0 -> mean 0.32; s s^T = T -> 0
    assert float(similarity_distillation_loss(s, r, t)) == pytest.approx(1.2 + 0.32, rel=1e-6)
    # only similarities count: a rotated space with the teacher's geometry costs nothing,
    # where the embedding objective pulls it back into place
    angle = 0.7
    q = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    assert float(similarity_distillation_loss(t @ q, t @ q, t)) == pytest.approx(0.0, abs=1e-12)
    assert float(distillation_loss(t @ q, t @ q, t)) == pytest.approx(2 - 2 * np.cos(angle), rel=1e-6)
    assert float(similarity_distillation_loss(np.zeros((0, 2)), np.zeros((0, 2)),
                                              np.zeros((0, 2)))) == 0.0


def test_contrastive_alignment_loss_values():
    s = np.array([[1.0, 0.0], [0.0, 1.0]])
    r = np.array([[0.6, 0.8], [0.0, 2.0]])  # not unit: normalised first
    # cosines: s.r = [[0.6, 0.8], [0, 1]]; rows (s -> r) and columns (r -> s) at scale 2
    logits = 2.0 * np.array([[0.6, 0.8], [0.0, 1.0]])

    def ce(rows):
        return np.mean([np.log(np.exp(row).sum()) - row[i] for i, row in enumerate(rows)])

    expected = (ce(logits) + ce(logits.T)) / 2
    assert float(contrastive_alignment_loss(s, r, scale=2.0)) == pytest.approx(expected, rel=1e-6)
    # each translation far closer to its source than to the others: near 0
    assert float(contrastive_alignment_loss(s, s)) < 1e-8


def test_contrastive_objective_needs_no_teacher(sp_model_path):
    encoder = make_tiny_encoder(sp_model_path)
    batches = prepare(AlignOptions(parallel="p.csv", loss="contrastive", batch_size=4),
                      parallel(), encoder)
    assert batches.teacher is None  # no embeddings cached, whatever --align-teacher says
    x = batch(encoder, SOURCES, TRANSLATIONS, teacher="self")
    s, r = encoder(tf.constant(SOURCES)), encoder(tf.constant(TRANSLATIONS))
    assert float(alignment_loss(encoder, x, loss="contrastive")) == pytest.approx(
        float(contrastive_alignment_loss(s, r)), rel=1e-5)


@pytest.mark.parametrize("objective", ["embedding", "similarity"])
@pytest.mark.parametrize("teacher", ["base", "self"])
def test_similarity_objective_zero_only_for_identical_translations(sp_model_path, teacher,
                                                                     objective):
    encoder = make_tiny_encoder(sp_model_path)
    same = batch(encoder, SOURCES, SOURCES, teacher)
    assert float(alignment_loss(encoder, same, training=False, loss=objective)) == pytest.approx(
        0.0, abs=1e-10)
    x = batch(encoder, SOURCES, TRANSLATIONS, teacher)
    if objective == "similarity":
        s, r = (encoder(tf.constant(t)).numpy().astype(np.float64) for t in (SOURCES, TRANSLATIONS))
        target = s @ s.T
        expected = (np.mean((r @ s.T - target) ** 2) + np.mean((r @ r.T - target) ** 2))
        assert float(alignment_loss(encoder, x, loss=objective)) == pytest.approx(expected, rel=1e-4)
    assert float(alignment_loss(encoder, x, loss=objective)) > 0


@pytest.mark.parametrize("teacher", ["base", "self"])
def test_zero_when_the_encoder_is_the_teacher(sp_model_path, teacher):
    encoder = make_tiny_encoder(sp_model_path)
    # a translation identical to its source: the student equals the teacher on both
    x = batch(encoder, SOURCES, SOURCES, teacher)
    # zero up to float rounding: the base teacher's embeddings come from encode(), whose
    # padding-free packing groups the texts differently from this batch's call
    assert float(alignment_loss(encoder, x, training=False)) == pytest.approx(0.0, abs=1e-12)
    # real translations: only the translation term remains, the same for both teachers
    x = batch(encoder, SOURCES, TRANSLATIONS, teacher)
    src, tgt = encoder(tf.constant(SOURCES)), encoder(tf.constant(TRANSLATIONS))
    expected = np.mean(np.sum((tgt.numpy() - src.numpy()) ** 2, axis=1)) / 2
    assert float(alignment_loss(encoder, x)) == pytest.approx(expected, rel=1e-5)


def _gradients(encoder, fn):
    with tf.GradientTape() as tape:
        value = fn()
    grads = tape.gradient(value, encoder.trainable_weights)
    return [tf.convert_to_tensor(g).numpy() if g is not None else None for g in grads]


def test_self_teacher_gradient_does_not_flow_into_the_teacher(sp_model_path):
    encoder = make_tiny_encoder(sp_model_path)
    x = batch(encoder, SOURCES, TRANSLATIONS, teacher="self")
    got = _gradients(encoder, lambda: alignment_loss(encoder, x))
    # the same term with the source embedding as a constant: only the translation moves
    fixed = tf.constant(encoder(tf.constant(SOURCES)).numpy())

    def translation_only():
        r = encoder(tf.constant(TRANSLATIONS))
        return tf.reduce_sum(tf.square(r - fixed)) / (2 * len(SOURCES))

    want = _gradients(encoder, translation_only)
    # and without the stop, the source would move towards its translation too
    def both_move():
        s, r = encoder(tf.constant(SOURCES)), encoder(tf.constant(TRANSLATIONS))
        return tf.reduce_sum(tf.square(r - s)) / (2 * len(SOURCES))

    unstopped = _gradients(encoder, both_move)
    compared = 0
    for g, w, u in zip(got, want, unstopped):
        if w is None:
            assert g is None or not np.any(g)
            continue
        np.testing.assert_allclose(g, w, atol=1e-6)
        compared += 1
        if u is not None and np.abs(u - w).max() > 1e-5:
            compared += 1000
    assert compared > 1000  # gradients compared, and the stop makes a difference


def test_base_teacher_adds_no_variables(sp_model_path):
    opts = FitOptions(**FAST)
    plain = compile_siamese(make_tiny_encoder(sp_model_path), opts)
    encoder = make_tiny_encoder(sp_model_path)
    aligned = compile_siamese(encoder, opts, align_weight=1.0)
    assert len(aligned.trainable_weights) == len(plain.trainable_weights)
    assert {id(v) for v in aligned.trainable_weights} == {id(v) for v in encoder.trainable_weights}
    batches = prepare(AlignOptions(parallel="p.csv", teacher="base", batch_size=4), parallel(),
                      encoder)
    x, _ = next(iter(train_dataset(toy_pairs(16), 8, 0, 0, 1, parallel=batches)[0]))
    assert sorted(x["parallel"]) == ["source", "teacher", "translation"]
    assert x["parallel"]["teacher"].dtype == tf.float32 and x["parallel"]["teacher"].shape == (4, 8)
    # the cached rows are the base's embeddings of each batch's sources
    np.testing.assert_allclose(x["parallel"]["teacher"].numpy(),
                               encoder(x["parallel"]["source"]).numpy(), atol=1e-6)
    self_batches = prepare(AlignOptions(parallel="p.csv", teacher="self", batch_size=4),
                           parallel(), encoder)
    x, _ = next(iter(train_dataset(toy_pairs(16), 8, 0, 0, 1, parallel=self_batches)[0]))
    assert sorted(x["parallel"]) == ["source", "translation"]


def test_teacher_embeds_each_distinct_source_once(sp_model_path):
    encoder = make_tiny_encoder(sp_model_path)
    index, table = teacher_embeddings(encoder, ["b", "a", "b", "c", "a"])
    assert table.shape == (3, 8) and index.tolist() == [1, 0, 1, 2, 0]


def test_parallel_batches_are_a_function_of_seed_and_step():
    sentences = ParallelSentences([f"s{i}" * (i % 7 + 1) for i in range(50)],
                                  [f"t{i}" for i in range(50)], "p.csv")
    batches = ParallelBatches(sentences, batch_size=8)
    assert batches.per_round == 6
    whole = batches.indices(seed=3, first_step=0, steps=20)
    assert whole.shape == (20, 8)
    # a fresh object asked for a later stretch (a resumed run) gets the same rows
    again = ParallelBatches(sentences, batch_size=8).indices(seed=3, first_step=7, steps=13)
    np.testing.assert_array_equal(again, whole[7:])
    # within a round no sentence repeats; the next round draws a new order
    first_round = whole[:6].ravel()
    assert len(set(first_round.tolist())) == 48
    assert not np.array_equal(whole[:6], whole[6:12])
    assert not np.array_equal(whole, batches.indices(seed=4, first_step=0, steps=20))
    # fewer sentences than the batch size: every batch is all of them
    small = ParallelBatches(ParallelSentences(["a", "b"], ["x", "y"], "p.csv"), batch_size=8)
    assert small.indices(0, 0, 3).shape == (3, 2)


def _train(sp_model_path, state_dir, teacher="base", loss="mse", epochs=3, callbacks=(),
           resume=False, weight=1.0, embeddings=None, objective="embedding"):
    pairs, val = toy_pairs(40, 1), toy_pairs(12, 2)
    opts = FitOptions(epochs=epochs, loss=loss, **FAST)
    encoder = make_tiny_encoder(sp_model_path, seed=5)
    if embeddings:
        from domain_tune.training.embeddings import EmbeddingOptions, prepare_encoder

        encoder, _ = prepare_encoder(encoder, EmbeddingOptions(strategy=embeddings))
    batches = prepare(AlignOptions(parallel="p.csv", teacher=teacher, batch_size=4,
                                   weight=weight, loss=objective), parallel(), encoder)
    model = compile_siamese(encoder, opts, align_weight=weight, align_loss=objective)
    state = fit(model, pairs, val, opts, str(state_dir), resume=resume, callbacks=callbacks,
                verbose=0, parallel=batches)
    return model, state


def _translation_distance(encoder):
    s, t = encoder(tf.constant(SOURCES)).numpy(), encoder(tf.constant(TRANSLATIONS)).numpy()
    return float(np.mean(np.sum((s - t) ** 2, axis=1)))


@pytest.mark.parametrize("loss", ["mse", "cosent", "in-batch", "in-batch-symmetric"])
def test_every_loss_trains_with_parallel_sentences(sp_model_path, tmp_path, loss):
    model, state = _train(sp_model_path, tmp_path, loss=loss, weight=5.0, epochs=3)
    history = state.history
    assert all("align_loss" in r and "val_align_loss" not in r for r in history)
    assert history[-1]["align_loss"] < history[0]["align_loss"]  # translations pulled together
    plain = make_tiny_encoder(sp_model_path, seed=5)
    assert _translation_distance(model.encoder) < _translation_distance(plain)


@pytest.mark.parametrize("objective", ["similarity", "contrastive"])
def test_other_objectives_train_and_round_trip(sp_model_path, tmp_path, objective):
    import keras

    # the term's gradient lowers the term: a few small plain-gradient steps on it alone
    encoder = make_tiny_encoder(sp_model_path, seed=5)
    x = batch(encoder, SOURCES, TRANSLATIONS)
    values = []
    for _ in range(5):
        with tf.GradientTape() as tape:
            value = alignment_loss(encoder, x, loss=objective)
        grads = tape.gradient(value, encoder.trainable_weights)
        for g, v in zip(grads, encoder.trainable_weights):
            if g is not None:
                v.assign_sub(2e-3 * tf.convert_to_tensor(g) / (tf.linalg.global_norm(
                    [tf.convert_to_tensor(a) for a in grads if a is not None]) + 1e-12))
        values.append(float(value))
    assert values[-1] < values[0]
    # and it trains beside the pair loss, its history column kept, the model's config with it
    model, state = _train(sp_model_path, tmp_path, loss="in-batch-symmetric", weight=20.0,
                          epochs=2, objective=objective)
    assert all(np.isfinite(r["align_loss"]) and r["align_loss"] > 0 for r in state.history)
    config = model.get_config()
    assert config["align_loss"] == objective and config["align_weight"] == 20.0
    again = model.__class__.from_config(keras.saving.serialize_keras_object(model)["config"])
    assert again.align_loss == objective


def test_align_weight_scales_the_term(sp_model_path, tmp_path):
    encoder = make_tiny_encoder(sp_model_path)
    x = batch(encoder, SOURCES, TRANSLATIONS)
    pairs = toy_pairs(8)
    inputs = {"base": tf.constant(pairs.base), "ref": tf.constant(pairs.ref), "parallel": x}
    values = []
    for w in (1.0, 3.0):
        model = compile_siamese(encoder, FitOptions(**FAST), align_weight=w)
        values.append(float(model.alignment_value(inputs)))
    assert values[1] == pytest.approx(3 * values[0], rel=1e-6) and values[0] > 0
    assert compile_siamese(encoder, FitOptions(**FAST)).alignment_value({"base": None}) == 0.0


@pytest.mark.parametrize("teacher", ["base", "self"])
def test_resume_with_parallel_matches_uninterrupted(sp_model_path, tmp_path, teacher):
    reference, ref_state = _train(sp_model_path, tmp_path / "a", teacher)
    with pytest.raises(TrainingInterrupted):
        _train(sp_model_path, tmp_path / "b", teacher, callbacks=[_SignalAt(1, 2)])
    resumed, state = _train(sp_model_path, tmp_path / "b", teacher, resume=True)
    for a, b in zip(reference.get_weights(), resumed.get_weights()):
        np.testing.assert_allclose(a, b, atol=1e-6)
    assert [r["align_loss"] for r in state.history] == pytest.approx(
        [r["align_loss"] for r in ref_state.history], abs=1e-7)


def test_semi_frozen_rows_stay_frozen(sp_model_path, tmp_path):
    from domain_tune.models.semi_frozen import SemiFrozenEmbedding

    model, state = _train(sp_model_path, tmp_path, embeddings="semi-frozen", epochs=2)
    layer = model.encoder.backbone.token_embedding
    assert isinstance(layer, SemiFrozenEmbedding)
    plain = make_tiny_encoder(sp_model_path, seed=5)
    np.testing.assert_array_equal(np.asarray(layer.pretrained_embeddings),
                                  plain.backbone.token_embedding.embeddings.numpy())
    assert state.history[-1]["align_loss"] < state.history[0]["align_loss"]


def test_bad_align_options():
    with pytest.raises(BadInputError, match="align_weight must be a positive number"):
        AlignOptions(parallel="p.csv", weight=0.0).validate()
    with pytest.raises(BadInputError, match="align_teacher must be one of"):
        AlignOptions(parallel="p.csv", teacher="student").validate()
    with pytest.raises(BadInputError, match="parallel_batch_size must be at least 1"):
        AlignOptions(parallel="p.csv", batch_size=0).validate()
    with pytest.raises(BadInputError, match="align_loss must be one of embedding, similarity, "
                                            "contrastive"):
        AlignOptions(parallel="p.csv", loss="cosine").validate()
    with pytest.raises(BadInputError, match="align_loss similarity compares sentences within a batch: parallel_batch_size must be at least 2"):
        AlignOptions(parallel="p.csv", loss="similarity", batch_size=1).validate()


@pytest.mark.real
@pytest.mark.shared_data
def test_real_distillation_keeps_languages_aligned(tmp_path):
    """A few steps of the ESCO sample with and without a base teacher on 400 de/ja sentences."""
    import pathlib

    from domain_tune.datasets.pairs import read_pairs
    from domain_tune.datasets.parallel import read_parallel, stsb_parallel, write_parallel
    from domain_tune.datasets.stsb_multi import load_multilingual
    from domain_tune.evaluation.multilingual import evaluate_translation
    from domain_tune.models.loading import from_preset
    from tests.conftest import shared_path

    folder = shared_path("stsb-multi-mt")
    frame = stsb_parallel(str(folder), "de,ja")
    frame = frame.groupby("language").head(200)  # 400 parallel sentences
    sentences = read_parallel(write_parallel(frame, tmp_path / "parallel.csv"))
    pairs = read_pairs(pathlib.Path(__file__).resolve().parents[2] / "data" / "esco_pairs_sample.csv")
    dev = load_multilingual(str(folder), "dev", "de,ja", limit=200)
    opts = FitOptions(epochs=2, batch_size=32, learning_rate=5e-4, optimizer="lazy-adam",
                      loss="in-batch-symmetric", patience=10, seed=0)

    def translation(encoder):
        out = {}
        for lang in ("de", "ja"):
            r = evaluate_translation(encoder, dev.data["en"].sentences1, dev.data[lang].sentences1)
            out[lang] = (r["src->tgt"] + r["tgt->src"]) / 2
            s = encoder(tf.constant(dev.data["en"].sentences1)).numpy()
            t = encoder(tf.constant(dev.data[lang].sentences1)).numpy()
            out[lang + "_cos"] = float(np.mean(np.sum(s * t, axis=1)))
        return out

    results = {}
    for name in ("plain", "base"):
        encoder = from_preset("use-m3")
        if name == "base":
            before = translation(encoder)
            batches = prepare(AlignOptions(parallel="p.csv", teacher="base", weight=10.0,
                                           batch_size=16), sentences, encoder)
        model = compile_siamese(encoder, opts, align_weight=10.0 if name == "base" else 0.0)
        fit(model, pairs, None, opts, str(tmp_path / name), verbose=0,
            parallel=batches if name == "base" else None)
        results[name] = translation(encoder)
        del model, encoder
    for lang in ("de", "ja"):
        # distillation keeps (or improves) the alignment of translations the plain run erodes
        assert results["base"][lang + "_cos"] > results["plain"][lang + "_cos"]
        assert results["base"][lang + "_cos"] >= before[lang + "_cos"] - 0.005
        assert results["base"][lang] >= results["plain"][lang] - 0.005
