"""Read PyTorch `pytorch_model.bin` state dicts with numpy only: no torch, no code.

A `torch.save` file is a zip holding `<name>/data.pkl` (a pickle of the state dict) and one raw
storage per tensor under `<name>/data/<key>`. Unpickling an untrusted pickle can run any code,
so `load_pytorch_bin` uses an unpickler that resolves only the globals a tensor state dict needs
(`torch._utils._rebuild_tensor_v2`, the typed storage classes, torch dtypes,
`collections.OrderedDict`, ...), each implemented here with numpy. Any other global
(`os.system`, `builtins.eval`, ...) raises `UnsafePickleError` before anything runs.

The tests write such files with `tests/pytorch_bin.py` (`save_pytorch_bin`, numpy only).

Example:
    >>> state = load_pytorch_bin("bert-base-uncased/pytorch_model.bin")  # doctest: +SKIP
    >>> state["bert.pooler.dense.bias"].shape                             # doctest: +SKIP
    (768,)
"""

from __future__ import annotations

import collections
import io
import os
import pickle
import zipfile

import numpy as np

from kbert.errors import KbertError


class UnsafePickleError(KbertError, ValueError):
    """A pickle that asks for something other than tensors (or is not a torch state dict)."""


# legacy typed storage class name -> numpy dtype ("bfloat16" is widened to float32 on load)
_STORAGE_DTYPES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
    "BFloat16Storage": "bfloat16", "LongStorage": np.int64, "IntStorage": np.int32,
    "ShortStorage": np.int16, "CharStorage": np.int8, "ByteStorage": np.uint8,
    "BoolStorage": np.bool_, "UntypedStorage": np.uint8,
}
_TORCH_DTYPES = {
    "float32": np.float32, "float": np.float32, "float64": np.float64, "double": np.float64,
    "float16": np.float16, "half": np.float16, "bfloat16": "bfloat16", "int64": np.int64,
    "long": np.int64, "int32": np.int32, "int": np.int32, "int16": np.int16, "short": np.int16,
    "int8": np.int8, "uint8": np.uint8, "bool": np.bool_,
}


class _StorageType:
    """Stands for a torch storage class or dtype inside the pickle."""

    def __init__(self, name, dtype):
        self.name, self.dtype = name, dtype

    def __repr__(self):
        return f"torch.{self.name}"


class _Storage:
    """One raw storage: its bytes and the element type it was saved with."""

    def __init__(self, data: bytes, dtype, key: str):
        self.data, self.dtype, self.key = data, dtype, key

    def as_array(self, dtype=None) -> np.ndarray:
        dtype = dtype if dtype is not None else self.dtype
        raw = "<u2" if dtype == "bfloat16" else np.dtype(dtype).newbyteorder("<")
        width = np.dtype(raw).itemsize
        if len(self.data) % width:
            raise UnsafePickleError(
                f"storage {self.key}: {len(self.data)} bytes is not a whole number of "
                f"{dtype} elements")
        array = np.frombuffer(self.data, dtype=raw)
        if dtype == "bfloat16":  # bfloat16 is the high half of a float32
            return (array.astype(np.uint32) << 16).view(np.float32)
        return array.astype(np.dtype(dtype), copy=False)


def _tensor(storage, offset, size, stride, dtype=None) -> np.ndarray:
    if not isinstance(storage, _Storage):
        raise UnsafePickleError(f"expected a storage, got {type(storage).__name__}")
    flat = storage.as_array(dtype)
    size, stride = tuple(int(s) for s in size), tuple(int(s) for s in stride)
    if len(size) != len(stride) or any(s < 0 for s in size + stride) or offset < 0:
        raise UnsafePickleError(f"storage {storage.key}: bad size {size} / stride {stride}")
    if 0 in size:
        return np.zeros(size, flat.dtype)
    last = offset + sum((n - 1) * s for n, s in zip(size, stride, strict=True))
    if last >= flat.size:
        raise UnsafePickleError(
            f"storage {storage.key}: tensor of size {size} at offset {offset} reads past the "
            f"end of its {flat.size} elements")
    view = np.lib.stride_tricks.as_strided(
        flat[offset:], shape=size, strides=[s * flat.itemsize for s in stride], writeable=False)
    return np.array(view)


