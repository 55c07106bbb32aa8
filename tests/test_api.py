"""The public Python API (``import domain_tune``) on tiny random encoders."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import domain_tune as dt
from domain_tune.api import make_train_job
from domain_tune.errors import BadInputError
from tests.conftest import ROOT, make_tiny_encoder
from tests.test_matching import compass_model

STS_LINES = [
    ("5.0", "a man is dancing", "a man dances"),
    ("0.5", "a cat sleeps", "the market fell"),
    ("3.0", "a child rides a horse", "a kid on a horse"),
    ("1.0", "a woman cooks", "a dog runs"),
    ("4.0", "two men play chess", "two people play chess"),
]


@pytest.fixture
def tiny_sts(tmp_path):
    folder = tmp_path / "sts"
    folder.mkdir()
    lines = [f"g\tf\t2012\t{i:04d}\t{s}\t{a}\t{b}" for i, (s, a, b) in enumerate(STS_LINES)]
    (folder / "sts-dev.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


def _python(code):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=300)


def test_import_is_fast_and_lazy():
    result = _python("import sys, domain_tune\n"
                     "print(sorted(m for m in ('tensorflow', 'keras', 'tensorflow_text', 'pandas') "
                     "if m in sys.modules))\n"
                     "print(all(callable(getattr(domain_tune, n)) for n in domain_tune.__all__ "
                     "if n[0].islower() and not n.startswith('__')))")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[:2] == ["[]", "True"]


def test_public_functions_are_documented():
    for name in ("load_model", "encode", "train", "evaluate_sts", "evaluate_retrieval", "match",
                 "plot_similarity", "export", "interpolate"):
        fn = getattr(dt, name)
        assert fn.__doc__ and len(fn.__doc__.split()) > 10, name
        assert fn.__annotations__.get("return"), name


def test_load_model_and_encode(tiny_model_dir):
    model = dt.load_model(tiny_model_dir)
    vectors = dt.encode(model, ["data scientist", "nurse", "data scientist"])
    assert vectors.shape == (3, 8) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(vectors[0], vectors[2], atol=1e-6)
    np.testing.assert_allclose(dt.encode(str(tiny_model_dir), ["nurse"])[0], vectors[1], atol=1e-6)
    with pytest.raises(BadInputError, match="^unknown model 'nope'"):
        dt.load_model("nope")
    with pytest.raises(BadInputError, match="a list of strings"):
        dt.encode(model, "one string")


def test_train_returns_metrics_and_path(tmp_path, tiny_model_dir, pairs_csv):
    lines = []
    run = dt.train(pairs_csv, tmp_path / "run", model=tiny_model_dir, epochs=2, no_sts=True,
                   learning_rate=3e-3, loss="cosent", quiet=True, echo=lines.append,
                   texts=["nurse", "chef", "data analyst"])
    assert run.path == str(tmp_path / "run") and os.path.isfile(os.path.join(run.path, "model.keras"))
    assert run.metrics["epochs_run"] == 2 and run.metrics["sts"] is None
    assert run.metrics["options"]["fit"]["learning_rate"] == 3e-3
    assert run.metrics["options"]["fit"]["loss"] == "cosent"
    assert json.load(open(os.path.join(run.path, "metrics.json")))["train_pairs"] == \
        run.metrics["train_pairs"]
    assert lines and lines[0].startswith("before:")
    from domain_tune.training.model_card import render

    assert run.card == render(dt.read_metrics(run.path))  # the card is metrics.json rendered
    assert run.card.startswith(f"# tiny_model, fine-tuned on {tmp_path.name}/pairs.csv\n")
    assert dt.encode(run.load(), ["nurse"]).shape == (1, 8)


def test_train_options_and_errors(tmp_path, pairs_csv):
    options = dt.train_options()
    assert options["epochs"] == 20 and options["learning_rate"] == 1e-5
    assert options["embeddings"] == "trainable" and options["no_sts"] is False
    with pytest.raises(BadInputError, match="unknown option 'epoch'"):
        dt.train(pairs_csv, tmp_path / "r", epoch=3)
    with pytest.raises(BadInputError, match="^epochs must be at least 1$"):
        dt.train(pairs_csv, tmp_path / "r", epochs=0, no_sts=True)
    with pytest.raises(BadInputError, match="not a directory; or pass --no-sts"):
        dt.train(pairs_csv, tmp_path / "r", sts_dir=tmp_path / "absent")
    assert options["parallel"] is None and options["align_loss"] == "embedding"
    with pytest.raises(BadInputError, match="^align_weight, align_loss need parallel FILE$"):
        dt.train(pairs_csv, tmp_path / "r", align_weight=2.0, align_loss="similarity", no_sts=True)
    with pytest.raises(BadInputError, match="^align_loss must be one of"):
        dt.train(pairs_csv, tmp_path / "r", parallel=pairs_csv, align_loss="cosine", no_sts=True)
    job = make_train_job(pairs_csv, tmp_path / "r", parallel=pairs_csv, align_loss="similarity",
                         parallel_columns=["base", "ref"], align_weight=5, parallel_batch_size=8)
    assert (job.align.loss, job.align.columns, job.align.weight, job.align.batch_size) == (
        "similarity", ("base", "ref"), 5, 8)
    assert not (tmp_path / "r").exists()


def test_evaluate_sts_matches_the_evaluator(tiny_model_dir, tiny_sts):
    from domain_tune.evaluation.sts import evaluate_sts

    result = dt.evaluate_sts(tiny_model_dir, sts_dir=tiny_sts, limit=4)
    assert result["split"] == "dev" and result["n"] == 4
    direct = evaluate_sts(dt.load_model(tiny_model_dir), *zip(*[(a, b, float(s)) for s, a, b in
                                                                 STS_LINES[:4]]))
    assert result["pearson"] == pytest.approx(direct["pearson"], abs=1e-6)
    with pytest.raises(BadInputError, match="unknown STS split 'val'"):
        dt.evaluate_sts(tiny_model_dir, split="val", sts_dir=tiny_sts)


def test_evaluate_retrieval(tmp_path):
    q = tmp_path / "q.csv"
    q.write_text("query,id\nnorth,N\neast,E\nnortheast,W\n", encoding="utf-8")
    c = tmp_path / "c.csv"
    c.write_text("label,id\nnorth,N\neast,E\nwest,W\n", encoding="utf-8")
    result = dt.evaluate_retrieval(compass_model(), q, c, id_column="id")
    assert result["n"] == 3 and result["corpus"] == 3
    assert result["top1"] == pytest.approx(2 / 3)  # northeast: north and east beat west
    assert result["mrr"] == pytest.approx((1 + 1 + 1 / 3) / 3)


def test_match_in_memory():
    frame = dt.match(compass_model(), ["north", "west"], ["south", "northeast", "west"], top_k=2,
                     corpus_ids=["S", "NE", "W"])
    assert frame[["query", "rank", "corpus_id", "corpus_text"]].values.tolist() == [
        ["north", 1, "NE", "northeast"], ["north", 2, "W", "west"],
        ["west", 1, "W", "west"], ["west", 2, "S", "south"],
    ]
    assert frame["cosine"].tolist() == [0.707107, 0.0, 1.0, 0.0]
    assert frame["angular"].tolist()[0] == 0.75
    assert len(dt.match(compass_model(), ["north"], ["south", "northeast"], min_score=0.5)) == 1
    assert len(dt.match(compass_model(), ["north"], ["south", "northeast"], min_score=1.0)) == 0
    with pytest.raises(BadInputError, match="at most 1"):
        dt.match(compass_model(), ["north"], ["south"], min_score=1.5)


def test_match_in_memory_takes_ids_as_a_notebook_has_them_and_refuses_bad_arrays():
    import pandas as pd

    model, corpus = compass_model(), ["south", "northeast", "west"]
    expected = dt.match(model, ["north"], corpus, top_k=1, corpus_ids=["S", "NE", "W"])
    for ids in (pd.Series(["S", "NE", "W"], index=[9, 8, 7]), pd.DataFrame({"uri": ["S", "NE", "W"]}),
                np.array(["S", "NE", "W"]), ("S", "NE", "W")):
        got = dt.match(model, ["north"], corpus, top_k=1, corpus_ids=ids)
        assert got["corpus_id"].tolist() == expected["corpus_id"].tolist() == ["NE"]
    for ids, message in ((pd.DataFrame({"a": [1, 2, 3], "b": [1, 2, 3]}), "a table of 2 columns"),
                         (np.array([[1, 2], [3, 4], [5, 6]]), "one-dimensional, not an array of shape"),
                         (5, "must be a list of ids, not a int"),
                         (["S", None, "W"], "item 1 is missing")):
        with pytest.raises(BadInputError, match=message):
            dt.match(model, ["north"], corpus, corpus_ids=ids)
    good = np.array([[0, -1], [0.7, 0.7], [-1, 0]], np.float32)
    assert dt.match(model, ["north"], corpus, top_k=1, corpus_embeddings=good)["corpus_id"].tolist() == [2]
    for embeddings, message in ((good[:, :1], "has 1 columns; the model embeds in 2"),
                                ([["x", "y"]] * 3, "must be an array of numbers"),
                                (np.where(np.arange(3)[:, None] == 1, np.nan, good),
                                 "1 row hold NaN or infinite values \\(first: row 1\\)")):
        with pytest.raises(BadInputError, match=message):
            dt.match(model, ["north"], corpus, corpus_embeddings=embeddings)


def test_plot_similarity_returns_a_figure_and_writes_png(tmp_path, sp_model_path):
    from matplotlib.figure import Figure

    base, tuned = make_tiny_encoder(sp_model_path, seed=0), make_tiny_encoder(sp_model_path, seed=1)
    texts = ["nurse", "chef", "data analyst", "data scientist"]
    fig = dt.plot_similarity(base, tuned, texts, titles=["base", "tuned"])
    assert isinstance(fig, Figure)
    heatmaps = [ax for ax in fig.axes if ax.images]
    assert [ax.get_title() for ax in heatmaps][:2] == ["base", "tuned"]
    assert len(heatmaps) == 3  # base, tuned, tuned minus base
    delta = heatmaps[2].images[0]
    lo, hi = delta.get_clim()
    assert lo == -hi and delta.get_cmap().name == "RdBu_r"
    out = tmp_path / "sim.png"
    fig = dt.plot_similarity(base, texts=texts, out=out)
    assert len([ax for ax in fig.axes if ax.images]) == 1
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(BadInputError, match="name it \\*.png"):
        dt.plot_similarity(base, out=tmp_path / "sim.jpg")


def test_export_and_interpolate(tmp_path, sp_model_path):
    import tensorflow as tf

    base, tuned = make_tiny_encoder(sp_model_path, seed=0), make_tiny_encoder(sp_model_path, seed=1)
    texts = tf.constant(["nurse", "chef"])
    base(texts), tuned(texts)
    base.save(tmp_path / "base.keras")
    tuned.save(tmp_path / "tuned.keras")
    out = dt.export(tmp_path / "tuned.keras", tmp_path / "exported")
    assert os.path.isfile(os.path.join(out, "saved_model.pb"))
    np.testing.assert_allclose(dt.encode(out, ["nurse"]), dt.encode(tuned, ["nurse"]), atol=1e-5)
    with pytest.raises(BadInputError, match="already exists; pass --overwrite"):
        dt.export(tuned, tmp_path / "exported")
    report = dt.interpolate(tmp_path / "tuned.keras", tmp_path / "mixed", base=tmp_path / "base.keras",
                            alpha=0.5)
    assert report["alpha"] == 0.5 and os.path.isfile(tmp_path / "mixed" / "model.keras")
    with pytest.raises(BadInputError, match="interpolating would change nothing"):
        dt.interpolate(tmp_path / "base.keras", tmp_path / "m2", base=tmp_path / "base.keras")
    with pytest.raises(BadInputError, match=r"--alpha 1.5 must be in \[0, 1\]"):
        dt.interpolate(tmp_path / "tuned.keras", tmp_path / "m2", base=tmp_path / "base.keras",
                       alpha=1.5)


def test_train_and_interpolate_say_what_to_pass_for_a_loaded_model_or_a_dataframe(
        tmp_path, pairs_csv, tiny_encoder):
    """A notebook's natural mistakes get the one-line error, not a TypeError from os.fspath."""
    import pandas as pd

    with pytest.raises(BadInputError, match="model must be a name or a path, not a SentenceEncoder"):
        dt.train(pairs_csv, tmp_path / "r", model=tiny_encoder, no_sts=True)
    with pytest.raises(BadInputError, match=r"pairs must be .* not a DataFrame; .*to_csv"):
        dt.train(pd.read_csv(pairs_csv), tmp_path / "r", no_sts=True)
    with pytest.raises(BadInputError, match="base must be a name or a path"):
        dt.interpolate(tmp_path / "m.keras", tmp_path / "i", base=tiny_encoder)
    assert sorted(os.listdir(tmp_path)) == ["pairs.csv"]


