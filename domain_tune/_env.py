"""Process settings applied before TensorFlow is imported.

TensorFlow prints start-up chatter (oneDNN notices, CUDA probing) on stderr.
domain-tune is a command-line tool whose stderr carries progress bars and
one-line errors, so it quietens TensorFlow unless the user asks otherwise
(``TF_CPP_MIN_LOG_LEVEL`` set by the user, or ``DOMAIN_TUNE_DEBUG=1``).

It also tunes glibc's malloc before TensorFlow allocates anything (see
:func:`tune_malloc`), and defers what TensorFlow's import pulls in without
needing it (see :func:`deferred_imports`).
"""

import contextlib
import ctypes
import gc
import importlib.abc
import importlib.util
import os
import sys

DEBUG_VAR = "DOMAIN_TUNE_DEBUG"
_USER_LOG_LEVEL = "TF_CPP_MIN_LOG_LEVEL" in os.environ


# glibc mallopt parameters (malloc.h)
M_TRIM_THRESHOLD = -1
M_TOP_PAD = -2
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8
# Largest mmap threshold glibc accepts on 64-bit hosts (HEAP_MAX_SIZE / 2).
MMAP_THRESHOLD = 32 * 1024 * 1024
# Free memory kept at the top of a heap instead of being returned to the system.
TRIM_THRESHOLD = 512 * 1024 * 1024
TOP_PAD = 16 * 1024 * 1024
# Every thread allocates from the main heap (see tune_malloc).
ARENA_MAX = 1
MALLOC_SETTINGS = {"M_ARENA_MAX": ARENA_MAX, "M_MMAP_THRESHOLD": MMAP_THRESHOLD,
                   "M_TRIM_THRESHOLD": TRIM_THRESHOLD, "M_TOP_PAD": TOP_PAD}
_MALLOPT_CODES = {"M_ARENA_MAX": M_ARENA_MAX, "M_MMAP_THRESHOLD": M_MMAP_THRESHOLD,
                  "M_TRIM_THRESHOLD": M_TRIM_THRESHOLD, "M_TOP_PAD": M_TOP_PAD}
# Set by the user (glibc's own tunables or environment variables): left alone.
_USER_MALLOC_VARS = ("GLIBC_TUNABLES", "MALLOC_ARENA_MAX", "MALLOC_MMAP_THRESHOLD_",
                     "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "DOMAIN_TUNE_NO_MALLOPT")
malloc_tuned = {}  # what tune_malloc set: name -> value (empty when it did nothing)


def tune_malloc():
    """Keep TensorFlow's op buffers in the heap instead of a fresh mapping per op.

    glibc serves every allocation above its mmap threshold (128 KiB at first,
    adjusted upwards as such blocks are freed, at most 32 MiB) with its own
    ``mmap`` and returns it with ``munmap`` when freed; the next allocation
    of the same size pays a system call and a page fault per 4 KiB page
    again.  TensorFlow allocates and frees its intermediate tensors (a few
    hundred KiB to tens of MiB here) on every op, so a cold ``eval-sts``
    made about 14,000 ``mmap`` and 12,000 ``munmap`` calls.  With the mmap
    threshold fixed at its maximum and freed memory kept in the heap (trim
    threshold 512 MiB) those buffers are reused from the heap.

    The thresholds govern the main heap only.  By default each new thread
    gets an arena of its own on its first allocation (up to 8 per core),
    made of 64 MiB heaps that glibc unmaps as soon as one is wholly free,
    whatever the trim threshold: TensorFlow's worker threads then map,
    fault in and unmap their buffers' pages over and over.  On a 2-core AVX2
    host that was 1.2 million page faults and 4-5 s of system time in a 16 s
    ``embed`` of 24,294 texts; with one arena (``M_ARENA_MAX`` 1) 0.4 million
    (the process's peak memory, touched once) and 2 s.  The main heap's lock
    is held for a few hundred nanoseconds per allocation, and TensorFlow
    allocates once per op output, so the threads barely wait for it.

    Applied once, on Linux with glibc, unless the user set glibc's own
    variables (``GLIBC_TUNABLES``, ``MALLOC_ARENA_MAX``, ...) or
    ``DOMAIN_TUNE_NO_MALLOPT=1``.  Returns the settings that took effect.
    """
    if malloc_tuned or not sys.platform.startswith("linux"):
        return dict(malloc_tuned)
    if any(os.environ.get(name) for name in _USER_MALLOC_VARS):
        return {}
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl, ...)
        return {}
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    for name, value in MALLOC_SETTINGS.items():
        if mallopt(_MALLOPT_CODES[name], value) == 1:
            malloc_tuned[name] = value
    return dict(malloc_tuned)


def configure():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    tune_malloc()


