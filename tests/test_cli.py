"""The command line: every command has help, outputs are right, bad input exits 2."""

import json

import numpy as np
import pytest

from domain_tune.cli import main
from tests.cli_helpers import error_line, run


def test_every_command_has_help():
    assert run("--help").exit_code == 0
    for name, command in main.commands.items():
        result = run(name, "--help")
        assert result.exit_code == 0, name
        assert command.help and len(command.help.strip()) > 20, name
        assert "Usage: main " + name in result.output or f"Usage: " in result.output


@pytest.mark.parametrize("ext", [".npy", ".csv", ".jsonl"])
def test_embed_formats(tmp_path, tiny_model_dir, ext):
    src = tmp_path / "texts.txt"
    src.write_text("data scientist\nnurse\n\nsous-chef\n", encoding="utf-8")
    out = tmp_path / f"out{ext}"
    result = run("embed", src, "--out", out, "--model", tiny_model_dir, "--batch-size", 2)
    assert result.exit_code == 0, result.output
    assert "Warning: 1 blank text (line 3) embedded as the empty string" in result.stderr
    if ext == ".npy":
        arr = np.load(out)
        assert arr.shape == (4, 8)
        np.testing.assert_allclose(np.linalg.norm(arr, axis=1), 1, rtol=1e-5)
    elif ext == ".csv":
        lines = out.read_text(encoding="utf-8").splitlines()
        assert lines[0].split(",")[:2] == ["text", "e0"] and len(lines) == 5
    else:
        rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
        assert [r["text"] for r in rows] == ["data scientist", "nurse", "", "sous-chef"]
        assert len(rows[0]["embedding"]) == 8


def test_embed_csv_column_matches_text_file(tmp_path, tiny_model_dir):
    (tmp_path / "t.csv").write_text('id,title\n1,"data, scientist"\n2,"multi\nline"\n', encoding="utf-8")
    (tmp_path / "t.txt").write_text("data, scientist\n", encoding="utf-8")
    assert run("embed", tmp_path / "t.csv", "-c", "title", "-o", tmp_path / "a.npy",
               "-m", tiny_model_dir).exit_code == 0
    assert run("embed", tmp_path / "t.txt", "-o", tmp_path / "b.npy", "-m", tiny_model_dir).exit_code == 0
    a, b = np.load(tmp_path / "a.npy"), np.load(tmp_path / "b.npy")
    assert a.shape == (2, 8)
    np.testing.assert_allclose(a[0], b[0], atol=1e-6)


@pytest.mark.parametrize(
    "setup, args, message",
    [
        (None, ["embed", "{tmp}/missing.txt", "-o", "{tmp}/o.npy"], "does not exist"),
        (None, ["embed", "{tmp}", "-o", "{tmp}/o.npy"], "is a directory"),
        ("empty", ["embed", "{tmp}/in.txt", "-o", "{tmp}/o.npy"], "is empty"),
        ("latin1", ["embed", "{tmp}/in.txt", "-o", "{tmp}/o.npy"], "not valid UTF-8"),
        ("binary", ["embed", "{tmp}/in.txt", "-o", "{tmp}/o.npy"], "binary file"),
        ("csv", ["embed", "{tmp}/in.csv", "-c", "nope", "-o", "{tmp}/o.npy"], "no column 'nope'"),
        ("csv", ["embed", "{tmp}/in.csv", "-o", "{tmp}/o.npy"], "choose one with --column"),
        ("text", ["embed", "{tmp}/in.txt", "-o", "{tmp}/o.parquet"], "unknown output format"),
        ("exists", ["embed", "{tmp}/in.txt", "-o", "{tmp}/o.npy"], "already exists"),
        ("text", ["embed", "{tmp}/in.txt", "-o", "{tmp}/o.npy", "-m", "no-such-model"],
         "unknown model"),
        ("text", ["embed", "{tmp}/in.txt", "-o", "{tmp}/o.npy", "-m", "{tmp}"],
         "neither model.keras nor saved_model.pb"),
        ("text", ["embed", "{tmp}/in.txt", "-o", "{tmp}/o.npy", "-b", "0"], "--batch-size"),
        (None, ["eval-sts", "--sts-dir", "{tmp}/nope"], "not a directory"),
        (None, ["eval-sts", "--sts-dir", "{tmp}"], "has no sts-dev.csv"),
        (None, ["eval-sts", "--split", "validation"], "--split"),
        (None, ["export", "-o", "{tmp}"], "already exists"),
        (None, ["export", "-o", "{tmp}/no/such/dir"], "does not exist"),
    ],
)
def test_bad_input_is_one_line_exit_2(tmp_path, setup, args, message):
    files = {
        "empty": [("in.txt", b"")],
        "latin1": [("in.txt", "caf\xe9 cr\xe8me\n".encode("latin-1"))],
        "binary": [("in.txt", b"\x89PNG\x00\x00\x01")],
        "csv": [("in.csv", b"a,b\n1,2\n")],
        "text": [("in.txt", b"hello\n")],
        "exists": [("in.txt", b"hello\n"), ("o.npy", b"keep me")],
    }
    for name, data in files.get(setup, []):
        (tmp_path / name).write_bytes(data)
    before = sorted(p.name for p in tmp_path.iterdir())
    result = run(*[a.format(tmp=tmp_path) for a in args])
    assert result.exit_code == 2, result.output
    assert message in error_line(result)
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing half-written