def test_texts_in_every_shape_a_notebook_passes(tiny_encoder):
    """Series, tuples, generators, numpy arrays, a one-column DataFrame: the same rows as a list.
    One string, bytes, None, several columns or a 2-d array are refused: iterating over them
    embedded characters, column names or rows, without a word."""
    import pandas as pd

    texts = ["nurse", "chef", "data analyst"]
    expected = dt.encode(tiny_encoder, texts)
    frame = pd.DataFrame({"base": texts, "ref": ["a", "b", "c"]}, index=[7, 3, 5])
    for given in (tuple(texts), (t for t in texts), np.array(texts), np.array(texts, object),
                  frame["base"], frame[["base"]], [t.encode("utf-8") for t in texts]):
        np.testing.assert_array_equal(dt.encode(tiny_encoder, given), expected)
    for given, message in (("nurse", "not one string; pass \\[text\\]"),
                           (b"nurse", "not one string"), (None, "not None"),
                           (frame, "a table of 2 columns; pass one column "
                                   "\\(e.g. df\\['base'\\]\\)"),
                           (np.array([texts]), "one-dimensional, not an array of shape \\(1, 3\\)"),
                           (3, "not a int")):
        with pytest.raises(BadInputError, match=message):
            dt.encode(tiny_encoder, given)
    with pytest.raises(BadInputError, match="not UTF-8"):
        dt.encode(tiny_encoder, ["caf\xe9".encode("latin-1")])
    with pytest.raises(BadInputError, match="^queries must be a list of strings, not one string"):
        dt.match(tiny_encoder, "nurse", texts)
    with pytest.raises(BadInputError, match="^corpus must be a list of strings, not one string"):
        dt.match(tiny_encoder, texts, "nurse")
    with pytest.raises(BadInputError, match="^texts must be a list of strings, not one string"):
        dt.plot_similarity(tiny_encoder, texts="nurse")
    with pytest.raises(BadInputError, match="^texts must be a list of strings"):
        make_train_job("pairs.csv", "out", texts="nurse")
    frame = dt.match(tiny_encoder, pd.Series(["nurse"]), (t for t in texts), top_k=1)
    assert frame["corpus_text"].tolist() == ["nurse"]


