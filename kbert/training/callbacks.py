"""Callbacks of the pre-training loop: divergence stop, atomic checkpoints, resumable backup.

Example:
    >>> from kbert.training.callbacks import AtomicCheckpoint, StopOnDivergence
    >>> callbacks = [StopOnDivergence(), AtomicCheckpoint("runs/x/checkpoints", every_steps=100)]
"""

from __future__ import annotations

import glob
import json
import math
import os
import re

import keras
import numpy as np


class TrainingDiverged(ValueError):
    """The loss became NaN or infinite; the message names the step and the last good checkpoint."""


def optimizer_step(model) -> int:
    """Optimizer updates applied so far (the global step, which survives a resume)."""
    return int(keras.ops.convert_to_numpy(model.optimizer.iterations))


def write_json_atomic(path: str, value) -> None:
    """Write JSON next to `path`, then rename: a reader never sees half a file."""
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(value, f, indent=2, sort_keys=True)
        f.write("\n")
    os.replace(tmp, path)


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
        self.model.save_weights(tmp, overwrite=True)
        os.replace(tmp, path)
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
            with open(os.path.join(directory, "checkpoint.json"), encoding="utf-8") as f:
                path = os.path.join(directory, json.load(f)["file"])
        except (OSError, ValueError, KeyError):
            return None
        return path if os.path.isfile(path) else None


class ResumableBackup(keras.callbacks.BackupAndRestore):
    """`keras.callbacks.BackupAndRestore` at every epoch end, which also reports the resume.

    Keras restores whole epochs: after a kill, the re-run restarts at the beginning of the
    epoch after the last completed one, with the weights, optimizer state and step counter of
    that moment (keep epochs short to lose little). The backup is not overwritten once the loss
    has diverged, and it is deleted when training ends.
    """

    def __init__(self, backup_dir: str, verbose: bool = True):
        super().__init__(backup_dir, save_freq="epoch", delete_checkpoint=True)
        self.verbose = verbose
        self.resumed_from_step = None
        self.resumed_from_epoch = None

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        if os.path.exists(self._weights_path):
            self.resumed_from_epoch = int(self.model._initial_epoch or 0)
            self.resumed_from_step = optimizer_step(self.model)
            if self.verbose:
                print(f"resuming from the backup in {self.backup_dir}: epoch "
                      f"{self.resumed_from_epoch + 1}, step {self.resumed_from_step}", flush=True)

    def _save_model(self):
        if _diverged(self.model):
            return
        super()._save_model()

    def on_train_end(self, logs=None):
        if not _diverged(self.model):
            super().on_train_end(logs)
