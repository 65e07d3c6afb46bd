"""The encoder a new task head is built on: from any source `kbert.load` reads, or an object.

`load_encoder(source)` -> (BertEncoder named "encoder", BertTokenizer or None), with the
fine-tuning options (dropout rates) applied. Files are read by `kbert.load` (kbert/loading.py),
the one loader; this module only adapts what it returns (a fine-tuned head or a pre-training
model gives its encoder) and passes objects through.

Example:
    >>> encoder, tokenizer = load_encoder("runs/austen-mini")            # doctest: +SKIP
    >>> encoder.name, encoder.bert_config.num_layers                     # doctest: +SKIP
    ('encoder', 4)
"""

from __future__ import annotations

import os

from kbert.loading import Loaded, ModelSourceError, encoder_of, load
from kbert.models.encoder import BertEncoder

ENCODER_NAME = "encoder"


class EncoderSourceError(ModelSourceError):
    """A source that holds no encoder kbert can load, or a tokenizer that does not fit it."""


def rebuild_encoder(encoder, name: str = ENCODER_NAME, hidden_dropout: float | None = None,
                    attention_dropout: float | None = None):
    """`encoder` itself if it already has this name and these dropout rates, else a copy with
    them (same weights). Dropout rates are constructor arguments of the blocks, so changing them
    means building the encoder anew."""
    config = encoder.get_config()
    changes = {"name": name}
    if hidden_dropout is not None:
        changes["hidden_dropout"] = float(hidden_dropout)
    if attention_dropout is not None:
        changes["attention_dropout"] = float(attention_dropout)
    if all(config.get(k) == v for k, v in changes.items()):
        return encoder
    clone = BertEncoder.from_config({**config, **changes})
    clone.set_weights(encoder.get_weights())
    clone.trainable = encoder.trainable
    return clone


def check_tokenizer(encoder, tokenizer) -> None:
    """Refuse a tokenizer whose vocabulary size differs from the encoder's token table."""
    if tokenizer is None:
        return
    expected = encoder.bert_config.vocab_size
    if tokenizer.vocab_size != expected:
        raise EncoderSourceError(
            f"the tokenizer's vocabulary has {tokenizer.vocab_size} entries but the encoder's "
            f"token table has {expected}: they do not belong together (use the vocab.txt the "
            f"encoder was trained with)")


def load_encoder(source, hidden_dropout: float | None = None,
                 attention_dropout: float | None = None, lower_case: bool | None = None):
    """-> (BertEncoder named "encoder", BertTokenizer or None) from any supported source.

    Args:
        source: a path `kbert.load` reads, a `Loaded`, a BertEncoder, or (encoder, tokenizer).
        hidden_dropout, attention_dropout: override the encoder's dropout rates for fine-tuning.
        lower_case: tokenizer lower-casing; None keeps the model's own.
    """
    tokenizer = None
    if isinstance(source, (str, os.PathLike)):
        source = load(source, lower_case=lower_case)
    if isinstance(source, Loaded):
        encoder, tokenizer = source.encoder, source.tokenizer
    elif isinstance(source, tuple) and len(source) == 2:
        encoder, tokenizer = source
    elif isinstance(source, BertEncoder):
        encoder = source
    else:
        raise EncoderSourceError(
            f"cannot load an encoder from a {type(source).__name__}; pass a path or a BertEncoder")
    encoder = rebuild_encoder(encoder_of(encoder), ENCODER_NAME, hidden_dropout,
                              attention_dropout)
    check_tokenizer(encoder, tokenizer)
    return encoder, tokenizer
