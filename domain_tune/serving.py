"""An HTTP JSON service around a model: ``/health``, ``/embed`` and ``/match``.

A Starlette app served by uvicorn (the ``[serve]`` extra).  Requests that
arrive together are embedded together: each request's texts join a queue,
and one worker takes everything waiting (up to ``max_batch`` texts, after
at most ``batch_wait`` seconds) into one model call, so 100 concurrent
requests of 8 texts cost a few batches rather than 100 calls.

Replies::

    GET  /health                          {"status": "ok", "model": ..., "dim": 512, "corpus": N}
    POST /embed  {"texts": [...]}         {"embeddings": [[...], ...]}   (the rows `embed` writes)
    POST /match  {"queries": [...], "top_k": 5}
                 {"matches": [[{"id", "text", "cosine", "angular"}, ...], ...]}

Errors are ``{"error": "one line"}``: 400 for bad input (malformed JSON
included), 413 for a body or a list over the limits, 404 for an unknown
route, 405 for a wrong method.  uvicorn stops cleanly on SIGTERM or SIGINT.
"""

import asyncio
import concurrent.futures
import contextlib
from typing import Optional

import numpy as np

from domain_tune.errors import BadInputError
from domain_tune.similarity import angular

EXTRA = 'pip install -e ".[serve]"'
MAX_BODY_BYTES = 4 * 1024 * 1024
MAX_TEXTS = 1024  # texts (or queries) in one request
MAX_TOP_K = 100
MAX_BATCH = 256  # texts embedded in one model call
BATCH_WAIT = 0.005  # seconds the batcher waits for more requests


def _modules():
    try:
        import orjson  # noqa: F401
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as e:
        raise BadInputError(f"serve needs starlette, uvicorn and orjson ({e.name} is missing); "
                            f"install the serve extra: {EXTRA}") from None


def _json_response_class():
    """A Starlette response that writes JSON with orjson: float32 rows as their shortest
    float32 text, straight from the NumPy array (about 25x faster than ``json.dumps`` of
    ``tolist()``, whose float64 text is twice as long), which the event loop would otherwise
    spend most of its time on under concurrent ``/embed`` requests."""
    import orjson
    from starlette.responses import JSONResponse

    class ORJSONResponse(JSONResponse):
        def render(self, content) -> bytes:
            return orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY)

    return ORJSONResponse


class _RequestError(Exception):
    def __init__(self, status, message):
        super().__init__(message)
        self.status = status


class Batcher:
    """Embeds the texts of concurrent requests together, in one worker thread."""

    def __init__(self, encode_fn, max_batch=MAX_BATCH, wait=BATCH_WAIT):
        self.encode_fn, self.max_batch, self.wait = encode_fn, max_batch, wait
        self.queue: Optional[asyncio.Queue] = None
        self.executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="encode")
        self.task = None
        self.calls = 0  # model calls made (for the batching figures)

    async def start(self):
        self.queue = asyncio.Queue()
        self.task = asyncio.create_task(self._run())

    async def stop(self):
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        self.executor.shutdown(wait=True)

    async def embed(self, texts):
        future = asyncio.get_running_loop().create_future()
        await self.queue.put((list(texts), future))
        return await future

    async def _run(self):
        loop = asyncio.get_running_loop()
        while True:
            items = [await self.queue.get()]
            size = len(items[0][0])
            deadline = loop.time() + self.wait
            while size < self.max_batch:
                try:
                    item = self.queue.get_nowait()
                except asyncio.QueueEmpty:
                    remaining = deadline - loop.time()
                    if remaining <= 0:
                        break
                    try:
                        item = await asyncio.wait_for(self.queue.get(), remaining)
                    except asyncio.TimeoutError:
                        break
                items.append(item)
                size += len(item[0])
            texts = [t for batch, _ in items for t in batch]
            try:
                rows = await loop.run_in_executor(self.executor, self.encode_fn, texts)
                self.calls += 1
            except Exception as e:  # the model failed: every waiting request learns it
                for _, future in items:
                    if not future.done():
                        future.set_exception(e)
                continue
            start = 0
            for batch, future in items:
                if not future.done():
                    future.set_result(rows[start : start + len(batch)])
                start += len(batch)


def _texts(body, field, limit):
    if not isinstance(body, dict):
        raise _RequestError(400, f"the body must be a JSON object with {field!r}")
    if field not in body:
        raise _RequestError(400, f"the body has no {field!r} (a list of strings)")
    texts = body[field]
    if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
        raise _RequestError(400, f"{field!r} must be a list of strings")
    if not texts:
        raise _RequestError(400, f"{field!r} is empty")
    if len(texts) > limit:
        raise _RequestError(413, f"{len(texts):,} {field} in one request; at most {limit:,}")
    return texts