# Imported by Keras' own import and used by nothing on domain-tune's paths, so loaded
# on first use instead (times of a cold ``eval-sts`` on 2 cores):
# * ``keras.wrappers``: Keras' scikit-learn estimators; importing it imports scikit-learn,
#   which imports scipy.stats and scipy.optimize (0.7 s);
# * ``keras.visualization`` and ``keras.src.visualization``: Keras' image-gallery plots;
#   importing them imports matplotlib and ``matplotlib.patches`` (0.1 s);
# * ``matplotlib.pyplot``: for those plots, where something else imports them (0.3 s);
#   domain-tune's plots import it themselves.
DEFERRED_MODULES = ("keras.wrappers", "keras.visualization", "keras.src.visualization",
                    "matplotlib.pyplot")


class _DeferredImports(importlib.abc.MetaPathFinder):
    """Give ``names`` a lazy module (:class:`importlib.util.LazyLoader`) when first imported.

    The module is created at once but executed on its first attribute access,
    so ``import matplotlib.pyplot as plt`` costs nothing until ``plt`` is used.
    """

    def __init__(self, names):
        self.names = set(names)

    def find_spec(self, name, path=None, target=None):
        if name not in self.names:
            return None
        self.names.discard(name)
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                break
        else:
            return None
        if spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        spec.loader = _LazyLoader(spec.loader)
        return spec


class _LazyLoader(importlib.util.LazyLoader):
    """A lazy module that tells its ``__file__`` without being executed.

    AutoGraph, on its first conversion (Keras' training function, a
    SavedModel's signatures), scans ``sys.modules`` for the module whose
    ``__file__`` is a converted function's file; a plain lazy module executes
    on that attribute access, which for ``keras.wrappers`` imports
    scikit-learn and SciPy (0.7 s) in the middle of training or an export.
    """

    def exec_module(self, module):
        super().exec_module(module)
        module.__class__ = _file_known(type(module))


_FILE_KNOWN = {}


def _file_known(lazy_class):
    if lazy_class not in _FILE_KNOWN:
        def __getattribute__(self, attr):
            if attr == "__file__":
                spec = object.__getattribute__(self, "__dict__").get("__spec__")
                if spec is not None and spec.has_location:
                    return spec.origin
            return lazy_class.__getattribute__(self, attr)

        _FILE_KNOWN[lazy_class] = type("_FileKnownLazyModule", (lazy_class,),
                                       {"__getattribute__": __getattribute__})
    return _FILE_KNOWN[lazy_class]


@contextlib.contextmanager
def deferred_imports(names=DEFERRED_MODULES):
    """While active, the first import of each of ``names`` not yet imported is lazy."""
    finder = _DeferredImports(n for n in names if n not in sys.modules)
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        with contextlib.suppress(ValueError):
            sys.meta_path.remove(finder)


@contextlib.contextmanager
def gc_paused(freeze=False):
    """Pause Python's cyclic garbage collector (``gc.disable``) for the block.

    Importing TensorFlow, Keras and TF Text creates about 560,000 objects and
    almost no garbage; the collector's passes over them took 0.5 s of a 2.7 s
    import.  Collection resumes afterwards as it was.  With ``freeze``, every
    object alive at the end of the block is first moved to the collector's
    permanent generation (``gc.freeze``), which spares the first collection
    afterwards a pass over all of them (0.2 s); for a process that runs one
    command, since frozen objects that later become cyclic garbage are never
    collected.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if freeze:
            gc.freeze()
        if enabled:
            gc.enable()


def import_tensorflow(freeze=False):
    """Import TensorFlow and TF Text with their start-up logging silenced.

    Part of that logging bypasses ``TF_CPP_MIN_LOG_LEVEL`` (it is written
    before logging is initialised), so stderr is pointed at /dev/null for the
    duration of the import.  Errors raised by the import still propagate.
    Modules that the import pulls in without needing them
    (:data:`DEFERRED_MODULES`) are loaded lazily (:func:`deferred_imports`),
    and the cyclic garbage collector is paused meanwhile (:func:`gc_paused`;
    ``freeze`` as there, where this call imports TensorFlow).
    """
    if os.environ.get(DEBUG_VAR):
        import keras

        keras.config.disable_traceback_filtering()
    if "tensorflow" in sys.modules or _USER_LOG_LEVEL or os.environ.get(DEBUG_VAR):
        with deferred_imports(), gc_paused(freeze and "tensorflow" not in sys.modules):
            import tensorflow  # noqa: F401
            import tensorflow_text  # noqa: F401

        return
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        with deferred_imports(), gc_paused(freeze):
            import tensorflow  # noqa: F401
            import tensorflow_text  # noqa: F401
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


configure()
