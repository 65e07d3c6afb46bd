"""SavedModel export of every kbert.tasks head, checked against the Keras models.

Tiny heads (tests/test_tasks_support.py: hand-written vocabulary, hidden-16 encoder) are
exported with `export_saved_model`; the Keras / Python outputs are computed here and written
to an .npz, and tests/head_signature_client.py, a process with TensorFlow only (TF-Text's op
libraries, no keras, kbert or tensorflow_text), loads each export like TF Serving, calls the
signatures and compares (floats within 1e-5, ids, offsets and strings exactly).
"""

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
import test_tasks_support as support

from kbert.export.op_check import SERVING_TFTEXT_OPS, check_serving_ops
from kbert.export.saved_model import (
    HEAD_SIGNATURES,
    SIGNATURES,
    ExportError,
    export_saved_model,
    head_kind,
    split_model,
)
from kbert.export.tflite import export_tflite
from kbert.export.warmup import read_warmup_requests
from kbert.tasks import (
    BertClassifier,
    BertMultipleChoice,
    BertSpanExtractor,
    BertTokenClassifier,
    LabelMap,
)
from kbert.tasks.alignment import tokenize_with_char_offsets

CLIENT = pathlib.Path(__file__).parent / "head_signature_client.py"
TAGS = ["O", "B-LOC", "I-LOC"]
LONG = "the big film was not fun and the soup was cold and the cat was very dull " * 3

TEXTS = ["José lives in Zürich.", LONG, "", "Unbelievable café?", "the film is good"]
QUESTIONS = ["where does José live?", "who lives with his cat?",
             "where " * 70 + "?"]  # 71 pieces: cut to the first 64, as encode_examples does
CONTEXTS = ["José lives in Zürich with his cat.", LONG * 2, "São Paulo is a big city."]
PROMPTS = ["She opened the umbrella because", "The film was", "zürich is"]
CHOICES = [["it was raining.", "the soup was cold.", "jose lives near sao paulo."],
           ["great", "awful fun", LONG],
           ["a city", "a cat", "not a cafe"]]
PAIRS_A = ["the film", "José lives in Zürich", LONG]
PAIRS_B = ["was good", LONG, "and the cat"]


def _bytes(values):
    return np.array([v.encode() if isinstance(v, str) else v for v in values], dtype="S")


def _byte_offset(text: str, char: int) -> int:
    return len(text[:char].encode("utf-8"))


def _trim(packed):
    width = max(int(np.asarray(packed["padding_mask"]).sum(-1).max(initial=0)), 2)
    return {k: np.asarray(v)[..., :width] for k, v in packed.items()}


def _softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


# ------------------------------------------------------------------------------ references
def tag_cases(model):
    tokenizer = model.tokenizer
    packed = _trim(tokenizer(TEXTS, max_length=model.max_length))
    width = packed["token_ids"].shape[1]
    logits = np.asarray(model(packed), np.float32)
    label_id = logits.argmax(-1).astype(np.int32)
    starts = np.full((len(TEXTS), width), -1, np.int64)
    ends = starts.copy()
    # offsets from the Python path the head's predict_text uses (characters -> UTF-8 bytes)
    all_pieces = tokenize_with_char_offsets(tokenizer, TEXTS)
    for i, (text, pieces) in enumerate(zip(TEXTS, all_pieces, strict=True)):
        for k, piece in enumerate(pieces[:model.max_length - 2]):
            starts[i, k + 1] = _byte_offset(text, piece.start)
            ends[i, k + 1] = _byte_offset(text, piece.end)
    continuation = np.asarray(tokenizer.vocab.is_continuation)[packed["token_ids"]]
    refs = {"logits": logits, "probabilities": _softmax(logits), "label_id": label_id,
            "label": _bytes([TAGS[j] for j in label_id.ravel()]).reshape(label_id.shape),
            "token_ids": packed["token_ids"], "padding_mask": packed["padding_mask"],
            "start_offsets": starts, "end_offsets": ends,
            "continuation": (continuation * packed["padding_mask"]).astype(np.int32)}
    zero = {"logits": np.zeros((0, 2, len(TAGS)), np.float32),
            "label": np.zeros((0, 2), "S1"), "start_offsets": np.zeros((0, 2), np.int64)}
    return {("tag", "tag"): ({"text": _bytes(TEXTS)}, refs),
            ("tag_zero", "tag"): ({"text": _bytes([])}, zero)}