def create_app(model, model_spec: str, index=None, max_body_bytes: int = MAX_BODY_BYTES,
               max_texts: int = MAX_TEXTS, max_batch: int = MAX_BATCH,
               batch_wait: float = BATCH_WAIT):
    """The ASGI app around a loaded ``model`` (and an :class:`~domain_tune.indexing.Index`
    to match against, or ``None``)."""
    _modules()
    import orjson
    from starlette.applications import Starlette
    from starlette.exceptions import HTTPException
    from starlette.routing import Route

    from domain_tune.embedding import encode

    JSONResponse = _json_response_class()

    dim = int(encode(model, ["warm up"]).shape[1])
    batcher = Batcher(lambda texts: encode(model, texts, batch_size=max_batch), max_batch,
                      batch_wait)

    def error(status, message):
        return JSONResponse({"error": " ".join(str(message).split())}, status_code=status)

    async def body_json(request):
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > max_body_bytes:
            raise _RequestError(413, f"the body has {int(length):,} bytes; at most "
                                f"{max_body_bytes:,}")
        data = bytearray()
        async for chunk in request.stream():
            data.extend(chunk)
            if len(data) > max_body_bytes:
                raise _RequestError(413, f"the body is over {max_body_bytes:,} bytes")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise _RequestError(400, "the body is not UTF-8") from None
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError as e:
            raise _RequestError(400, f"malformed JSON ({e})") from None

    def handler(fn):
        async def wrapped(request):
            try:
                return await fn(request)
            except _RequestError as e:
                return error(e.status, e)
        return wrapped

    async def health(request):
        return JSONResponse({"status": "ok", "model": model_spec, "dim": dim,
                             "corpus": None if index is None else len(index),
                             "model_calls": batcher.calls})

    async def embed(request):
        texts = _texts(await body_json(request), "texts", max_texts)
        rows = await batcher.embed(texts)
        return JSONResponse({"embeddings": np.ascontiguousarray(rows, dtype=np.float32)})

    async def match(request):
        if index is None:
            raise _RequestError(404, "no corpus to match against: start serve with --corpus or "
                                "--index")
        body = await body_json(request)
        queries = _texts(body, "queries", max_texts)
        top_k = body.get("top_k", 5)
        if isinstance(top_k, bool) or not isinstance(top_k, int) or not 1 <= top_k <= MAX_TOP_K:
            raise _RequestError(400, f"'top_k' must be an integer from 1 to {MAX_TOP_K}")
        blank = [not q.strip() for q in queries]
        live = [q for q, b in zip(queries, blank) if not b]
        found = cos = None
        if live:
            rows = np.asarray(await batcher.embed(live), dtype=np.float32)
            rows /= np.linalg.norm(rows, axis=1, keepdims=True).clip(1e-12)
            found, cos = await asyncio.get_running_loop().run_in_executor(
                None, index.search, rows, top_k)
        matches, j = [], 0
        for b in blank:
            if b:
                matches.append([])
                continue
            matches.append([{"id": index.ids[r], "text": index.texts[r],
                             "cosine": round(float(c), 6), "angular": round(float(angular(c)), 6)}
                            for r, c in zip(found[j], cos[j]) if r >= 0])
            j += 1
        return JSONResponse({"matches": matches})

    async def not_found(request, exc):
        return error(404, f"no route {request.url.path}; use GET /health, POST /embed, POST /match")

    async def http_error(request, exc: HTTPException):
        if exc.status_code == 405:
            return error(405, f"{request.method} is not allowed on {request.url.path}")
        return error(exc.status_code, exc.detail)

    async def server_error(request, exc):
        return error(500, f"internal error ({type(exc).__name__}: {exc})")

    @contextlib.asynccontextmanager
    async def lifespan(app):
        await batcher.start()
        yield
        await batcher.stop()

    app = Starlette(routes=[Route("/health", health, methods=["GET"]),
                            Route("/embed", handler(embed), methods=["POST"]),
                            Route("/match", handler(match), methods=["POST"])],
                    exception_handlers={404: not_found, HTTPException: http_error,
                                        Exception: server_error},
                    lifespan=lifespan)
    app.state.batcher = batcher
    return app


def corpus_index(model, texts, ids, batch_size=256, progress=False):
    """An in-memory exact index of a corpus (for ``serve --corpus``)."""
    from domain_tune.embedding import encode
    from domain_tune.indexing import Index
    from domain_tune.similarity import normalize_in_place

    e = normalize_in_place(encode(model, texts, batch_size=batch_size, progress=progress,
                                  label="Corpus"))
    record = {"kind": "flat", "precision": "float32", "count": len(texts), "dim": e.shape[1]}
    return Index(None, record, list(ids), list(texts), e)


def run(app, host="127.0.0.1", port=8080, log_level="info"):
    """Serve ``app`` until SIGTERM or SIGINT (uvicorn's graceful shutdown)."""
    import uvicorn

    uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=False,
                timeout_graceful_shutdown=10)
