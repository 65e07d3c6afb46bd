"""Call the task-head signatures of exported SavedModels the way TF Serving would, and compare
each output with a reference computed by the test process (tests/test_export_heads.py).

Runs in its own process with nothing but TensorFlow: the TF-Text op libraries are registered
and the model is loaded with the TF1 session loader by tests/serving_client.py's helpers, with
keras, kbert and tensorflow_text hidden from the import system (a server has none of them).

Usage:
    python tests/head_signature_client.py REPORT_JSON EXPORT_DIR=CASES_NPZ ...

CASES_NPZ keys: "<call>:<signature>:in:<input>" (the feeds; strings as numpy bytes arrays) and
"<call>:<signature>:ref:<output>" (the expected values: floats within TOLERANCE, ints and
strings exactly; a call without refs only has to run). REPORT_JSON gets, per export dir, its
signatures, and per call each output's max difference or mismatch, and any error.
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from serving_client import SessionModel, _HidePackages, load_tftext_ops, tftext_ops_dir  # noqa: E402

TOLERANCE = 1e-5


def compare(got: np.ndarray, ref: np.ndarray) -> dict:
    if got.shape != ref.shape:
        return {"ok": False, "detail": f"shape {got.shape} != expected {ref.shape}"}
    if ref.dtype.kind == "S":
        same = got.astype("S").tolist() == ref.tolist()
        return {"ok": same, "detail": None if same else f"{got.tolist()} != {ref.tolist()}"}
    if ref.dtype.kind == "f":
        diff = float(np.abs(got.astype(np.float64) - ref).max(initial=0.0))
        return {"ok": diff <= TOLERANCE and got.dtype == np.float32, "max_diff": diff,
                "dtype": str(got.dtype)}
    same = np.array_equal(got, ref)
    return {"ok": same, "detail": None if same else f"{got.tolist()} != {ref.tolist()}"}


def run_cases(model: SessionModel, cases) -> dict:
    calls: dict[tuple[str, str], dict] = {}
    for key in cases.files:
        call, signature, kind, name = key.split(":")
        calls.setdefault((call, signature), {"in": {}, "ref": {}})[kind][name] = cases[key]
    results = {}
    for (call, signature), spec in calls.items():
        feeds = {k: v.astype(object) if v.dtype.kind == "S" else v for k, v in spec["in"].items()}
        try:
            outputs = model.run(signature, feeds)
        except Exception as e:  # reported to the test
            results[call] = {"error": f"{type(e).__name__}: {str(e)[:1500]}"}
            continue
        results[call] = {"outputs": {k: {"shape": list(v.shape), "dtype": str(v.dtype)}
                                     for k, v in outputs.items()},
                         "compared": {k: compare(outputs[k], ref) if k in outputs else
                                      {"ok": False, "detail": "missing output"}
                                      for k, ref in spec["ref"].items()}}
    return results


def main(argv: list[str]) -> int:
    report_path, pairs = argv[0], argv[1:]
    ops_dir = tftext_ops_dir()
    sys.meta_path[:] = [_HidePackages(f) for f in sys.meta_path]
    load_tftext_ops(ops_dir)
    report = {}
    for pair in pairs:
        export_dir, cases_path = pair.split("=", 1)
        model = SessionModel(export_dir)
        with np.load(cases_path, allow_pickle=False) as cases:
            report[export_dir] = {"signatures": {k: sorted(v.inputs) for k, v in
                                                 model.signatures.items()},
                                  "calls": run_cases(model, cases)}
    report["leaked_modules"] = sorted(m for m in sys.modules if m.split(".")[0] in (
        "keras", "kbert", "tensorflow_text"))
    with open(report_path, "w", encoding="utf-8") as f:
        json.dump(report, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
