"""Reading a taxonomy such as ESCO: one concept per row, its labels cleaned up.

A *taxonomy* is a CSV with one row per concept: an id, a preferred label,
alternative labels (several in one cell, newline-separated by default), and
optionally a group (concepts of one group are related) and a description.
ESCO occupations have exactly this shape (``conceptUri``, ``preferredLabel``,
``altLabels``, ``iscoGroup``, ``description``); :data:`ESCO_COLUMNS` names them.

Label clean-up (counted in :attr:`Taxonomy.stats`):

* white space is stripped and collapsed; a label repeated within one concept
  (case-insensitively) is kept once;
* an alternative label equal to its own preferred label is dropped.

Pairs are built from a :class:`Taxonomy` by
:mod:`domain_tune.datasets.taxonomy_pairs`.
"""

import dataclasses
import os

from domain_tune.datasets.files import read_csv_columns
from domain_tune.errors import BadInputError

ESCO_COLUMNS = {
    "id_column": "conceptUri",
    "label_column": "preferredLabel",
    "synonyms_column": "altLabels",
    "group_column": "iscoGroup",
    "description_column": "description",
}
ESCO_ATTRIBUTION = "ESCO © European Union"


def normalize_label(text):
    """Strip and collapse white space (``"wiredrawing  machine tender"`` -> one space)."""
    return " ".join(str(text).split())


def label_key(text):
    """The key under which two labels count as the same: normalised and case-folded."""
    return normalize_label(text).casefold()


def unescape_separator(separator):
    r"""Turn the two-character escapes ``\n`` and ``\t`` typed on a command line into the characters."""
    return separator.replace("\\n", "\n").replace("\\t", "\t").replace("\\r", "\r")


@dataclasses.dataclass
class Taxonomy:
    """Concepts read from a taxonomy CSV, in file order, labels cleaned up."""

    ids: list
    labels: list  # preferred labels
    synonyms: list  # list of lists of alternative labels (normalised, deduplicated per concept)
    groups: list  # group per concept ("" if none)
    descriptions: list  # description per concept ("" if none)
    path: str
    id_column: str
    cleanup: list  # per concept: (alternative labels in the file, same as preferred, repeated)

    def __len__(self):
        return len(self.ids)

    @property
    def stats(self):
        raw, same, repeated = (sum(c[k] for c in self.cleanup) for k in range(3))
        return {
            "concepts": len(self.ids),
            "alternative_labels_raw": raw,
            "same_as_preferred": same,
            "repeated_in_concept": repeated,
            "alternative_labels": sum(len(s) for s in self.synonyms),
        }

    def subset(self, keep):
        """The concepts whose index is in ``keep`` (an iterable of indices), in file order."""
        keep = sorted(keep)
        pick = lambda xs: [xs[i] for i in keep]  # noqa: E731
        return Taxonomy(pick(self.ids), pick(self.labels), pick(self.synonyms), pick(self.groups),
                        pick(self.descriptions), self.path, self.id_column, pick(self.cleanup))


def read_taxonomy(
    path, id_column, label_column, synonyms_column, group_column=None, description_column=None,
    separator="\n",
):
    """Read a taxonomy CSV: one concept per row, alternative labels split on ``separator``.

    Every id must be present and unique and every concept must have a
    preferred label; errors name the file, the row (as a spreadsheet counts:
    the header is row 1) and the column.
    """
    if not separator:
        raise BadInputError("--separator must not be empty")
    options = {
        id_column: "--id-column", label_column: "--label-column",
        synonyms_column: "--synonyms-column",
    }
    columns = [id_column, label_column, synonyms_column]
    if group_column:
        columns.append(group_column)
        options.setdefault(group_column, "--group-column")
    if description_column:
        columns.append(description_column)
        options.setdefault(description_column, "--description-column")
    frame = read_csv_columns(path, columns, "taxonomy", options)

    ids, labels, synonyms, groups, descriptions, cleanup = [], [], [], [], [], []
    seen = {}
    for row, rec in enumerate(frame.itertuples(index=False), 2):  # the header is row 1
        rec = dict(zip(frame.columns, rec))
        cid = rec[id_column].strip()
        if not cid:
            raise BadInputError(f"taxonomy {path}: row {row} has an empty {id_column}")
        if cid in seen:
            raise BadInputError(
                f"taxonomy {path}: {id_column} {cid!r} appears in rows {seen[cid]} and {row}"
            )
        seen[cid] = row
        label = normalize_label(rec[label_column])
        if not label:
            raise BadInputError(f"taxonomy {path}: row {row} has an empty {label_column}")
        own = {label.casefold()}
        alts, raw, same, repeated = [], 0, 0, 0
        for alt in rec[synonyms_column].split(separator):
            alt = normalize_label(alt)
            if not alt:
                continue
            raw += 1
            key = alt.casefold()
            if key == label.casefold():
                same += 1
            elif key in own:
                repeated += 1
            else:
                own.add(key)
                alts.append(alt)
        ids.append(cid)
        labels.append(label)
        synonyms.append(alts)
        groups.append(rec[group_column].strip() if group_column else "")
        descriptions.append(normalize_label(rec[description_column]) if description_column else "")
        cleanup.append((raw, same, repeated))
    return Taxonomy(ids, labels, synonyms, groups, descriptions, os.fspath(path), id_column, cleanup)


def read_esco(path, separator="\n"):
    """Read ESCO's ``occupations_en.csv`` (multi-line quoted fields are fine)."""
    return read_taxonomy(path, **ESCO_COLUMNS, separator=separator)


def only_groups(taxonomy, prefixes):
    """Keep the concepts whose group starts with one of ``prefixes`` (e.g. ``["25", "35"]``).

    The subset is then the whole taxonomy for :func:`build_pairs`: a label is
    *shared* only if two concepts of the subset have it.
    """
    prefixes = [p.strip() for p in prefixes if p.strip()]
    if not prefixes:
        raise BadInputError("--only-groups needs at least one group prefix")
    keep = [i for i, g in enumerate(taxonomy.groups) if g and g.startswith(tuple(prefixes))]
    if not keep:
        raise BadInputError(
            f"--only-groups {','.join(prefixes)}: no concept of {taxonomy.path} is in these groups"
        )
    return taxonomy.subset(keep)