def answer_cases(model):
    features, _, windows = model.encode_examples(QUESTIONS, CONTEXTS)
    first = [next(w for w, window in enumerate(windows) if window.example == i)
             for i in range(len(QUESTIONS))]
    assert len(windows) > len(QUESTIONS)  # the long context has more windows than the first
    packed = _trim({k: v[first] for k, v in features.items()})
    width = packed["token_ids"].shape[1]
    out = model(packed)
    starts = np.full((len(CONTEXTS), width), -1, np.int64)
    ends = starts.copy()
    pieces = tokenize_with_char_offsets(model.tokenizer, CONTEXTS)
    truncated = []
    for i, w in enumerate(first):
        inside = np.flatnonzero(windows[w].char_starts[:width] >= 0)
        for p in inside:
            starts[i, p] = _byte_offset(CONTEXTS[i], windows[w].char_starts[p])
            ends[i, p] = _byte_offset(CONTEXTS[i], windows[w].char_ends[p])
        truncated.append(len(pieces[i]) - len(inside))
    assert max(truncated) > 0
    refs = {"start_logits": np.asarray(out["start_logits"], np.float32),
            "end_logits": np.asarray(out["end_logits"], np.float32),
            "context_start_offsets": starts, "context_end_offsets": ends,
            "context_truncated": np.array(truncated, np.int32), **packed}
    zero = {"start_logits": np.zeros((0, 2), np.float32),
            "context_start_offsets": np.zeros((0, 2), np.int64)}
    return {("answer", "answer_logits"): ({"question": _bytes(QUESTIONS),
                                          "context": _bytes(CONTEXTS)}, refs),
            ("answer_zero", "answer_logits"): ({"question": _bytes([]),
                                               "context": _bytes([])}, zero)}


def choice_cases(model):
    scores = np.asarray(model(_trim(model.encode_choices(PROMPTS, CHOICES))), np.float32)
    best, probabilities = model.predict_choices(PROMPTS, CHOICES)
    refs = {"scores": scores, "probabilities": probabilities,
            "best_choice": best.astype(np.int32)}
    zero = {"scores": np.zeros((0, 3), np.float32), "best_choice": np.zeros((0,), np.int32)}
    choices = np.array([_bytes(row) for row in CHOICES])
    return {("choices", "score_choices"): ({"prompt": _bytes(PROMPTS), "choices": choices},
                                           refs),
            ("choices_zero", "score_choices"): ({"prompt": _bytes([]),
                                                 "choices": np.zeros((0, 3), "S1")}, zero)}


def classify_cases(model):
    cases = {}
    for call, texts, pairs in (("classify", TEXTS[:2] + TEXTS[3:], None),
                               ("classify_pairs", PAIRS_A, PAIRS_B)):
        with pytest.warns(Warning):  # truncation report of LONG
            predictions = model.predict_texts(texts, pairs)
        logits = np.asarray(model(_trim(model.tokenizer(texts, pairs,
                                                        max_length=model.max_length))))
        if model.problem_type == "regression":  # the raw values are the prediction
            refs = {"logits": predictions.probabilities}
            assert np.abs(logits - predictions.probabilities).max() <= 1e-5
        else:  # multi_label: sigmoid scores and the labels at or above 0.5
            names = [str(c) for c in predictions.class_labels]
            predicted = np.array([[int(n in row) for n in names] for row in predictions.labels],
                                 np.int32)
            refs = {"logits": logits, "probabilities": predictions.probabilities,
                    "predicted": predicted,
                    "label_names": np.array([_bytes(names)] * len(texts))}
            assert predicted.any() and not predicted.all()  # both sides of 0.5 occur
        inputs = {"text": _bytes(texts)}
        if pairs is not None:
            inputs["text_pair"] = _bytes(pairs)
        cases[(f"{call}", call)] = (inputs, refs)
    return cases


