"""kbert.tasks.metrics: scores against hand-computed values, the text confusion matrix;
kbert.tasks.plots: PNGs with matplotlib, text without."""

import sys

import numpy as np
import pytest

from kbert.tasks.metrics import classification_report, confusion_matrix
from kbert.tasks.plots import NO_MATPLOTLIB, save_plots

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


def test_confusion_header_separates_and_aligns_the_labels():
    report = classification_report([0, 1, 1, 0, 1], [0, 1, 0, 0, 1], ["certain", "uncertain"])
    header, *rows = report.confusion_text().splitlines()
    assert "certain  uncertain" in header and "certainuncertain" not in header
    assert rows[0].split() == ["certain", "2", "0"] and rows[1].split() == ["uncertain", "1", "2"]
    # every count ends where its label ends
    for name in ("certain", "uncertain"):
        end = header.index(name) + len(name)
        assert all(row[end - 1].isdigit() for row in rows)
    assert report.confusion_text() in report.format()


HISTORY = {"loss": [0.9, 0.6, 0.4], "val_loss": [0.8, 0.7, 0.65],
           "accuracy": [0.5, 0.7, 0.8], "val_accuracy": [0.55, 0.6, 0.7]}


def test_plots_are_pngs_with_matplotlib(tmp_path):
    pytest.importorskip("matplotlib")
    # deferred: optional; the test skips without it
    from matplotlib.image import imread  # noqa: PLC0415

    report = classification_report(TRUE, PRED, ["neg", "neu", "pos"])
    written, note = save_plots(tmp_path, {"validation": report}, HISTORY)
    assert note == ""
    assert written == [str(tmp_path / "confusion_validation.png"),
                       str(tmp_path / "training_curves.png")]
    for path in written:
        assert open(path, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
        image = imread(path)
        assert image.ndim == 3 and min(image.shape[:2]) > 100
        assert image.std() > 0  # something is drawn


def test_without_matplotlib_plots_fall_back_to_text(tmp_path, monkeypatch):
    for name in [m for m in sys.modules if m.split(".")[0] == "matplotlib"] + ["matplotlib"]:
        monkeypatch.setitem(sys.modules, name, None)  # `import matplotlib(.x)` fails
    report = classification_report(TRUE, PRED, ["neg", "neu", "pos"])
    written, note = save_plots(tmp_path, {"validation": report}, HISTORY)
    assert note == NO_MATPLOTLIB and "\n" not in note and "kbert[plots]" in note
    assert written == [str(tmp_path / "confusion_validation.txt"),
                       str(tmp_path / "training_curves.txt")]
    assert report.confusion_text() in (tmp_path / "confusion_validation.txt").read_text()
    curves = (tmp_path / "training_curves.txt").read_text().splitlines()
    assert curves[0].split() == ["epoch", "loss", "val_loss", "accuracy", "val_accuracy"]
    assert curves[3].split() == ["3", "0.4000", "0.6500", "0.8000", "0.7000"]
    with pytest.raises(ImportError, match="kbert\\[plots\\]"):
        report.save_confusion_png(str(tmp_path / "cm.png"))
