"""Callbacks of the pre-training loop: divergence stop, atomic checkpoints, resumable backup.

Crash safety (tests/test_faults.py kills `kbert pretrain` with SIGKILL inside these writes):
every weights file is written under a temporary name and renamed into place when complete, and
a small JSON file, itself replaced atomically, then names the complete file (with its size and
SHA-256 for the backup). A kill at any moment leaves the previous complete state in force;
leftover temporary files are deleted by the next run. A failed write (disk full) deletes its
temporary file and stops training with a `CheckpointWriteError`.

Example:
    >>> from kbert.training.callbacks import AtomicCheckpoint, StopOnDivergence
    >>> callbacks = [StopOnDivergence(), AtomicCheckpoint("runs/x/checkpoints", every_steps=100)]
"""

from __future__ import annotations

import glob
import hashlib
import json
import math
import os
import re

import keras
import numpy as np

from kbert.config import read_json_file
from kbert.errors import KbertError
from kbert.training.preflight import check_disk_space, run_bytes


class TrainingDiverged(ValueError):
    """The loss became NaN or infinite; the message names the step and the last good checkpoint."""


class CheckpointWriteError(KbertError, OSError):
    """A checkpoint or backup could not be written (disk full, I/O error); nothing half-written
    was kept, and the message names the last complete one."""


class BackupCorrupt(ValueError):
    """The resume backup does not match its recorded size / checksum: it is not loaded."""


def optimizer_step(model) -> int:
    """Optimizer updates applied so far (the global step, which survives a resume)."""
    return int(keras.ops.convert_to_numpy(model.optimizer.iterations))


def remove_quietly(path: str) -> None:
    """Delete a file if it is there (a temporary file after a failed write); never raises."""
    try:
        os.remove(path)
    except OSError:
        pass


def write_json_atomic(path: str, value) -> None:
    """Write JSON next to `path`, then rename: a reader never sees half a file."""
    tmp = f"{path}.tmp"
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(value, f, indent=2, sort_keys=True)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        remove_quietly(tmp)
        raise


def file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save_weights_atomic(model, path: str, tmp: str, what: str, last_good: str | None) -> None:
    """`model.save_weights` to `tmp`, synced, then renamed to `path`.

    Any failure (ENOSPC, EIO, ...) deletes `tmp` and raises CheckpointWriteError naming the last
    complete file, so a failed write leaves nothing half-written behind.
    """
    try:
        model.save_weights(tmp, overwrite=True)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except Exception as e:
        remove_quietly(tmp)
        reason = getattr(e, "strerror", None) or str(e) or type(e).__name__
        raise CheckpointWriteError(
            getattr(e, "errno", None) or 0,
            f"could not write the {what} {path!r} ({reason}); nothing half-written was kept; "
            f"the last complete one is {last_good or 'none yet'}. Free disk space (or fix the "
            f"output directory) and re-run the same command to resume") from e
    except BaseException:
        remove_quietly(tmp)
        raise


def weights_are_finite(model) -> bool:
    return all(np.isfinite(keras.ops.convert_to_numpy(w)).all() for w in model.weights)


class StopOnDivergence(keras.callbacks.Callback):
    """Stop training at the first batch whose loss is NaN or infinite (like TerminateOnNaN),
    remembering the step in `diverged_at_step`; `AtomicCheckpoint` and `ResumableBackup` then
    stop writing, so the last good checkpoint is kept."""

    def __init__(self):
        super().__init__()
        self.diverged_at_step = None
        self.loss = None

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            self.diverged_at_step = optimizer_step(self.model)
            self.loss = float(loss)
            self.model.stop_training = True
            self.model._kbert_diverged = True


def _diverged(model) -> bool:
    return bool(getattr(model, "_kbert_diverged", False))


