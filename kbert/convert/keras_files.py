"""Loading `.keras` archives that may come from elsewhere: Keras' safe mode, always.

A `.keras` file is a zip of a JSON config and the weights. In safe mode Keras refuses a Lambda
layer, whose config carries Python bytecode that would run, and resolves classes only among
Keras' own and the registered ones (kbert's layers and models) - never an arbitrary
`module.name` such as `os.system`. `tests/test_safe_loading.py` checks both refusals through
every kbert loader.

`safe_mode=True` alone is not enough: Keras 3.15's deserializer lets the process-wide setting
win over the argument, so after any library in the process has called
`keras.config.enable_unsafe_deserialization()`, `load_model(path, safe_mode=True)` loads a
Lambda (found by tests/test_safe_loading.py). `load_keras_file` therefore also enters Keras'
safe-mode scope for the duration of the load.

Example:
    >>> from kbert.convert.keras_files import load_keras_file
    >>> encoder = load_keras_file("runs/pretrain/encoder.keras")      # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import os

import keras

try:  # Keras' private scope that forces safe mode for nested deserialization
    from keras.src.saving.serialization_lib import SafeModeScope
except ImportError:  # pragma: no cover - other Keras versions
    SafeModeScope = None

from kbert.convert.transformers_ckpt import CheckpointError


def _safe_mode_scope():
    """Keras' own scope that forces safe mode for nested deserialization (private API; on a
    Keras without it, the `safe_mode=True` argument is what remains)."""
    if SafeModeScope is None:  # pragma: no cover - other Keras versions
        return contextlib.nullcontext()
    return SafeModeScope(True)


def load_keras_file(path: str | os.PathLike, *, custom_objects: dict | None = None,
                    compile: bool = False):
    """`keras.saving.load_model(path, safe_mode=True)`; a file Keras refuses or cannot
    deserialize raises `CheckpointError` (a ValueError) naming the file and the reason."""
    path = os.fspath(path)
    try:
        with _safe_mode_scope():
            return keras.saving.load_model(path, custom_objects=custom_objects, compile=compile,
                                           safe_mode=True)
    except (TypeError, ValueError) as e:
        message = str(e)
        if "Lambda" in message and "safe_mode" in message:
            message = ("it holds a Lambda layer (Python code), which kbert never loads "
                       "(Keras safe mode)")
        raise CheckpointError(f"{path}: not loaded: {message[:2000]}") from None
