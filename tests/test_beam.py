"""``domain-tune beam embed`` on the DirectRunner: the same rows as ``embed``."""

import glob
import json
import sys

import numpy as np
import pytest

from tests.cli_helpers import error_line, run

pytest.importorskip("apache_beam", reason="the [beam] extra (apache-beam) is not installed")

TEXTS_A = ["nurse", "chef", "data scientist", "", "Krankenpfleger"]
TEXTS_B = ["welder", "baker", "chef"]


def _inputs(tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.txt").write_text("\n".join(TEXTS_A) + "\n", encoding="utf-8")
    (tmp_path / "in" / "b.txt").write_text("\n".join(TEXTS_B) + "\n", encoding="utf-8")
    return str(tmp_path / "in" / "*.txt")


def test_beam_embed_npz_shards_equal_embed(tmp_path, tiny_model_dir):
    from domain_tune import api
    from domain_tune.beam import read_npz_shards

    result = run("beam", "embed", _inputs(tmp_path), "--out", tmp_path / "out" / "emb",
                 "--model", tiny_model_dir, "--shards", 3, "--max-batch-size", 4, "--json")
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    assert info["texts"] == 8 and info["files"] == 2 and len(info["outputs"]) == 3
    ids, texts, rows = read_npz_shards(str(tmp_path / "out" / "emb"))
    a, b = str(tmp_path / "in" / "a.txt"), str(tmp_path / "in" / "b.txt")
    expected = {f"{a}:{i + 1}": t for i, t in enumerate(TEXTS_A)}
    expected.update({f"{b}:{i + 1}": t for i, t in enumerate(TEXTS_B)})
    assert dict(zip(ids, texts)) == expected
    reference = api.encode(str(tiny_model_dir), texts)
    np.testing.assert_allclose(rows, reference, atol=1e-6)
    # the same texts through `domain-tune embed`
    (tmp_path / "all.txt").write_text("\n".join(texts) + "\n", encoding="utf-8")
    assert run("embed", tmp_path / "all.txt", "--out", tmp_path / "all.npy", "--model",
               tiny_model_dir).exit_code == 0
    np.testing.assert_allclose(rows, np.load(tmp_path / "all.npy"), atol=1e-6)


def test_every_npz_shard_is_written_even_one_no_text_hashed_to(tmp_path, tiny_model_dir):
    from domain_tune import api
    from domain_tune.beam import read_npz_shards

    (tmp_path / "two.txt").write_text("nurse\nchef\n", encoding="utf-8")
    result = run("beam", "embed", tmp_path / "two.txt", "--out", tmp_path / "e",
                 "--model", tiny_model_dir, "--shards", 5, "--json")
    assert result.exit_code == 0, result.output
    outputs = json.loads(result.stdout)["outputs"]
    assert [o.rsplit("-", 3)[-3:] for o in outputs] == [[f"{i:05d}", "of", "00005.npz"] for i in range(5)]
    ids, texts, rows = read_npz_shards(str(tmp_path / "e"))
    width = api.encode(str(tiny_model_dir), ["nurse"]).shape[1]
    assert sorted(texts) == ["chef", "nurse"] and rows.shape == (2, width)
    sizes = []
    for path in outputs:
        with np.load(path) as shard:
            sizes.append(len(shard["ids"]))
            assert shard["embeddings"].shape == (len(shard["ids"]), width)  # empty ones too
    assert sum(sizes) == 2 and sizes.count(0) >= 3


def test_beam_embed_csv_ids_and_tfrecord(tmp_path, tiny_model_dir):
    import tensorflow as tf

    from domain_tune import api

    (tmp_path / "c.csv").write_text("code,title\nN1,nurse\nC1,\"chef, pastry\"\n",
                                    encoding="utf-8")
    result = run("beam", "embed", tmp_path / "c.csv", "--column", "title", "--id-column", "code",
                 "--format", "tfrecord", "--out", tmp_path / "t", "--model", tiny_model_dir)
    assert result.exit_code == 0, result.output
    assert "Wrote 2 embeddings from 1 file" in result.stdout
    files = glob.glob(str(tmp_path / "t-*-of-*.tfrecord"))
    assert len(files) == 1
    got = {}
    for record in tf.data.TFRecordDataset(files):
        ex = tf.train.Example.FromString(record.numpy())
        f = ex.features.feature
        got[f["id"].bytes_list.value[0].decode()] = (f["text"].bytes_list.value[0].decode(),
                                                     np.array(f["embedding"].float_list.value))
    assert {k: v[0] for k, v in got.items()} == {"N1": "nurse", "C1": "chef, pastry"}
    reference = api.encode(str(tiny_model_dir), ["nurse", "chef, pastry"])
    np.testing.assert_allclose([got["N1"][1], got["C1"][1]], reference, atol=1e-6)


def test_handler_loads_an_exported_savedmodel(tmp_path, tiny_model_dir):
    from domain_tune import api
    from domain_tune.beam import encoder_model_handler

    assert run("export", "--model", tiny_model_dir, "--out", tmp_path / "sm").exit_code == 0
    handler = encoder_model_handler(str(tmp_path / "sm"), max_batch_size=2)
    assert handler.batch_elements_kwargs()["max_batch_size"] == 2
    model = handler.load_model()
    predictions = list(handler.run_inference(["nurse", "chef"], model))
    assert [p.example for p in predictions] == ["nurse", "chef"]
    np.testing.assert_allclose([p.inference for p in predictions],
                               api.encode(str(tiny_model_dir), ["nurse", "chef"]), atol=1e-6)


def test_beam_embed_errors(tmp_path, tiny_model_dir, monkeypatch):
    pattern = _inputs(tmp_path)
    cases = [
        ([str(tmp_path / "none-*.txt"), "--out", tmp_path / "o"], "no input files match"),
        ([pattern, "--out", tmp_path / "o", "--id-column", "x"], "id_column needs column"),
    ]
    for args, message in cases:
        result = run("beam", "embed", *args, "--model", tiny_model_dir)
        assert result.exit_code == 2, result.output
        assert message in error_line(result)
    assert run("beam", "embed", pattern, "--out", tmp_path / "o", "--model",
               tiny_model_dir).exit_code == 0
    result = run("beam", "embed", pattern, "--out", tmp_path / "o", "--model", tiny_model_dir)
    assert result.exit_code == 2 and "already exists" in error_line(result)
    monkeypatch.setitem(sys.modules, "apache_beam", None)
    result = run("beam", "embed", pattern, "--out", tmp_path / "p", "--model", tiny_model_dir)
    assert result.exit_code == 2 and '.[beam]' in error_line(result)
