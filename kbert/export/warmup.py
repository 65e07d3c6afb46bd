"""TF Serving warm-up requests: `assets.extra/tf_serving_warmup_requests`.

TF Serving replays this TFRecord file of `PredictionLog` protos when it loads a model version,
so the first user request does not pay for graph optimisation and kernel set-up.

The protos belong to `tensorflow-serving-api`, which kbert does not depend on: the records are
written in the protobuf wire format by hand (four nested messages, below), each tensor being a
`tensorflow.TensorProto` from TensorFlow itself. `tests/test_export_saved_model.py` parses the
file with the real `tensorflow_serving.apis.prediction_log_pb2` to keep this honest.

    PredictionLog { predict_log = 6: PredictLog { request = 1: PredictRequest {
        model_spec = 1: ModelSpec { name = 1, signature_name = 3 },
        inputs = 2: map<string, TensorProto> (entries: key = 1, value = 2) } } }
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping

import numpy as np
import tensorflow as tf

WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited field (wire type 2): strings, bytes and nested messages."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def predict_request_bytes(model_name: str, signature_name: str,
                          inputs: Mapping[str, np.ndarray]) -> bytes:
    """A serialized `tensorflow.serving.PredictRequest`."""
    spec = _field(1, model_name.encode("utf-8")) + _field(3, signature_name.encode("utf-8"))
    body = _field(1, spec)
    for key in sorted(inputs):
        tensor = tf.make_tensor_proto(inputs[key]).SerializeToString()
        body += _field(2, _field(1, key.encode("utf-8")) + _field(2, tensor))
    return body


def prediction_log_bytes(model_name: str, signature_name: str,
                         inputs: Mapping[str, np.ndarray]) -> bytes:
    """A serialized `tensorflow.serving.PredictionLog` holding one predict request."""
    request = predict_request_bytes(model_name, signature_name, inputs)
    return _field(6, _field(1, request))


def write_warmup_requests(export_dir: str | os.PathLike, model_name: str,
                          requests: Iterable[tuple[str, Mapping[str, np.ndarray]]]) -> str:
    """Write `<export_dir>/assets.extra/tf_serving_warmup_requests`; returns its path.

    Args:
        export_dir: a SavedModel version directory.
        model_name: the name the server serves it under (TF Serving ignores it in warm-up).
        requests: (signature name, {input name: array}) pairs, replayed in order.
    """
    path = os.path.join(os.fspath(export_dir), WARMUP_FILE)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with tf.io.TFRecordWriter(path) as writer:
        for signature, inputs in requests:
            writer.write(prediction_log_bytes(model_name, signature, inputs))
    return path


def read_warmup_requests(export_dir: str | os.PathLike) -> list[bytes]:
    """The raw records of a warm-up file (parse them with tensorflow-serving-api's protos)."""
    path = os.path.join(os.fspath(export_dir), WARMUP_FILE)
    return [record.numpy() for record in tf.data.TFRecordDataset(path)]
