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
from domain_tune.errors import BadInputError
from domain_tune.models import semi_frozen, vocabulary

EMBEDDING_STRATEGIES = ("trainable", "frozen", "semi-frozen", "random")


@dataclasses.dataclass
class EmbeddingOptions:
    strategy: str = "trainable"
    add_vocab: str = None  # a file of terms, "auto", or None
    max_new_pieces: int = vocabulary.DEFAULT_MAX_NEW_PIECES
    new_rows: str = "pieces"
    freeze_encoder: bool = False

    def validate(self):
        if self.strategy not in EMBEDDING_STRATEGIES:
            raise BadInputError(f"--embeddings must be one of {', '.join(EMBEDDING_STRATEGIES)}")
        if self.new_rows not in vocabulary.INIT_METHODS:
            raise BadInputError(f"--new-rows must be one of {', '.join(vocabulary.INIT_METHODS)}")
        if self.max_new_pieces < 1:
            raise BadInputError("--max-new-pieces must be at least 1")
        if self.freeze_encoder and (self.strategy == "frozen"
                                    or (self.strategy == "semi-frozen" and not self.add_vocab)):
            raise BadInputError(
                f"--freeze-encoder with --embeddings {self.strategy}"
                f"{'' if self.strategy == 'frozen' else ' and no --add-vocab'} leaves nothing "
                "to train; drop --freeze-encoder, or train the table (trainable or random)"
                f"{'' if self.strategy == 'frozen' else ' or new rows (--add-vocab)'}")
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
