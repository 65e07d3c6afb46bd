"""Evaluation of a classifier: accuracy, macro-F1, per-class precision / recall, confusion matrix.

The confusion matrix is printed as text and saved as a PNG by a small self-contained renderer
(zlib + a 3x5 pixel font), so evaluation needs no plotting library. Rows are the true classes,
columns the predicted ones; a cell's blue is its share of its row.

Example:
    >>> report = classification_report([0, 1, 1, 0], [0, 1, 0, 0], labels=["neg", "pos"])
    >>> round(report.accuracy, 2), report.confusion.tolist()
    (0.75, [[2, 0], [1, 1]])
    >>> report.save_confusion_png("confusion.png")                       # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import struct
import zlib
from typing import Sequence

import numpy as np


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
                                             self.support)},
            "confusion_matrix": self.confusion.tolist(),
        }

    def format(self) -> str:
        """A plain-text table of per-class scores and the confusion matrix."""
        names = [str(label) for label in self.labels]
        width = max(8, *(len(n) for n in names))
        lines = [f"accuracy {self.accuracy:.4f}   macro-F1 {self.macro_f1:.4f}   "
                 f"examples {int(self.confusion.sum())}", "",
                 f"{'class':<{width}}  precision  recall     f1  support"]
        for n, p, r, f, s in zip(names, self.precision, self.recall, self.f1, self.support):
            lines.append(f"{n:<{width}}  {p:9.4f}  {r:6.4f}  {f:6.4f}  {s:7d}")
        cell = max(7, width, len(str(int(self.confusion.max(initial=0)))) + 1)
        lines += ["", "confusion matrix (rows: true, columns: predicted)",
                  " " * width + "".join(f"{n:>{cell}}" for n in names)]
        for n, row in zip(names, self.confusion):
            lines.append(f"{n:<{width}}" + "".join(f"{int(v):>{cell}d}" for v in row))
        return "\n".join(lines)

    def save_confusion_png(self, path: str) -> None:
        write_confusion_png(self.confusion, path, labels=self.labels)


def classification_report(true_ids, predicted_ids, labels: Sequence) -> ClassificationReport:
    """Score class ids; `labels[i]` names class i."""
    labels = list(labels)
    return ClassificationReport(labels, confusion_matrix(true_ids, predicted_ids, len(labels)))


# ------------------------------------------------------------------------------ the PNG renderer
# 3x5 glyphs, rows top to bottom, "#" = ink. Letters are drawn upper-case.
_FONT = {
    "0": ("###", "#.#", "#.#", "#.#", "###"), "1": (".#.", "##.", ".#.", ".#.", "###"),
    "2": ("###", "..#", "###", "#..", "###"), "3": ("###", "..#", ".##", "..#", "###"),
    "4": ("#.#", "#.#", "###", "..#", "..#"), "5": ("###", "#..", "###", "..#", "###"),
    "6": ("###", "#..", "###", "#.#", "###"), "7": ("###", "..#", ".#.", ".#.", ".#."),
    "8": ("###", "#.#", "###", "#.#", "###"), "9": ("###", "#.#", "###", "..#", "###"),
    "A": (".#.", "#.#", "###", "#.#", "#.#"), "B": ("##.", "#.#", "##.", "#.#", "##."),
    "C": (".##", "#..", "#..", "#..", ".##"), "D": ("##.", "#.#", "#.#", "#.#", "##."),
    "E": ("###", "#..", "##.", "#..", "###"), "F": ("###", "#..", "##.", "#..", "#.."),
    "G": (".##", "#..", "#.#", "#.#", ".##"), "H": ("#.#", "#.#", "###", "#.#", "#.#"),
    "I": ("###", ".#.", ".#.", ".#.", "###"), "J": ("..#", "..#", "..#", "#.#", ".#."),
    "K": ("#.#", "#.#", "##.", "#.#", "#.#"), "L": ("#..", "#..", "#..", "#..", "###"),
    "M": ("#.#", "###", "###", "#.#", "#.#"), "N": ("##.", "#.#", "#.#", "#.#", "#.#"),
    "O": (".#.", "#.#", "#.#", "#.#", ".#."), "P": ("##.", "#.#", "##.", "#..", "#.."),
    "Q": (".#.", "#.#", "#.#", "##.", ".##"), "R": ("##.", "#.#", "##.", "#.#", "#.#"),
    "S": (".##", "#..", ".#.", "..#", "##."), "T": ("###", ".#.", ".#.", ".#.", ".#."),
    "U": ("#.#", "#.#", "#.#", "#.#", "###"), "V": ("#.#", "#.#", "#.#", "#.#", ".#."),
    "W": ("#.#", "#.#", "###", "###", "#.#"), "X": ("#.#", "#.#", ".#.", "#.#", "#.#"),
    "Y": ("#.#", "#.#", ".#.", ".#.", ".#."), "Z": ("###", "..#", ".#.", "#..", "###"),
    "-": ("...", "...", "###", "...", "..."), "_": ("...", "...", "...", "...", "###"),
    ".": ("...", "...", "...", "...", ".#."), ":": ("...", ".#.", "...", ".#.", "..."),
    "/": ("..#", "..#", ".#.", "#..", "#.."), " ": ("...", "...", "...", "...", "..."),
    "?": ("###", "..#", ".#.", "...", ".#."),
}
_SCALE = 3           # screen pixels per font pixel
_GLYPH_W = 4 * _SCALE  # 3 columns + 1 of spacing
_GLYPH_H = 5 * _SCALE


def _text_width(text: str) -> int:
    return len(text) * _GLYPH_W


def _draw_text(image: np.ndarray, text: str, x: int, y: int, color) -> None:
    for k, char in enumerate(text.upper()):
        glyph = _FONT.get(char, _FONT["?"])
        for r, row in enumerate(glyph):
            for c, ink in enumerate(row):
                if ink == "#":
                    x0, y0 = x + k * _GLYPH_W + c * _SCALE, y + r * _SCALE
                    image[y0:y0 + _SCALE, x0:x0 + _SCALE] = color


def cell_color(share: float) -> tuple[int, int, int]:
    """RGB of a cell holding `share` (0..1) of its row: white -> dark blue."""
    share = float(min(max(share, 0.0), 1.0))
    return (int(round(255 - 247 * share)), int(round(255 - 207 * share)),
            int(round(255 - 148 * share)))


def _png_bytes(image: np.ndarray) -> bytes:
    height, width, _ = image.shape
    raw = b"".join(b"\x00" + image[y].tobytes() for y in range(height))  # filter 0 per row

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def confusion_layout(matrix: np.ndarray, labels: Sequence | None = None) -> dict:
    """Where `write_confusion_png` puts things: image size and each cell's top-left corner."""
    n = matrix.shape[0]
    names = [str(label) for label in (labels if labels is not None else range(n))]
    number_w = _text_width(str(int(matrix.max(initial=0))))
    cell = max(48, number_w + 16, max(_text_width(s) for s in names) + 8)
    left = max(_text_width(s) for s in names) + 2 * _GLYPH_W
    top = 3 * _GLYPH_H
    bottom = 3 * _GLYPH_H
    width = max(left + n * cell + 8, _text_width("ROWS: TRUE  COLUMNS: PREDICTED") + 16)
    height = top + n * cell + bottom
    return {"width": width, "height": height, "cell": cell, "left": left, "top": top,
            "names": names}


