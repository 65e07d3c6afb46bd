"""Pre-training heads: masked-LM (tied decoder, evaluated at the masked positions only) and NSP.

Example:
    >>> import numpy as np, keras
    >>> from kbert.layers.heads import MaskedLMHead, NextSentenceHead
    >>> table = keras.layers.Embedding(100, 8); table.build((None,))
    >>> mlm = MaskedLMHead(vocab_size=100, token_embedding=table)
    >>> tuple(mlm(np.zeros((2, 6, 8), "float32"), np.array([[1, 2, 0], [4, 0, 0]])).shape)
    (2, 3, 100)
    >>> tuple(NextSentenceHead()(np.zeros((2, 8), "float32")).shape)
    (2, 2)
"""

from __future__ import annotations

import keras
from keras import ops

from kbert.layers.attention import gather_positions  # noqa: F401 (also imported from here)


def _activation(name):
    # "gelu" is the exact erf form (what BERT configs mean), "gelu_tanh" the original TF
    # approximation.
    if name == "gelu":
        return lambda x: keras.activations.gelu(x, approximate=False)
    if name == "gelu_tanh":
        return lambda x: keras.activations.gelu(x, approximate=True)
    return keras.activations.get(name)


def _embedding_matrix(token_embedding):
    """The [vocab, H] variable behind a BertEmbeddings, a keras Embedding, or a bare variable."""
    if hasattr(token_embedding, "token_embedding_matrix"):
        return token_embedding.token_embedding_matrix
    if hasattr(token_embedding, "embeddings"):
        return token_embedding.embeddings
    return token_embedding


class _Untracked:
    """Holds a reference Keras must not track: the tied table belongs to the encoder, and tracking
    it here too would list (and save) the same variable under two owners."""

    def __init__(self, value):
        self.value = value


@keras.saving.register_keras_serializable(package="kbert")
class MaskedLMHead(keras.layers.Layer):
    """Masked-LM head: gather -> dense + activation + LayerNorm -> tied decoder + output bias.

    The vectors at `masked_positions` are gathered FIRST, so the transform and the [H, V] decoder
    run on batch x max_predictions vectors, never on every position. The decoder multiplies by the
    transpose of the encoder's token-embedding variable itself (weight tying, no copy).

    Inputs: `sequence_output` float [B, S, H]; `masked_positions` int [B, P]. Without
    `masked_positions`, `sequence_output` is taken as already gathered, [B, P, H] (what
    `BertEncoder(..., output_positions=masked_positions)` returns).
    Output: logits float32 [B, P, vocab_size] (float32 even under a mixed policy, for a stable
    softmax over the vocabulary).

    Weights: `dense` kernel [H, H] / bias [H], `layer_norm` gamma / beta [H], `output_bias` [V].

    Args:
        vocab_size: V; must equal the tied table's row count.
        token_embedding: the layer owning the token table (a `BertEmbeddings`, a keras
            `Embedding`, or the variable itself). Not part of the config: a model that owns both
            the encoder and this head passes it again when rebuilt from its config.
        activation: "gelu" (erf), "gelu_tanh" or any Keras activation name.
        layer_norm_epsilon: LayerNorm epsilon.
        initializer_range: stddev of the truncated-normal kernel initializer.
    """

    def __init__(self, vocab_size: int, token_embedding=None, activation: str = "gelu",
                 layer_norm_epsilon: float = 1e-12, initializer_range: float = 0.02, **kwargs):
        super().__init__(**kwargs)
        self.vocab_size = int(vocab_size)
        self.activation = activation
        self.layer_norm_epsilon = float(layer_norm_epsilon)
        self.initializer_range = float(initializer_range)
        self._tied = _Untracked(token_embedding)
        self._activation_fn = _activation(activation)
        self.dense = None
        self.layer_norm = keras.layers.LayerNormalization(
            epsilon=self.layer_norm_epsilon, dtype=self.dtype_policy, name="layer_norm")

    def tie(self, token_embedding):
        """Point the decoder at a token table (used when the owner rebuilds the model)."""
        self._tied = _Untracked(token_embedding)

    @property
    def embedding_matrix(self):
        if self._tied.value is None:
            raise ValueError("MaskedLMHead has no token embedding to tie its decoder to; pass "
                             "token_embedding= (the encoder's embeddings layer)")
        return _embedding_matrix(self._tied.value)

    def build(self, sequence_output_shape, masked_positions_shape=None):
        hidden = sequence_output_shape[-1]
        rows, width = self.embedding_matrix.shape
        if rows != self.vocab_size or width != hidden:
            raise ValueError(
                f"the tied token table is [{rows}, {width}] but the head expects "
                f"[vocab_size={self.vocab_size}, hidden={hidden}]")
        self.dense = keras.layers.Dense(
            hidden, kernel_initializer=keras.initializers.TruncatedNormal(
                stddev=self.initializer_range),
            dtype=self.dtype_policy, name="dense")
        self.dense.build((None, hidden))
        self.layer_norm.build((None, hidden))
        self.output_bias = self.add_weight(name="output_bias", shape=(self.vocab_size,),
                                           initializer="zeros")

    def call(self, sequence_output, masked_positions=None):
        x = sequence_output
        if masked_positions is not None:
            x = gather_positions(sequence_output, masked_positions)
        x = self.layer_norm(self._activation_fn(self.dense(x)))
        table = ops.cast(self.embedding_matrix, x.dtype)
        logits = ops.matmul(x, ops.transpose(table))
        return ops.cast(logits, "float32") + ops.cast(self.output_bias, "float32")

    def compute_output_shape(self, sequence_output_shape, masked_positions_shape=None):
        rows = masked_positions_shape or sequence_output_shape
        return (rows[0], rows[1], self.vocab_size)

    def get_config(self):
        config = super().get_config()
        config.update(vocab_size=self.vocab_size, activation=self.activation,
                      layer_norm_epsilon=self.layer_norm_epsilon,
                      initializer_range=self.initializer_range)
        return config


@keras.saving.register_keras_serializable(package="kbert")
class NextSentenceHead(keras.layers.Layer):
    """Next-sentence head: logits = pooled_output @ W_NSP + b, W_NSP [H, 2].

    Input: `pooled_output` float [B, H]. Output: logits float32 [B, 2]; column 0 = IsNext,
    column 1 = NotNext (the `next_sentence_labels` convention).

    Args:
        initializer_range: stddev of the truncated-normal kernel initializer.
    """

    def __init__(self, initializer_range: float = 0.02, **kwargs):
        super().__init__(**kwargs)
        self.initializer_range = float(initializer_range)

    def build(self, pooled_shape):
        self.kernel = self.add_weight(
            name="kernel", shape=(pooled_shape[-1], 2),
            initializer=keras.initializers.TruncatedNormal(stddev=self.initializer_range))
        self.bias = self.add_weight(name="bias", shape=(2,), initializer="zeros")

    def call(self, pooled_output):
        logits = ops.matmul(pooled_output, ops.cast(self.kernel, pooled_output.dtype))
        return ops.cast(logits, "float32") + ops.cast(self.bias, "float32")

    def compute_output_shape(self, pooled_shape):
        return (pooled_shape[0], 2)

    def get_config(self):
        config = super().get_config()
        config.update(initializer_range=self.initializer_range)
        return config
