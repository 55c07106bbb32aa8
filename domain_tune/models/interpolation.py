"""Weight-space interpolation of a tuned encoder with the encoder it was tuned from.

WiSE-FT (Wortsman et al. 2022, "Robust fine-tuning of zero-shot models"): the
encoder whose every weight is ``alpha * tuned + (1 - alpha) * base`` keeps most
of what fine-tuning gained in the domain and recovers much of what it cost in
general quality, with no training and no extra cost at inference.  ``alpha = 1``
is the tuned encoder, ``alpha = 0`` the base.

Both encoders must share the architecture (the same backbone, as any
domain-tune run shares with its ``--model``).  Rows of the token table are
matched by id: a tuned encoder with domain pieces added
(:mod:`domain_tune.models.vocabulary`) has rows after the base's, and those
keep their tuned values, as the base has nothing to mix them with.

Loading, measuring and writing an interpolated model is a workflow:
:func:`domain_tune.training.interpolate_run.interpolate_to_dir`.
"""

import numpy as np

from domain_tune.errors import BadInputError
from domain_tune.models.semi_frozen import SemiFrozenEmbedding, split_table
from domain_tune.models.sentence_encoder import SentenceEncoder


def _check(encoder, role):
    if not isinstance(encoder, SentenceEncoder):
        raise BadInputError(
            f"interpolation needs domain-tune Keras encoders (a preset, a run directory or a "
            f".keras file); the {role} model is a SavedModel or TF Hub module"
        )


def _extends(base, tuned):
    """True if ``tuned``'s pieces are ``base``'s followed by added ones."""
    from domain_tune.models.vocabulary import parse_model_proto

    old = [p.piece for p in parse_model_proto(base.tokenizer.proto).pieces]
    new = [p.piece for p in parse_model_proto(tuned.tokenizer.proto).pieces]
    return len(new) > len(old) and new[: len(old)] == old


def _table(layer):
    pretrained, new = split_table(layer)
    return pretrained if new is None else np.concatenate([pretrained, new], axis=0)


def _mix(base, tuned, alpha):
    return (alpha * tuned.astype(np.float64) + (1.0 - alpha) * base.astype(np.float64)).astype(
        tuned.dtype
    )


def interpolate(base, tuned, alpha):
    """Set ``tuned``'s weights to ``alpha * tuned + (1 - alpha) * base``, in place.

    Returns ``tuned`` and a dict of what was mixed: ``weights`` (weight
    tensors; the token table counts once),
    ``token_rows`` (rows of the token table mixed) and ``kept_rows`` (tuned
    rows with no counterpart in ``base``).  Raises :class:`BadInputError` when
    the encoders differ in architecture or vocabulary.
    """
    if not 0.0 <= float(alpha) <= 1.0:
        raise BadInputError(f"--alpha {alpha} must be in [0, 1]")
    _check(base, "base")
    _check(tuned, "tuned")
    old, new = base.backbone, tuned.backbone
    base_table, tuned_table = _table(old.token_embedding), _table(new.token_embedding)
    if base_table.shape[1] != tuned_table.shape[1] or len(base_table) > len(tuned_table):
        raise BadInputError(
            f"the token tables differ (base {base_table.shape}, tuned {tuned_table.shape}): "
            "was the tuned model trained from this base?"
        )
    if base.tokenizer.proto != tuned.tokenizer.proto and not _extends(base, tuned):
        raise BadInputError(
            "the tuned model's vocabulary does not extend the base's: was it trained from this base?"
        )
    mixed = {"weights": 0, "token_rows": len(base_table),
             "kept_rows": len(tuned_table) - len(base_table)}
    for layer in new.layers:
        if layer is new.token_embedding or not layer.weights:
            continue
        try:
            source = old.get_layer(layer.name)
        except ValueError:
            raise BadInputError(f"the base model has no layer {layer.name!r}") from None
        ours, theirs = layer.get_weights(), source.get_weights()
        if [w.shape for w in ours] != [w.shape for w in theirs]:
            raise BadInputError(f"layer {layer.name!r} differs in shape between the models")
        layer.set_weights([_mix(b, t, alpha) for b, t in zip(theirs, ours)])
        mixed["weights"] += len(ours)
    table = tuned_table.copy()
    table[: len(base_table)] = _mix(base_table, tuned_table[: len(base_table)], alpha)
    embedding = new.token_embedding
    if isinstance(embedding, SemiFrozenEmbedding):
        embedding.set_pretrained(table[: embedding.pretrained_rows])
        embedding.set_new_rows(table[embedding.pretrained_rows :])
    else:
        embedding.embeddings.assign(table)
    mixed["weights"] += 1  # the token table (its added rows, if any, kept)
    return tuned, mixed
