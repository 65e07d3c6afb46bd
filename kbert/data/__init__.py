"""The pre-training data pipeline: corpus -> documents -> sentences -> NSP pairs -> MLM batches.

    corpus.py        Document, iter_documents, document_dataset, detect_format, is_heldout
    segmentation.py  split_sentences, join_lines, heading rules (pure Python)
    pairs.py         NSP pairs as a tf.data transformation (nsp_pairs, PairOptions)
    masking.py       MlmMasker, MaskingOptions: MLM masking, unigram replacement, whole-word option
    pipeline.py      pretraining_dataset (the trainer's entry point), BatchOptions, pair_dataset
    tfrecords.py     NSP pairs as sharded TFRecords (`kbert prepare`), read_pairs

Names resolve lazily, so `import kbert.data` does not import TensorFlow.

Example:
    >>> from kbert.data import pretraining_dataset                          # doctest: +SKIP
    >>> ds = pretraining_dataset("austen", "runs/vocab")                     # doctest: +SKIP
    >>> features, labels = next(iter(ds))                                   # doctest: +SKIP
"""

from __future__ import annotations

from kbert._lazy import lazy_exports

_EXPORTS = {
    "Document": "kbert.data.corpus",
    "iter_documents": "kbert.data.corpus",
    "document_dataset": "kbert.data.corpus",
    "detect_format": "kbert.data.corpus",
    "is_heldout": "kbert.data.corpus",
    "split_sentences": "kbert.data.segmentation",
    "PairOptions": "kbert.data.pairs",
    "nsp_pairs": "kbert.data.pairs",
    "CorpusOptions": "kbert.data.corpus",
    "MlmMasker": "kbert.data.masking",
    "MaskingOptions": "kbert.data.masking",
    "BatchOptions": "kbert.data.pipeline",
    "MaskingError": "kbert.data.masking",
    "pretraining_dataset": "kbert.data.pipeline",
    "pair_dataset": "kbert.data.pipeline",
    "read_pairs": "kbert.data.tfrecords",
    "PairFileError": "kbert.data.tfrecords",
}


__getattr__, __dir__ = lazy_exports(__name__, globals(), _EXPORTS)


__all__ = sorted(_EXPORTS)
