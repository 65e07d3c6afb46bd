"""Labels for fine-tuning: the labelled examples, label maps, stratified splits, data errors.

Labels may be strings or integers, lists of labels (multi-label), or numbers for regression.
`LabelMap` turns labels into class ids and is saved as JSON next to a model.

Example:
    >>> label_map = LabelMap.from_labels(["pos", "neg", "pos"])
    >>> label_map.labels, label_map.encode(["pos", "neg"]).tolist()
    (['neg', 'pos'], [1, 0])
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from kbert.config import read_json_file
from kbert.errors import KbertError


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


