"""Start-up: modules deferred during TensorFlow's import (domain_tune._env.deferred_imports)."""

import json
import subprocess
import sys
import textwrap


def _run(code):
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                         text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _run_file(path, code):
    path.write_text(textwrap.dedent(code), encoding="utf-8")
    out = subprocess.run([sys.executable, str(path)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_deferred_module_runs_on_first_use():
    result = _run(
        """
        import json, sys
        from domain_tune._env import deferred_imports

        with deferred_imports(["calendar"]):
            import calendar
        before = type(sys.modules["calendar"]).__name__
        leap = calendar.isleap(2024)
        print(json.dumps({"before": before, "after": type(sys.modules["calendar"]).__name__,
                          "leap": leap}))
        """
    )
    assert result == {"before": "_FileKnownLazyModule", "after": "module", "leap": True}


def test_deferred_module_tells_its_file_without_running():
    result = _run(
        """
        import json, sys
        from domain_tune._env import deferred_imports

        with deferred_imports(["calendar"]):
            import calendar
        path = sys.modules["calendar"].__file__
        still = type(sys.modules["calendar"]).__name__
        days = calendar.monthrange(2024, 2)[1]
        print(json.dumps({"file": path.endswith("calendar.py"), "still": still, "days": days,
                          "same": path == sys.modules["calendar"].__file__}))
        """
    )
    assert result == {"file": True, "still": "_FileKnownLazyModule", "days": 29, "same": True}


def test_autograph_conversion_leaves_keras_wrappers_unloaded(tmp_path):
    # AutoGraph scans sys.modules for __file__ on its first conversion (a tf.data map, a
    # SavedModel signature): that must not import scikit-learn through keras.wrappers.
    # (AutoGraph reads the function's source, so the code runs from a file.)
    result = _run_file(tmp_path / "convert.py",
        """
        import json, sys
        from domain_tune._env import import_tensorflow

        import_tensorflow()
        import tensorflow as tf

        def double(x):
            if x > 0:
                return x * 2
            return x

        out = [int(v) for v in tf.data.Dataset.range(3).map(double)]
        print(json.dumps({"out": out, "sklearn": "sklearn" in sys.modules}))
        """
    )
    assert result == {"out": [0, 2, 4], "sklearn": False}


def test_deferred_imports_leave_imported_modules_and_later_imports_alone():
    result = _run(
        """
        import json, sys
        import calendar
        from domain_tune._env import deferred_imports

        with deferred_imports(["calendar"]):
            import calendar
        with deferred_imports(["colorsys"]):
            pass
        import colorsys
        print(json.dumps([type(sys.modules[m]).__name__ for m in ("calendar", "colorsys")]))
        """
    )
    assert result == ["module", "module"]


def test_tensorflow_import_defers_pyplot_until_used():
    result = _run(
        """
        import json, sys
        from domain_tune._env import import_tensorflow

        import_tensorflow()
        imported = "matplotlib" in sys.modules
        lazy = type(sys.modules.get("matplotlib.pyplot")).__name__
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig = plt.figure(figsize=(2, 3))
        print(json.dumps({"imported": imported, "lazy": lazy,
                          "size": [float(x) for x in fig.get_size_inches()]}))
        """
    )
    assert result["imported"] is False  # Keras' visualization modules import it: deferred too
    assert result["lazy"] in ("_FileKnownLazyModule", "NoneType")  # NoneType: Keras did not import it
    assert result["size"] == [2.0, 3.0]


def test_tensorflow_import_defers_keras_visualization_until_used():
    result = _run(
        """
        import json, sys
        import numpy as np
        from domain_tune._env import import_tensorflow

        import_tensorflow()
        before = type(sys.modules["keras.src.visualization"]).__name__
        import keras
        import matplotlib
        matplotlib.use("Agg")
        keras.visualization.plot_image_gallery(np.zeros((2, 4, 4, 3)), rows=1, cols=2, show=False)
        import matplotlib.pyplot as plt
        print(json.dumps({"before": before, "figures": len(plt.get_fignums())}))
        """
    )
    assert result == {"before": "_FileKnownLazyModule", "figures": 1}


def test_tensorflow_import_defers_keras_wrappers_and_scikit_learn():
    result = _run(
        """
        import json, sys
        from domain_tune._env import import_tensorflow

        import_tensorflow()
        before = {"sklearn": "sklearn" in sys.modules,
                  "wrappers": type(sys.modules["keras.wrappers"]).__name__}
        import keras
        estimator = keras.wrappers.SKLearnRegressor.__name__
        print(json.dumps({**before, "estimator": estimator, "after": "sklearn" in sys.modules}))
        """
    )
    assert result == {"sklearn": False, "wrappers": "_FileKnownLazyModule", "estimator": "SKLearnRegressor",
                      "after": True}


def test_gc_paused_restores_the_collector_and_freezes_on_request():
    result = _run(
        """
        import gc, json
        from domain_tune._env import gc_paused

        with gc_paused():
            inside = gc.isenabled()
        plain = [gc.isenabled(), gc.get_freeze_count()]
        gc.disable()
        with gc_paused(freeze=True):
            pass
        print(json.dumps({"inside": inside, "plain": plain, "still_off": not gc.isenabled(),
                          "frozen": gc.get_freeze_count() > 0}))
        """
    )
    assert result == {"inside": False, "plain": [True, 0], "still_off": True, "frozen": True}


def test_command_line_freezes_the_collector_at_exit_only():
    result = _run(
        """
        import atexit, gc, json, sys
        atexit.register(lambda: print(json.dumps({"during": during, "at_exit": gc.get_freeze_count()})))
        from domain_tune.cli import main
        try:
            main(["--version"])
        except SystemExit:
            pass
        during = gc.get_freeze_count()
        """
    )
    assert result["during"] == 0 and result["at_exit"] > 0
