"""Writing outputs so that they are either complete or absent."""

import os
import shutil
import tempfile

from domain_tune.errors import BadInputError


def atomic_directory(out, overwrite, write):
    """Call ``write(tmp_dir)`` on a fresh directory beside ``out``, then move it to ``out``.

    ``out`` appears only when ``write`` returns; on any error the temporary
    directory is removed and an existing ``out`` is left as it was.  An
    existing ``out`` is refused unless ``overwrite``.
    """
    out = os.path.abspath(os.fspath(out))
    if os.path.lexists(out) and not overwrite:
        raise BadInputError(f"--out {out} already exists; pass --overwrite to replace it")
    parent = os.path.dirname(out)
    if not os.path.isdir(parent):
        raise BadInputError(f"--out {out}: directory {parent} does not exist")
    tmp = tempfile.mkdtemp(prefix=f"{os.path.basename(out)}.tmp-", dir=parent)
    old = None
    try:
        write(tmp)
        if os.path.lexists(out):
            old = tempfile.mkdtemp(prefix=f"{os.path.basename(out)}.tmp-old-", dir=parent)
            os.replace(out, os.path.join(old, "previous"))
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None and not os.path.lexists(out):  # put the previous output back
            os.replace(os.path.join(old, "previous"), out)
        raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    return out
