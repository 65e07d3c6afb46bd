"""The heads as Keras models: shapes, config and .keras round trips, loading encoders from every
source, saving a classifier directory, raw-text prediction and its bad inputs."""

import json
import os
import subprocess
import sys
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf
from layer_checks import check_round_trips
from test_tasks_support import encoder, features, tokenizer, vocab_tokens, with_tokenizer

from kbert.convert.transformers_ckpt import save_transformers_checkpoint
from kbert.loading import ModelSourceError, detect
from kbert.tasks import (
    BertClassifier,
    BertMultipleChoice,
    BertSpanExtractor,
    BertTokenClassifier,
    DataError,
    EncoderSourceError,
    LabelledData,
    LabelMap,
    TruncationWarning,
    UnknownLabelError,
    load_encoder,
)

PAIRS = LabelledData(texts=["the film", "his movie", "the story", "the cat"],
                     pairs=["is good", "was bad", "is fun", "was dull"],
                     labels=["pos", "neg", "pos", "neg"])


# ------------------------------------------------------------------ Keras model contract
@pytest.mark.parametrize("problem_type,pooling", [("single_label", "pooled"),
                                                  ("multi_label", "cls"), ("regression", "mean")])
def test_classifier_round_trips(problem_type, pooling, tmp_path):
    num = 1 if problem_type == "regression" else 3
    model = BertClassifier(encoder(), num_classes=num, problem_type=problem_type, pooling=pooling)
    x = features()
    assert model(x).shape == (2, num)
    assert model.get_layer("encoder") is model.encoder
    check_round_trips(model, x, tmp_path)


@pytest.mark.parametrize("pooling", ["pooled", "cls"])
def test_cls_heads_compute_the_last_block_at_cls_only_with_the_same_numbers(pooling):
    """pooled / cls classifiers ask the encoder for the [CLS] row alone: logits and every
    gradient equal those of the full encoder output (padding in the batch included)."""
    model = BertClassifier(encoder(), num_classes=3, pooling=pooling)
    x = features()
    x["padding_mask"] = np.array([[1] * 8, [1] * 5 + [0] * 3], "int32")
    x["token_ids"] = x["token_ids"] * x["padding_mask"]

    def full_path():
        outputs = model.encoder(x)
        vector = (outputs["pooled_output"] if pooling == "pooled"
                  else outputs["sequence_output"][:, 0, :])
        return model.logits(vector)

    def logits_and_grads(forward):
        with tf.GradientTape() as tape:
            logits = forward()
            loss = tf.reduce_sum(logits * tf.constant([[1.0, -2.0, 0.5]]))
        grads = [None if g is None else tf.convert_to_tensor(g)  # embeddings: IndexedSlices
                 for g in tape.gradient(loss, model.trainable_variables)]
        return np.asarray(logits), grads

    fast_logits, fast_grads = logits_and_grads(lambda: model(x))
    full_logits, full_grads = logits_and_grads(full_path)
    np.testing.assert_allclose(full_logits, fast_logits, atol=1e-5)
    for g_fast, g_full, w in zip(fast_grads, full_grads, model.trainable_variables, strict=True):
        assert (g_fast is None) == (g_full is None), w.path
        if g_full is not None:
            np.testing.assert_allclose(np.asarray(g_fast), np.asarray(g_full),
                                       atol=1e-5, err_msg=w.path)

    seen = []
    original = model.encoder.call
    model.encoder.call = lambda *a, **k: seen.append(k.get("output_positions")) or original(*a, **k)
    model(x)
    assert len(seen) == 1 and tuple(seen[0].shape) == (2, 1)  # one row per example: [CLS]


def test_token_classifier_round_trips(tmp_path):
    model = BertTokenClassifier(encoder(), num_labels=5)
    assert model(features()).shape == (2, 8, 5)
    check_round_trips(model, features(), tmp_path)


def test_span_extractor_round_trips_and_masks_padding(tmp_path):
    model = BertSpanExtractor(encoder())
    out = model(features())
    assert out["start_logits"].shape == out["end_logits"].shape == (2, 8)
    assert np.all(np.asarray(out["start_logits"])[:, -2:] == -1e4)  # padding positions
    check_round_trips(model, features(), tmp_path)


def test_multiple_choice_round_trips_and_scores_each_choice_alone(tmp_path):
    model = BertMultipleChoice(encoder())
    x = features(2, 8, choices=3)
    logits = np.asarray(model(x))
    assert logits.shape == (2, 3)
    # choice 1 of example 0 scored on its own equals its score inside the batch
    single = {k: v[:1, 1:2] for k, v in x.items()}
    np.testing.assert_allclose(np.asarray(model(single))[0, 0], logits[0, 1], atol=1e-5)
    check_round_trips(model, x, tmp_path)


