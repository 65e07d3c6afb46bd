"""kbert: BERT end to end on Keras 3 / TensorFlow.

Public names are resolved lazily, so `import kbert` is cheap and the model code
(`kbert.layers`, `kbert.models`) never pulls in TensorFlow.
"""

from __future__ import annotations

from kbert._lazy import lazy_exports

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS = {
    "BertConfig": "kbert.config",
    "ConfigError": "kbert.config",
    "ContextualEmbedder": "kbert.embeddings",
    "CheckpointError": "kbert.convert",
    "load": "kbert.loading",
    "Loaded": "kbert.loading",
    "ModelSourceError": "kbert.loading",
    "load_transformers_checkpoint": "kbert.convert",
    "save_transformers_checkpoint": "kbert.convert",
    "load_google_checkpoint": "kbert.convert",
    "load_keras_hub_preset": "kbert.convert",
    "save_keras_hub_preset": "kbert.convert",
    "save_kbert_model": "kbert.convert",
    "BertEncoder": "kbert.models.encoder",
    "BertClassifier": "kbert.tasks",
    "BertTokenClassifier": "kbert.tasks",
    "BertSpanExtractor": "kbert.tasks",
    "BertMultipleChoice": "kbert.tasks",
    "LabelMap": "kbert.tasks",
    "load_labelled": "kbert.tasks",
    "stratified_split": "kbert.tasks",
    "BertTokenizer": "kbert.tokenization",
    "Vocabulary": "kbert.tokenization",
    "train_vocabulary": "kbert.tokenization",
}


__getattr__, __dir__ = lazy_exports(__name__, globals(), _EXPORTS)


__all__ = sorted(_EXPORTS)