def write_confusion_png(matrix, path: str, labels: Sequence | None = None) -> None:
    """Save the confusion matrix as an RGB PNG: shaded cells with their counts, labelled axes."""
    matrix = np.asarray(matrix)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1] or matrix.shape[0] == 0:
        raise ValueError(f"a confusion matrix is square and non-empty, got shape {matrix.shape}")
    layout = confusion_layout(matrix, labels)
    cell, left, top, names = layout["cell"], layout["left"], layout["top"], layout["names"]
    image = np.full((layout["height"], layout["width"], 3), 255, np.uint8)
    rows = matrix.sum(axis=1)
    for t in range(matrix.shape[0]):
        for p in range(matrix.shape[1]):
            share = matrix[t, p] / rows[t] if rows[t] else 0.0
            x, y = left + p * cell, top + t * cell
            image[y:y + cell, x:x + cell] = cell_color(share)
            image[y:y + cell, x] = image[y, x:x + cell] = (120, 120, 120)  # grid lines
            text = str(int(matrix[t, p]))
            ink = (255, 255, 255) if share > 0.5 else (0, 0, 0)
            _draw_text(image, text, x + (cell - _text_width(text)) // 2 + _SCALE // 2,
                       y + (cell - _GLYPH_H) // 2, ink)
    n = matrix.shape[0]
    image[top:top + n * cell + 1, left + n * cell] = (120, 120, 120)
    image[top + n * cell, left:left + n * cell + 1] = (120, 120, 120)
    for i, name in enumerate(names):
        _draw_text(image, name, left + i * cell + (cell - _text_width(name)) // 2,
                   top - _GLYPH_H - 6, (0, 0, 0))
        _draw_text(image, name, _GLYPH_W // 2, top + i * cell + (cell - _GLYPH_H) // 2,
                   (0, 0, 0))
    _draw_text(image, "ROWS: TRUE  COLUMNS: PREDICTED", 8, top + n * cell + _GLYPH_H, (0, 0, 0))
    with open(path, "wb") as f:
        f.write(_png_bytes(image))