def test_encoder_with_another_name_is_copied_under_encoder():
    enc = encoder()
    assert enc.name == "bert_encoder"
    model = BertClassifier(enc, num_classes=2)
    assert model.encoder.name == "encoder"
    for a, b in zip(model.encoder.weights, enc.weights, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_encoder_dropout_override_rebuilds_with_same_weights():
    enc = encoder()
    loaded, _ = load_encoder(enc, hidden_dropout=0.3, attention_dropout=0.0)
    assert loaded.bert_config.hidden_dropout == 0.3 and loaded.bert_config.attention_dropout == 0
    x = features()
    np.testing.assert_allclose(np.asarray(loaded(x)["pooled_output"]),
                               np.asarray(enc(x)["pooled_output"]), atol=1e-6)


# ------------------------------------------------------------------ encoder sources
def _vocab_dir(path):
    tokenizer().vocab.save(path)
    return path


def test_from_pretrained_detects_every_source(tmp_path):
    enc = encoder()
    x = features()
    expected = np.asarray(enc(x)["sequence_output"])

    run = tmp_path / "run"
    run.mkdir()
    enc.save(run / "encoder.keras")
    _vocab_dir(run)
    keras_file = run / "encoder.keras"

    hf = tmp_path / "hf"
    save_transformers_checkpoint(enc, hf, vocab=tokenizer().vocab)

    for source, kind in ((run, "kbert_model"), (keras_file, "keras_file"), (hf, "transformers")):
        assert detect(source) == kind
        model = BertClassifier.from_pretrained(source, num_classes=2, max_length=16)
        assert model.tokenizer is not None and model.tokenizer.vocab_size == len(vocab_tokens())
        np.testing.assert_allclose(np.asarray(model.encoder(x)["sequence_output"]), expected,
                                   atol=1e-5, err_msg=kind)


def test_unknown_source_is_a_clear_error(tmp_path):
    with pytest.raises(ModelSourceError, match="not a model directory"):
        detect(tmp_path)
    with pytest.raises(ModelSourceError, match="does not exist"):
        detect(tmp_path / "missing")


def test_mismatched_tokenizer_and_encoder_is_refused():
    small = encoder(vocab_size=50)
    with pytest.raises(EncoderSourceError,
                       match=f"vocabulary has {len(vocab_tokens())} entries.*has 50"):
        BertClassifier.from_pretrained(small, num_classes=2, tokenizer=tokenizer())


# ------------------------------------------------------------------ raw text, saving, errors
class _RecordEpochs(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.val_losses, self.weights = [], []

    def on_epoch_end(self, epoch, logs=None):
        self.val_losses.append(logs["val_loss"])
        self.weights.append([w.copy() for w in self.model.get_weights()])


def test_pair_classifier_fit_predict_save_and_load(tmp_path):
    model = with_tokenizer(BertClassifier(encoder(), num_classes=2), max_length=16)
    record = _RecordEpochs()
    # a large learning rate makes the validation loss jump around between epochs
    history = model.fit_texts(PAIRS, validation=PAIRS, epochs=3, batch_size=2, learning_rate=0.3,
                              warmup=0, verbose=0, callbacks=[record],
                              early_stopping_patience=3,  # given: restores even on a tiny split
                              monitor="val_loss")  # the default monitors val_accuracy
    assert len(history.history["val_loss"]) == 3
    best = int(np.argmin(record.val_losses))
    for restored, kept in zip(model.get_weights(), record.weights[best], strict=True):
        np.testing.assert_array_equal(restored, kept)  # the best epoch's weights, not the last
    if best != 2:
        assert any(not np.array_equal(a, b)
                   for a, b in zip(model.get_weights(), record.weights[2], strict=True))
    assert model.label_map.labels == ["neg", "pos"]
    predictions = model.predict_texts(PAIRS.texts, PAIRS.pairs)
    assert predictions.probabilities.shape == (4, 2)
    np.testing.assert_allclose(predictions.probabilities.sum(-1), 1.0, atol=1e-5)
    assert predictions.labels == [["neg", "pos"][i] for i in predictions.probabilities.argmax(-1)]
    # Keras predict on tensors still returns the logits
    packed = model.tokenizer(PAIRS.texts, pairs=PAIRS.pairs, max_length=16)
    logits = model.predict(packed, verbose=0)
    e = np.exp(logits - logits.max(-1, keepdims=True))
    np.testing.assert_allclose(e / e.sum(-1, keepdims=True), predictions.probabilities, atol=1e-5)

    model.save_pretrained(tmp_path / "clf")
    assert sorted(os.listdir(tmp_path / "clf")) == ["labels.json", "model.keras", "task.json",
                                                    "vocab.txt"]
    task = json.loads((tmp_path / "clf" / "task.json").read_text())
    assert task["task"] == "BertClassifier" and task["max_length"] == 16
    loaded = BertClassifier.from_pretrained(tmp_path / "clf")
    assert loaded.label_map == model.label_map and getattr(loaded, "optimizer", None) is None
    again = loaded.predict_texts(PAIRS.texts, PAIRS.pairs)
    np.testing.assert_allclose(again.probabilities, predictions.probabilities, atol=1e-6)
    with pytest.raises(ValueError, match="takes no head arguments"):
        BertClassifier.from_pretrained(tmp_path / "clf", num_classes=3)

    report = loaded.evaluate_texts(PAIRS)
    assert report.confusion.sum() == 4 and report.labels == ["neg", "pos"]
    with pytest.raises(UnknownLabelError, match="'meh'"):
        loaded.evaluate_texts(LabelledData(["the film"], ["meh"]))


def test_predict_texts_bad_input():
    model = with_tokenizer(BertClassifier(encoder(), num_classes=2), max_length=8)
    with pytest.raises(DataError, match="#1 is empty"):
        model.predict_texts(["the film", "   "])
    with pytest.raises(DataError, match="2 texts but 1 text pairs"):
        model.predict_texts(["a", "b"], ["c"])
    with pytest.warns(TruncationWarning, match="1 of 2 examples.*max_length=8"):
        model.predict_texts(["the film", "the film is good and fun and great and dull"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.predict_texts(["the film"])
    bare = BertClassifier(encoder(), num_classes=2)
    with pytest.raises(ValueError, match="has no tokenizer"):
        bare.predict_texts(["the film"])


def test_fit_texts_needs_two_classes_and_a_matching_label_map():
    model = with_tokenizer(BertClassifier(encoder(), num_classes=3), max_length=8)
    with pytest.raises(DataError, match="1 class"):
        model.fit_texts(LabelledData(["a", "b"], ["x", "x"]), epochs=1, verbose=0)
    with pytest.raises(DataError, match="2 classes but the model outputs 3"):
        model.set_label_map(LabelMap(["x", "y"]))


def test_multi_label_and_regression_predictions():
    multi = with_tokenizer(BertClassifier(encoder(), num_classes=3, problem_type="multi_label"))
    multi.set_label_map(LabelMap(["a", "b", "c"]))
    out = multi.predict_texts(["the film"], threshold=0.0)
    assert out.labels == [["a", "b", "c"]]  # every sigmoid >= 0
    assert ((out.probabilities > 0) & (out.probabilities < 1)).all()
    np.testing.assert_array_equal(multi.encode_targets([["a", "c"]]), [[1, 0, 1]])
    reg = with_tokenizer(BertClassifier(encoder(), num_classes=1, problem_type="regression"))
    out = reg.predict_texts(["the film", "bad"])
    assert isinstance(out.labels[0], float) and out.probabilities.shape == (2, 1)


@pytest.mark.slow
def test_classifier_learns_a_separable_task():
    texts = ["good film", "great movie", "fun story", "good fun", "bad film", "awful movie",
             "dull story", "bad dull"] * 4
    labels = ["pos"] * 4 + ["neg"] * 4
    data = LabelledData(texts, labels * 4)
    keras.utils.set_random_seed(0)
    model = with_tokenizer(BertClassifier(encoder(), num_classes=2), max_length=8)
    model.fit_texts(data, epochs=15, batch_size=8, learning_rate=3e-3, verbose=0)
    assert model.evaluate_texts(data).accuracy >= 0.9


JAX_SCRIPT = """
import numpy as np, keras, sys
sys.path.insert(0, {tests!r})
from test_tasks_support import encoder, features
from kbert.tasks import BertClassifier, BertMultipleChoice, BertSpanExtractor, BertTokenClassifier
assert keras.backend.backend() == "jax"
x = features()
for model, y in ((BertClassifier(encoder(), num_classes=2, pooling="mean"), np.array([0, 1])),
                 (BertTokenClassifier(encoder(), num_labels=3), np.zeros((2, 8), "int32")),
                 (BertMultipleChoice(encoder()), np.array([0, 1]))):
    inputs = features(2, 8, choices=3) if isinstance(model, BertMultipleChoice) else x
    model.compile(total_steps=4, layerwise_lr_decay=0.9)
    model.train_on_batch(inputs, y)
qa = BertSpanExtractor(encoder())
qa.compile(total_steps=4)
qa.train_on_batch(x, {{"start_logits": np.array([1, 2]), "end_logits": np.array([2, 3])}})
print("ok")
"""


@pytest.mark.slow
def test_heads_train_on_the_jax_backend():
    tests = os.path.dirname(os.path.abspath(__file__))
    env = dict(os.environ, KERAS_BACKEND="jax", TF_CPP_MIN_LOG_LEVEL="2")
    result = subprocess.run([sys.executable, "-c", JAX_SCRIPT.format(tests=tests)], env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0 and "ok" in result.stdout, result.stderr[-3000:]
