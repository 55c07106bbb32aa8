"""What counts as a text in an in-memory list (a leaf: no pandas, no TensorFlow).

Lists handed to ``encode``, ``match`` and the service come from anywhere: a
pandas column (empty cells are NaN), a TensorFlow string tensor (bytes), a
column of codes (numbers).  :func:`as_text` turns each value into the text a
file would have held, and refuses values that are not one text at all.
"""

import math
import sys

from domain_tune.errors import BadInputError


def _missing(value):
    """None, a float NaN (Python or NumPy), or a pandas missing value (pd.NA, NaT)."""
    if value is None:
        return True
    if isinstance(value, float):
        return math.isnan(value)
    dtype = getattr(value, "dtype", None)
    if dtype is not None and getattr(dtype, "kind", "") in "fcmM":  # a NumPy scalar
        try:
            return bool(value != value)
        except (TypeError, ValueError):
            return False
    pd = sys.modules.get("pandas")  # a pandas missing value exists only once pandas is loaded
    if pd is not None:
        try:
            return bool(pd.isna(value))
        except (TypeError, ValueError):  # not a scalar
            return False
    return False


def as_text(value):
    """A text of an in-memory list: a missing value (None, NaN: an empty cell of a pandas
    column) is blank, as an empty line or cell of a file is, not the text 'None' or 'nan'."""
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):  # what TensorFlow gives back for a string tensor
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError as e:
            raise BadInputError(f"a text given as bytes is not UTF-8 ({e.reason} at byte "
                                f"{e.start}): {value[:40]!r}") from None
    if isinstance(value, (list, tuple, dict, set, frozenset)) or getattr(value, "ndim", 0):
        # a row or a record where a text belongs: its repr would be embedded
        raise BadInputError(f"a text must be a string, not a {type(value).__name__} "
                            f"({str(value)[:40]})")
    return "" if _missing(value) else str(value)  # a number (a code column) as it prints
