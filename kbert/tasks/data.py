"""Labelled data for fine-tuning: loading, label maps, stratified splits.

Sources `load_labelled` reads, with user-given column names (a text column, an optional second
text column for sentence pairs, a label column):
  * a CSV / TSV file (header row, or `header=False` with integer column indices),
  * a JSONL file (one JSON object per line),
  * Python data: a list of dicts, a dict of lists, or a list of (text, label) /
    (text, text_pair, label) tuples,
  * a `tf.data.Dataset` of dicts (read into memory: labelled sets for fine-tuning are small).

Labels may be strings or integers ("1" and "-1" read from a CSV become the integers 1 and -1 when
every label of the column is an integer), lists of labels (multi-label), or numbers for
regression. `LabelMap` turns labels into class ids and is saved as JSON next to a model.

Example:
    >>> data = load_labelled([{"text": "good", "label": "pos"}, {"text": "bad", "label": "neg"}])
    >>> label_map = LabelMap.from_labels(data.labels)
    >>> label_map.labels, label_map.encode(["pos", "neg"]).tolist()
    (['neg', 'pos'], [1, 0])
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import dataclasses
import json
import os
import re
import warnings
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from kbert.config import read_json_file
from kbert.errors import KbertError, TruncationWarning
from kbert.textfiles import not_utf8

_INT = re.compile(r"[+-]?\d+")


class DataError(KbertError, ValueError):
    """Labelled data that cannot be used as given (a missing column, an empty text, ...)."""


class UnknownLabelError(DataError):
    """A label that the model's label map does not know."""


@dataclasses.dataclass
class LabelledData:
    """Texts (and optional second texts) with their labels, in memory.

    Attributes:
        texts: list[str], N first segments.
        labels: list of N labels (str / int / float, or a list of labels for multi-label data),
            or None for unlabelled data.
        pairs: list[str] of N second segments for sentence-pair tasks, or None.
    """

    texts: list
    labels: list | None = None
    pairs: list | None = None

    def __post_init__(self):
        self.texts = list(self.texts)
        if self.labels is not None:
            self.labels = list(self.labels)
            if len(self.labels) != len(self.texts):
                raise DataError(f"{len(self.texts)} texts but {len(self.labels)} labels")
        if self.pairs is not None:
            self.pairs = list(self.pairs)
            if len(self.pairs) != len(self.texts):
                raise DataError(f"{len(self.texts)} texts but {len(self.pairs)} text pairs")
        check_texts(self.texts, "text")
        if self.pairs is not None:
            check_texts(self.pairs, "text_pair")

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, indices: Sequence[int]) -> LabelledData:
        pick = lambda values: None if values is None else [values[i] for i in indices]  # noqa: E731
        return LabelledData(pick(self.texts), pick(self.labels), pick(self.pairs))


def check_texts(texts: Sequence, what: str = "text") -> None:
    """Raise DataError naming the first non-string or empty (whitespace-only) text."""
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise DataError(f"{what} #{i} is {type(text).__name__} {text!r}, expected a string")
        if not text.strip():
            raise DataError(
                f"{what} #{i} is empty; an empty text carries nothing to classify "
                f"(drop the row or fill it in)")


# ---------------------------------------------------------------------------------------- labels
def _label_key(value: Any) -> str:
    # Labels read from CSV are strings, from JSON ints: "1" and 1 name the same class.
    if isinstance(value, bool) or not isinstance(value, (str, int, np.integer)):
        raise DataError(f"a class label must be a string or an integer, got {value!r}")
    return str(int(value)) if isinstance(value, (int, np.integer)) else value


