"""Run an exported SavedModel the way TensorFlow Serving does, in a process without kbert.

TF Serving is a C++ binary with core TensorFlow and TF-Text ops linked in; it loads a version
directory with the TF1 session loader and answers REST / gRPC predict requests against its
SignatureDefs. This script does the same with nothing but TensorFlow:
  * registers the TF-Text ops with `tf.load_op_library` on `tensorflow_text/python/ops/_*.so`
    (`import tensorflow_text` needs keras in 2.21, which a server does not have);
  * loads with `tf.compat.v1.saved_model.loader.load(sess, ["serve"], dir)`;
  * runs direct calls (arrays in, arrays out) and REST predict bodies through `rest_predict`,
    a small re-implementation of the REST layer's JSON <-> tensor mapping
    (tensorflow_serving/util/json_tensor.cc): "instances" (row) and "inputs" (columnar)
    formats, {"b64": ...} binary strings, "predictions" / "outputs" responses;
  * hides keras, kbert and tensorflow_text from the import system (so nothing can use them)
    and checks at the end that none got imported.

Usage (the tests write calls.json and read the results):
    python tests/serving_client.py EXPORT_DIR CALLS_JSON OUT_DIR

CALLS_JSON: {"calls": [{"name", "signature", "inputs": {input: {"dtype", "shape", "b64" |
"values"}}}], "rest": [{"name", "body"}]}. OUT_DIR receives calls.npz (keys "name/output",
strings as base64 in a JSON side file) and rest.json ({name: response body or {"error": ...}}).
"""

from __future__ import annotations

import base64
import glob
import importlib.util
import json
import os
import sys

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


HIDDEN_PACKAGES = ("keras", "tf_keras", "kbert", "tensorflow_text")


class _HidePackages:
    """Wraps a meta-path finder so that HIDDEN_PACKAGES look not installed (as on a server)."""

    def __init__(self, finder):
        self.finder = finder

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in HIDDEN_PACKAGES:
            return None
        find_spec = getattr(self.finder, "find_spec", None)
        return find_spec(name, path, target) if find_spec else None

    def invalidate_caches(self):
        getattr(self.finder, "invalidate_caches", lambda: None)()


def tftext_ops_dir() -> str:
    """tensorflow_text/python/ops, found without importing tensorflow_text."""
    spec = importlib.util.find_spec("tensorflow_text")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("tensorflow_text is not installed: its op libraries are needed")
    return os.path.join(list(spec.submodule_search_locations)[0], "python", "ops")


def load_tftext_ops(ops_dir: str | None = None) -> list[str]:
    """Register TF-Text's ops without importing tensorflow_text (which needs keras)."""
    import tensorflow as tf

    libraries = sorted(glob.glob(os.path.join(ops_dir or tftext_ops_dir(), "_*.so")))
    for library in libraries:
        tf.load_op_library(library)
    return [os.path.basename(p) for p in libraries]


