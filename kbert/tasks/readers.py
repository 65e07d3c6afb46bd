"""Reading labelled data for fine-tuning from files, Python data and tf.data.

Sources `load_labelled` reads, with user-given column names (a text column, an optional second
text column for sentence pairs, a label column):
  * a CSV / TSV file (header row, or `header=False` with integer column indices),
  * a JSONL file (one JSON object per line),
  * Python data: a list of dicts, a dict of lists, or a list of (text, label) /
    (text, text_pair, label) tuples,
  * a `tf.data.Dataset` of dicts (read into memory: labelled sets for fine-tuning are small).

Labels may be strings or integers ("1" and "-1" read from a CSV become the integers 1 and -1 when
every label of the column is an integer), lists of labels (multi-label), or numbers for
regression (`kbert.tasks.labels`).

Example:
    >>> data = load_labelled([{"text": "good", "label": "pos"}, {"text": "bad", "label": "neg"}])
    >>> data.texts, data.labels
    (['good', 'bad'], ['pos', 'neg'])
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import json
import os
import re
from typing import Any

import numpy as np

from kbert.tasks.labels import DataError, LabelledData, check_texts
from kbert.textfiles import not_utf8

_INT = re.compile(r"[+-]?\d+")


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
    # strict=False: a short row leaves its missing columns out, as before
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
                    f"pass format='csv'|'tsv'|'jsonl'")


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

