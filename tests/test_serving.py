"""``domain-tune serve``: the HTTP service over real sockets on 127.0.0.1."""

import concurrent.futures
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

pytest.importorskip("starlette", reason="the [serve] extra (starlette, uvicorn) is not installed")
pytest.importorskip("uvicorn", reason="the [serve] extra (starlette, uvicorn) is not installed")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = ["nurse", "chef", "data scientist", "welder", "nurse"]


def request(port, method, path, body=None, raw=None, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    conn.request(method, path, body=data, headers={"Content-Type": "application/json",
                                                    **(headers or {})})
    response = conn.getresponse()
    payload = response.read()
    conn.close()
    return response.status, json.loads(payload)


@pytest.fixture
def service(tmp_path, tiny_model_dir):
    """The app on a free port, served by uvicorn in a thread."""
    import uvicorn

    from domain_tune import api

    (tmp_path / "corpus.txt").write_text("\n".join(CORPUS) + "\n", encoding="utf-8")
    app = api.service(tiny_model_dir, corpus=tmp_path / "corpus.txt", max_texts=64,
                      max_body_bytes=20000)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(600):
        if server.started:
            break
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield port, app, str(tiny_model_dir)
    server.should_exit = True
    thread.join(30)


def test_health_embed_and_match(service):
    from domain_tune import api

    port, _, model = service
    status, body = request(port, "GET", "/health")
    assert status == 200 and body["status"] == "ok" and body["corpus"] == 5
    status, body = request(port, "POST", "/embed", {"texts": ["nurse", "Krankenpfleger", ""]})
    assert status == 200
    np.testing.assert_allclose(body["embeddings"],
                               api.encode(model, ["nurse", "Krankenpfleger", ""]), atol=1e-6)
    status, body = request(port, "POST", "/match", {"queries": ["nurse", " ", "chef"], "top_k": 3})
    assert status == 200
    frame = api.match(model, ["nurse", "chef"], CORPUS, top_k=3)
    first = body["matches"][0]
    assert [m["id"] for m in first] == frame[frame["query"] == "nurse"]["corpus_id"].tolist()
    assert first[0]["text"] == "nurse" and first[0]["id"] == 1 and first[1]["id"] == 5
    np.testing.assert_allclose([m["cosine"] for m in first],
                               frame[frame["query"] == "nurse"]["cosine"], atol=2e-6)
    assert body["matches"][1] == []  # a blank query
    assert [m["id"] for m in body["matches"][2]] == \
        frame[frame["query"] == "chef"]["corpus_id"].tolist()


@pytest.mark.parametrize("method,path,payload,status,message", [
    ("POST", "/embed", b"{not json", 400, "malformed JSON"),
    ("POST", "/embed", b"\xff\xfe", 400, "not UTF-8"),
    ("POST", "/embed", {"text": ["a"]}, 400, "has no 'texts'"),
    ("POST", "/embed", {"texts": "a"}, 400, "must be a list of strings"),
    ("POST", "/embed", {"texts": [1, 2]}, 400, "must be a list of strings"),
    ("POST", "/embed", {"texts": []}, 400, "is empty"),
    ("POST", "/embed", [1], 400, "must be a JSON object"),
    ("POST", "/embed", {"texts": ["a"] * 65}, 413, "at most 64"),
    ("POST", "/embed", {"texts": ["x" * 30000]}, 413, "at most 20,000"),
    ("POST", "/match", {"queries": ["a"], "top_k": 0}, 400, "'top_k' must be an integer"),
    ("POST", "/match", {"queries": ["a"], "top_k": "5"}, 400, "'top_k' must be an integer"),
    ("GET", "/nowhere", None, 404, "no route /nowhere"),
    ("GET", "/embed", None, 405, "GET is not allowed on /embed"),
])
def test_bad_requests_get_one_line_json_errors(service, method, path, payload, status, message):
    port = service[0]
    raw = payload if isinstance(payload, bytes) else None
    got, body = request(port, method, path, body=None if raw else payload, raw=raw)
    assert got == status, body
    assert set(body) == {"error"} and message in body["error"] and "\n" not in body["error"]


def test_concurrent_requests_are_batched_and_equal_embed(service):
    from domain_tune import api

    port, app, model = service
    texts = [[f"job {i} {j}" for j in range(8)] for i in range(100)]
    calls = app.state.batcher.calls
    with concurrent.futures.ThreadPoolExecutor(32) as pool:
        replies = list(pool.map(lambda t: request(port, "POST", "/embed", {"texts": t}), texts))
    assert all(status == 200 for status, _ in replies)
    reference = api.encode(model, [t for batch in texts for t in batch]).reshape(100, 8, -1)
    for (status, body), expected in zip(replies, reference):
        np.testing.assert_allclose(body["embeddings"], expected, atol=1e-6)
    assert app.state.batcher.calls - calls < 100  # requests shared model calls


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_command_stops_cleanly_on_sigterm(tmp_path, tiny_model_dir):
    port = _free_port()
    env = dict(os.environ, PYTHONPATH=ROOT)
    proc = subprocess.Popen([sys.executable, "-m", "domain_tune.cli", "serve", "--model",
                             str(tiny_model_dir), "--port", str(port)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(1200):
            try:
                if request(port, "GET", "/health")[0] == 200:
                    break
            except OSError:
                time.sleep(0.1)
        status, body = request(port, "POST", "/match", {"queries": ["a"]})
        assert status == 404 and "start serve with --corpus or --index" in body["error"]
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "Shutting down" in err or "Finished server process" in err
    # a port in use: one line, exit 2, before the model loads
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        done = subprocess.run([sys.executable, "-m", "domain_tune.cli", "serve", "--model",
                               str(tiny_model_dir), "--port", str(taken)], env=env,
                              capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and f"cannot listen on 127.0.0.1:{taken}" in done.stderr


@pytest.mark.parametrize("module", ["uvicorn", "starlette", "orjson"])
def test_missing_extra_is_named(tiny_model_dir, monkeypatch, module):
    from domain_tune import api
    from domain_tune.errors import BadInputError

    monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(BadInputError, match=rf'\({module} is missing\); install the serve extra: '
                                            r'pip install -e "\.\[serve\]"'):
        api.service(tiny_model_dir)


def test_embeddings_travel_as_exact_float32_text():
    """The reply's numbers are the float32 rows' shortest text: read back as float32 they are
    the rows themselves, bit for bit."""
    from domain_tune.serving import _json_response_class

    rows = np.random.default_rng(0).standard_normal((8, 512)).astype(np.float32)
    body = _json_response_class()({"embeddings": rows}).body
    back = np.array(json.loads(body)["embeddings"], dtype=np.float32)
    assert back.dtype == np.float32 and np.array_equal(back, rows)
    assert len(body) < len(json.dumps({"embeddings": rows.tolist()}))  # float32 text, not float64
