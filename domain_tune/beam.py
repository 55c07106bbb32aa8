"""Bulk embedding on Apache Beam (the ``[beam]`` extra): a RunInference model handler for
a domain-tune model, and the ``domain-tune beam embed`` pipeline.

:class:`EncoderModelHandler` loads what ``--model`` accepts (the preset, a run
directory, a ``.keras`` file, an exported SavedModel) once per worker process
(``large_model=True`` shares one copy between the processes of a worker) and
embeds batches of strings; Beam's ``RunInference`` batches the elements
(``min_batch_size`` / ``max_batch_size``).  Beam's own
``TFModelHandlerTensor`` loads with ``tf.keras.models.load_model``, which
Keras 3 refuses for SavedModels; this handler goes through
:func:`domain_tune.models.loading.load_model`.

The pipeline reads text files (one text per line; id ``FILE:LINE``) or CSV
files (a text ``column``, ids from ``id_column`` or ``FILE:ROW``), matched by a
glob on any filesystem Beam reads (local, ``gs://``, ``s3://``), and writes
``PREFIX-SSSSS-of-NNNNN.npz`` shards (``ids``, ``texts``, float32
``embeddings``; sorted by id) or ``.tfrecord`` shards of ``tf.train.Example``
(``id``, ``text``, ``embedding``).  The same command runs on the DirectRunner
and, with the runner's pipeline options, on Dataflow, Flink or Spark.
"""

import csv
import io
import os
import zlib
from typing import Any, Iterable, List, Optional, Sequence

import numpy as np

from domain_tune.errors import BadInputError

EXTRA = 'pip install -e ".[beam]"'
FORMATS = ("npz", "tfrecord")


def _beam():
    import logging

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # Beam warns at import about optional GCP clients
    try:
        import apache_beam
    except ImportError:
        raise BadInputError(f"beam embed needs Apache Beam; install the beam extra: {EXTRA}") \
            from None
    finally:
        root.setLevel(level)
    return apache_beam


def _handler_base():
    _beam()
    from apache_beam.ml.inference.base import ModelHandler

    return ModelHandler


def encoder_model_handler(model: str, *, min_batch_size: Optional[int] = None,
                          max_batch_size: Optional[int] = 256, large_model: bool = False,
                          batch_size: int = 256):
    """A Beam ``ModelHandler`` that embeds strings with ``model`` (what ``--model`` takes):
    each prediction is a ``PredictionResult(example=text, inference=float32 row)``."""
    base = _handler_base()
    from apache_beam.ml.inference.base import PredictionResult

    class EncoderModelHandler(base):
        def __init__(self):
            super().__init__(min_batch_size=min_batch_size, max_batch_size=max_batch_size,
                             large_model=large_model)
            self.model_spec, self.batch_size = os.fspath(model), batch_size

        def load_model(self):
            from domain_tune._env import import_tensorflow

            import_tensorflow()
            from domain_tune.models.loading import load_model

            return load_model(self.model_spec)

        def run_inference(self, batch: Sequence[str], model: Any,
                          inference_args: Optional[dict] = None) -> Iterable[Any]:
            from domain_tune.embedding import encode

            rows = encode(model, list(batch), batch_size=self.batch_size)
            return [PredictionResult(text, row) for text, row in zip(batch, rows)]

        def get_num_bytes(self, batch: Sequence[str]) -> int:
            return sum(len(t.encode("utf-8")) for t in batch)

        def get_metrics_namespace(self) -> str:
            return "domain_tune_encoder"

    return EncoderModelHandler()


def _read_file(path: str, column: Optional[str], id_column: Optional[str]):
    """``(id, text)`` of every text of one file (opened through Beam's filesystems)."""
    from apache_beam.io.filesystems import FileSystems

    with FileSystems.open(path) as raw:
        text = io.TextIOWrapper(raw, encoding="utf-8", newline="")
        if column is None:
            for number, line in enumerate(text, start=1):
                yield f"{path}:{number}", line.rstrip("\r\n")
            return
        reader = csv.DictReader(text)
        if column not in (reader.fieldnames or []):
            raise ValueError(f"{path} has no column {column!r} (columns: "
                             f"{', '.join(reader.fieldnames or [])})")
        for number, row in enumerate(reader, start=2):
            key = row[id_column] if id_column is not None else f"{path}:{number}"
            yield key, row[column] or ""


def _row(keyed):
    """``(id, text, float32 row)`` of a keyed prediction, counted in the ``texts`` metric."""
    from apache_beam.metrics import Metrics

    Metrics.counter("domain_tune", "texts").inc()
    id_, prediction = keyed
    return id_, prediction.example, np.asarray(prediction.inference, np.float32)


def _example(id_, text, row):
    import tensorflow as tf

    feature = {
        "id": tf.train.Feature(bytes_list=tf.train.BytesList(value=[str(id_).encode("utf-8")])),
        "text": tf.train.Feature(bytes_list=tf.train.BytesList(value=[text.encode("utf-8")])),
        "embedding": tf.train.Feature(float_list=tf.train.FloatList(value=row.tolist())),
    }
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def _write_shard(item, prefix: str, shards: int, dim: int):
    """Write one ``.npz`` shard (entries sorted by id); returns its path.  A shard that no
    entry hashed to is written too, with no rows (``dim`` columns), as Beam's file sinks do:
    ``--shards N`` always gives N files."""
    from apache_beam.io.filesystems import FileSystems

    shard, entries = item
    entries = sorted((e for e in entries if e is not None), key=lambda e: str(e[0]))
    path = f"{prefix}-{shard:05d}-of-{shards:05d}.npz"
    buffer = io.BytesIO()
    np.savez(buffer, ids=np.array([str(e[0]) for e in entries], dtype=object).astype(str),
             texts=np.array([e[1] for e in entries], dtype=object).astype(str),
             embeddings=(np.stack([e[2] for e in entries]).astype(np.float32) if entries
                         else np.zeros((0, dim), np.float32)))
    with FileSystems.create(path) as f:
        f.write(buffer.getvalue())
    return path


