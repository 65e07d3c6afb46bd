"""BERT input embeddings: token + learned absolute position + segment, then LayerNorm and dropout.

Example:
    >>> import numpy as np
    >>> from kbert.layers import BertEmbeddings
    >>> layer = BertEmbeddings(vocab_size=100, hidden_size=8, max_position_embeddings=16)
    >>> tuple(layer(np.array([[2, 5, 3, 0]]), np.zeros((1, 4), "int32")).shape)
    (1, 4, 8)
"""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="kbert")
class BertEmbeddings(keras.layers.Layer):
    """Sum of token, position and segment embeddings, layer-normalized.

    Inputs: `token_ids` int [batch, seq]; `segment_ids` int [batch, seq] (zeros when omitted).
    Output: float [batch, seq, hidden_size].

    Weights (names are relied on by the converters):
    `token_embedding` [vocab, H], `position_embedding` [max_positions, H],
    `segment_embedding` [type_vocab, H], `layer_norm` gamma/beta [H].

    Args:
        vocab_size: number of token ids.
        hidden_size: H.
        max_position_embeddings: longest sequence the learned positions cover; a longer input
            is an error (raised while tracing when the sequence length is static).
        type_vocab_size: number of segment ids.
        dropout: dropout rate applied after the LayerNorm (training only).
        layer_norm_epsilon: LayerNorm epsilon.
        embeddings_initializer: initializer of the three tables.
    """

    def __init__(
        self,
        vocab_size: int,
        hidden_size: int,
        max_position_embeddings: int = 512,
        type_vocab_size: int = 2,
        dropout: float = 0.0,
        layer_norm_epsilon: float = 1e-12,
        embeddings_initializer="truncated_normal",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.vocab_size = int(vocab_size)
        self.hidden_size = int(hidden_size)
        self.max_position_embeddings = int(max_position_embeddings)
        self.type_vocab_size = int(type_vocab_size)
        self.dropout_rate = float(dropout)
        self.layer_norm_epsilon = float(layer_norm_epsilon)
        self.embeddings_initializer = keras.initializers.get(embeddings_initializer)

        def table(rows, name):
            return keras.layers.Embedding(
                rows, self.hidden_size, embeddings_initializer=self._initializer(),
                dtype=self.dtype_policy, name=name)

        self.token_embedding = table(self.vocab_size, "token_embedding")
        self.position_embedding = table(self.max_position_embeddings, "position_embedding")
        self.segment_embedding = table(self.type_vocab_size, "segment_embedding")
        self.layer_norm = keras.layers.LayerNormalization(
            epsilon=self.layer_norm_epsilon, dtype=self.dtype_policy, name="layer_norm")
        self.dropout = keras.layers.Dropout(self.dropout_rate, dtype=self.dtype_policy,
                                            name="dropout")

    def _initializer(self):
        # One initializer instance per variable, as Keras expects (a reused seeded instance warns).
        return keras.initializers.get(keras.initializers.serialize(self.embeddings_initializer))

    def build(self, input_shape=None):
        """Create every weight; `input_shape` (the token_ids shape) is not needed."""
        self.token_embedding.build((None, None))
        self.position_embedding.build((None, None))
        self.segment_embedding.build((None, None))
        self.layer_norm.build((None, None, self.hidden_size))

    @property
    def token_embedding_matrix(self):
        """The [vocab, H] token table (the MLM decoder is tied to it)."""
        return self.token_embedding.embeddings

    def call(self, token_ids, segment_ids=None, training=None):
        token_ids = ops.cast(token_ids, "int32")
        seq_len = token_ids.shape[1]
        if seq_len is not None and seq_len > self.max_position_embeddings:
            raise ValueError(
                f"sequence length {seq_len} exceeds max_position_embeddings="
                f"{self.max_position_embeddings}; truncate the input or use a model with more "
                "positions")
        if segment_ids is None:
            segment_ids = ops.zeros_like(token_ids)
        segment_ids = ops.cast(segment_ids, "int32")

        # Positions are 0..seq-1 for every row: slice the table instead of gathering.
        # With a dynamic seq longer than the table the add below fails on shapes.
        positions = ops.cast(self.position_embedding.embeddings, self.compute_dtype)
        positions = positions[: ops.shape(token_ids)[1]]
        x = (self.token_embedding(token_ids)
             + self.segment_embedding(segment_ids)
             + positions[None])
        x = self.layer_norm(x)
        return self.dropout(x, training=training)

    def get_config(self):
        config = super().get_config()
        config.update(
            vocab_size=self.vocab_size,
            hidden_size=self.hidden_size,
            max_position_embeddings=self.max_position_embeddings,
            type_vocab_size=self.type_vocab_size,
            dropout=self.dropout_rate,
            layer_norm_epsilon=self.layer_norm_epsilon,
            embeddings_initializer=keras.initializers.serialize(self.embeddings_initializer),
        )
        return config
