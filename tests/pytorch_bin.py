"""Test helper: write PyTorch `pytorch_model.bin` files with numpy only (no torch), in the
format `kbert.convert.safe_pickle.load_pytorch_bin` reads and `torch.load(...,
weights_only=True)` accepts. kbert itself only reads such files.

Example:
    >>> import numpy as np, tempfile, os
    >>> from kbert.convert.safe_pickle import load_pytorch_bin
    >>> path = os.path.join(tempfile.mkdtemp(), "pytorch_model.bin")
    >>> save_pytorch_bin({"w": np.eye(2, dtype=np.float32)}, path)
    >>> load_pytorch_bin(path)["w"].tolist()
    [[1.0, 0.0], [0.0, 1.0]]
"""

from __future__ import annotations

import io
import os
import pickle
import zipfile

import numpy as np

# numpy dtype -> the legacy typed storage class name torch pickles
_DTYPE_STORAGE = {np.dtype(np.float32): "FloatStorage", np.dtype(np.float64): "DoubleStorage",
                  np.dtype(np.float16): "HalfStorage", np.dtype(np.int64): "LongStorage",
                  np.dtype(np.int32): "IntStorage", np.dtype(np.int16): "ShortStorage",
                  np.dtype(np.int8): "CharStorage", np.dtype(np.uint8): "ByteStorage",
                  np.dtype(np.bool_): "BoolStorage"}

class Global:
    """A name the writer emits as a pickle GLOBAL opcode (nothing is imported)."""

    def __init__(self, module: str, name: str):
        self.module, self.name = module, name

    def __call__(self, *args):  # pickle requires reduce functions to be callable
        raise TypeError("placeholder")


class Call:
    def __init__(self, func: Global, args: tuple):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


class StorageRef:
    def __init__(self, key: str, array: np.ndarray):
        self.key, self.array = key, array


class Writer(pickle._Pickler):  # the pure-Python pickler lets `save` be overridden
    def persistent_id(self, obj):
        if isinstance(obj, StorageRef):
            kind = Global("torch", _DTYPE_STORAGE[obj.array.dtype])
            return ("storage", kind, obj.key, "cpu", obj.array.size)
        return None

    def save(self, obj, save_persistent_id=True):
        if isinstance(obj, Global):
            self.write(pickle.GLOBAL + f"{obj.module}\n{obj.name}\n".encode())
            return
        super().save(obj, save_persistent_id)


def save_pytorch_bin(state_dict: dict[str, np.ndarray], path: str | os.PathLike) -> None:
    """Write {name: array} as a torch-loadable `pytorch_model.bin` (contiguous, little-endian)."""
    ordered = Global("collections", "OrderedDict")
    rebuild = Global("torch._utils", "_rebuild_tensor_v2")
    items, storages = [], []
    for i, (name, value) in enumerate(state_dict.items()):
        array = np.array(value, order="C", copy=None)  # ascontiguousarray makes 0-d arrays 1-d
        if array.dtype not in _DTYPE_STORAGE:
            raise ValueError(f"{name}: dtype {array.dtype} has no torch storage type")
        array = array.astype(array.dtype.newbyteorder("<"), copy=False)
        ref = StorageRef(str(i), array)
        storages.append(ref)
        stride, step = [], 1
        for n in reversed(array.shape):
            stride.insert(0, step)
            step *= n
        args = (ref, 0, tuple(array.shape), tuple(stride), False, Call(ordered, ()))
        items.append((name, Call(rebuild, args)))
    buffer = io.BytesIO()
    Writer(buffer, protocol=2).dump(Call(ordered, (items,)))
    root = "archive"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr(f"{root}/data.pkl", buffer.getvalue())
        archive.writestr(f"{root}/byteorder", "little")
        for ref in storages:
            archive.writestr(f"{root}/data/{ref.key}", ref.array.tobytes())
        archive.writestr(f"{root}/version", "3\n")