def test_items_that_are_not_texts_are_refused_and_numbers_print(tiny_encoder):
    """A row, a record, an unordered container or a lone surrogate is refused; a number (a
    code column) is embedded as it prints, None and NaN as blank."""
    for given, message in (
        (["nurse", ["a", "b"]], "a text must be a string, not a list \(\['a', 'b'\]\)"),
        (["nurse", {"k": 1}], "a text must be a string, not a dict"),
        (["nurse", np.array(["a", "b"])], "a text must be a string, not a ndarray"),
        ({"nurse", "chef"}, "an ordered sequence of strings \(a list\), not a set"),
        ({"nurse": 1}, "an ordered sequence of strings \(a list\), not a dict"),
        (["nurse", "\ud800"], "a text is not valid Unicode \(surrogates not allowed at "
                               "character 0\)"),
    ):
        with pytest.raises(BadInputError, match=message):
            dt.encode(tiny_encoder, given)
    np.testing.assert_array_equal(dt.encode(tiny_encoder, [5, None, float("nan"), 2.5]),
                                  dt.encode(tiny_encoder, ["5", "", "", "2.5"]))


@pytest.mark.parametrize("call, message", [
    (lambda: dt.load_model(None), "model must be a path (str or os.PathLike), not NoneType None"),
    (lambda: dt.encode("m", ["a"], batch_size="8"), "batch_size must be an integer, not str '8'"),
    (lambda: dt.encode("m", ["a"], batch_size=2.5), "batch_size must be an integer, not float"),
    (lambda: dt.match("m", ["a"], ["b"], top_k=float("inf")), "top_k must be an integer, not float"),
    (lambda: dt.match("m", ["a"], ["b"], min_score="0.5"),
     "min_score must be a number or None, not str '0.5'"),
    (lambda: dt.evaluate_sts("m", limit=2.5), "limit must be an integer or None, not float 2.5"),
    (lambda: dt.evaluate_sts("m", split=1), "split must be a string, not int 1"),
    (lambda: dt.export("m", None), "out must be a path (str or os.PathLike), not NoneType"),
    (lambda: dt.read_metrics(123), "run must be a path (str or os.PathLike), not int 123"),
    (lambda: dt.interpolate("run", "out", alpha="x"), "alpha must be a number, not str 'x'"),
    (lambda: dt.plot_similarity("m", overwrite="y"), "overwrite must be True or False, not str 'y'"),
    (lambda: make_train_job("p.csv", "o", epochs="3"), "epochs must be an integer, not str '3'"),
    (lambda: make_train_job("p.csv", "o", lr=None), "lr must be a number, not NoneType None"),
    (lambda: make_train_job("p.csv", "o", validation_split="0.2"),
     "validation_split must be a number, not str '0.2'"),
    (lambda: make_train_job("p.csv", "o", validation_file=5),
     "validation_file must be a string or None, not int 5"),
    (lambda: make_train_job("p.csv", "o", score_range="a"),
     "score_range must be two numbers (low, high), not 'a'"),
    (lambda: make_train_job("p.csv", "o", score_range=(0, 1, 2)),
     "score_range must be two numbers (low, high), not (0, 1, 2)"),
    (lambda: make_train_job("p.csv", "o", score_range=[0]),
     "score_range must be two numbers (low, high), not (0,)"),
    (lambda: make_train_job("p.csv", "o", score_range=None),
     "score_range must be two numbers (low, high), not None"),
    (lambda: make_train_job("p.csv", "o", text_columns=123),
     "text_columns must be two column names ('base,ref' or ('base', 'ref')), not 123"),
    (lambda: make_train_job("p.csv", "o", no_sts="yes"), "no_sts must be True or False, not str"),
    (lambda: make_train_job("p.csv", "o", quiet="yes"), "quiet must be True or False, not str"),
    (lambda: make_train_job("p.csv", "o", cpu_replicas=0), "cpu_replicas must be at least 1"),
    (lambda: make_train_job("p.csv", "o", add_vocab=""), "add_vocab is empty; pass a path or None"),
    (lambda: make_train_job("p.csv", "o", texts=["nurse", " "]),
     "texts: need at least 2 non-empty texts"),
    (lambda: dt.train("p.csv", "o", echo=5),
     "echo must be a function of one line (print) or None, not int"),
    (lambda: dt.evaluate_sts("m", sts_dir=""), "sts_dir is empty"),
])
def test_arguments_of_the_wrong_type_are_named_before_any_work(call, message):
    """Before, each failed deep inside a comparison or a library call (TypeError: '<' not
    supported between instances of 'str' and 'int', ...) or loaded a model first."""
    with pytest.raises(BadInputError) as e:
        call()
    assert str(e.value) == message or str(e.value).startswith(message)


