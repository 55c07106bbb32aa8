"""How the token embedding trains: strategy, domain vocabulary, frozen encoder.

``--embeddings``:

* ``trainable``: the whole table trains (the article's recipe, default);
* ``frozen``: the table is fixed, new domain rows keep their initial value;
* ``semi-frozen``: pretrained rows are fixed, new domain rows train;
* ``random``: the table is re-initialised at random (same mean and standard
  deviation as the pretrained one) and trains: the no-transfer baseline.

The rest of the encoder trains in all four unless ``--freeze-encoder``.
``--add-vocab FILE|auto`` adds domain terms as whole SentencePiece pieces
first (see :mod:`domain_tune.models.vocabulary`).
"""

import dataclasses

import numpy as np

from domain_tune.datasets.texts import count_texts, text_chunks
from domain_tune.errors import BadInputError, OptionError
from domain_tune.models import semi_frozen, vocabulary
from domain_tune.training import recipe

EMBEDDING_STRATEGIES = recipe.EMBEDDING_STRATEGIES


@dataclasses.dataclass
class EmbeddingOptions:
    strategy: str = recipe.default("embeddings")
    add_vocab: str = recipe.default("add_vocab")  # a file of terms, "auto", or None
    max_new_pieces: int = recipe.default("max_new_pieces")
    new_rows: str = recipe.default("new_rows")
    freeze_encoder: bool = recipe.default("freeze_encoder")

    def validate(self):
        recipe.check_group("embeddings", self)
        if self.freeze_encoder and (self.strategy == "frozen"
                                    or (self.strategy == "semi-frozen" and not self.add_vocab)):
            frozen = self.strategy == "frozen"
            template = ("{0} with {1} " + self.strategy + ("" if frozen else " and no {2}")
                        + " leaves nothing to train; drop {0}, or train the table (trainable or "
                        "random)" + ("" if frozen else " or new rows ({2})"))
            raise OptionError(template, "freeze_encoder", "embeddings", "add_vocab")
        if self.add_vocab and self.add_vocab != "auto":
            count_texts(self.add_vocab, what="--add-vocab")  # exists, UTF-8, not empty

    @property
    def changes_encoder(self):
        return self.strategy != "trainable" or self.add_vocab or self.freeze_encoder


def read_terms(path):
    terms = [t.strip() for chunk in text_chunks(path, what="--add-vocab") for t in chunk]
    return [t for t in terms if t]


def prepare_encoder(encoder, options, texts=(), seed=0):
    """Apply ``options`` to a freshly loaded encoder; returns ``(encoder, added_terms)``.

    ``texts`` are the training texts, mined when ``add_vocab == "auto"``.
    Call inside the distribution strategy's scope: it creates variables.
    """
    options.validate()
    if not options.changes_encoder:
        return encoder, []
    if not hasattr(encoder, "backbone"):
        raise BadInputError(
            "--embeddings/--add-vocab/--freeze-encoder need a domain-tune model "
            "(a preset, run directory or .keras file), not a SavedModel"
        )
    added = []
    mode = "trainable" if options.strategy == "random" else options.strategy
    if options.add_vocab:
        if options.add_vocab == "auto":
            terms = vocabulary.mine_terms(list(texts), encoder.tokenizer,
                                          max_new_pieces=options.max_new_pieces)
        else:
            terms = read_terms(options.add_vocab)[: options.max_new_pieces]
        encoder, added = vocabulary.extend_encoder(encoder, terms, init=options.new_rows,
                                                   strategy=mode)
    elif options.strategy != "trainable":
        encoder = semi_frozen.with_strategy(encoder, mode)
    if options.strategy == "random":
        _randomize_table(encoder.backbone.token_embedding, seed)
    if options.freeze_encoder:
        for layer in encoder.backbone.layers:
            if layer is not encoder.backbone.token_embedding and layer.weights:
                layer.trainable = False
    if not encoder.trainable_weights:  # e.g. --add-vocab auto found no term to add
        raise BadInputError(f"nothing to train: --embeddings {options.strategy}"
                            f"{' and --freeze-encoder' if options.freeze_encoder else ''} freeze "
                            f"every weight{' and no domain term was added' if options.add_vocab else ''}")
    return encoder, added


def _randomize_table(layer, seed):
    pretrained, new = semi_frozen.split_table(layer)
    table = pretrained if new is None else np.concatenate([pretrained, new])
    rng = np.random.default_rng(seed)
    fresh = rng.normal(table.mean(), table.std(), size=table.shape).astype(np.float32)
    layer.set_pretrained(fresh[: len(pretrained)])
    if new is not None and len(new):
        layer.set_new_rows(fresh[len(pretrained):])
