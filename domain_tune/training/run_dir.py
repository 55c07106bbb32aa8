"""The run directory: written atomically, locked against concurrent writers.

A run builds everything in ``DIR.partial/`` beside the target and renames it
to ``DIR`` at the end, so ``DIR`` either holds a complete run or does not
exist.  ``DIR.partial/state/`` keeps the resumable training state; an
interrupted run leaves ``DIR.partial`` in place for ``--resume``.  A lock file
``DIR.lock`` (holding the writer's pid) refuses a second writer.
"""

import contextlib
import errno
import json
import os
import shutil

from domain_tune.errors import BadInputError
from domain_tune import outputs


def partial_dir(out):
    return os.path.normpath(out) + ".partial"


def lock_path(out):
    return os.path.normpath(out) + ".lock"


def check_out(out, overwrite=False, resume=False, inputs=()):
    """Refuse a run directory ``out`` that cannot be written, before any work (see
    :func:`domain_tune.outputs.check_out`); ``inputs`` are the files and folders the run reads,
    which ``--overwrite`` must not replace."""
    if not os.fspath(out).strip():
        outputs.check_out(out, kind="dir")  # refused: empty
    out = os.path.normpath(out)
    parent = os.path.dirname(os.path.abspath(out))
    if resume and not os.path.isdir(partial_dir(out)):
        raise BadInputError(f"--resume: no interrupted run at {partial_dir(out)}")
    if not os.path.lexists(parent) and os.path.basename(parent) == "runs":
        if os.path.isdir(os.path.dirname(parent)):
            outputs.check_out(parent, kind="dir")  # the folder runs/ can be made there
            return out  # the default runs/<timestamp>: created once the data has been read
    outputs.check_out(out, overwrite, kind="dir", inputs=inputs)
    if not resume and os.path.isdir(partial_dir(out)) and not overwrite:
        raise BadInputError(
            f"an interrupted run is at {partial_dir(out)}; pass --resume to continue it "
            "or --overwrite to start again"
        )
    return out


JOB_FILE = "job.json"  # in DIR.partial: the settings an interrupted run was started with


def record_settings(out, settings):
    """Keep ``settings`` (a flat JSON-able dict) beside the resumable state of ``out``."""
    path = os.path.join(partial_dir(out), JOB_FILE)
    with outputs.atomic_file(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        json.dump(settings, f, indent=1, sort_keys=True)


def check_resume(out, settings):
    """Refuse ``--resume`` of ``out`` when ``settings`` differ from those the run was started
    with (a run interrupted before settings were recorded is not checked)."""
    path = os.path.join(partial_dir(out), JOB_FILE)
    if not os.path.isfile(path):
        return
    with open(path, encoding="utf-8") as f:
        saved = json.load(f)
    changed = [k for k in sorted(set(saved) | set(settings)) if saved.get(k) != settings.get(k)]
    if changed:
        shown = "; ".join(f"{k}: {saved.get(k)!r} then, {settings.get(k)!r} now" for k in changed[:3])
        more = f" (and {len(changed) - 3} more)" if len(changed) > 3 else ""
        raise BadInputError(
            f"--resume: the interrupted run at {partial_dir(out)} was started with other "
            f"settings ({shown}{more}); resume with the same options, or pass --overwrite "
            "to start again")


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except OSError as e:
        return e.errno == errno.EPERM
    return True


@contextlib.contextmanager
def locked(out):
    """Hold ``DIR.lock`` for the duration; refuse if a live process holds it.

    Creates the parent folder if it is missing (the default ``runs/``).
    """
    path = lock_path(out)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            break
        except FileExistsError:
            try:
                with open(path) as f:
                    pid = int(f.read().strip() or 0)
            except (OSError, ValueError):
                pid = 0
            if pid and _pid_alive(pid) and pid != os.getpid():
                raise BadInputError(
                    f"--out {out} is being written by another domain-tune run (pid {pid}); "
                    f"wait for it or remove {path} if that process is gone"
                ) from None
            os.remove(path)  # stale lock of a process that died
    else:  # pragma: no cover
        raise BadInputError(f"cannot take the lock {path}")
    try:
        os.write(fd, str(os.getpid()).encode())
        os.close(fd)
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.remove(path)


def start(out, resume=False):
    """Create (or reuse, when resuming) ``DIR.partial`` and return it."""
    work = partial_dir(out)
    if not resume and os.path.isdir(work):
        shutil.rmtree(work)
    os.makedirs(os.path.join(work, "state"), exist_ok=True)
    return work


def publish(out, overwrite=False):
    """Move the finished ``DIR.partial`` to ``DIR`` (replacing it with --overwrite)."""
    work = partial_dir(out)
    shutil.rmtree(os.path.join(work, "state"), ignore_errors=True)
    with contextlib.suppress(FileNotFoundError):  # the settings of --resume go with the state
        os.remove(os.path.join(work, JOB_FILE))
    if os.path.exists(out):
        if not overwrite:
            raise BadInputError(f"--out {out} appeared during the run; not replaced")
        shutil.rmtree(out)
    os.replace(work, out)
    return out


def discard(out):
    shutil.rmtree(partial_dir(out), ignore_errors=True)