@pytest.mark.parametrize("options, message", [
    ({"optimizer": "sgdx"}, "optimizer must be one of adam, lazy-adam"),
    ({"mixed_precision": "bogus"}, "mixed_precision must be one of bfloat16, float16"),
])
def test_unknown_choices_are_refused_before_the_model_loads(tmp_path, pairs_csv, options, message):
    from domain_tune.training.run import train_run

    with pytest.raises(BadInputError) as e:  # not "unknown model": nothing was loaded yet
        train_run(make_train_job(pairs_csv, tmp_path / "run", model="no-such-model", no_sts=True,
                                 **options))
    assert str(e.value) == message
    assert not (tmp_path / "run").exists()


def test_a_method_of_the_job_is_not_an_option():
    with pytest.raises(BadInputError, match="^train: unknown option 'options' \\(options: "):
        make_train_job("p.csv", "o", options=1)


def test_arguments_of_the_right_kind_pass_the_type_checks(tmp_path):
    job = make_train_job("p.csv", "o", epochs=np.int64(3), learning_rate=1, seed=np.int32(1),
                         sts_limit=None, scale=None, multilingual=["de"], overwrite=np.bool_(True),
                         validation_file=tmp_path / "v.csv")
    assert (job.fit.epochs, job.fit.learning_rate, job.multilingual) == (3, 1, ["de"])