class SessionModel:
    """A SavedModel loaded like the server loads it: TF1 session, SignatureDefs."""

    def __init__(self, export_dir: str):
        import tensorflow as tf

        self.graph = tf.Graph()
        self.session = tf.compat.v1.Session(graph=self.graph)
        meta = tf.compat.v1.saved_model.loader.load(self.session, ["serve"], export_dir)
        self.signatures = {k: v for k, v in meta.signature_def.items()
                           if not k.startswith("__")}

    def run(self, signature: str, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if signature not in self.signatures:
            raise KeyError(f"no signature {signature!r}; have {sorted(self.signatures)}")
        sig = self.signatures[signature]
        if set(feeds) != set(sig.inputs):
            raise ValueError(f"{signature}: inputs {sorted(feeds)} do not match the signature's "
                             f"{sorted(sig.inputs)}")
        feed_dict = {sig.inputs[k].name: v for k, v in feeds.items()}
        names = sorted(sig.outputs)
        values = self.session.run([sig.outputs[k].name for k in names], feed_dict)
        return dict(zip(names, values, strict=True))

    def input_dtype(self, signature: str, name: str):
        import tensorflow as tf

        return tf.dtypes.as_dtype(self.signatures[signature].inputs[name].dtype).as_numpy_dtype


# ---------------------------------------------------------------------- REST JSON mapping
class RestError(ValueError):
    """What TF Serving answers with HTTP 400 {"error": ...}."""


def _decode_value(value):
    """JSON -> Python values, {"b64": s} -> bytes, str -> UTF-8 bytes."""
    if isinstance(value, dict):
        if set(value) != {"b64"}:
            raise RestError(f"JSON object {value} is not a {{'b64': ...}} value")
        return base64.b64decode(value["b64"])
    if isinstance(value, list):
        return [_decode_value(v) for v in value]
    if isinstance(value, str):
        return value.encode("utf-8")
    return value


def _to_array(value, dtype) -> np.ndarray:
    value = _decode_value(value)
    if np.dtype(dtype).kind == "O":  # strings
        array = np.array(value, dtype=object)
        if array.size == 0:
            array = np.array(value, dtype=object).reshape(np.shape(value))
        return array
    try:
        return np.array(value, dtype=dtype)
    except (TypeError, ValueError) as e:
        raise RestError(f"cannot convert {str(value)[:80]} to {np.dtype(dtype).name}: {e}") from e


def _encode_value(value, name: str):
    """Tensor values -> JSON: bytes as UTF-8 text, or {"b64"} for *_bytes outputs / non-UTF-8."""
    if isinstance(value, np.ndarray):
        return [_encode_value(v, name) for v in value] if value.ndim else _encode_value(
            value.item(), name)
    if isinstance(value, (list, tuple)):
        return [_encode_value(v, name) for v in value]
    if isinstance(value, bytes):
        if name.endswith("_bytes"):
            return {"b64": base64.b64encode(value).decode("ascii")}
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return {"b64": base64.b64encode(value).decode("ascii")}
    if isinstance(value, (np.floating, float)):
        return float(value)
    if isinstance(value, (np.integer, int)):
        return int(value)
    return value


def rest_predict(model: SessionModel, body: dict) -> dict:
    """POST /v1/models/<name>:predict with JSON `body` -> the response body (or RestError)."""
    if not isinstance(body, dict):
        raise RestError("request body must be a JSON object")
    signature = body.get("signature_name", "serving_default")
    if signature not in model.signatures:
        raise RestError(f"Serving signature name: \"{signature}\" not found in signature def")
    input_names = sorted(model.signatures[signature].inputs)
    if ("instances" in body) == ("inputs" in body):
        raise RestError("JSON object: must have exactly one of 'instances' or 'inputs'")

    if "instances" in body:
        instances = body["instances"]
        if not isinstance(instances, list) or not instances:
            raise RestError("'instances' must be a non-empty list")
        named = isinstance(instances[0], dict) and set(instances[0]) != {"b64"}
        if not named and len(input_names) != 1:
            raise RestError(f"instances must be objects naming the inputs {input_names}")
        columns: dict[str, list] = {k: [] for k in input_names}
        for row in instances:
            if named:
                if not isinstance(row, dict) or set(row) != set(input_names):
                    raise RestError(f"every instance must have exactly the keys {input_names}")
                for k in input_names:
                    columns[k].append(row[k])
            else:
                columns[input_names[0]].append(row)
        feeds = {k: _to_array(v, model.input_dtype(signature, k)) for k, v in columns.items()}
        outputs = model.run(signature, feeds)
        sizes = {k: v.shape[0] if v.ndim else None for k, v in outputs.items()}
        if len(set(sizes.values())) != 1 or None in sizes.values():
            raise RestError(f"row format needs the same batch size on every output: {sizes}")
        batch = next(iter(sizes.values()))
        if len(outputs) == 1:
            ((name, value),) = outputs.items()
            return {"predictions": [_encode_value(value[i], name) for i in range(batch)]}
        return {"predictions": [{k: _encode_value(v[i], k) for k, v in outputs.items()}
                                for i in range(batch)]}

    inputs = body["inputs"]
    if isinstance(inputs, dict) and set(inputs) != {"b64"}:
        if set(inputs) != set(input_names):
            raise RestError(f"'inputs' must have exactly the keys {input_names}")
        columns = inputs
    elif len(input_names) == 1:
        columns = {input_names[0]: inputs}
    else:
        raise RestError(f"'inputs' must be an object naming the inputs {input_names}")
    feeds = {k: _to_array(v, model.input_dtype(signature, k)) for k, v in columns.items()}
    outputs = model.run(signature, feeds)
    if len(outputs) == 1:
        ((name, value),) = outputs.items()
        return {"outputs": _encode_value(value, name)}
    return {"outputs": {k: _encode_value(v, k) for k, v in outputs.items()}}


# ---------------------------------------------------------------------- driver
def _call_inputs(spec: dict) -> dict[str, np.ndarray]:
    feeds = {}
    for name, item in spec.items():
        shape = tuple(item["shape"])
        if item["dtype"] == "string":
            values = [base64.b64decode(s) for s in item["b64"]]
            feeds[name] = np.array(values + [b""], dtype=object)[:-1].reshape(shape)
        else:
            feeds[name] = np.array(item["values"], dtype=item["dtype"]).reshape(shape)
    return feeds


def main(argv: list[str]) -> int:
    export_dir, calls_path, out_dir = argv
    with open(calls_path, encoding="utf-8") as f:
        spec = json.load(f)
    ops_dir = tftext_ops_dir()
    # `import tensorflow` pulls in parts of keras when it is installed; a server has none.
    sys.meta_path[:] = [_HidePackages(f) for f in sys.meta_path]
    libraries = load_tftext_ops(ops_dir)
    model = SessionModel(export_dir)
    os.makedirs(out_dir, exist_ok=True)

    arrays, strings, errors = {}, {}, {}
    for call in spec.get("calls", []):
        try:
            outputs = model.run(call["signature"], _call_inputs(call["inputs"]))
        except Exception as e:  # the test asserts on errors it expects
            errors[call["name"]] = f"{type(e).__name__}: {str(e)[:2000]}"
            continue
        for key, value in outputs.items():
            if value.dtype == object:
                strings[f"{call['name']}/{key}"] = {
                    "shape": list(value.shape),
                    "b64": [base64.b64encode(v).decode("ascii") for v in value.reshape(-1)]}
            else:
                arrays[f"{call['name']}/{key}"] = value
    np.savez(os.path.join(out_dir, "calls.npz"), **arrays)

    rest = {}
    for request in spec.get("rest", []):
        try:
            rest[request["name"]] = rest_predict(model, request["body"])
        except Exception as e:
            rest[request["name"]] = {"error": f"{type(e).__name__}: {str(e)[:2000]}"}

    leaked = sorted(m for m in sys.modules if m.split(".")[0] in ("keras", "kbert",
                                                                  "tensorflow_text"))
    summary = {"signatures": {k: {"inputs": sorted(v.inputs), "outputs": sorted(v.outputs)}
                              for k, v in model.signatures.items()},
               "tftext_libraries": libraries, "errors": errors, "leaked_modules": leaked}
    with open(os.path.join(out_dir, "strings.json"), "w", encoding="utf-8") as f:
        json.dump(strings, f)
    with open(os.path.join(out_dir, "rest.json"), "w", encoding="utf-8") as f:
        json.dump(rest, f)
    with open(os.path.join(out_dir, "summary.json"), "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=1)
    if leaked:
        print(f"serving_client: imported {leaked[:5]}; a server has none of them", file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
