"""NSP pairs on disk: sharded, GZIP-compressed TFRecord files plus a `pairs.json` description.

Pairs are stored before masking, so a model trained from them still gets a new mask every
epoch. One record (a `tf.train.Example`) per pair:
    token_ids             int64 list: the real tokens `[CLS] A [SEP] B [SEP]`, no padding;
    a_length              int64: tokens of `[CLS] A [SEP]` (segment 0);
    next_sentence_label   int64: 0 IsNext, 1 NotNext.
Files are `<split>-<i>-of-<n>.tfrecord.gz`; pairs.json records the sequence length, the
vocabulary size and fingerprint, the options and, per split, the files and example counts.

Example:
    >>> write_pair_files(pairs, "runs/pairs", split="train", num_shards=4)   # doctest: +SKIP
    >>> read_pairs("runs/pairs", "train", seq_length=128)                     # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import os

import numpy as np
import tensorflow as tf

from kbert.config import read_json_file
from kbert.errors import KbertError

METADATA_FILE = "pairs.json"
FORMAT_NAME = "kbert-nsp-pairs"
FORMAT_VERSION = 1


class PairFileError(KbertError, ValueError):
    """A pairs directory that is missing, inconsistent or does not fit the requested setup."""


def vocabulary_fingerprint(tokens) -> str:
    return hashlib.sha256("\n".join(tokens).encode("utf-8")).hexdigest()[:16]


def is_pair_directory(path) -> bool:
    return (isinstance(path, (str, os.PathLike)) and os.path.isdir(path)
            and os.path.isfile(os.path.join(path, METADATA_FILE)))


def read_metadata(directory) -> dict:
    path = os.path.join(os.fspath(directory), METADATA_FILE)

    try:
        meta = read_json_file(path, PairFileError)
    except PairFileError as e:
        raise PairFileError(f"cannot read the pairs description: {e}") from None
    if meta.get("format") != FORMAT_NAME or meta.get("version") != FORMAT_VERSION:
        raise PairFileError(f"{path}: not a {FORMAT_NAME} v{FORMAT_VERSION} description")
    return meta


def write_metadata(directory, meta: dict) -> str:
    path = os.path.join(os.fspath(directory), METADATA_FILE)
    meta = {"format": FORMAT_NAME, "version": FORMAT_VERSION, **meta}
    with open(path, "w", encoding="utf-8") as f:
        json.dump(meta, f, indent=2, sort_keys=True)
        f.write("\n")
    return path


def _example(token_ids: np.ndarray, a_length: int, label: int) -> bytes:
    feature = {
        "token_ids": tf.train.Feature(int64_list=tf.train.Int64List(value=token_ids)),
        "a_length": tf.train.Feature(int64_list=tf.train.Int64List(value=[a_length])),
        "next_sentence_label": tf.train.Feature(int64_list=tf.train.Int64List(value=[label])),
    }
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def write_pair_files(pairs: tf.data.Dataset, directory, split: str, num_shards: int = 1,
                     batch: int = 512) -> dict:
    """Write a finite dataset of packed pairs (`pair_dataset` elements) as shards.

    Returns {"files": [names], "examples": count, "not_next": count of label 1}.
    """
    if not isinstance(num_shards, int) or num_shards < 1:
        raise PairFileError(f"num_shards must be an integer >= 1, got {num_shards!r}")
    directory = os.fspath(directory)
    os.makedirs(directory, exist_ok=True)
    names = [f"{split}-{i:05d}-of-{num_shards:05d}.tfrecord.gz" for i in range(num_shards)]
    options = tf.io.TFRecordOptions(compression_type="GZIP")
    writers = [tf.io.TFRecordWriter(os.path.join(directory, n), options) for n in names]
    count = not_next = 0
    try:
        for b in pairs.batch(batch).as_numpy_iterator():
            lengths = b["padding_mask"].sum(axis=1)
            a_lengths = lengths - b["segment_ids"].sum(axis=1)
            for row in range(len(lengths)):
                label = int(b["next_sentence_labels"][row])
                record = _example(b["token_ids"][row, :lengths[row]], int(a_lengths[row]), label)
                writers[count % num_shards].write(record)
                count += 1
                not_next += label
    finally:
        for w in writers:
            w.close()
    return {"files": names, "examples": count, "not_next": not_next}


def read_pairs(directory, split: str = "train", seq_length: int | None = None,
               vocab_size: int | None = None, vocab_tokens=None, *, shuffle_seed: int | None = None,
               dynamic: bool = True) -> tf.data.Dataset:
    """The pairs of one split ("train", "heldout" or "all") as `pair_dataset` elements.

    Raises PairFileError when the files were prepared for another seq_length or vocabulary.
    `shuffle_seed` shuffles the file order (anew each iteration when `dynamic`).
    """
    meta = read_metadata(directory)
    stored = int(meta["seq_length"])
    if seq_length is not None and seq_length != stored:
        raise PairFileError(f"{directory} holds pairs packed for seq_length {stored}, "
                            f"not {seq_length}; prepare them again or use seq_length={stored}")
    if vocab_size is not None and vocab_size != int(meta["vocab_size"]):
        raise PairFileError(f"{directory} was prepared with a vocabulary of {meta['vocab_size']} "
                            f"entries, not {vocab_size}")
    if (vocab_tokens is not None
            and vocabulary_fingerprint(vocab_tokens) != meta.get("vocab_fingerprint")):
        raise PairFileError(f"{directory} was prepared with a different vocabulary")
    splits = ["train", "heldout"] if split == "all" else [split]
    files = []
    for name in splits:
        info = meta["splits"].get(name)
        if info is None or not info["examples"]:
            raise PairFileError(f"{directory} has no {name!r} pairs")
        files.extend(os.path.join(os.fspath(directory), f) for f in info["files"])
    missing = [f for f in files if not os.path.isfile(f)]
    if missing:
        raise PairFileError(f"{directory}: missing pair files {missing[:3]}")

    spec = {"token_ids": tf.io.VarLenFeature(tf.int64),
            "a_length": tf.io.FixedLenFeature([], tf.int64),
            "next_sentence_label": tf.io.FixedLenFeature([], tf.int64)}

    def parse(record):
        ex = tf.io.parse_single_example(record, spec)
        ids = tf.cast(tf.sparse.to_dense(ex["token_ids"]), tf.int32)
        length = tf.size(ids)
        tf.debugging.assert_less_equal(length, stored, "a stored pair is longer than seq_length")
        position = tf.range(stored)
        return {
            "token_ids": tf.pad(ids, [[0, stored - length]], constant_values=pad_id),
            "segment_ids": tf.cast((position >= tf.cast(ex["a_length"], tf.int32))
                                   & (position < length), tf.int32),
            "padding_mask": tf.cast(position < length, tf.int32),
            "next_sentence_labels": tf.cast(ex["next_sentence_label"], tf.int32),
        }

    pad_id = int(meta.get("pad_id", 0))
    names = tf.data.Dataset.from_tensor_slices(files)
    if shuffle_seed is not None:
        names = names.shuffle(len(files), seed=shuffle_seed, reshuffle_each_iteration=dynamic)
    records = names.interleave(lambda f: tf.data.TFRecordDataset(f, compression_type="GZIP"),
                               cycle_length=min(4, len(files)))
    return records.map(parse, num_parallel_calls=tf.data.AUTOTUNE)
