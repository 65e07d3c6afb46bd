"""kbert.models: networks built from kbert.layers (keras.ops only, no TensorFlow import)."""

from kbert.models.encoder import BertEncoder

__all__ = ["BertEncoder"]