def test_a_text_too_long_to_embed_is_cut_with_a_warning(tiny_encoder):
    from domain_tune.embedding import MAX_TEXT_CHARS, EmbedWarning

    long = "nurse " * (MAX_TEXT_CHARS // 6 + 100)
    with pytest.warns(EmbedWarning, match=f"1 text longer than {MAX_TEXT_CHARS:,} characters "
                                          f"\(first: item 1, {len(long):,} characters\)"):
        got = dt.encode(tiny_encoder, ["chef", long])
    np.testing.assert_array_equal(got, dt.encode(tiny_encoder, ["chef", long[:MAX_TEXT_CHARS]]))


def test_a_model_that_is_neither_a_path_nor_a_keras_model_is_a_bad_input(tmp_path):
    import pandas as pd

    with pytest.raises(BadInputError, match="^model must be what --model takes .* not a int"):
        dt.encode(3, ["nurse"])
    table = pd.DataFrame({"query": ["north"], "conceptUri": ["N"], "label": ["north"]})
    with pytest.raises(BadInputError, match="^queries must be a name or a path, not a DataFrame; "
                                            "write it to a CSV first"):
        dt.evaluate_retrieval(compass_model(), table, table)


def test_train_reports_epochs_as_lines_where_a_progress_bar_cannot_render(monkeypatch):
    """Keras' bar (verbose=1) wrote its in-place updates and colour codes into captured stdout
    and log files; there the epochs are one line each, as the command prints them."""
    import io
    import sys

    monkeypatch.delitem(sys.modules, "ipykernel", raising=False)
    monkeypatch.setattr(sys, "stdout", io.StringIO())
    assert make_train_job("pairs.csv", "out").verbose == 2
    assert make_train_job("pairs.csv", "out", quiet=True).verbose == 0

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.setattr(sys, "stdout", Terminal())
    assert make_train_job("pairs.csv", "out").verbose == 1
    monkeypatch.setattr(sys, "stdout", io.StringIO())
    monkeypatch.setitem(sys.modules, "ipykernel", sys)  # a notebook renders the bar
    assert make_train_job("pairs.csv", "out").verbose == 1


def test_a_tf_hub_object_is_a_model_too(tiny_encoder, tmp_path):
    """The notebook's ``embed = hub.load(DIR)`` passed where a model goes: it takes no
    ``training`` argument, and encode failed with a TypeError from tf.function."""
    import tensorflow_hub as hub

    texts = ["nurse", "chef", "data analyst"]
    embed = hub.load(dt.export(tiny_encoder, tmp_path / "exported"))
    np.testing.assert_allclose(dt.encode(embed, texts), dt.encode(tiny_encoder, texts), atol=1e-6)
    assert dt.match(embed, ["nurse"], texts, top_k=1)["corpus_text"].tolist() == ["nurse"]


@pytest.mark.parametrize("content, message", [
    (b"{not json", r"is not valid JSON \(JSONDecodeError: Expecting property name"),
    (b"\xff\xfe", r"is not valid JSON \(UnicodeDecodeError: "),
    (b"[1, 2]", r"holds a list, not a run's metrics \(a JSON object\)$"),
])
def test_a_damaged_metrics_file_is_bad_input(tmp_path, content, message):
    (tmp_path / "metrics.json").write_bytes(content)
    with pytest.raises(BadInputError, match=message):
        dt.read_metrics(tmp_path)


def test_blank_queries_are_named_in_a_warning(tiny_encoder):
    """As the command line does; the in-memory match dropped them silently."""
    from domain_tune.matching import MatchWarning

    with pytest.warns(MatchWarning, match="^2 blank queries left without matches$") as caught:
        frame = dt.match(tiny_encoder, ["", "nurse", None], ["nurse", "chef"], top_k=1)
    assert frame["query"].tolist() == ["nurse"]
    assert caught[0].filename == __file__  # the caller's line, not domain-tune's


def test_a_validation_file_that_is_the_training_file_is_named(tmp_path, pairs_csv):
    import shutil

    from domain_tune.datasets.pairs import PairsWarning
    from domain_tune.training.run import _read_data

    copy = tmp_path / "copy.csv"
    shutil.copy(pairs_csv, copy)
    job = make_train_job(pairs_csv, tmp_path / "run", no_sts=True, validation_file=str(copy))
    with pytest.warns(PairsWarning, match="is the training file: the validation loss measures "
                                          "the pairs trained on"):
        _read_data(job)


def test_a_tf_hub_object_exports_again(tiny_encoder, tmp_path):
    """A ``hub.load(DIR)`` object is a model for export too, with its variables (export read
    Keras' layer list of it and failed with AttributeError)."""
    import tensorflow_hub as hub

    texts = ["nurse", "chef"]
    embed = hub.load(dt.export(tiny_encoder, tmp_path / "first"))
    again = hub.load(dt.export(embed, tmp_path / "second"))
    np.testing.assert_allclose(again(texts).numpy(), dt.encode(tiny_encoder, texts), atol=1e-6)
    assert len(again.variables) == len(embed.variables) > 0
    assert len(again.trainable_variables) == len(embed.trainable_variables) > 0


@pytest.mark.parametrize("fn, message", [
    (lambda x: [1, 2], "the model returned an int32 tensor of shape [2]"),
    (lambda x: x, "the model returned a string tensor of shape [None]"),
    (lambda x: {"a": tf_zeros(x), "b": tf_zeros(x)},
     "the model returned a dictionary of a, b, none of them 'outputs'"),
    (lambda x: x + 1, "the model failed on a batch of strings (Input 'y' of 'Add' Op has type "
                      "int32 that does not match type string of argument 'x'.)"),
    (lambda x: tf_zeros(x)[:1], "the model returned 1 rows for 2 texts"),
])
@pytest.mark.parametrize("call", ["encode", "export"])
def test_a_callable_that_does_not_embed_strings_is_refused(fn, message, call, tmp_path):
    """Any callable goes where a model does; one that does not map strings to one row each
    is a BadInputError naming what it returned (it was an AttributeError or IndexError from
    inside domain-tune), and export writes nothing."""
    import re

    contract = "; a model must map a (batch,) string tensor to (batch, dim) embeddings"
    with pytest.raises(BadInputError, match="^" + re.escape(message + contract) + "$"):
        if call == "encode":
            dt.encode(fn, ["a", "b c"])
        else:
            dt.export(fn, tmp_path / "out")
    assert list(tmp_path.iterdir()) == []


def tf_zeros(x, dtype="float32"):
    import tensorflow as tf

    return tf.zeros([tf.shape(x)[0], 3], dtype)


@pytest.mark.parametrize("fn", [lambda x: {"outputs": tf_zeros(x) + 1.0},
                                lambda x: (tf_zeros(x) + 1.0,),
                                lambda x: tf_zeros(x, "int32") + 1])
def test_signature_like_outputs_of_a_callable_are_embeddings(fn):
    """A signature's ``{"outputs": ...}``, a one-element tuple, integer rows: float32 rows."""
    out = dt.encode(fn, ["a", "b", "a"])
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, np.ones((3, 3), np.float32))


