"""CPU time, system share and minor faults per training step: python -m scripts.bench_speed.step OPT BATCH STEPS

ESCO sample (data/esco_pairs_sample.csv), use-m3, the train function alone after 3 warm-up steps.
PACKED=0 runs the padded forward pass; JIT=1 compiles the step with XLA.
"""
import os, sys, time, resource
from domain_tune import _env
_env.import_tensorflow()
import tensorflow as tf
from domain_tune.models.loading import load_model
from domain_tune.datasets.pairs import read_pairs
from domain_tune.training.fit import FitOptions, compile_siamese, train_dataset
opt, batch, steps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
pairs = read_pairs("data/esco_pairs_sample.csv")
enc = load_model("use-m3")
from domain_tune.models.sentence_encoder import use_packed_forward
use_packed_forward(enc, os.environ.get("PACKED", "1") == "1")
o = FitOptions(optimizer=opt, batch_size=batch, jit_compile=bool(os.environ.get("JIT")))
model = compile_siamese(enc, o, len(pairs))
ds, _ = train_dataset(pairs, batch, 42, 0, 50)
it = iter(ds.repeat())
model.stop_training = False
model.make_train_function(); fn = model.train_function
for _ in range(3): fn(it)
r0 = resource.getrusage(resource.RUSAGE_SELF); t = time.perf_counter()
for _ in range(steps): logs = fn(it)
float(logs["loss"])
dt = time.perf_counter() - t; r1 = resource.getrusage(resource.RUSAGE_SELF)
u, s = r1.ru_utime - r0.ru_utime, r1.ru_stime - r0.ru_stime
print(f"packed={os.environ.get('PACKED','1')} isa={os.environ.get('ONEDNN_MAX_CPU_ISA','native')} {opt} b{batch}: {dt/steps*1000:.0f} ms/step, {batch*steps/dt:.1f} pairs/s, user {u/steps*1000:.0f} ms/step, sys {s/steps*1000:.0f} ms/step (sys share {s/(u+s):.0%}), minflt/step {(r1.ru_minflt-r0.ru_minflt)/steps:.0f}, maxrss {r1.ru_maxrss/1e6:.2f} GB")
