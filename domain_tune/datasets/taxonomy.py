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

Labels in more languages (:func:`read_translation`) are joined to the
concepts by id, one file per language as ESCO ships them
(``occupations_de.csv``, ... with the same columns as ``occupations_en.csv``):
a :class:`Translation` holds a preferred label (``""`` where the file has no
row for the concept) and alternative labels per concept, cleaned up the same
way.  Groups and descriptions are the main file's.

Pairs are built from a :class:`Taxonomy` by
:mod:`domain_tune.datasets.taxonomy_pairs`.
"""

import dataclasses
import os
import re

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


DEFAULT_LANGUAGE = "en"
_LANGUAGE = re.compile(r"[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*")


@dataclasses.dataclass
class Translation:
    """The labels of a taxonomy's concepts in one more language, aligned with the concepts."""

    language: str
    labels: list  # preferred label per concept ("" if the file has no row for it)
    synonyms: list  # alternative labels per concept ([] if none)
    path: str
    cleanup: list  # per concept: as Taxonomy.cleanup ((0, 0, 0) if no row)

    @property
    def stats(self):
        raw, same, repeated = (sum(c[k] for c in self.cleanup) for k in range(3))
        return {
            "concepts": sum(1 for label in self.labels if label),
            "alternative_labels_raw": raw,
            "same_as_preferred": same,
            "repeated_in_concept": repeated,
            "alternative_labels": sum(len(s) for s in self.synonyms),
        }

    def subset(self, keep):
        pick = lambda xs: [xs[i] for i in keep]  # noqa: E731
        return Translation(self.language, pick(self.labels), pick(self.synonyms), self.path,
                           pick(self.cleanup))


@dataclasses.dataclass
class Taxonomy:
    """Concepts read from a taxonomy CSV, in file order, labels cleaned up.

    ``language`` is the language of its labels; ``translations`` maps further
    languages to their :class:`Translation` (empty for a single language).
    """

    ids: list
    labels: list  # preferred labels
    synonyms: list  # list of lists of alternative labels (normalised, deduplicated per concept)
    groups: list  # group per concept ("" if none)
    descriptions: list  # description per concept ("" if none)
    path: str
    id_column: str
    cleanup: list  # per concept: (alternative labels in the file, same as preferred, repeated)
    language: str = DEFAULT_LANGUAGE
    translations: dict = dataclasses.field(default_factory=dict)

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
                        pick(self.descriptions), self.path, self.id_column, pick(self.cleanup),
                        self.language, {k: t.subset(keep) for k, t in self.translations.items()})

    @property
    def languages(self):
        """The main language first, then the translations' in the order they were added."""
        return [self.language, *self.translations]


def read_taxonomy(
    path, id_column, label_column, synonyms_column, group_column=None, description_column=None,
    separator="\n", language=DEFAULT_LANGUAGE,
):
    """Read a taxonomy CSV: one concept per row, alternative labels split on ``separator``.

    Every id must be present and unique and every concept must have a
    preferred label; errors name the file, the row (as a spreadsheet counts:
    the header is row 1) and the column.  ``language`` is the labels' language
    (see :func:`read_translation` for more).
    """
    check_language(language)
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
        alts, counts = _alternative_labels(label, rec[synonyms_column], separator)
        ids.append(cid)
        labels.append(label)
        synonyms.append(alts)
        groups.append(rec[group_column].strip() if group_column else "")
        descriptions.append(normalize_label(rec[description_column]) if description_column else "")
        cleanup.append(counts)
    return Taxonomy(ids, labels, synonyms, groups, descriptions, os.fspath(path), id_column, cleanup,
                    language)


def _alternative_labels(label, cell, separator):
    """The cleaned alternative labels of one cell, and (read, same as ``label``, repeated)."""
    own = {label.casefold()}
    alts, raw, same, repeated = [], 0, 0, 0
    for alt in cell.split(separator):
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
    return alts, (raw, same, repeated)


def check_language(language, option="--language"):
    """A language code such as ``de``, ``pt-BR`` or ``zh-Hans`` (it names output files)."""
    if not isinstance(language, str) or not _LANGUAGE.fullmatch(language):
        raise BadInputError(
            f"{option}: {language!r} is not a language code (two or three letters, e.g. de, pt-BR)"
        )
    return language


def parse_label_files(specs, main_language=DEFAULT_LANGUAGE):
    """``["de=occupations_de.csv", ...]`` (the ``--labels`` option) -> ``[("de", path), ...]``."""
    check_language(main_language)
    parsed, seen = [], {main_language.casefold(): "--language"}
    for spec in specs:
        language, sep, path = spec.partition("=")
        language = language.strip()
        if not sep or not path.strip():
            raise BadInputError(f"--labels {spec}: give LANGUAGE=FILE (e.g. de=occupations_de.csv)")
        check_language(language, f"--labels {spec}")
        if language.casefold() in seen:
            what = ("the main file's (--language)" if seen[language.casefold()] == "--language"
                    else "given twice")
            raise BadInputError(f"--labels {spec}: the language {language!r} is {what}")
        seen[language.casefold()] = spec
        parsed.append((language, path))
    return parsed


def read_translation(taxonomy, language, path, id_column, label_column, synonyms_column,
                     separator="\n"):
    """Add the labels in ``language`` from ``path`` to ``taxonomy`` (returns a new Taxonomy).

    ``path`` has one row per concept with the id, preferred label and
    alternative labels columns, named as in the taxonomy's own file.
    Concepts without a row have no label in this language; an id that is not
    in the taxonomy, a repeated id and an empty preferred label are errors.
    """
    check_language(language, "--labels")
    if language.casefold() in (lang.casefold() for lang in taxonomy.languages):
        raise BadInputError(f"--labels: the language {language!r} is given twice")
    if not separator:
        raise BadInputError("--separator must not be empty")
    what = f"{language} labels"
    frame = read_csv_columns(path, [id_column, label_column, synonyms_column], what, {
        id_column: "--id-column", label_column: "--label-column", synonyms_column: "--synonyms-column",
    })
    index = {cid: i for i, cid in enumerate(taxonomy.ids)}
    n = len(taxonomy)
    labels, synonyms, cleanup = [""] * n, [[] for _ in range(n)], [(0, 0, 0)] * n
    seen, unknown = {}, []
    for row, (cid, label, cell) in enumerate(
            frame[[id_column, label_column, synonyms_column]].itertuples(index=False), 2):
        cid = cid.strip()
        if not cid:
            raise BadInputError(f"{what} {path}: row {row} has an empty {id_column}")
        if cid in seen:
            raise BadInputError(f"{what} {path}: {id_column} {cid!r} appears in rows {seen[cid]} and {row}")
        seen[cid] = row
        if cid not in index:
            unknown.append((row, cid))
            continue
        label = normalize_label(label)
        if not label:
            raise BadInputError(f"{what} {path}: row {row} has an empty {label_column}")
        i = index[cid]
        labels[i] = label
        synonyms[i], cleanup[i] = _alternative_labels(label, cell, separator)
    if unknown:
        row, cid = unknown[0]
        raise BadInputError(
            f"{what} {path}: row {row} has a {id_column} that is not in taxonomy {taxonomy.path} "
            f"({cid!r}" + (f"; {len(unknown)} rows in all)" if len(unknown) > 1 else ")")
        )
    translation = Translation(language, labels, synonyms, os.fspath(path), cleanup)
    return dataclasses.replace(taxonomy, translations={**taxonomy.translations, language: translation})


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
