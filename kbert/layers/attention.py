"""Bidirectional multi-head self-attention with a padding mask (no causal mask).

Fused projection layout (converters rely on it): the `qkv` Dense kernel is [H, 3H] with columns
`query | key | value`, and each of the three H-wide blocks is split into heads in order
head0..head{A-1}, i.e. the [.., 3H] projection reshapes to [.., 3, A, H/A]. A checkpoint with
separate q/k/v kernels [H, H] (in -> out) converts by concatenating them along the output axis:
`kernel = concat([q, k, v], axis=1)`, `bias = concat([bq, bk, bv])`.

Example:
    >>> import numpy as np
    >>> from kbert.layers import MultiHeadSelfAttention
    >>> attention = MultiHeadSelfAttention(hidden_size=8, num_heads=2)
    >>> x = np.random.rand(1, 4, 8).astype("float32")
    >>> out, probs = attention(x, padding_mask=np.array([[1, 1, 1, 0]]),
    ...                        return_attention_scores=True)
    >>> tuple(out.shape), tuple(probs.shape)
    ((1, 4, 8), (1, 2, 4, 4))
"""

from __future__ import annotations

import math

import keras
from keras import ops

# A finite "minus infinity": a row whose keys are all padding then gets uniform weights
# instead of NaN (the same convention as keras.ops.dot_product_attention's TF/JAX paths).
_MASKED_LOGIT = -0.7 * 3.38953e38


def gather_positions(sequence, positions):
    """[B, S, H] x int [B, P] -> [B, P, H]: the vectors at the given positions of each row."""
    positions = ops.cast(positions, "int32")
    shape = ops.shape(sequence)
    batch, seq_len, hidden = shape[0], shape[1], shape[2]
    offsets = ops.reshape(ops.arange(batch, dtype="int32") * seq_len, (-1, 1))
    flat = ops.reshape(sequence, (-1, hidden))
    picked = ops.take(flat, ops.reshape(positions + offsets, (-1,)), axis=0)
    return ops.reshape(picked, (batch, ops.shape(positions)[1], hidden))


def _backend_has_fused_attention():
    # keras.ops.dot_product_attention has fused kernels on JAX (cuDNN, TPU splash) and torch; on
    # TensorFlow it is a composite of einsums, slower than this layer's explicit path.
    return keras.config.backend() != "tensorflow"


