"""WordPiece tokenization: vocabularies, the in-graph tokenizer, and sequence packing.

    vocab.py      Vocabulary, VocabularyError, train_vocabulary (no TensorFlow until training)
    tokenizer.py  BertTokenizer: text -> ids / pieces / offsets and back, in the TF graph
    packing.py    pack_segments: [CLS] A [SEP] (B [SEP]), truncation, padding (core TF ops)

Names resolve lazily, so `from kbert.tokenization import Vocabulary` does not import TensorFlow.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "Vocabulary": "kbert.tokenization.vocab",
    "VocabularyError": "kbert.tokenization.vocab",
    "train_vocabulary": "kbert.tokenization.vocab",
    "SPECIAL_TOKENS": "kbert.tokenization.vocab",
    "BertTokenizer": "kbert.tokenization.tokenizer",
    "normalize": "kbert.tokenization.tokenizer",
    "pack_segments": "kbert.tokenization.packing",
    "num_truncated": "kbert.tokenization.packing",
    "truncated_lengths": "kbert.tokenization.packing",
}


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'kbert.tokenization' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(list(globals()) + list(_EXPORTS))


__all__ = sorted(_EXPORTS)
