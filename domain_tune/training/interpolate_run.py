"""An interpolated model, end to end: load two models, mix, measure, write.

:func:`interpolate_to_dir` is what ``domain-tune interpolate`` and
:func:`domain_tune.interpolate` call; the weight arithmetic itself is
:func:`domain_tune.models.interpolation.interpolate`.
"""

import os

from domain_tune.evaluation.sts import evaluate_sts
from domain_tune.export import save_model_dir
from domain_tune.models.interpolation import interpolate
from domain_tune.models.loading import load_model
from domain_tune.outputs import atomic_directory


def model_card(base, tuned, alpha, mixed, sts=None):
    """A short README.md for an interpolated model directory."""
    lines = [
        "# Interpolated encoder (WiSE-FT)", "",
        f"Every weight is `{alpha:g} x tuned + {1 - alpha:g} x base`:", "",
        f"- tuned: `{tuned}`", f"- base: `{base}`",
        f"- {mixed['weights']} weights mixed; {mixed['token_rows']} token rows mixed, "
        f"{mixed['kept_rows']} added rows kept as tuned", "",
    ]
    if sts:
        lines += ["| STS-B dev Pearson | base | tuned | interpolated |", "| --- | --- | --- | --- |",
                  "| | " + " | ".join(f"{sts[k]:.4f}" for k in ("base", "tuned", "interpolated"))
                  + " |", ""]
    lines += ["Load it with `--model DIR` in any domain-tune command, or the SavedModel in",
              "`saved_model/` with `tensorflow_hub.load`.", ""]
    return "\n".join(lines)


def interpolate_to_dir(base_spec, tuned_spec, alpha, out, overwrite=False, sts=None):
    """Load two ``--model`` specs, interpolate, and write ``out`` (model.keras, saved_model/, README.md).

    ``sts`` is an STS split (:func:`domain_tune.datasets.sts.load_split`) or
    ``None``; with it, the dev Pearson of base, tuned and interpolated models is
    measured.  Returns the report the ``interpolate`` command prints.
    """
    def pearson(model):
        return evaluate_sts(model, sts.sentences1, sts.sentences2, sts.scores)["pearson"]

    base, tuned = load_model(base_spec, "--base"), load_model(tuned_spec)
    scores = {"base": pearson(base), "tuned": pearson(tuned)} if sts is not None else None
    merged, mixed = interpolate(base, tuned, alpha)
    del base
    if scores is not None:
        scores["interpolated"] = pearson(merged)

    def write(tmp):
        save_model_dir(merged, tmp)
        with open(os.path.join(tmp, "README.md"), "w", encoding="utf-8") as f:
            f.write(model_card(base_spec, tuned_spec, alpha, mixed, scores))

    atomic_directory(out, overwrite, write)
    return {"out": os.fspath(out), "alpha": alpha, "base": base_spec, "model": tuned_spec, **mixed,
            "sts_dev_pearson": scores}