@keras.saving.register_keras_serializable(package="kbert")
class MultiHeadSelfAttention(keras.layers.Layer):
    """Self-attention over a [batch, seq, H] sequence, keys restricted by a padding mask.

    Call args:
        x: float [batch, seq, H].
        padding_mask: optional int/bool [batch, seq], 1/True on real tokens. Padded positions are
            never attended to; a row whose tokens are all padding attends uniformly (no NaN).
        training: enables attention dropout.
        return_attention_scores: also return the probabilities [batch, heads, seq, seq].
        query_positions: optional int [batch, P]: attend from these positions only (keys and
            values still cover the whole sequence); the output then has P rows, in this order.
            Pre-training uses it in the last block, whose other rows no loss reads.

    Returns float [batch, seq or P, H], or `(output, probs)` when scores are requested
    (probabilities [batch, heads, seq or P, seq]).

    The default path is `keras.ops.dot_product_attention` (a fused kernel where the backend
    has one); the explicit softmax path runs when probabilities are requested, when attention
    dropout is active in training, and on the TensorFlow backend (which has no fused kernel
    and runs the explicit path faster). Both give the same result.

    Args:
        hidden_size: H.
        num_heads: A; H must be divisible by A.
        attention_dropout: dropout rate on the attention probabilities.
        kernel_initializer, bias_initializer: for the `qkv` and `output` Dense layers.
        fused_attention: use `keras.ops.dot_product_attention` when no probabilities or
            attention dropout are needed. None (default): yes, except on TensorFlow.
    """

    def __init__(
        self,
        hidden_size: int,
        num_heads: int,
        attention_dropout: float = 0.0,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        fused_attention: bool | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if hidden_size % num_heads:
            raise ValueError(
                f"hidden_size ({hidden_size}) must be divisible by num_heads ({num_heads})")
        self.hidden_size = int(hidden_size)
        self.num_heads = int(num_heads)
        self.head_size = self.hidden_size // self.num_heads
        self.attention_dropout = float(attention_dropout)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.fused_attention = fused_attention
        self._fused = (_backend_has_fused_attention() if fused_attention is None
                       else bool(fused_attention))

        self.qkv = keras.layers.Dense(3 * self.hidden_size, **self._dense_args(), name="qkv")
        self.output_dense = keras.layers.Dense(self.hidden_size, **self._dense_args(),
                                               name="output")
        self.dropout = keras.layers.Dropout(self.attention_dropout, dtype=self.dtype_policy,
                                            name="attention_dropout")

    def _dense_args(self):
        return dict(
            kernel_initializer=keras.initializers.get(
                keras.initializers.serialize(self.kernel_initializer)),
            bias_initializer=keras.initializers.get(
                keras.initializers.serialize(self.bias_initializer)),
            dtype=self.dtype_policy,
        )

    def build(self, input_shape=None):
        """Create every weight; `input_shape` [batch, seq, H] is optional (H is known)."""
        if input_shape is not None and input_shape[-1] not in (None, self.hidden_size):
            raise ValueError(
                f"{self.name}: input width {input_shape[-1]} != hidden_size {self.hidden_size}")
        self.qkv.build((None, None, self.hidden_size))
        self.output_dense.build((None, None, self.hidden_size))

    def call(self, x, padding_mask=None, training=None, return_attention_scores=False,
             query_positions=None):
        batch, seq = ops.shape(x)[0], ops.shape(x)[1]
        # Dense layers see 2-D [batch * seq, H]: TF then fuses MatMul + BiasAdd.
        qkv = self.qkv(ops.reshape(x, (-1, self.hidden_size)))
        queries = None
        if query_positions is not None:
            # The query columns of the rows asked for: [batch, P, heads, size].
            picked = gather_positions(ops.reshape(qkv, (batch, seq, 3 * self.hidden_size)),
                                      query_positions)[:, :, :self.hidden_size]
            queries = ops.reshape(picked, (batch, -1, self.num_heads, self.head_size))
        qkv = ops.reshape(qkv, (batch, seq, 3, self.num_heads, self.head_size))

        mask = None
        if padding_mask is not None:
            # [batch, 1 (heads), 1 (queries), seq (keys)]. expand_dims, not [:, None, None, :]:
            # a new-axis StridedSlice on bool has no TFLite built-in kernel.
            mask = ops.expand_dims(ops.expand_dims(ops.cast(padding_mask, "bool"), 1), 1)

        explicit = (return_attention_scores or not self._fused
                    or (training and self.attention_dropout > 0))
        probs = None
        if explicit:
            context, probs = self._attend_explicit(qkv, mask, training, queries)
        else:
            query, key, value = ops.unstack(qkv, 3, axis=2)  # each [batch, seq, heads, size]
            query = query if queries is None else queries
            context = ops.dot_product_attention(query, key, value, mask=mask)
        rows = seq if queries is None else ops.shape(queries)[1]
        output = self.output_dense(ops.reshape(context, (-1, self.hidden_size)))
        output = ops.reshape(output, (batch, rows, self.hidden_size))
        if return_attention_scores:
            return output, probs
        return output

    def _attend_explicit(self, qkv, mask, training, queries=None):
        # One transpose to [3, batch, heads, seq, size]; then the matmuls need no others
        # (cheaper on TF than the BTNH layout of dot_product_attention).
        qkv = ops.transpose(qkv, (2, 0, 3, 1, 4))
        query, key, value = ops.unstack(qkv, 3, axis=0)  # (unstack: a cheap gradient)
        if queries is not None:
            query = ops.transpose(queries, (0, 2, 1, 3))  # [batch, heads, P, size]
        query = query * ops.cast(1.0 / math.sqrt(self.head_size), query.dtype)
        logits = ops.matmul(query, ops.swapaxes(key, -1, -2))  # [batch, heads, q, k]
        # Softmax in float32 even under a mixed policy: bf16 sums of probabilities drift.
        logits = ops.cast(logits, "float32")
        if mask is not None:
            logits = ops.where(mask, logits, _MASKED_LOGIT)
        probs = ops.softmax(logits, axis=-1)
        dropped = self.dropout(ops.cast(probs, value.dtype), training=training)
        context = ops.matmul(dropped, value)  # [batch, heads, seq or P, size]
        return ops.transpose(context, (0, 2, 1, 3)), probs

    def get_config(self):
        config = super().get_config()
        config.update(
            hidden_size=self.hidden_size,
            num_heads=self.num_heads,
            attention_dropout=self.attention_dropout,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
            bias_initializer=keras.initializers.serialize(self.bias_initializer),
            fused_attention=self.fused_attention,
        )
        return config
