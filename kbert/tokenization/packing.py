"""`[CLS] A [SEP] (B [SEP])` packing with longest-first truncation, in core TensorFlow ops.

Only core ops (Range, Gather, Select, Cumsum, comparisons, arithmetic) on the ragged inputs'
values and row_splits: no tf-text trimmer (`TFText>RoundRobinTrim` is missing from TF Serving
2.16-2.19) and no `RaggedRange` / RaggedTensorToTensor (no TFLite kernel), so a text-in
SavedModel or TFLite model can pack inside the graph. `tests/test_packing.py` checks the graph.
`pack_id_lists` packs Python id lists (the token-level task heads) by the same rule.

Truncation is transformers' "longest_first" as its (Rust) tokenizers library computes it for
`BertTokenizerFast`, cutting tokens from the ends. With budget = max_length - 3 and a pair that
does not fit: if the shorter segment s fits in half the budget (2s <= budget) it is kept whole
and the longer one gets the rest; otherwise the shorter gets floor(budget / 2) and the longer
ceil(budget / 2), A counting as the shorter on a tie. This is the one-token-at-a-time rule
(longer first, B on a tie) except when both are cut and the budget is odd: that rule gives A
the extra token, transformers 5 gives it to the longer segment (B on a tie).

Example:
    >>> a = tf.ragged.constant([[7, 8, 9], [5]])
    >>> b = tf.ragged.constant([[10, 11], [12, 13, 14]])
    >>> pack_segments([a, b], max_length=6, cls_id=2, sep_id=3, pad_id=0)["token_ids"]
    <tf.Tensor: shape=(2, 6), dtype=int32, numpy=
    array([[ 2,  7,  8,  3, 10,  3],
           [ 2,  5,  3, 12, 13,  3]], dtype=int32)>
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf


def _row_lengths(segment: tf.RaggedTensor) -> tf.Tensor:
    splits = tf.cast(segment.row_splits, tf.int32)
    return splits[1:] - splits[:-1]


def _check(segments, max_length: int) -> list[tf.RaggedTensor]:
    if not isinstance(segments, (list, tuple)) or len(segments) not in (1, 2):
        raise ValueError(f"segments must be a list of 1 or 2 ragged tensors, got {type(segments)}")
    out = []
    for s in segments:
        if not isinstance(s, tf.RaggedTensor):
            raise ValueError(f"each segment must be a tf.RaggedTensor [batch, (n)], got {type(s)}")
        if s.ragged_rank != 1 or s.flat_values.shape.rank != 1:
            raise ValueError(f"each segment must be [batch, (n)], got shape {s.shape}")
        out.append(s)
    minimum = len(segments) + 1
    if not isinstance(max_length, int) or max_length < minimum:
        raise ValueError(
            f"max_length must be an integer >= {minimum} for {len(segments)} segment(s) "
            f"([CLS] and {len(segments)} [SEP]), got {max_length!r}")
    return out


def truncated_lengths(lengths: list[tf.Tensor], max_length: int) -> list[tf.Tensor]:
    """How many tokens of each segment survive longest-first truncation.

    Args:
        lengths: 1 or 2 int32 tensors [batch], the segment lengths.
        max_length: total length including [CLS] and the [SEP]s.

    Returns:
        list of int32 [batch], the kept lengths of A (and B).
    """
    budget = max_length - 1 - len(lengths)
    if len(lengths) == 1:
        return [tf.minimum(lengths[0], budget)]
    la, lb = lengths
    fits = la + lb <= budget
    a_is_shorter = la <= lb
    shorter = tf.minimum(la, lb)
    shorter_kept = tf.where(2 * shorter <= budget, shorter, budget // 2)
    a_kept = tf.where(a_is_shorter, shorter_kept, budget - shorter_kept)
    return [tf.where(fits, la, a_kept), tf.where(fits, lb, budget - a_kept)]


def num_truncated(segments: list[tf.RaggedTensor], max_length: int) -> tf.Tensor:
    """int32 [batch]: tokens removed from each row by `pack_segments` (0 when it fits)."""
    segments = _check(segments, max_length)
    lengths = [_row_lengths(s) for s in segments]
    kept = truncated_lengths(lengths, max_length)
    return tf.add_n(lengths) - tf.add_n(kept)


def place_segment(segment: tf.RaggedTensor, first: tf.Tensor, kept: tf.Tensor,
                  max_length: int, fill) -> tf.Tensor:
    """Dense [batch, max_length]: `segment[row, p - first[row]]` at the packed positions
    p in [first, first + kept) of each row, `fill` elsewhere (core ops only, any dtype).

    Lays per-piece values (e.g. the tokenizer's offsets) over the packed rows, where
    `first` is the position of a segment's first piece (1 for A) and `kept` its kept length.
    """
    position = tf.range(max_length, dtype=tf.int32)[tf.newaxis, :]
    first = tf.cast(first, tf.int32)[:, tf.newaxis]
    inside = (position >= first) & (position < first + tf.cast(kept, tf.int32)[:, tf.newaxis])
    return tf.where(inside, _take(segment, first, position), tf.cast(fill, segment.dtype))


def _take(segment: tf.RaggedTensor, first: tf.Tensor, position: tf.Tensor) -> tf.Tensor:
    """segment[row, position - first] where that index is valid, for every cell (clipped
    elsewhere: callers mask those cells)."""
    # one dummy value so that gathering from an empty batch or empty rows is legal
    values = tf.concat([segment.flat_values, tf.zeros([1], segment.dtype)], 0)
    row_start = tf.cast(segment.row_splits[:-1], tf.int32)[:, tf.newaxis]
    index = tf.clip_by_value(row_start + position - first, 0, tf.size(values) - 1)
    return tf.gather(values, index)


def pack_segments(segments: list[tf.RaggedTensor], max_length: int, cls_id: int, sep_id: int,
                  pad_id: int = 0, kept: list[tf.Tensor] | None = None) -> dict[str, tf.Tensor]:
    """Truncate, add [CLS]/[SEP], pad: the model inputs of a batch of 1 or 2 segments.

    Args:
        segments: [A] or [A, B], int ragged tensors [batch, (n)] of token ids (no specials).
        max_length: output length, >= 2 for one segment, >= 3 for a pair.
        cls_id, sep_id, pad_id: the special-token ids.
        kept: per segment, int32 [batch] lengths to keep (their sum must fit max_length with
            the special tokens); default: longest-first truncation (`truncated_lengths`).

    Returns:
        dict of int32 [batch, max_length] tensors:
        token_ids `[CLS] A [SEP] (B [SEP]) [PAD]...`, segment_ids (0 for [CLS] A [SEP], 1 for
        B [SEP], 0 on padding), padding_mask (1 on real tokens, 0 on padding).
    """
    segments = _check(segments, max_length)
    if kept is None:
        kept = truncated_lengths([_row_lengths(s) for s in segments], max_length)
    elif len(kept) != len(segments):
        raise ValueError(f"kept needs one length per segment, got {len(kept)}")
    else:
        kept = [tf.cast(k, tf.int32) for k in kept]
    position = tf.range(max_length, dtype=tf.int32)[tf.newaxis, :]  # [1, max_length]

    def take(segment: tf.RaggedTensor, offset: tf.Tensor) -> tf.Tensor:
        return _take(segment.with_flat_values(tf.cast(segment.flat_values, tf.int32)),
                     offset[:, tf.newaxis], position)

    a_end = 1 + kept[0]  # position of the first [SEP]
    a_end_col = a_end[:, tf.newaxis]
    token_ids = tf.where(position < a_end_col, take(segments[0], tf.ones_like(a_end)), pad_id)
    token_ids = tf.where(position == 0, cls_id, token_ids)
    token_ids = tf.where(position == a_end_col, sep_id, token_ids)
    total = a_end + 1
    segment_ids = tf.zeros_like(token_ids)
    if len(segments) == 2:
        b_end_col = (a_end + 1 + kept[1])[:, tf.newaxis]
        in_b = (position > a_end_col) & (position < b_end_col)
        token_ids = tf.where(in_b, take(segments[1], a_end + 1), token_ids)
        token_ids = tf.where(position == b_end_col, sep_id, token_ids)
        segment_ids = tf.cast((position > a_end_col) & (position <= b_end_col), tf.int32)
        total = total + kept[1] + 1
    padding_mask = tf.cast(position < total[:, tf.newaxis], tf.int32)
    return {"token_ids": token_ids, "segment_ids": segment_ids, "padding_mask": padding_mask}


def pack_id_lists(segments, max_length: int, cls_id: int, sep_id: int,
                  pad_id: int = 0) -> dict[str, np.ndarray]:
    """`pack_segments` for Python id lists that already fit: numpy model inputs.

    Args:
        segments: [A] or [A, B], each a list with one id list per example (no special tokens).
        max_length, cls_id, sep_id, pad_id: as for `pack_segments`.

    Returns:
        dict of int32 numpy arrays [examples, max_length]: token_ids, segment_ids, padding_mask.

    Raises:
        ValueError: an example does not fit max_length with its [CLS] and [SEP]s (nothing is
            truncated here: callers choose what to keep).
    """
    lengths = [np.array([len(row) for row in segment], np.int32) for segment in segments]
    if len({len(n) for n in lengths}) > 1:
        raise ValueError("the segments have different numbers of rows: "
                         f"{[len(n) for n in lengths]}")
    totals = sum(lengths) + 1 + len(segments)
    if totals.size and totals.max() > max_length:
        raise ValueError(f"{int(totals.max())} tokens do not fit max_length={max_length}")
    ragged = [tf.RaggedTensor.from_row_lengths(
        np.concatenate([np.asarray(row, np.int32).reshape(-1) for row in segment]
                       + [np.zeros(0, np.int32)]), n)
        for segment, n in zip(segments, lengths, strict=True)]
    packed = pack_segments(ragged, max_length, cls_id, sep_id, pad_id, kept=lengths)
    return {k: v.numpy() for k, v in packed.items()}