class AtomicCheckpoint(keras.callbacks.Callback):
    """Every `every_steps` optimizer steps (and at the end of training) save the weights
    (optimizer state included) to `directory/ckpt-{step}.weights.h5`.

    The file is written under a temporary name and renamed with `os.replace`, then
    `directory/checkpoint.json` (the latest step and file) is replaced the same way, so a crash
    never leaves a half-written checkpoint as the latest. Only the `keep` newest are kept.
    Nothing is written once the loss has diverged or if a weight is not finite.
    """

    PATTERN = re.compile(r"ckpt-(\d+)\.weights\.h5$")

    def __init__(self, directory: str, every_steps: int, keep: int = 2):
        super().__init__()
        if every_steps < 1 or keep < 1:
            raise ValueError(f"every_steps and keep must be >= 1, got {every_steps}, {keep}")
        self.directory = directory
        self.every_steps = int(every_steps)
        self.keep = int(keep)
        self.last_saved_step = None

    def on_train_begin(self, logs=None):
        """Delete temporary files a killed run left, then check the disk can hold the run."""
        for leftover in glob.glob(os.path.join(self.directory, "tmp-*.weights.h5")):
            remove_quietly(leftover)
        check_disk_space(self.directory, run_bytes(self.model, self.keep))

    def on_train_batch_end(self, batch, logs=None):
        step = optimizer_step(self.model)
        if step % self.every_steps == 0:
            self.save(step)

    def on_train_end(self, logs=None):
        self.save(optimizer_step(self.model))

    def save(self, step: int) -> str | None:
        if _diverged(self.model) or step == self.last_saved_step:
            return None
        if not weights_are_finite(self.model):
            return None
        os.makedirs(self.directory, exist_ok=True)
        name = f"ckpt-{step}.weights.h5"
        path = os.path.join(self.directory, name)
        tmp = os.path.join(self.directory, f"tmp-{step}.weights.h5")
        save_weights_atomic(self.model, path, tmp, "checkpoint", self.latest(self.directory))
        write_json_atomic(os.path.join(self.directory, "checkpoint.json"),
                          {"step": step, "file": name})
        self.last_saved_step = step
        self._prune()
        return path

    def _prune(self):
        found = sorted((int(m.group(1)), p) for p in glob.glob(os.path.join(self.directory, "*"))
                       if (m := self.PATTERN.search(os.path.basename(p))))
        for _, old in found[:-self.keep]:
            os.remove(old)

    @staticmethod
    def latest(directory: str) -> str | None:
        """The path of the newest complete checkpoint in `directory`, or None."""
        try:
            path = os.path.join(directory, read_json_file(
                os.path.join(directory, "checkpoint.json"), ValueError)["file"])
        except (ValueError, KeyError, TypeError):
            return None
        return path if os.path.isfile(path) else None


