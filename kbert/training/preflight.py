"""Checks of the output directory before a training run spends time: writable, enough disk.

`check_output_dir` runs first thing in `kbert pretrain` (before the vocabulary is trained);
`check_disk_space` runs when the model is built, just before the first step
(`AtomicCheckpoint.on_train_begin`), when the size of a checkpoint is known.

Example:
    >>> from kbert.training.preflight import check_output_dir
    >>> check_output_dir("runs/pretrain")                               # doctest: +SKIP
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile

import numpy as np

from kbert.errors import KbertError

# Bytes per weight of a checkpoint: float32 weights + AdamW's two float32 moments per trainable
# weight (the optimizer state is saved with the weights so that a resume continues exactly).
_BYTES_PER_WEIGHT = 4
_SLACK_BYTES = 16 * 2**20  # HDF5 headers, JSON files, history.csv, logs


class OutputDirError(KbertError, OSError):
    """The output directory cannot hold the run: not creatable, not writable, or too full."""


def check_output_dir(path: str | os.PathLike) -> str:
    """Create `path` if needed and prove it writable by writing (and deleting) a probe file.

    Writing is the only reliable test: permission bits do not tell about read-only mounts,
    quotas, or root. Raises OutputDirError naming the directory and the reason.
    """
    path = os.fspath(path)
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as e:
        raise OutputDirError(e.errno, f"cannot create the output directory {path!r}: "
                                      f"{e.strerror or e}; choose another --output-dir") from None
    try:
        with tempfile.NamedTemporaryFile(dir=path, prefix=".kbert-write-test-") as probe:
            probe.write(b"kbert")
            probe.flush()
            os.fsync(probe.fileno())
    except OSError as e:
        raise OutputDirError(e.errno, f"the output directory {path!r} is not writable: "
                                      f"{e.strerror or e}; choose another --output-dir") from None
    return path


def checkpoint_bytes(model) -> int:
    """Estimated size of one checkpoint (weights + optimizer state) of `model`."""
    weights = sum(int(np.prod(w.shape)) for w in model.weights)
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    return _BYTES_PER_WEIGHT * (weights + 2 * trainable)


def run_bytes(model, keep_checkpoints: int) -> int:
    """Estimated disk space a pre-training run needs at its peak: `keep_checkpoints` step
    checkpoints plus the one being written, the epoch backup and the one replacing it, and the
    final encoder.keras + pretrainer.keras (weights only)."""
    weights_only = _BYTES_PER_WEIGHT * sum(int(np.prod(w.shape)) for w in model.weights)
    return (keep_checkpoints + 3) * checkpoint_bytes(model) + 2 * weights_only + _SLACK_BYTES


def check_disk_space(path: str | os.PathLike, needed: int, what: str = "training") -> None:
    """Raise OutputDirError if the file system of `path` has fewer than `needed` bytes free."""
    path = os.fspath(path)
    probe = path
    while not os.path.exists(probe):  # the directory may not exist yet
        parent = os.path.dirname(os.path.abspath(probe))
        if parent == probe:
            break
        probe = parent
    free = shutil.disk_usage(probe).free
    if free < needed:
        raise OutputDirError(
            errno.ENOSPC, f"{path!r}: {free / 2**20:,.0f} MiB free on its disk, but {what} "
                          f"needs about {needed / 2**20:,.0f} MiB (checkpoints, the resume backup "
                          f"and the final models); free some space or choose another "
                          f"--output-dir")