def test_hub_handle_offline_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("TFHUB_CACHE_DIR", str(tmp_path / "hub"))
    (tmp_path / "in.txt").write_text("hello\n", encoding="utf-8")
    result = run("embed", tmp_path / "in.txt", "-o", tmp_path / "o.npy",
                 "-m", "http://127.0.0.1:9/google/universal-sentence-encoder-multilingual/3")
    assert result.exit_code == 2
    assert "cannot fetch TF Hub model" in error_line(result)


@pytest.mark.real
def test_eval_sts_json_on_part_of_dev(sts_dir):
    result = run("eval-sts", "--sts-dir", sts_dir, "--limit", 400, "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert set(data) == {"split", "n", "similarity", "pearson", "spearman", "model"}
    assert data["n"] == 400 and data["model"] == "use-m3"
    assert data["pearson"] > 0.8
    angular = json.loads(run("eval-sts", "--sts-dir", sts_dir, "--limit", 400, "--json",
                             "--similarity", "angular").stdout)
    assert angular["similarity"] == "angular"
    assert angular["spearman"] == pytest.approx(data["spearman"], abs=1e-9)  # monotone map


@pytest.mark.parametrize("folder", ["my model", "modèle ü", "-dash", "汉字"])
def test_a_saved_model_in_any_folder_name_is_a_model(tmp_path, tiny_model_dir, folder):
    exported = tmp_path / folder
    assert run("export", "--model", tiny_model_dir, "--out", exported).exit_code == 0
    texts = tmp_path / "t.txt"
    texts.write_text("nurse\nchef\n", encoding="utf-8")
    outs = []
    for model, name in ((exported, "a.npy"), (tiny_model_dir, "b.npy")):
        result = run("embed", texts, "--model", model, "--out", tmp_path / name)
        assert result.exit_code == 0, result.output
        outs.append(np.load(tmp_path / name))
    np.testing.assert_allclose(outs[0], outs[1], atol=1e-5)


def test_a_keras_file_named_with_a_trailing_slash_is_that_file(tmp_path, tiny_model_dir):
    texts = tmp_path / "t.txt"
    texts.write_text("nurse\nchef\n", encoding="utf-8")
    for model, name in ((f"{tiny_model_dir}/model.keras/", "a.npy"), (tiny_model_dir, "b.npy")):
        result = run("embed", texts, "--model", model, "--out", tmp_path / name)
        assert result.exit_code == 0, result.output
    np.testing.assert_array_equal(np.load(tmp_path / "a.npy"), np.load(tmp_path / "b.npy"))


def test_internal_errors_are_one_short_line(tmp_path, monkeypatch):
    import tensorflow as tf

    from domain_tune import api

    def oom(model):
        raise tf.errors.ResourceExhaustedError(None, None, "OOM when allocating\n  File x, line 1")

    monkeypatch.setattr(api, "load_model", oom)  # export loads through the Python API
    result = run("export", "--out", tmp_path / "x")
    assert result.exit_code == 1
    assert error_line(result).startswith("Error: out of memory")
    monkeypatch.setattr(api, "load_model", lambda model: (_ for _ in ()).throw(
        RuntimeError("first line\nGraph execution error:\n  File y")))
    result = run("export", "--out", tmp_path / "x")
    assert result.exit_code == 1
    assert error_line(result) == ("Error: RuntimeError: first line "
                                  "(set DOMAIN_TUNE_DEBUG=1 to see the traceback)")
    assert not (tmp_path / "x").exists()


def test_every_command_that_reports_has_json():
    for name, command in main.commands.items():
        if name == "serve":  # runs until stopped: it reports nothing but its HTTP replies
            continue
        commands = command.commands.values() if hasattr(command, "commands") else [command]
        for c in commands:
            assert "as_json" in {p.name for p in c.params}, c.name


def test_plot_json_holds_the_matrices_drawn(tmp_path, tiny_model_dir):
    texts = tmp_path / "t.txt"
    texts.write_text("nurse\nchef\npilot\n", encoding="utf-8")
    result = run("plot-similarity", "-m", tiny_model_dir, "--texts", texts, "--metric", "cosine",
                 "--out", tmp_path / "p.png", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    (entry,) = report["similarity"]
    assert entry["model"] == str(tiny_model_dir)
    assert report["texts"] == ["nurse", "chef", "pilot"] and np.shape(entry["matrix"]) == (3, 3)
    np.testing.assert_allclose(np.diag(entry["matrix"]), 1.0, atol=1e-5)
    same = run("plot-similarity", "-m", tiny_model_dir, "--compare", tiny_model_dir, "--texts",
               texts, "--out", tmp_path / "q.png", "--json")
    first, second = json.loads(same.stdout)["similarity"]  # one entry per model, even the same
    assert first["matrix"] == second["matrix"]
    exported = run("export", "-m", tiny_model_dir, "--out", tmp_path / "x", "--json")
    assert json.loads(exported.stdout)["signature"] == "serving_default"


def test_counts_in_messages_are_plural_english():
    from domain_tune.cli import _count

    assert _count(1, "epoch") == "1 epoch"
    assert _count(2, "epoch") == "2 epochs"  # not "epoches": -ch is not always -ches
    assert _count(0, "hard negative") == "0 hard negatives"
    assert _count(1234, "pair") == "1,234 pairs"
    assert _count(1, "match", "matches") == "1 match"
    assert _count(6, "match", "matches") == "6 matches"