class ResumableBackup(keras.callbacks.BackupAndRestore):
    """`keras.callbacks.BackupAndRestore` at every epoch end, crash-safe, which also reports
    the resume.

    Keras restores whole epochs: after a kill, the re-run restarts at the beginning of the
    epoch after the last completed one, with the weights, optimizer state and step counter of
    that moment (keep epochs short to lose little). The backup is not overwritten once the loss
    has diverged, and it is deleted when training ends.

    Keras itself overwrites `latest.weights.h5` in place, so a kill during that write left a
    half-written file that the next run failed to load (or, killed between the weights and the
    metadata, weights of one epoch with the epoch number of another). Here each epoch's state
    goes to `epoch-{E}.weights.h5` (temporary name, then rename), and `training_metadata.json`
    (replaced atomically) names it with its size and SHA-256: it is the commit point. A file
    that does not match its record is never loaded (`BackupCorrupt`).
    """

    FILE = re.compile(r"epoch-\d+\.weights\.h5$")

    def __init__(self, backup_dir: str, verbose: bool = True):
        super().__init__(backup_dir, save_freq="epoch", delete_checkpoint=True)
        self.verbose = verbose
        self.resumed_from_step = None
        self.resumed_from_epoch = None
        self._committed = None  # the weights file the metadata names (for error messages)

    # ------------------------------------------------------------------ reading
    def _record(self) -> dict | None:
        """The committed metadata (None: no backup), with `path` = the verified weights file."""
        if not os.path.exists(self._training_metadata_path):
            return None
        try:
            record = read_json_file(self._training_metadata_path, ValueError)
        except ValueError as e:
            raise BackupCorrupt(f"{self._training_metadata_path} cannot be read ({e}); delete "
                                f"{self.backup_dir} to start the run over") from None
        if not isinstance(record, dict) or not isinstance(record.get("epoch"), int):
            raise BackupCorrupt(f"{self._training_metadata_path} is not a backup record")
        name = record.get("file")
        if name is None:  # written by keras' own BackupAndRestore (or kbert before this)
            legacy = self._weights_path
            return dict(record, path=legacy) if os.path.exists(legacy) else None
        if not isinstance(name, str) or not self.FILE.fullmatch(name):
            raise BackupCorrupt(f"{self._training_metadata_path} names {name!r}, not a backup "
                                f"file of this directory")
        path = os.path.join(self.backup_dir, name)
        if not os.path.isfile(path):
            raise BackupCorrupt(f"{path}, the backup named by {self._training_metadata_path}, is "
                                f"missing; delete {self.backup_dir} to start the run over")
        if os.path.getsize(path) != record.get("bytes") or file_sha256(path) != record.get(
                "sha256"):
            raise BackupCorrupt(f"{path} does not match the size / SHA-256 recorded in "
                                f"{self._training_metadata_path}: it is not loaded. Delete "
                                f"{self.backup_dir} to start the run over")
        return dict(record, path=path)

    def on_train_begin(self, logs=None):
        for leftover in glob.glob(os.path.join(self.backup_dir, "tmp-*")):
            remove_quietly(leftover)  # a write a killed run did not finish
        record = self._record()
        for stray in glob.glob(os.path.join(self.backup_dir, "epoch-*.weights.h5")):
            if record is None or os.path.abspath(stray) != os.path.abspath(record["path"]):
                remove_quietly(stray)  # renamed into place, but its metadata was never written
        if record is None:
            return
        if not self.model.built:
            raise ValueError("ResumableBackup needs a built model before fit()")
        if self.model.optimizer is not None and not self.model.optimizer.built:
            self.model.optimizer.build(self.model.trainable_variables)
        self.model.load_weights(record["path"])
        self._committed = record["path"]
        self.model._initial_epoch = record["epoch"]
        self.resumed_from_epoch = record["epoch"]
        self.resumed_from_step = optimizer_step(self.model)
        if self.verbose:
            print(f"resuming from the backup in {self.backup_dir}: epoch "
                  f"{self.resumed_from_epoch + 1}, step {self.resumed_from_step}", flush=True)

    # ------------------------------------------------------------------ writing
    def _save_model(self):
        if _diverged(self.model):
            return
        os.makedirs(self.backup_dir, exist_ok=True)
        epoch = self._current_epoch
        name = f"epoch-{epoch}.weights.h5"
        path = os.path.join(self.backup_dir, name)
        tmp = os.path.join(self.backup_dir, f"tmp-{name}")
        save_weights_atomic(self.model, path, tmp, "resume backup", self._committed)
        record = {"epoch": epoch, "batch": self._last_batch_seen, "file": name,
                  "step": optimizer_step(self.model), "bytes": os.path.getsize(path),
                  "sha256": file_sha256(path)}
        try:
            write_json_atomic(self._training_metadata_path, record)  # the commit point
        except Exception as e:
            remove_quietly(path)
            raise CheckpointWriteError(
                getattr(e, "errno", None) or 0,
                f"could not record the resume backup in {self._training_metadata_path} "
                f"({getattr(e, 'strerror', None) or e}); the previous backup stays in force") from e
        self._committed = path
        for old in glob.glob(os.path.join(self.backup_dir, "*.weights.h5")):
            if os.path.basename(old) != name:
                remove_quietly(old)  # older epochs, and keras' latest.weights.h5

    def on_train_end(self, logs=None):
        if not _diverged(self.model):
            super().on_train_end(logs)
