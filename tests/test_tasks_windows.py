"""Long texts as overlapping windows (kbert.tasks.windows): the cut, the pooling, the default
choice, and the classifier's training / prediction / saving with windows."""

import warnings

import keras
import numpy as np
import pytest
from test_tasks_support import encoder, tokenizer, with_tokenizer

from kbert.tasks import BertClassifier, LabelledData
from kbert.tasks.windows import (
    WINDOW_THRESHOLD,
    choose_windows,
    dropped_share,
    pool_windows,
    windowed_arrays,
    windows_per_text,
)

LONG = "the big film was not fun and the soup was cold and the cat was very dull " * 2  # 34


def _manual_windows(ids, size, stride):
    extra = max(len(ids) - size, 0)
    return [ids[k * stride:k * stride + size] for k in range(1 + -(-extra // stride))]


def test_windows_per_text():
    assert windows_per_text([0, 5, 6, 7, 20], max_length=8, stride=3) == [1, 1, 1, 2, 6]


@pytest.mark.parametrize("stride", [1, 3, 6])
def test_each_window_is_a_slice_of_the_text_packed_like_the_tokenizer(stride):
    tok = tokenizer()
    texts = ["the film", LONG, "good", LONG[:40]]
    features, index = windowed_arrays(tok, texts, 8, stride)
    ids = tok.encode(texts)
    expected_windows, expected_index = [], []
    for t, row in enumerate(ids):
        pieces = _manual_windows(row, 6, stride)
        expected_windows += pieces
        expected_index += [t] * len(pieces)
    assert index.tolist() == expected_index
    assert sum(windows_per_text([len(r) for r in ids], 8, stride)) == len(index)
    for w, pieces in enumerate(expected_windows):
        packed = [tok.cls_id] + pieces + [tok.sep_id]
        assert features["token_ids"][w, :len(packed)].tolist() == packed
        assert features["padding_mask"][w].sum() == len(packed)
        assert not features["token_ids"][w, len(packed):].any()
    # a text that fits is one window, packed exactly as the tokenizer packs it
    short = np.asarray(tok(["the film"], max_length=8)["token_ids"])
    assert (features["token_ids"][0] == short[0]).all()


def test_pool_windows_is_the_mean_per_text():
    logits = np.array([[1.0, 0.0], [3.0, 2.0], [5.0, 5.0], [0.0, 1.0]], np.float32)
    pooled = pool_windows(logits, np.array([0, 0, 0, 1]), 2)
    np.testing.assert_allclose(pooled, [[3.0, 7 / 3], [0.0, 1.0]], rtol=1e-6)


def test_the_default_chooses_windows_when_truncation_drops_much():
    assert dropped_share([10, 10], 12) == 0.0
    assert dropped_share([20], 12) == pytest.approx(10 / 20)
    stride, reason = choose_windows([20, 5], 12)
    assert stride == 5 and "windows of 10 pieces, stride 5" in reason and "40%" in reason
    stride, reason = choose_windows([11, 5], 12)  # 1 of 16 pieces dropped: 6%
    assert stride is None and "no windows" in reason and 1 / 16 <= WINDOW_THRESHOLD
    stride, reason = choose_windows([20], 12, pair_lengths=[20])
    assert stride is None and "pairs are truncated" in reason
    with pytest.raises(ValueError, match=r"window stride must be an integer in \[1, 10\]"):
        choose_windows([20], 12, stride=11)


def _windowed_classifier(stride=3):
    model = with_tokenizer(BertClassifier(encoder(), num_classes=2), max_length=8)
    model.set_windows(stride)
    return model


def test_classifier_scores_a_text_by_the_mean_of_its_window_logits():
    model = _windowed_classifier()
    texts = ["the film", LONG]
    scores = model._scores(texts)
    features, index = windowed_arrays(model.tokenizer, texts, 8, 3)
    per_window = np.asarray(model(features, training=False))
    np.testing.assert_allclose(scores[0], per_window[0], atol=1e-5)
    np.testing.assert_allclose(scores[1], per_window[index == 1].mean(0), atol=1e-5)
    np.testing.assert_allclose(model.predict(texts, verbose=0), scores, atol=1e-6)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no truncation warning: nothing is cut
        model.predict_texts([LONG])


def test_training_sees_every_window_with_its_texts_label(tmp_path):
    model = _windowed_classifier()
    data = LabelledData([LONG, "the film", "bad cat"], ["long", "short", "short"])
    rows = model.training_rows(data)
    lengths = [len(r) for r in model.tokenizer.encode(data.texts)]
    assert rows == windows_per_text(lengths, 8, 3)[0] + 2 and rows > 3
    model.fit_texts(data, epochs=1, batch_size=4, learning_rate=1e-3, verbose=0)
    seen = [(f["padding_mask"].numpy().sum(1), y.numpy())
            for f, y in model.text_dataset(data, batch_size=64)]
    (mask_sums, labels), = seen
    assert len(labels) == rows
    long_id = model.label_map.labels.index("long")
    assert (labels == long_id).sum() == rows - 2
    assert model.optimizer.iterations.numpy() == -(-rows // 4)

    path = tmp_path / "clf.keras"
    model.save(path)
    reloaded = keras.saving.load_model(path)
    assert reloaded.window_stride == 3
    np.testing.assert_allclose(reloaded._scores([LONG]), model._scores([LONG]), atol=1e-5)
    reloaded.set_windows(None)
    with pytest.warns(Warning, match="longer than max_length"):
        reloaded._scores([LONG])


def test_pairs_are_truncated_even_with_windows():
    model = _windowed_classifier()
    with pytest.warns(Warning, match="longer than max_length"):
        scores = model._scores([LONG], pairs=["the film"])
    packed = model.tokenizer([LONG], pairs=["the film"], max_length=8)
    np.testing.assert_allclose(scores, np.asarray(model(packed)), atol=1e-5)
    with pytest.raises(ValueError, match="window stride"):
        model.set_windows(7)
