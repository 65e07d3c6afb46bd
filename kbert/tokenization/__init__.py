"""WordPiece tokenization: vocabularies, the in-graph tokenizer, and sequence packing.

    vocab.py      Vocabulary, VocabularyError (no TensorFlow)
    vocab_training.py  train_vocabulary: WordPiece learning and unigram counts (tf-text)
    tokenizer.py  BertTokenizer: text -> ids / pieces / offsets and back, in the TF graph
    packing.py    pack_segments: [CLS] A [SEP] (B [SEP]), truncation, padding (core TF ops)
    offsets.py    utf8_bytes, char_of_byte: the tokenizer's byte offsets -> characters (numpy)

Names resolve lazily, so `from kbert.tokenization import Vocabulary` does not import TensorFlow.
"""

from __future__ import annotations

from kbert._lazy import lazy_exports

_EXPORTS = {
    "Vocabulary": "kbert.tokenization.vocab",
    "VocabularyError": "kbert.tokenization.vocab",
    "train_vocabulary": "kbert.tokenization.vocab_training",
    "SPECIAL_TOKENS": "kbert.tokenization.vocab",
    "BertTokenizer": "kbert.tokenization.tokenizer",
    "normalize": "kbert.tokenization.tokenizer",
    "pack_segments": "kbert.tokenization.packing",
    "char_of_byte": "kbert.tokenization.offsets",
    "utf8_bytes": "kbert.tokenization.offsets",
    "num_truncated": "kbert.tokenization.packing",
    "truncated_lengths": "kbert.tokenization.packing",
}


__getattr__, __dir__ = lazy_exports(__name__, globals(), _EXPORTS)


__all__ = sorted(_EXPORTS)
