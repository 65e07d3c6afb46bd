"""kbert.layers: the encoder's building blocks (keras.ops only, no TensorFlow import)."""

from kbert.layers.attention import MultiHeadSelfAttention
from kbert.layers.embeddings import BertEmbeddings
from kbert.layers.transformer import TransformerBlock

__all__ = ["BertEmbeddings", "MultiHeadSelfAttention", "TransformerBlock"]
