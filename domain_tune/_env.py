"""Process settings applied before TensorFlow is imported.

TensorFlow prints start-up chatter (oneDNN notices, CUDA probing) on stderr.
domain-tune is a command-line tool whose stderr carries progress bars and
one-line errors, so it quietens TensorFlow unless the user asks otherwise
(``TF_CPP_MIN_LOG_LEVEL`` set by the user, or ``DOMAIN_TUNE_DEBUG=1``).
"""

import os
import sys

DEBUG_VAR = "DOMAIN_TUNE_DEBUG"
_USER_LOG_LEVEL = "TF_CPP_MIN_LOG_LEVEL" in os.environ


def configure():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")


def import_tensorflow():
    """Import TensorFlow and TF Text with their start-up logging silenced.

    Part of that logging bypasses ``TF_CPP_MIN_LOG_LEVEL`` (it is written
    before logging is initialised), so stderr is pointed at /dev/null for the
    duration of the import.  Errors raised by the import still propagate.
    """
    if os.environ.get(DEBUG_VAR):
        import keras

        keras.config.disable_traceback_filtering()
    if "tensorflow" in sys.modules or _USER_LOG_LEVEL or os.environ.get(DEBUG_VAR):
        import tensorflow  # noqa: F401
        import tensorflow_text  # noqa: F401

        return
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        import tensorflow  # noqa: F401
        import tensorflow_text  # noqa: F401
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


configure()
