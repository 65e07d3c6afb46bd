"""Long texts as overlapping windows: the one place they are cut, and their logits pooled.

A text longer than the model's length loses everything past it when truncated. With windows, a
text of n word pieces becomes ceil((n - size) / stride) + 1 windows of at most
`size = max_length - 2` pieces ([CLS] window [SEP]), each starting `stride` pieces after the
last; a text that fits is one window, exactly its truncated packing. The classifier is trained
on every window with its text's label and scores a text by the mean of its windows' logits, in
`predict_texts` / `kbert classify` and in the exported `classify` signature (the same graph
code, `windowed_features`, runs in both). Pairs (`classify_pairs`) are truncated as before.

`choose_windows` is the default of `kbert finetune`: windows when truncation would drop more
than `WINDOW_THRESHOLD` of the training set's word pieces, with a stride of half a window.

    >>> windows_per_text([10, 126, 127, 300], max_length=128, stride=63)
    [1, 1, 2, 4]
"""

from __future__ import annotations

import numpy as np

from kbert.tasks.datasets import trim_padding

WINDOW_THRESHOLD = 0.10  # share of the training pieces truncation may drop before windows are used


def window_size(max_length: int) -> int:
    return max_length - 2  # [CLS] window [SEP]


def default_stride(max_length: int) -> int:
    """Half a window: each piece is seen in two windows (one at a text's ends)."""
    return max(1, window_size(max_length) // 2)


def check_stride(stride: int, max_length: int) -> int:
    size = window_size(max_length)
    if isinstance(stride, bool) or not isinstance(stride, int) or not 1 <= stride <= size:
        raise ValueError(f"window stride must be an integer in [1, {size}] (the window is "
                         f"max_length - 2 = {size} pieces), got {stride!r}")
    return stride


def windows_per_text(lengths, max_length: int, stride: int) -> list[int]:
    """How many windows each text of `lengths` word pieces becomes."""
    size = window_size(max_length)
    extra = np.maximum(np.asarray(lengths, np.int64) - size, 0)
    return (1 + -(-extra // stride)).tolist()


def piece_counts(tokenizer, texts) -> np.ndarray:
    """The number of word pieces of each text (no special tokens)."""
    import tensorflow as tf  # noqa: PLC0415  (deferred: TensorFlow, not needed on JAX)

    if not len(texts):
        return np.zeros(0, np.int64)
    return np.asarray(tokenizer.tokenize(tf.constant(list(texts), tf.string)).row_lengths())


def windowed_features(tokenizer, texts, max_length: int, stride: int):
    """Graph code: string [batch] -> (packed features of every window, each int32
    [windows, max_length]; int32 [windows] the index of each window's text)."""
    import tensorflow as tf  # noqa: PLC0415  (deferred: TensorFlow, not needed on JAX)

    from kbert.tokenization.packing import pack_segments  # noqa: PLC0415  (TensorFlow code)

    ids = tokenizer.tokenize(texts)
    size = window_size(max_length)
    lengths = tf.cast(ids.row_lengths(), tf.int32)
    extra = tf.maximum(lengths - size, 0)
    count = 1 + (extra + stride - 1) // stride  # windows per text
    text_index = tf.repeat(tf.range(tf.shape(lengths)[0], dtype=tf.int32), count)
    within = tf.ragged.range(count).flat_values  # 0, 1, ... inside each text
    row_start = tf.gather(tf.cast(ids.row_starts(), tf.int32), text_index)
    begin = row_start + within * stride
    end = tf.minimum(begin + size, row_start + tf.gather(lengths, text_index))
    pieces = tf.gather(ids.flat_values, tf.ragged.range(begin, end))
    packed = pack_segments([pieces], max_length, tokenizer.cls_id, tokenizer.sep_id,
                           tokenizer.pad_id)
    return packed, text_index


def windowed_arrays(tokenizer, texts, max_length: int, stride: int):
    """`windowed_features` run eagerly on a list of strings -> (dict of numpy [windows,
    max_length], numpy [windows] text index)."""
    import tensorflow as tf  # noqa: PLC0415  (deferred: TensorFlow, not needed on JAX)

    packed, text_index = windowed_features(tokenizer, tf.constant(list(texts), tf.string),
                                           max_length, stride)
    return {k: np.asarray(v) for k, v in packed.items()}, np.asarray(text_index)


def window_dataset(features: dict, targets, batch_size: int, shuffle: bool, seed: int = 0):
    """A tf.data of packed windows (and their texts' targets): reshuffled each epoch when
    `shuffle`, each batch cut after its longest row (a multiple of 16)."""
    import tensorflow as tf  # noqa: PLC0415  (deferred: TensorFlow, not needed on JAX)

    ds = tf.data.Dataset.from_tensor_slices(
        features if targets is None else (features, np.asarray(targets)))
    if shuffle:
        ds = ds.shuffle(len(features["token_ids"]), seed=seed, reshuffle_each_iteration=True)
    if targets is None:
        trim = lambda f: trim_padding(f, 16)  # noqa: E731
    else:
        trim = lambda f, t: (trim_padding(f, 16), t)  # noqa: E731
    return ds.batch(batch_size).map(trim).prefetch(tf.data.AUTOTUNE)


def pool_windows(logits: np.ndarray, text_index: np.ndarray, num_texts: int) -> np.ndarray:
    """The mean of each text's window logits: [windows, C] -> [num_texts, C]."""
    sums = np.zeros((num_texts,) + logits.shape[1:], np.float64)
    np.add.at(sums, text_index, logits)
    counts = np.bincount(text_index, minlength=num_texts).reshape((-1,) + (1,) * (logits.ndim - 1))
    return (sums / np.maximum(counts, 1)).astype(logits.dtype)


def dropped_share(lengths, max_length: int, pair_lengths=None) -> float:
    """The share of word pieces truncation to `max_length` drops (pairs: both texts together,
    3 special tokens)."""
    lengths = np.asarray(lengths, np.int64)
    total = lengths.sum()
    specials = 2
    if pair_lengths is not None:
        lengths = lengths + np.asarray(pair_lengths, np.int64)
        total = lengths.sum()
        specials = 3
    if total == 0:
        return 0.0
    return float(np.maximum(lengths - (max_length - specials), 0).sum() / total)


def choose_windows(lengths, max_length: int, stride: int | None = None,
                   pair_lengths=None) -> tuple[int | None, str]:
    """(stride or None, the reason): windows when truncation would drop more than
    WINDOW_THRESHOLD of the pieces of single texts; pairs are always truncated."""
    share = dropped_share(lengths, max_length, pair_lengths)
    if pair_lengths is not None:
        return None, f"text pairs are truncated ({share:.0%} of the pieces dropped)"
    if share <= WINDOW_THRESHOLD:
        return None, (f"truncation at {max_length} drops {share:.1%} of the training pieces; "
                      f"no windows")
    stride = check_stride(stride or default_stride(max_length), max_length)
    return stride, (f"windows of {window_size(max_length)} pieces, stride {stride} "
                    f"(truncation at {max_length} would drop {share:.0%} of the training "
                    f"pieces)")
