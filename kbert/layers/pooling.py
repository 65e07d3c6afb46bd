"""Sentence pooling over an encoder's token vectors (keras.ops only, no TensorFlow import).

One definition for every place that turns `sequence_output` into one vector per text:
`ContextualEmbedder.sentences`, the exported `sentence_embedding` signature and
`BertClassifier`'s mean / max heads. The modes are sentence-transformers' `Pooling` modes:

    mode           vector (mask = padding_mask, 1 on [CLS] ... [SEP], 0 on padding)
    cls            y_0, the final [CLS] vector
    mean           sum_i mask_i y_i / max(sum_i mask_i, 1e-9)
    max            max_i y_i over positions with mask_i = 1 (padding never wins)
    mean_sqrt_len  sum_i mask_i y_i / sqrt(max(sum_i mask_i, 1e-9))

A pooling is one mode or several joined by "+" ("cls+mean"): their vectors are concatenated in
that order ([batch, k * H]), as sentence-transformers does when a folder turns on several.

Example:
    >>> import numpy as np
    >>> seq = np.array([[[1., 2.], [3., 0.], [9., 9.]]], "float32")   # the 3rd row is padding
    >>> np.asarray(pool_sequence(seq, np.array([[1, 1, 0]]), "mean+max")).tolist()
    [[2.0, 1.0, 3.0, 2.0]]
"""

from __future__ import annotations

from keras import ops

POOLING_MODES = ("cls", "mean", "max", "mean_sqrt_len")


def parse_pooling(pooling: str) -> tuple[str, ...]:
    """"mean" -> ("mean",), "cls+max" -> ("cls", "max"); ValueError naming the bad mode."""
    if not isinstance(pooling, str) or not pooling:
        raise ValueError(f"sentence pooling must be one of {', '.join(POOLING_MODES)} (or "
                         f"several joined by '+'), got {pooling!r}")
    modes = tuple(pooling.split("+"))
    for mode in modes:
        if mode not in POOLING_MODES:
            raise ValueError(f"sentence pooling {pooling!r}: unknown mode {mode!r} (known: "
                             f"{', '.join(POOLING_MODES)}; several are joined by '+')")
    return modes


def pool_sequence(sequence, padding_mask, pooling: str):
    """float32 [batch, k * H] sentence vectors of `sequence` [batch, seq, H].

    Args:
        sequence: token vectors (any float dtype; pooled in float32).
        padding_mask: [batch, seq], 1 (or True) on real tokens.
        pooling: a mode of POOLING_MODES or several joined by "+".
    """
    modes = parse_pooling(pooling)
    sequence = ops.cast(sequence, "float32")
    real = ops.expand_dims(ops.cast(padding_mask, "bool"), -1)  # [batch, seq, 1]
    mask = ops.cast(real, "float32")
    vectors = []
    for mode in modes:
        if mode == "cls":
            vectors.append(sequence[:, 0, :])
        elif mode == "max":
            vectors.append(ops.max(ops.where(real, sequence, -1e9), axis=1))
        else:
            count = ops.maximum(ops.sum(mask, axis=1), 1e-9)
            if mode == "mean_sqrt_len":
                count = ops.sqrt(count)
            vectors.append(ops.sum(sequence * mask, axis=1) / count)
    return vectors[0] if len(vectors) == 1 else ops.concatenate(vectors, axis=-1)


def pooled_width(pooling: str, hidden_size: int) -> int:
    """The width of `pool_sequence`'s vectors: hidden_size per mode."""
    return hidden_size * len(parse_pooling(pooling))
