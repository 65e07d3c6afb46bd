"""A server-like process for tests/test_fuzz_signatures.py: loads an exported SavedModel and
TFLite files once, then runs the calls it is sent and answers with a summary of each result.

It runs apart from pytest so that a call that kills the process (a crashing kernel, an abort)
fails the test with that input instead of taking the test run down.

Protocol (stdin -> stdout, each message an 8-byte big-endian length + a pickle; both ends
are this test suite, nothing untrusted is unpickled):
    request  ("saved_model", signature, {input: ndarray}) or ("tflite", key, {input: ndarray})
    answer   {"outputs": {name: summary}} or {"error": (type name, message)}
summary: {"shape", "dtype", "finite" (floats), "min" / "max" (ints), "row_sums" (int [B, S]
outputs: sums over the last axis)}.

Usage: python tests/signature_worker.py SAVED_MODEL_DIR KEY=FILE.tflite ...
"""

from __future__ import annotations

import os
import pickle
import struct
import sys

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def summarize(value) -> dict:
    value = np.asarray(value)
    out = {"shape": tuple(value.shape), "dtype": str(value.dtype)}
    if value.dtype.kind == "f":
        out["finite"] = bool(np.isfinite(value).all())
    elif value.dtype.kind in "iu" and value.size:
        out["min"], out["max"] = int(value.min()), int(value.max())
        if value.ndim == 2:
            out["row_sums"] = value.sum(axis=1).tolist()
    return out


def main(argv: list[str]) -> int:
    # The protocol owns the real stdout; anything printed by libraries goes to stderr.
    channel = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    sys.stdout = sys.stderr

    import tensorflow as tf
    import tensorflow_text  # noqa: F401  (registers the TF-Text ops the graph uses)

    from kbert.export.litert import TFLiteEncoder

    saved = tf.saved_model.load(argv[0])
    tflite = {}
    for item in argv[1:]:
        key, path = item.split("=", 1)
        tflite[key] = TFLiteEncoder(path)
    channel.write(b"ready\n")
    channel.flush()

    stdin = sys.stdin.buffer
    while True:
        header = stdin.read(8)
        if len(header) < 8:
            return 0
        kind, name, inputs = pickle.loads(stdin.read(struct.unpack(">Q", header)[0]))
        try:
            if kind == "saved_model":
                function = saved.signatures[name]
                result = function(**{k: tf.constant(v) for k, v in inputs.items()})
            else:
                result = tflite[name].run(**inputs)
            answer = {"outputs": {k: summarize(v) for k, v in result.items()}}
        except Exception as e:  # reported to the test, which decides if it is documented
            answer = {"error": (type(e).__name__, str(e)[:2000])}
        data = pickle.dumps(answer)
        channel.write(struct.pack(">Q", len(data)) + data)
        channel.flush()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
