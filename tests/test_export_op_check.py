"""The op check reads the written graph and refuses what stock TF Serving 2.16+ cannot run;
warm-up records parse with TF Serving's own protos."""

import glob
import os

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_text as tf_text
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow.python.framework import op_def_registry

from kbert.export.op_check import (
    NEWER_TFTEXT_OPS,
    SERVING_TFTEXT_OPS,
    OpCheckError,
    check_serving_ops,
    saved_model_ops,
)
from kbert.export.warmup import read_warmup_requests, write_warmup_requests


def _save(tmp_path, name, function):
    path = str(tmp_path / name)
    tf.saved_model.save(tf.Module(), path, signatures={"serving_default": function})
    return path


def test_tftext_trimmer_op_is_refused_by_name(tmp_path):
    trimmer = tf_text.RoundRobinTrimmer(max_seq_length=4)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.int32), tf.TensorSpec([None], tf.int64)])
    def trim(values, row_lengths):
        segment = tf.RaggedTensor.from_row_lengths(values, row_lengths)
        return {"trimmed": trimmer.trim([segment, segment])[0].to_tensor()}

    path = _save(tmp_path, "trimmer", trim)
    assert "TFText>RoundRobinTrim" in saved_model_ops(path)
    with pytest.raises(OpCheckError, match="TFText>RoundRobinTrim") as error:
        check_serving_ops(path)
    assert "2.12.1" in str(error.value)


def test_unregistered_custom_op_is_refused(tmp_path):
    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32)])
    def double(x):
        return {"y": x * 2.0}

    path = _save(tmp_path, "custom", double)

    saved = saved_model_pb2.SavedModel()
    with open(os.path.join(path, "saved_model.pb"), "rb") as f:
        saved.ParseFromString(f.read())
    # Rename the multiplication inside the function body: the check must read function bodies.
    renamed = 0
    for function in saved.meta_graphs[0].graph_def.library.function:
        for node in function.node_def:
            if node.op == "Mul":
                node.op = "MyCompanyFancyMul"
                renamed += 1
    assert renamed
    with open(os.path.join(path, "saved_model.pb"), "wb") as f:
        f.write(saved.SerializeToString())
    with pytest.raises(OpCheckError, match="MyCompanyFancyMul"):
        check_serving_ops(path)


def test_old_tftext_ops_and_core_ops_pass(tmp_path):
    tokenizer = tf_text.FastBertTokenizer(vocab=["[UNK]", "a", "##b"], token_out_type=tf.int32)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def tokenize(text):
        text = tf_text.normalize_utf8(text, "NFD")
        return {"ids": tokenizer.tokenize(text).to_tensor()}

    report = check_serving_ops(_save(tmp_path, "ok", tokenize))
    assert report.ok
    assert "NormalizeUTF8" in report.tftext and "FastWordpieceTokenizeWithOffsets" in report.tftext
    assert "StatefulPartitionedCall" in report.core


def test_not_a_saved_model_is_an_error(tmp_path):
    with pytest.raises(OpCheckError, match="saved_model.pb"):
        check_serving_ops(str(tmp_path))


def test_allowed_tftext_list_names_ops_the_installed_tftext_registers():
    """The hard-coded 2.12.1 list must not contain typos: every name is a registered op."""
    ops_dir = os.path.join(os.path.dirname(tf_text.__file__), "python", "ops")
    for library in glob.glob(os.path.join(ops_dir, "_*.so")):
        tf.load_op_library(library)
    for op in SERVING_TFTEXT_OPS | NEWER_TFTEXT_OPS:
        assert op_def_registry.get(op) is not None, op
    assert not SERVING_TFTEXT_OPS & NEWER_TFTEXT_OPS


def test_warmup_records_parse_with_tensorflow_serving_protos(tmp_path):
    # deferred: tensorflow-serving-api is optional (the test extra)
    from tensorflow_serving.apis import prediction_log_pb2  # noqa: PLC0415

    texts = np.array(["première phrase".encode(), b"\xff raw bytes"], dtype=object)
    ids = np.array([[2, 7, 3]], np.int32)
    write_warmup_requests(tmp_path, "minilm", [("serving_default", {"text": texts}),
                                               ("embed_ids", {"token_ids": ids,
                                                              "padding_mask": ids > 0})])
    records = read_warmup_requests(tmp_path)
    assert len(records) == 2
    logs = [prediction_log_pb2.PredictionLog.FromString(r) for r in records]
    first, second = (log.predict_log.request for log in logs)
    assert first.model_spec.name == "minilm"
    assert first.model_spec.signature_name == "serving_default"
    assert list(tf.make_ndarray(first.inputs["text"])) == list(texts)
    assert second.model_spec.signature_name == "embed_ids"
    np.testing.assert_array_equal(tf.make_ndarray(second.inputs["token_ids"]), ids)
    np.testing.assert_array_equal(tf.make_ndarray(second.inputs["padding_mask"]), ids > 0)
    # and the protos' own serialization is byte-identical to the hand-written wire format
    assert logs[0].SerializeToString() == records[0]