class LabelMap:
    """Class labels <-> ids 0..C-1, saved as JSON beside a model.

    Args:
        labels: the distinct labels in id order (strings or integers).
    """

    def __init__(self, labels: Sequence):
        labels = [int(v) if isinstance(v, np.integer) else v for v in labels]
        keys = [_label_key(v) for v in labels]
        if len(set(keys)) != len(keys):
            raise DataError(f"duplicate labels in label map {labels}")
        self.labels = labels
        self._ids = {k: i for i, k in enumerate(keys)}

    @classmethod
    def from_labels(cls, values: Iterable, min_classes: int = 2) -> LabelMap:
        """The sorted distinct labels of `values` (lists of labels are flattened: multi-label)."""
        flat = []
        for v in values:
            flat.extend(v if isinstance(v, (list, tuple)) else [v])
        distinct = {_label_key(v): v for v in flat}
        ints = all(isinstance(v, (int, np.integer)) for v in distinct.values())
        labels = sorted(distinct.values(), key=(int if ints else str))
        if len(labels) < min_classes:
            raise DataError(
                f"the labels hold {len(labels)} class(es) {labels}; a classifier needs at least "
                f"{min_classes} (check the label column)")
        return cls(labels)

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    def __len__(self) -> int:
        return len(self.labels)

    def __eq__(self, other) -> bool:
        return isinstance(other, LabelMap) and self.labels == other.labels

    def __repr__(self) -> str:
        return f"LabelMap({self.labels})"

    def encode(self, values: Iterable) -> np.ndarray:
        """int32 ids [N]; a label not in the map raises UnknownLabelError listing every unknown."""
        values = list(values)
        unknown = sorted({repr(v) for v in values if _label_key(v) not in self._ids})
        if unknown:
            raise UnknownLabelError(
                f"labels {', '.join(unknown)} are not in the model's label map {self.labels}; "
                f"the data uses classes the model was not trained on")
        return np.array([self._ids[_label_key(v)] for v in values], dtype=np.int32).reshape(-1)

    def encode_multi_hot(self, values: Iterable[Sequence]) -> np.ndarray:
        """float32 [N, C] multi-hot rows for multi-label data (each value a list of labels)."""
        rows = [list(v) if isinstance(v, (list, tuple)) else [v] for v in values]
        out = np.zeros((len(rows), self.num_classes), np.float32)
        for i, row in enumerate(rows):
            if row:
                out[i, self.encode(row)] = 1.0
        return out

    def decode(self, ids: Iterable[int]) -> list:
        ids = [int(i) for i in np.asarray(list(ids)).reshape(-1)]
        bad = [i for i in ids if not 0 <= i < self.num_classes]
        if bad:
            raise UnknownLabelError(f"class ids {bad} are outside 0..{self.num_classes - 1}")
        return [self.labels[i] for i in ids]

    def to_json(self) -> dict:
        return {"labels": self.labels}

    def save(self, path: str | os.PathLike) -> None:
        with open(path, "w", encoding="utf-8") as f:
            json.dump(self.to_json(), f, indent=2, ensure_ascii=False)
            f.write("\n")

    @classmethod
    def load(cls, path: str | os.PathLike) -> LabelMap:
        values = read_json_file(path, DataError)  # size-limited, UTF-8, a JSON object
        if not isinstance(values, dict) or not isinstance(values.get("labels"), list):
            raise DataError(f"{path}: expected {{\"labels\": [...]}}")
        return cls(values["labels"])


# ---------------------------------------------------------------------------------------- loading
def _column(row: dict | list, column, where: str, available) -> Any:
    try:
        return row[column]
    except (KeyError, IndexError, TypeError):
        raise DataError(
            f"{where}: no column {column!r}; the columns are {available}") from None


def _int_labels_if_all_int(labels: list) -> list:
    if labels and all(isinstance(v, str) and _INT.fullmatch(v.strip()) for v in labels):
        return [int(v) for v in labels]
    return labels


@contextlib.contextmanager
def _decoding_errors(path: str, encoding: str):
    """A UTF-8 file that does not decode -> DataError naming its line and column."""
    try:
        yield
    except UnicodeDecodeError:
        if codecs.lookup(encoding).name not in ("utf-8", "utf-8-sig"):
            raise
        raise not_utf8(path, DataError) from None


def _rows_from_file(path: str, fmt: str, header: bool, delimiter: str | None, encoding: str):
    if fmt == "jsonl":
        rows = []
        with _decoding_errors(path, encoding), open(path, encoding=encoding) as f:
            for number, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as e:
                    raise DataError(f"{path}:{number}: not valid JSON ({e})") from None
                if not isinstance(row, dict):
                    raise DataError(f"{path}:{number}: expected a JSON object per line")
                rows.append(row)
        return rows, sorted({k for r in rows for k in r})
    delimiter = delimiter or ("\t" if fmt == "tsv" else ",")
    with _decoding_errors(path, encoding), open(path, encoding=encoding, newline="") as f:
        reader = csv.reader(f, delimiter=delimiter)
        rows = [r for r in reader if r]
    if not header:
        return rows, list(range(max((len(r) for r in rows), default=0)))
    if not rows:
        raise DataError(f"{path}: the file is empty")
    names = rows[0]
    return [dict(zip(names, r, strict=False)) for r in rows[1:]], names


def _detect_format(path: str, fmt: str | None) -> str:
    if fmt:
        if fmt not in ("csv", "tsv", "jsonl"):
            raise DataError(f"format must be 'csv', 'tsv' or 'jsonl', got {fmt!r}")
        return fmt
    lower = path.lower()
    for ext, name in ((".csv", "csv"), (".tsv", "tsv"), (".jsonl", "jsonl"),
                      (".ndjson", "jsonl"), (".json", "jsonl")):
        if lower.endswith(ext):
            return name
    raise DataError(f"{path}: cannot tell the format from the name; "
                    "pass format='csv'|'tsv'|'jsonl'")


def _rows_from_python(source) -> tuple[list, list]:
    if isinstance(source, dict):
        lengths = {k: len(v) for k, v in source.items()}
        if len(set(lengths.values())) > 1:
            raise DataError(f"columns have different lengths: {lengths}")
        n = next(iter(lengths.values()), 0)
        return [{k: source[k][i] for k in source} for i in range(n)], list(source)
    rows = list(source)
    if rows and all(isinstance(r, dict) for r in rows):
        return rows, sorted({k for r in rows for k in r})
    if rows and all(isinstance(r, (list, tuple)) for r in rows):
        return [list(r) for r in rows], list(range(max(len(r) for r in rows)))
    raise DataError("Python data must be a list of dicts, a dict of lists, or a list of tuples")


