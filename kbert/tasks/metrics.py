"""Evaluation of a classifier: accuracy, macro-F1, per-class precision / recall, confusion matrix.

The confusion matrix is printed as aligned text; `kbert.tasks.plots` draws it (and the training
curves) with matplotlib, the optional `kbert[plots]` extra. Rows are the true classes, columns
the predicted ones.

Example:
    >>> report = classification_report([0, 1, 1, 0], [0, 1, 0, 0], labels=["neg", "pos"])
    >>> round(report.accuracy, 2), report.confusion.tolist()
    (0.75, [[2, 0], [1, 1]])
    >>> report.save_confusion_png("confusion.png")                       # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from kbert.tasks.plots import confusion_figure


def confusion_matrix(true_ids, predicted_ids, num_classes: int) -> np.ndarray:
    """int64 [C, C]: entry (t, p) counts examples of true class t predicted as p."""
    true_ids = np.asarray(true_ids, np.int64).reshape(-1)
    predicted_ids = np.asarray(predicted_ids, np.int64).reshape(-1)
    if true_ids.shape != predicted_ids.shape:
        raise ValueError(f"{true_ids.size} true labels but {predicted_ids.size} predictions")
    for name, ids in (("true", true_ids), ("predicted", predicted_ids)):
        if ids.size and (ids.min() < 0 or ids.max() >= num_classes):
            raise ValueError(f"{name} class ids must be in 0..{num_classes - 1}")
    matrix = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(matrix, (true_ids, predicted_ids), 1)
    return matrix


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    # Precision of a never-predicted class is 0 (as scikit-learn's zero_division=0), not NaN.
    return np.divide(num, den, out=np.zeros(num.shape, np.float64), where=den > 0)


@dataclasses.dataclass
class ClassificationReport:
    """Scores of single-label predictions against the truth.

    Attributes:
        labels: class labels in id order.
        confusion: int64 [C, C], rows true, columns predicted.
        precision, recall, f1: float64 [C] per class; support: int64 [C] true examples per class.
        accuracy: fraction correct; macro_f1: unweighted mean of the per-class F1.
    """

    labels: list
    confusion: np.ndarray

    @property
    def support(self) -> np.ndarray:
        return self.confusion.sum(axis=1)

    @property
    def precision(self) -> np.ndarray:
        return _ratio(np.diag(self.confusion).astype(np.float64), self.confusion.sum(axis=0))

    @property
    def recall(self) -> np.ndarray:
        return _ratio(np.diag(self.confusion).astype(np.float64), self.confusion.sum(axis=1))

    @property
    def f1(self) -> np.ndarray:
        p, r = self.precision, self.recall
        return _ratio(2 * p * r, p + r)

    @property
    def accuracy(self) -> float:
        total = self.confusion.sum()
        return float(np.trace(self.confusion) / total) if total else 0.0

    @property
    def macro_f1(self) -> float:
        return float(self.f1.mean())

    def to_dict(self) -> dict:
        return {
            "accuracy": self.accuracy,
            "macro_f1": self.macro_f1,
            "labels": list(self.labels),
            "per_class": {
                str(label): {"precision": float(p), "recall": float(r), "f1": float(f),
                             "support": int(s)}
                for label, p, r, f, s in zip(self.labels, self.precision, self.recall, self.f1,
                                             self.support, strict=True)},
            "confusion_matrix": self.confusion.tolist(),
        }

    def format(self) -> str:
        """A plain-text table of per-class scores and the confusion matrix."""
        names = [str(label) for label in self.labels]
        width = max(8, *(len(n) for n in names))
        lines = [f"accuracy {self.accuracy:.4f}   macro-F1 {self.macro_f1:.4f}   "
                 f"examples {int(self.confusion.sum())}", "",
                 f"{'class':<{width}}  precision  recall     f1  support"]
        for n, p, r, f, s in zip(names, self.precision, self.recall, self.f1, self.support,
                                 strict=True):
            lines.append(f"{n:<{width}}  {p:9.4f}  {r:6.4f}  {f:6.4f}  {s:7d}")
        lines += ["", "confusion matrix (rows: true, columns: predicted)", self.confusion_text()]
        return "\n".join(lines)

    def confusion_text(self) -> str:
        """The confusion matrix as aligned text: a header of the predicted labels, each column
        two spaces from the next and right-aligned over its counts, one row per true label."""
        names = [str(label) for label in self.labels]
        width = max(8, *(len(n) for n in names))
        cell = max(5, *(len(n) for n in names), len(str(int(self.confusion.max(initial=0)))))
        lines = [" " * width + "".join(f"  {n:>{cell}}" for n in names)]
        for n, row in zip(names, self.confusion, strict=True):
            lines.append(f"{n:<{width}}" + "".join(f"  {int(v):>{cell}d}" for v in row))
        return "\n".join(lines)

    def save_confusion_png(self, path: str) -> None:
        """Draw the confusion matrix as a PNG (needs matplotlib: `pip install 'kbert[plots]'`)."""
        confusion_figure(self.confusion, self.labels).savefig(path)


def classification_report(true_ids, predicted_ids, labels: Sequence) -> ClassificationReport:
    """Score class ids; `labels[i]` names class i."""
    labels = list(labels)
    return ClassificationReport(labels, confusion_matrix(true_ids, predicted_ids, len(labels)))