def windowed_cases(model):
    """A classifier that reads long texts as windows: the exported classify pools the windows'
    logits in the graph as `predict_texts` does in Python (LONG is 8 windows at length 16)."""
    texts = TEXTS[:2] + TEXTS[3:]
    predictions = model.predict_texts(texts)
    logits = model._scores(texts)
    assert len(model.tokenizer.encode([LONG])[0]) > 2 * (model.max_length - 2)
    refs = {"logits": logits, "probabilities": predictions.probabilities,
            "label": _bytes([str(label) for label in predictions.labels])}
    return {("classify", "classify"): ({"text": _bytes(texts)}, refs)}


def _warmup_cases(path):
    # deferred: tensorflow-serving-api is optional (the test extra)
    from tensorflow_serving.apis import prediction_log_pb2  # noqa: PLC0415

    cases = {}
    for i, record in enumerate(read_warmup_requests(path)):
        request = prediction_log_pb2.PredictionLog.FromString(record).predict_log.request
        inputs = {name: tf.make_ndarray(proto) for name, proto in request.inputs.items()}
        inputs = {k: v.astype("S") if v.dtype == object else v for k, v in inputs.items()}
        cases[(f"warmup{i}", request.model_spec.signature_name)] = (inputs, {})
    return cases


def _save_cases(path, cases):
    arrays = {}
    for (call, signature), (inputs, refs) in cases.items():
        arrays.update({f"{call}:{signature}:in:{k}": v for k, v in inputs.items()})
        arrays.update({f"{call}:{signature}:ref:{k}": v for k, v in refs.items()})
    np.savez(path, **arrays)


