"""Fine-tuning text as tf.data: tokenize and pack in the pipeline, length buckets, truncation
counts (`TruncationReport`, warned as `TruncationWarning`)."""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Sequence

import numpy as np

from kbert.errors import TruncationWarning


@dataclasses.dataclass
class TruncationReport:
    """How many examples `max_length` cuts, and how many tokens they lose in total."""

    examples: int
    truncated_examples: int
    removed_tokens: int
    max_length: int

    def __str__(self) -> str:
        return (f"{self.truncated_examples} of {self.examples} examples are longer than "
                f"max_length={self.max_length} and lose {self.removed_tokens} tokens in total")


def truncation_report(tokenizer, texts: Sequence[str], pairs: Sequence[str] | None = None,
                      max_length: int = 128, warn: bool = True) -> TruncationReport:
    """Count what packing to `max_length` removes; warns (TruncationWarning) when anything is."""
    # deferred: the tokenizer packing is TensorFlow code, not needed on JAX
    from kbert.tokenization.packing import num_truncated  # noqa: PLC0415

    segments = [tokenizer.tokenize(list(texts))]
    if pairs is not None:
        segments.append(tokenizer.tokenize(list(pairs)))
    removed = np.asarray(num_truncated(segments, max_length))
    report = TruncationReport(len(texts), int((removed > 0).sum()), int(removed.sum()), max_length)
    if warn and report.truncated_examples:
        warnings.warn(str(report), TruncationWarning, stacklevel=2)
    return report


def trim_padding(features: dict, multiple: int) -> dict:
    """Cut the all-padding columns of a packed batch, keeping a multiple of `multiple` columns so
    that Keras traces a handful of shapes, not one per batch."""
    # deferred: TensorFlow, not needed on JAX
    import tensorflow as tf  # noqa: PLC0415

    longest = tf.reduce_max(tf.reduce_sum(features["padding_mask"], axis=-1))
    width = tf.shape(features["token_ids"])[-1]
    keep = tf.minimum(width, (longest + multiple - 1) // multiple * multiple)
    return {k: v[..., :keep] for k, v in features.items()}


def text_dataset(tokenizer, texts: Sequence[str], pairs: Sequence[str] | None = None,
                 targets=None, max_length: int = 128, batch_size: int = 32,
                 shuffle: bool = False, seed: int = 0, bucket_width: int | None = 16):
    """A batched `tf.data.Dataset` that tokenizes and packs inside the pipeline.

    Elements: `features` (dict of int32 [batch, seq] token_ids / segment_ids / padding_mask,
    seq <= max_length), or `(features, targets)` when targets are given.

    Without `shuffle` the order is kept and each batch is cut after its longest row (rounded up
    to a multiple of `bucket_width`). With `shuffle` (training) the examples are reshuffled each
    epoch and batched by length buckets of `bucket_width` (widths 16, 32, ...): a batch of short
    sentences is not padded to the longest sentence of the set, and the model sees only a few
    shapes (few traces / XLA compilations).
    """
    # deferred: TensorFlow, not needed on JAX
    import tensorflow as tf  # noqa: PLC0415

    columns = [tf.constant(list(texts), tf.string)]
    if pairs is not None:
        columns.append(tf.constant(list(pairs), tf.string))
    if targets is not None:
        columns.append(tf.constant(np.asarray(targets)))
    ds = tf.data.Dataset.from_tensor_slices(tuple(columns))
    has_pairs = pairs is not None

    def split(batch):
        features = tokenizer(batch[0], pairs=batch[1] if has_pairs else None,
                             max_length=max_length)
        return features, batch[-1] if targets is not None else None

    if shuffle:
        ds = ds.shuffle(len(texts), seed=seed, reshuffle_each_iteration=True)
    if shuffle and bucket_width and tokenizer.pad_id == 0:
        def encode_one(*row):
            features, target = split(row)
            length = tf.reduce_sum(features["padding_mask"])
            features = {k: v[:length] for k, v in features.items()}
            return features if target is None else (features, target)

        boundaries = list(range(bucket_width + 1, max_length + 1, bucket_width)) + [max_length + 1]
        boundaries = sorted(set(boundaries))
        # The batch count is fixed (each bucket's size is), but tf.data cannot know it: count
        # it here so that Keras shows a progress bar from the first epoch on.
        lengths = np.asarray(tokenizer(list(texts), pairs=None if pairs is None else list(pairs),
                                       max_length=max_length)["padding_mask"]).sum(axis=1)
        buckets = np.bincount(np.searchsorted(boundaries, lengths, side="right"))
        num_batches = int(sum(-(-int(c) // batch_size) for c in buckets))
        ds = ds.map(encode_one, num_parallel_calls=tf.data.AUTOTUNE)
        ds = ds.bucket_by_sequence_length(
            element_length_func=lambda features, *_: tf.shape(features["token_ids"])[0],
            bucket_boundaries=boundaries, bucket_batch_sizes=[batch_size] * (len(boundaries) + 1),
            pad_to_bucket_boundary=False)
        ds = ds.apply(tf.data.experimental.assert_cardinality(num_batches))
        if targets is None:
            ds = ds.map(lambda f: _pad_to(f, bucket_width, max_length))
        else:
            ds = ds.map(lambda f, t: (_pad_to(f, bucket_width, max_length), t))
        return ds.prefetch(tf.data.AUTOTUNE)

    def encode(*batch):
        features, target = split(batch)
        if bucket_width:
            features = trim_padding(features, bucket_width)
        return features if target is None else (features, target)

    return ds.batch(batch_size).map(encode, num_parallel_calls=tf.data.AUTOTUNE).prefetch(
        tf.data.AUTOTUNE)


def _pad_to(features: dict, multiple: int, max_length: int) -> dict:
    """Pad the sequence axis up to a multiple of `multiple`, at most max_length (pad id 0)."""
    # deferred: TensorFlow, not needed on JAX
    import tensorflow as tf  # noqa: PLC0415

    width = tf.shape(features["token_ids"])[-1]
    extra = tf.minimum((multiple - width % multiple) % multiple, max_length - width)
    return {k: tf.pad(v, [[0, 0], [0, extra]]) for k, v in features.items()}
