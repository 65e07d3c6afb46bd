"""Raw text through Keras' own API: fit / evaluate / predict on strings for every head, the
vocabulary inside the `.keras` archive, the trained flag, and refusals."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from test_tasks_support import encoder, with_tokenizer

import kbert.loading
from kbert.tasks import BertClassifier, BertMultipleChoice, BertSpanExtractor, BertTokenClassifier

TEXTS = ["good film", "great movie", "fun story", "bad film", "awful movie", "dull story"]
LABELS = ["pos", "pos", "pos", "neg", "neg", "neg"]
PAIRS = ["a film", "a story", "a film", "a movie", "a story", "a film"]


def _classifier(**kwargs):
    return with_tokenizer(BertClassifier(encoder(), num_classes=2, **kwargs), max_length=16)


def _ids_logits(model, texts, pairs=None):
    packed = model.tokenizer(texts, pairs=pairs, max_length=model.max_length)
    return np.asarray(model({k: np.asarray(v) for k, v in packed.items()}, training=False))


def test_classifier_fit_evaluate_predict_take_strings():
    model = _classifier()
    assert not model.trained
    history = model.fit(TEXTS, LABELS, epochs=2, batch_size=4, verbose=0)
    assert model.trained and len(history.history["loss"]) == 2
    assert model.label_map.labels == ["neg", "pos"]  # built from y
    logits = model.predict(TEXTS, verbose=0)
    np.testing.assert_allclose(logits, _ids_logits(model, TEXTS), atol=1e-5)
    # numpy array of str, and a single string
    np.testing.assert_allclose(model.predict(np.array(TEXTS), verbose=0), logits, atol=1e-5)
    assert model.predict("good film", verbose=0).shape == (1, 2)
    loss, accuracy = model.evaluate(TEXTS, LABELS, verbose=0)
    expected = (logits.argmax(-1) == model.label_map.encode(LABELS)).mean()
    assert accuracy == pytest.approx(expected)


def test_classifier_pairs_validation_data_and_ids_still_work():
    model = _classifier()
    history = model.fit((TEXTS, PAIRS), LABELS, validation_data=((TEXTS, PAIRS), LABELS),
                        epochs=1, batch_size=3, verbose=0)
    assert "val_loss" in history.history
    np.testing.assert_allclose(model.predict((TEXTS, PAIRS), verbose=0),
                               _ids_logits(model, TEXTS, PAIRS), atol=1e-5)
    packed = {k: np.asarray(v) for k, v in model.tokenizer(TEXTS, max_length=16).items()}
    targets = model.label_map.encode(LABELS)
    model.fit(packed, targets, epochs=1, batch_size=3, verbose=0)  # ids in: unchanged path
    with pytest.raises(ValueError, match="validation_split does not apply"):
        model.fit(TEXTS, LABELS, validation_split=0.5, verbose=0)


def test_classifier_takes_a_tf_data_of_strings_batched_or_not():
    model = _classifier()
    model.set_label_map(None)
    ds = tf.data.Dataset.from_tensor_slices((TEXTS, LABELS))
    model.fit(ds, epochs=1, batch_size=4, verbose=0)  # string labels mapped via the label map
    assert model.label_map.labels == ["neg", "pos"]
    batched = tf.data.Dataset.from_tensor_slices(((TEXTS, PAIRS), [1, 1, 1, 0, 0, 0])).batch(2)
    model.fit(batched, epochs=1, verbose=0)
    texts_only = tf.data.Dataset.from_tensor_slices(TEXTS)
    np.testing.assert_allclose(model.predict(texts_only, verbose=0), _ids_logits(model, TEXTS),
                               atol=1e-5)


def test_uncompiled_fit_uses_the_bert_recipe_sized_to_the_run():
    model = _classifier()
    model.fit(TEXTS, LABELS, epochs=2, batch_size=3, verbose=0)
    assert model.optimizer.__class__.__name__ in ("LayerwiseAdamW", "AdamW")
    assert int(model.optimizer.iterations) == 4


def test_the_keras_archive_carries_vocabulary_labels_and_trained_flag(tmp_path):
    model = _classifier()
    model.fit(TEXTS, LABELS, epochs=1, batch_size=6, verbose=0)
    path = tmp_path / "clf.keras"
    model.save(path)

    kbert.loading.register_kbert_classes()
    loaded = keras.saving.load_model(path)
    assert loaded.trained and loaded.label_map.labels == ["neg", "pos"]
    assert loaded.max_length == 16 and loaded.tokenizer.vocab_size == model.tokenizer.vocab_size
    np.testing.assert_allclose(loaded.predict(TEXTS, verbose=0), model.predict(TEXTS, verbose=0),
                               atol=1e-6)


def test_token_classifier_fits_word_lists_and_predicts_strings():
    model = with_tokenizer(BertTokenClassifier(encoder(), num_labels=2), max_length=16)
    sentences = [["good", "film"], ["bad", "story"], ["great", "movie"]]
    tags = [["B", "O"], ["B", "O"], ["B", "O"]]
    model.fit(sentences, tags, epochs=1, batch_size=2, verbose=0)
    assert model.trained and model.label_map.labels == ["B", "O"]
    logits = model.predict(["good film"], verbose=0)
    assert logits.shape == (1, 16, 2)
    model.evaluate(sentences, tags, verbose=0)
    with pytest.raises(ValueError, match="need word lists"):
        model.fit(["good film"], [["B", "O"]], verbose=0)


def test_span_extractor_and_multiple_choice_take_text_tuples():
    span = with_tokenizer(BertSpanExtractor(encoder()), max_length=24)
    questions, contexts = ["what film"], ["the good film was fun"]
    span.fit((questions, contexts), [(4, "good film")], epochs=1, verbose=0)
    out = span.predict((questions, contexts), verbose=0)
    assert out["start_logits"].shape == (1, 24) and span.trained

    choice = with_tokenizer(BertMultipleChoice(encoder()), max_length=16)
    prompts, choices = ["a good"], [["film", "story", "movie"]]
    choice.fit((prompts, choices), [0], epochs=1, verbose=0)
    assert choice.predict((prompts, choices), verbose=0).shape == (1, 3)