def _rebuild_tensor_v2(storage, offset, size, stride, requires_grad=False, hooks=None,
                       metadata=None):
    return _tensor(storage, offset, size, stride)


def _rebuild_tensor_v3(storage, offset, size, stride, requires_grad, hooks, dtype,
                       metadata=None):
    if not isinstance(dtype, _StorageType):
        raise UnsafePickleError(f"expected a torch dtype, got {dtype!r}")
    return _tensor(storage, offset, size, stride, dtype.dtype)


def _rebuild_parameter(data, requires_grad=False, hooks=None, state=None):
    return data


_ALLOWED = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_tensor_v3"): _rebuild_tensor_v3,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("torch", "Size"): tuple,
}
_ALLOWED.update({("torch", n): _StorageType(n, d) for n, d in _STORAGE_DTYPES.items()})
_ALLOWED.update({("torch.storage", "UntypedStorage"): _StorageType("UntypedStorage", np.uint8)})
_ALLOWED.update({("torch", n): _StorageType(n, d) for n, d in _TORCH_DTYPES.items()})


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file, archive: zipfile.ZipFile, prefix: str, source: str):
        super().__init__(file)
        self._archive, self._prefix, self._source = archive, prefix, source

    def find_class(self, module, name):
        try:
            return _ALLOWED[(module, name)]
        except (KeyError, TypeError):
            raise UnsafePickleError(
                f"{self._source}: refusing to load {module}.{name}: the pickle asks for a global "
                f"that is not part of a tensor state dict (only torch tensor/storage rebuilding "
                f"and collections.OrderedDict are allowed); the file may be malicious") from None

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"
                and isinstance(pid[1], _StorageType)):
            raise UnsafePickleError(f"{self._source}: unexpected persistent id {pid!r}")
        _, storage_type, key, _location, numel = pid
        name = f"{self._prefix}data/{key}"
        try:
            data = self._archive.read(name)
        except KeyError:
            raise UnsafePickleError(f"{self._source}: storage {name} is missing") from None
        storage = _Storage(data, storage_type.dtype, str(key))
        width = 2 if storage_type.dtype == "bfloat16" else np.dtype(storage_type.dtype).itemsize
        if storage_type.name != "UntypedStorage" and len(data) != int(numel) * width:
            raise UnsafePickleError(
                f"{self._source}: storage {name} has {len(data)} bytes, expected "
                f"{numel} x {width}")
        return storage


def load_pytorch_bin(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """A `torch.save`d state dict (zip format, torch >= 1.6) as {name: numpy array}.

    Raises UnsafePickleError for any pickle content other than tensors, for the legacy
    (pre-1.6, non-zip) format, and for corrupt archives.
    """
    source = os.fspath(path)
    if not zipfile.is_zipfile(source):
        raise UnsafePickleError(
            f"{source}: not a zip archive; only the torch >= 1.6 zip format is supported (the "
            f"legacy format cannot be read safely); convert it to model.safetensors")
    with zipfile.ZipFile(source) as archive:
        pickles = [n for n in archive.namelist() if n.endswith("data.pkl")]
        if len(pickles) != 1:
            raise UnsafePickleError(f"{source}: expected one data.pkl in the archive, "
                                    f"found {len(pickles)}")
        prefix = pickles[0][: -len("data.pkl")]
        if f"{prefix}byteorder" in archive.namelist():
            order = archive.read(f"{prefix}byteorder").decode().strip()
            if order != "little":
                raise UnsafePickleError(f"{source}: byte order {order!r} is not supported")
        unpickler = _RestrictedUnpickler(
            io.BytesIO(archive.read(pickles[0])), archive, prefix, source)
        try:
            state = unpickler.load()
        except UnsafePickleError:
            raise
        except Exception as e:  # a truncated or hand-made pickle: say so, don't leak a trace
            raise UnsafePickleError(f"{source}: cannot read the pickle ({e})") from None
    if not isinstance(state, dict):
        raise UnsafePickleError(f"{source}: expected a state dict, got {type(state).__name__}")
    bad = [k for k, v in state.items() if not isinstance(k, str) or not isinstance(v, np.ndarray)]
    if bad:
        raise UnsafePickleError(f"{source}: entries that are not named tensors: {bad[:5]}")
    return dict(state)
