"""Deployment: SavedModel for TensorFlow Serving, TFLite for devices.

    export_saved_model    <base>/<name>/<version>/ with text-in signatures (docs/serving.md)
    check_serving_ops     refuse ops stock TF Serving 2.16+ lacks
    write_warmup_requests assets.extra/tf_serving_warmup_requests
    export_tflite         .tflite: ids or text in; float32 / float16 / dynamic_int8 / int8
    TFLiteEncoder         run a kbert .tflite with LiteRT (kbert.export.litert)

Names resolve lazily: importing this package does not import TensorFlow.
"""

from __future__ import annotations

from kbert._lazy import lazy_exports

_EXPORTS = {
    "export_saved_model": "kbert.export.saved_model",
    "ExportError": "kbert.export.saved_model",
    "SIGNATURES": "kbert.export.saved_model",
    "check_serving_ops": "kbert.export.op_check",
    "saved_model_ops": "kbert.export.op_check",
    "OpCheckError": "kbert.export.op_check",
    "OpReport": "kbert.export.op_check",
    "write_warmup_requests": "kbert.export.warmup",
    "export_tflite": "kbert.export.tflite",
    "QUANTIZATIONS": "kbert.export.tflite",
    "TFLiteEncoder": "kbert.export.litert",
    "LiteRTError": "kbert.export.litert",
}


__getattr__, __dir__ = lazy_exports(__name__, globals(), _EXPORTS)


__all__ = sorted(_EXPORTS)