# ---------------------------------------------------------------------------------- fixture
def _heads():
    tagger = BertTokenClassifier(support.encoder(1), num_labels=len(TAGS))
    tagger.set_label_map(LabelMap(TAGS))
    multi = BertClassifier(support.encoder(4), num_classes=3, problem_type="multi_label",
                           pooling="mean")
    multi.set_label_map(LabelMap(["fun", "dull", "long"]))
    multi.logits.bias.assign([2.0, -2.0, 0.0])  # labels on both sides of 0.5
    windowed = support.with_tokenizer(BertClassifier(support.encoder(6), num_classes=2), 16)
    windowed.set_label_map(LabelMap(["neg", "pos"]))
    windowed.set_windows(5)
    return {
        "tagger": (support.with_tokenizer(tagger, 16), tag_cases),
        "qa": (support.with_tokenizer(BertSpanExtractor(
            support.encoder(2, max_position_embeddings=128)), 80),
               answer_cases),
        "choice": (support.with_tokenizer(BertMultipleChoice(support.encoder(3)), 16),
                   choice_cases),
        "multi": (support.with_tokenizer(multi, 16), classify_cases),
        "windows": (windowed, windowed_cases),
        "regression": (support.with_tokenizer(
            BertClassifier(support.encoder(5), num_classes=2, problem_type="regression"), 16),
            classify_cases),
    }


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    base = tmp_path_factory.mktemp("heads")
    exports, pairs = {}, []
    for name, (model, make_cases) in _heads().items():
        path = export_saved_model(model, base_dir=base, name=name)
        cases = make_cases(model)
        cases.update(_warmup_cases(path))
        _save_cases(base / f"{name}.npz", cases)
        exports[name] = {"model": model, "path": path, "cases": cases}
        pairs.append(f"{path}={base / f'{name}.npz'}")
    report_path = base / "report.json"
    process = subprocess.run([sys.executable, str(CLIENT), str(report_path), *pairs],
                             capture_output=True, text=True, timeout=900,
                             env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    assert process.returncode == 0, process.stderr[-3000:]
    report = json.loads(report_path.read_text())
    return {"exports": exports, "report": report}


# ------------------------------------------------------------------------------------ tests
def test_head_kind_and_split_model():
    encoder = support.encoder()
    assert head_kind(encoder) == "encoder" and split_model(encoder) == (encoder, None)
    for cls, kind in ((BertClassifier, "classifier"), (BertTokenClassifier, "token_classifier"),
                      (BertSpanExtractor, "span_extractor"),
                      (BertMultipleChoice, "multiple_choice")):
        head = cls(encoder)
        assert head_kind(head) == kind
        assert split_model(head) == (head.encoder, head)
    with pytest.raises(ExportError, match="cannot export a Dense"):
        head_kind(__import__("keras").layers.Dense(2))


def test_every_head_keeps_the_encoder_signatures_and_adds_its_own(served):
    report = served["report"]
    assert report["leaked_modules"] == []
    expected = {"tagger": ("tag",), "qa": ("answer_logits",), "choice": ("score_choices",),
                "multi": ("classify", "classify_pairs"),
                "windows": ("classify", "classify_pairs"),
                "regression": ("classify", "classify_pairs")}
    for name, export in served["exports"].items():
        signatures = report[export["path"]]["signatures"]
        assert set(signatures) == set(SIGNATURES) | set(expected[name])
        assert expected[name] == HEAD_SIGNATURES[head_kind(export["model"])]
    signatures = report[served["exports"]["qa"]["path"]]["signatures"]
    assert signatures["answer_logits"] == ["context", "question"]
    assert report[served["exports"]["choice"]["path"]]["signatures"]["score_choices"] == [
        "choices", "prompt"]


def _check_calls(served, name, prefix):
    export = served["exports"][name]
    calls = served["report"][export["path"]]["calls"]
    refs = {call: refs for (call, _), (_, refs) in export["cases"].items()
            if call.startswith(prefix)}
    assert refs
    for call in refs:
        result = calls[call]
        assert "error" not in result, (call, result)
        assert set(result["compared"]) == set(refs[call]), call
        bad = {k: v for k, v in result["compared"].items() if not v["ok"]}
        assert not bad, (call, bad)
    return calls


def test_tag_matches_keras_logits_and_python_offsets(served):
    calls = _check_calls(served, "tagger", "tag")
    outputs = calls["tag"]["outputs"]
    assert set(outputs) == {"logits", "probabilities", "label_id", "label", "token_ids",
                            "padding_mask", "start_offsets", "end_offsets", "continuation"}
    assert outputs["start_offsets"]["dtype"] == "int64"


def test_answer_logits_match_the_first_window_of_encode_examples(served):
    calls = _check_calls(served, "qa", "answer")
    # [CLS] + 64 of the 71 question pieces + [SEP] + 13 context pieces + [SEP]
    assert calls["answer"]["outputs"]["start_logits"]["shape"] == [3, 80]


def test_score_choices_match_keras_and_predict_choices(served):
    _check_calls(served, "choice", "choices")


@pytest.mark.parametrize("name", ["multi", "regression"])
def test_classify_matches_predict_texts_for_multi_label_and_regression(served, name):
    calls = _check_calls(served, name, "classify")
    outputs = set(calls["classify"]["outputs"])
    if name == "regression":
        assert outputs == {"logits"}
    else:
        assert outputs == {"logits", "probabilities", "predicted", "label_names"}


def test_classify_pools_the_windows_of_long_texts_in_the_graph(served):
    """The exported classify of a windowed classifier returns one row per text: the mean of
    its windows' logits, equal to predict_texts (kbert.tasks.windows)."""
    calls = _check_calls(served, "windows", "classify")
    assert calls["classify"]["outputs"]["logits"]["shape"] == [4, 2]


def test_warmup_covers_every_signature_and_runs(served):
    for name, export in served["exports"].items():
        warmups = {s for c, s in export["cases"] if c.startswith("warmup")}
        assert warmups == set(SIGNATURES) | set(HEAD_SIGNATURES[head_kind(export["model"])])
        _check_calls(served, name, "warmup")


def test_head_exports_pass_the_serving_op_check(served):
    for export in served["exports"].values():
        report = check_serving_ops(export["path"])
        assert report.ok and set(report.tftext) <= SERVING_TFTEXT_OPS


def test_tflite_refuses_heads_it_cannot_export():
    model = support.with_tokenizer(BertTokenClassifier(support.encoder()))
    with pytest.raises(ExportError, match="TFLite export takes"):
        export_tflite(model, "unused.tflite")
