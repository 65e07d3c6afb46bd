"""kbert.tasks.metrics: scores against hand-computed values, and the confusion-matrix PNG."""

import struct
import zlib

import numpy as np
import pytest

from kbert.tasks.metrics import (cell_color, classification_report, confusion_layout,
                                 confusion_matrix)

# 3 classes, 10 examples; worked by hand:
#   true  0 0 0 0 1 1 1 2 2 2
#   pred  0 0 1 2 1 1 0 2 2 1
TRUE = [0, 0, 0, 0, 1, 1, 1, 2, 2, 2]
PRED = [0, 0, 1, 2, 1, 1, 0, 2, 2, 1]


def test_confusion_matrix_counts():
    assert confusion_matrix(TRUE, PRED, 3).tolist() == [[2, 1, 1], [1, 2, 0], [0, 1, 2]]


def test_scores_match_hand_computation():
    report = classification_report(TRUE, PRED, ["a", "b", "c"])
    # precision = diag / column sums = 2/3, 2/4, 2/3; recall = diag / row sums = 2/4, 2/3, 2/3
    np.testing.assert_allclose(report.precision, [2 / 3, 1 / 2, 2 / 3])
    np.testing.assert_allclose(report.recall, [1 / 2, 2 / 3, 2 / 3])
    f1 = [2 * p * r / (p + r) for p, r in [(2 / 3, 1 / 2), (1 / 2, 2 / 3), (2 / 3, 2 / 3)]]
    np.testing.assert_allclose(report.f1, f1)
    assert report.accuracy == pytest.approx(0.6)
    assert report.macro_f1 == pytest.approx(np.mean(f1))
    assert report.support.tolist() == [4, 3, 3]


def test_never_predicted_class_has_zero_precision_not_nan():
    report = classification_report([0, 1], [0, 0], ["x", "y"])
    assert report.precision.tolist() == [0.5, 0.0] and report.f1[1] == 0.0


def test_format_prints_scores_and_matrix():
    text = classification_report(TRUE, PRED, ["neg", "neu", "pos"]).format()
    assert "accuracy 0.6000" in text and "confusion matrix" in text
    assert [int(x) for x in text.splitlines()[-2].split()[1:]] == [1, 2, 0]


def test_out_of_range_ids_are_an_error():
    with pytest.raises(ValueError, match="0..1"):
        confusion_matrix([0, 2], [0, 1], 2)


def _read_png(path):
    """A minimal independent PNG reader: checks signature and CRCs, returns RGB [h, w, 3]."""
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks = 8, []
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])
        assert crc == zlib.crc32(kind + body) & 0xFFFFFFFF, f"bad CRC in {kind}"
        chunks.append((kind, body))
        pos += 12 + length
    assert chunks[0][0] == b"IHDR" and chunks[-1][0] == b"IEND"
    width, height, depth, color = struct.unpack(">IIBB", chunks[0][1][:10])
    assert (depth, color) == (8, 2)
    raw = zlib.decompress(b"".join(body for kind, body in chunks if kind == b"IDAT"))
    rows = np.frombuffer(raw, np.uint8).reshape(height, 1 + 3 * width)
    assert (rows[:, 0] == 0).all()  # filter type 0 on every row
    return rows[:, 1:].reshape(height, width, 3)


def test_png_is_valid_and_cells_reflect_the_matrix(tmp_path):
    matrix = np.array([[8, 2, 0], [1, 3, 6], [0, 0, 5]])
    report = classification_report(np.repeat([0, 0, 1, 1, 2], [8, 2, 1, 3, 0]).tolist() +
                                   [1] * 6 + [2] * 5,
                                   [0] * 8 + [1] * 2 + [0] + [1] * 3 + [2] * 6 + [2] * 5,
                                   ["neg", "neu", "pos"])
    assert report.confusion.tolist() == matrix.tolist()
    path = tmp_path / "cm.png"
    report.save_confusion_png(str(path))
    image = _read_png(path)
    layout = confusion_layout(matrix, ["neg", "neu", "pos"])
    assert image.shape == (layout["height"], layout["width"], 3)
    cell = layout["cell"]
    for t in range(3):
        for p in range(3):
            x, y = layout["left"] + p * cell, layout["top"] + t * cell
            corner = tuple(int(v) for v in image[y + 3, x + 3])  # inside the cell, off the text
            assert corner == cell_color(matrix[t, p] / matrix[t].sum()), (t, p)
    # darker means a larger share of the row: the diagonal of row 0 is darker than its neighbour
    assert image[layout["top"] + 3, layout["left"] + 3].sum() < image[
        layout["top"] + 3, layout["left"] + cell + 3].sum()
    # the counts are drawn: a cell holding a number has ink of the text colours in its middle
    middle = image[layout["top"] + cell // 2 - 6:layout["top"] + cell // 2 + 6,
                   layout["left"] + cell // 2 - 6:layout["left"] + cell // 2 + 6]
    assert (middle == 255).all(axis=-1).any()  # white digits on the dark diagonal cell