def test_plot_titles_given_as_one_string_are_refused():
    """Not split into characters: titles="ab" titled two panels "a" and "b"."""
    with pytest.raises(BadInputError, match="^titles must be a list of strings, one per model, "
                                            "not one string$"):
        dt.plot_similarity(compass_model(), compass_model(), ["north", "south"], titles="ab")


@pytest.mark.parametrize("options, message", [
    ({"no_sts": True, "sts_dir": "/nope", "multilingual": "klingon"},
     "train: sts_dir and multilingual have no effect with no_sts=True; ignored"),
    ({"no_sts": True, "multilingual": "none", "sts_limit": 5},
     "train: sts_limit has no effect with no_sts=True; ignored"),
    ({"max_new_pieces": 10}, "train: max_new_pieces needs add_vocab; ignored"),
    ({"validation_file": "v.csv", "validation_split": 0.1},
     "train: validation_split has no effect with validation_file; ignored"),
    ({"scale": 30.0}, "train: scale has no effect with loss='mse'; ignored"),
])
def test_train_warns_about_options_another_option_makes_ineffective(options, message):
    from domain_tune.errors import DomainTuneWarning

    with pytest.warns(DomainTuneWarning) as caught:
        make_train_job("pairs.csv", "out", **options)
    assert [str(w.message) for w in caught] == [message]


def test_train_options_that_all_take_effect_give_no_warning():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        job = make_train_job("pairs.csv", "out", no_sts=False, sts_dir="/data", loss="cosent",
                             scale=30.0, add_vocab="auto", max_new_pieces=10)
    assert job.sts and job.fit.scale == 30.0