def _rows_from_tf_dataset(dataset) -> tuple[list, list]:
    rows = []
    for element in dataset.as_numpy_iterator():
        if not isinstance(element, dict):
            raise DataError("a tf.data source must yield dicts of columns")
        row = {}
        for key, value in element.items():
            if isinstance(value, np.ndarray) and value.ndim:
                value = [v.decode("utf-8") if isinstance(v, bytes) else v.item() for v in value]
            elif isinstance(value, (bytes, np.bytes_)):
                value = bytes(value).decode("utf-8")
            elif isinstance(value, (np.generic, np.ndarray)):
                value = value.item()
            row[key] = value
        rows.append(row)
    return rows, sorted({k for r in rows for k in r})


def load_labelled(source, *, text_column: str | int = "text",
                  text_pair_column: str | int | None = None,
                  label_column: str | int | None = "label", format: str | None = None,
                  header: bool = True, delimiter: str | None = None,
                  label_separator: str | None = None, encoding: str = "utf-8-sig") -> LabelledData:
    """Read labelled texts from a file, Python data or a tf.data.Dataset.

    Args:
        source: a path (.csv, .tsv, .jsonl), a list of dicts / tuples, a dict of lists, or a
            `tf.data.Dataset` yielding dicts.
        text_column, text_pair_column, label_column: column names (integer positions for
            header-less CSV/TSV and tuples). `label_column=None` reads unlabelled texts.
        format: "csv", "tsv" or "jsonl" when the file name does not say it.
        header: whether a CSV/TSV file starts with a header row.
        label_separator: split string labels on this to get multi-label lists ("a|b").
        encoding: file encoding; the default also strips a UTF-8 byte-order mark.

    Raises:
        DataError: a missing column (the message lists the columns there are), an empty text,
            a missing label.
    """
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        if not os.path.isfile(path):
            raise DataError(f"labelled data file {path!r} does not exist")
        fmt = _detect_format(path, format)
        rows, columns = _rows_from_file(path, fmt, header, delimiter, encoding)
        where = path
    elif hasattr(source, "as_numpy_iterator"):
        rows, columns = _rows_from_tf_dataset(source)
        where = "the tf.data source"
    else:
        rows, columns = _rows_from_python(source)
        where = "the Python data"
    if not rows:
        raise DataError(f"{where}: no rows")

    def column(name, required=True):
        values = []
        for i, row in enumerate(rows):
            value = _column(row, name, f"{where} (row {i + 1})", columns)
            if value is None or (isinstance(value, str) and not value.strip() and required):
                raise DataError(f"{where}: row {i + 1} has an empty {name!r}")
            values.append(value)
        return values

    texts = column(text_column)
    check_texts_where(texts, where, text_column)
    pairs = None
    if text_pair_column is not None:
        pairs = column(text_pair_column)
        check_texts_where(pairs, where, text_pair_column)
    labels = None
    if label_column is not None:
        labels = column(label_column)
        if label_separator is not None:
            labels = [v.split(label_separator) if isinstance(v, str) else v for v in labels]
        else:
            labels = _int_labels_if_all_int(labels)
    return LabelledData(texts, labels, pairs)


def check_texts_where(texts, where: str, column) -> None:
    try:
        check_texts(texts, f"column {column!r}, row")
    except DataError as e:
        raise DataError(f"{where}: {e}") from None


# ---------------------------------------------------------------------------------------- splits
def stratified_split(data: LabelledData, validation_fraction: float = 0.2,
                     seed: int = 0) -> tuple[LabelledData, LabelledData]:
    """(train, validation) with each class split in the same proportion; seeded, reproducible.

    Every class with at least 2 examples puts at least one in each part. Multi-label and
    numeric (regression) labels get a plain seeded random split.
    """
    if not 0.0 < validation_fraction < 1.0:
        raise DataError(f"validation_fraction must be in (0, 1), got {validation_fraction}")
    if data.labels is None:
        raise DataError("a stratified split needs labels")
    rng = np.random.default_rng(seed)
    labels = data.labels
    if any(isinstance(v, (list, tuple, float)) for v in labels):
        order = rng.permutation(len(labels))
        n_val = max(1, int(round(len(labels) * validation_fraction)))
        return data.subset(sorted(order[n_val:])), data.subset(sorted(order[:n_val]))
    by_class: dict[str, list[int]] = {}
    for i, v in enumerate(labels):
        by_class.setdefault(_label_key(v), []).append(i)
    train, val = [], []
    for key in sorted(by_class):
        members = np.array(by_class[key])
        rng.shuffle(members)
        n_val = int(round(len(members) * validation_fraction))
        if len(members) >= 2:
            n_val = min(max(n_val, 1), len(members) - 1)
        val.extend(members[:n_val].tolist())
        train.extend(members[n_val:].tolist())
    return data.subset(sorted(train)), data.subset(sorted(val))


# ---------------------------------------------------------------------------------------- tf.data
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
    # deferred: packing is TensorFlow code, not needed on JAX
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