def _input_files(input_glob: str) -> List[str]:
    from apache_beam.io.filesystems import FileSystems

    try:
        matched = FileSystems.match([input_glob])[0].metadata_list
    except Exception as e:  # the filesystem's own error (no such bucket, ...)
        raise BadInputError(f"cannot list {input_glob} ({e})") from None
    files = sorted(m.path for m in matched)
    if not files:
        raise BadInputError(f"no input files match {input_glob}")
    return files


def embed_pipeline(input_glob: str, out_prefix: str, model: str, *, column: Optional[str] = None,
                   id_column: Optional[str] = None, output_format: str = "npz",
                   shards: int = 1, min_batch_size: Optional[int] = None,
                   max_batch_size: int = 256, large_model: bool = False,
                   pipeline_args: Sequence[str] = ()) -> dict:
    """Run the bulk-embedding pipeline; returns ``{"files", "outputs", "texts", ...}``.

    ``pipeline_args`` are Beam's own options (``--runner DataflowRunner --project
    ... --region ... --temp_location gs://...``, ``--runner FlinkRunner ...``); the
    default runner is the DirectRunner.
    """
    beam = _beam()
    from apache_beam.io.filesystems import FileSystems
    from apache_beam.ml.inference.base import KeyedModelHandler, RunInference
    from apache_beam.options.pipeline_options import PipelineOptions

    if output_format not in FORMATS:
        raise BadInputError(f"output format must be one of {', '.join(FORMATS)} "
                            f"(got {output_format!r})")
    if shards < 1:
        raise BadInputError(f"shards must be at least 1 (got {shards})")
    if id_column is not None and column is None:
        raise BadInputError("id_column needs column (the inputs are then CSV files)")
    files = _input_files(input_glob)
    parent = os.path.dirname(out_prefix)
    if "://" not in out_prefix and parent:
        if os.path.exists(parent) and not os.path.isdir(parent):
            raise BadInputError(f"--out {out_prefix}: {parent} is not a folder")
        os.makedirs(parent, exist_ok=True)
    existing = FileSystems.match([f"{out_prefix}-*-of-*"])[0].metadata_list
    if existing:
        raise BadInputError(f"{existing[0].path} already exists; choose another output prefix")
    handler = KeyedModelHandler(encoder_model_handler(
        model, min_batch_size=min_batch_size, max_batch_size=max_batch_size,
        large_model=large_model))
    options = PipelineOptions(list(pipeline_args))
    p = beam.Pipeline(options=options)
    entries = (p | "Files" >> beam.Create(files)
               | "Read" >> beam.FlatMap(_read_file, column, id_column)
               | "Reshuffle" >> beam.Reshuffle()
               | "Embed" >> RunInference(handler)
               | "Rows" >> beam.Map(_row))
    if output_format == "npz":
        keyed = entries | "Shard" >> beam.Map(
            lambda e: (zlib.crc32(str(e[0]).encode("utf-8")) % shards, e))
        every = p | "Shards" >> beam.Create([(i, None) for i in range(shards)])  # none left out
        dim = (entries | "Dim" >> beam.Map(lambda e: len(e[2]))
               | "MaxDim" >> beam.CombineGlobally(lambda ds: max(ds, default=0)))
        ((keyed, every) | "All" >> beam.Flatten()
         | "Group" >> beam.GroupByKey()
         | "Write" >> beam.Map(_write_shard, out_prefix, shards, beam.pvalue.AsSingleton(dim)))
    else:
        (entries
         | "Example" >> beam.MapTuple(_example)
         | "Write" >> beam.io.WriteToTFRecord(out_prefix, file_name_suffix=".tfrecord",
                                              num_shards=shards))
    result = p.run()
    result.wait_until_finish()
    from apache_beam.metrics.metric import MetricsFilter

    counters = result.metrics().query(MetricsFilter().with_name("texts"))["counters"]
    texts = sum((c.committed if c.committed is not None else c.attempted) or 0 for c in counters)
    outputs = sorted(m.path for m in FileSystems.match([f"{out_prefix}-*-of-*"])[0].metadata_list)
    return {"files": len(files), "outputs": outputs, "format": output_format,
            "texts": int(texts), "shards": shards}


def read_npz_shards(prefix: str):
    """``(ids, texts, embeddings)`` of every ``.npz`` shard of ``prefix``, in id order."""
    import glob

    ids, texts, rows = [], [], []
    for path in sorted(glob.glob(f"{prefix}-*-of-*.npz")):
        with np.load(path) as shard:
            ids.extend(shard["ids"].tolist())
            texts.extend(shard["texts"].tolist())
            rows.append(shard["embeddings"])
    order = sorted(range(len(ids)), key=lambda i: ids[i])
    e = np.concatenate(rows) if rows else np.zeros((0, 0), np.float32)
    return [ids[i] for i in order], [texts[i] for i in order], e[order]
