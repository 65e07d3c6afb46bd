"""Faults during training: kill -9 at chosen and random moments, disk full, unwritable output.

* `kbert pretrain` is killed with SIGKILL four times in one run at different points: inside the
  write of a resume backup, inside the write of a step checkpoint, between a backup's weights
  and the metadata that commits it (those three by tests/fault_launcher.py, which makes the
  process kill itself at that exact point), and at a random moment from outside. After each
  kill the same command is run again: it must resume from the last complete backup (never from
  the half-written one), clean up what the killed run left, and the loss must carry on.
* An output directory that cannot be created or written is refused before any work, and too
  little free disk before the first step, with messages that say what to do.
* A disk that fills up in the middle of a checkpoint or backup write stops training with
  CheckpointWriteError; nothing half-written is left and the previous state stays loadable,
  and the same run then resumes from it.
"""

from __future__ import annotations

import csv
import errno
import glob
import json
import os
import random
import re
import signal
import subprocess
import sys
import time

import h5py
import keras
import pytest
from test_training import (
    TINY_MODEL,
    _offline_config,
    _synthetic_batches,
    _tiny_vocab,
    make_corpus,
    make_vocab,
)

from kbert.cli import main
from kbert.config import BertConfig
from kbert.models.pretrainer import BertPretrainer
from kbert.training import preflight
from kbert.training import pretrain as pretrain_lib
from kbert.training.callbacks import (
    AtomicCheckpoint,
    BackupCorrupt,
    CheckpointWriteError,
    ResumableBackup,
)
from kbert.training.optimizer import create_optimizer
from kbert.training.preflight import OutputDirError, check_output_dir

LAUNCHER = os.path.join(os.path.dirname(__file__), "fault_launcher.py")


# ----------------------------------------------------------------------------- helpers
def _committed(out) -> dict | None:
    """The backup record a re-run will load (verified the way ResumableBackup verifies it)."""
    backup = ResumableBackup(str(out / "backup"), verbose=False)
    return backup._record()


def _history(out) -> list[dict]:
    """history.csv rows as {"epoch", "loss"} (other columns may hold "NA")."""
    with open(out / "history.csv", newline="") as f:
        return [{"epoch": int(row["epoch"]), "loss": float(row["loss"])}
                for row in csv.DictReader(f)]


def _all_checkpoints_load(out):
    """Every ckpt-*.weights.h5 left in checkpoints/ is complete (h5py opens and reads it)."""
    directory = out / "checkpoints"
    assert not glob.glob(str(directory / "tmp-*")), os.listdir(directory)
    latest = AtomicCheckpoint.latest(str(directory))
    assert latest is not None
    for path in glob.glob(str(directory / "ckpt-*.weights.h5")):
        with h5py.File(path, "r") as f:
            f.visit(lambda name: None)


def _resumed(stdout: str) -> tuple[int, int]:
    match = re.search(r"resuming from the backup .*: epoch (\d+), step (\d+)", stdout)
    assert match, stdout[-3000:]
    return int(match.group(1)), int(match.group(2))


# ----------------------------------------------------------------------------- kill -9
@pytest.mark.slow
def test_kill_9_at_four_points_then_resume_each_time(tmp_path):
    corpus = make_corpus(tmp_path / "corpus.txt")
    make_vocab(corpus, tmp_path / "vocab")
    out = tmp_path / "run"
    (tmp_path / "model.json").write_text(json.dumps(TINY_MODEL))
    args = ["pretrain", "--corpus", corpus, "--output-dir", str(out),
            "--vocab", str(tmp_path / "vocab"), "--model-config", str(tmp_path / "model.json"),
            "--seq-length", "32", "--batch-size", "8", "--max-predictions", "5",
            "--steps", "100", "--steps-per-epoch", "10", "--checkpoint-every", "5",
            "--learning-rate", "3e-3", "--eval-batches", "1", "--examples", "0", "--no-xla"]
    command = [sys.executable, "-m", "kbert.cli", *args]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONUNBUFFERED="1")

    def run(argv, timeout=900):
        return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout)

    def killed_at(point):
        result = run([sys.executable, LAUNCHER, point, "--", *args])
        assert result.returncode == -signal.SIGKILL, result.stdout[-2000:] + result.stderr[-2000:]
        assert "fault_launcher: SIGKILL" in result.stdout
        return result

    # 1. inside the write of the 3rd backup (end of epoch 3): epoch 2's backup is in force
    killed_at("backup-write:3")
    assert glob.glob(str(out / "backup" / "tmp-epoch-3.weights.h5"))  # the half-written file
    record = _committed(out)
    assert (record["epoch"], record["step"]) == (2, 20)
    assert not (out / "summary.json").exists()

    # 2. resumes from step 20; killed inside the write of its 4th step checkpoint (ckpt-40,
    #    written before the end-of-epoch-4 backup): epoch 3 (step 30) is the last backup
    second = killed_at("checkpoint-write:4")
    assert _resumed(second.stdout) == (3, 20)
    assert not glob.glob(str(out / "backup" / "tmp-*"))  # the half-written backup is gone
    assert glob.glob(str(out / "checkpoints" / "tmp-40.weights.h5"))
    assert json.loads((out / "checkpoints" / "checkpoint.json").read_text())["step"] == 35
    assert _committed(out)["step"] == 30

    # 3. resumes from step 30; killed after the 2nd backup's weights file (epoch 5, step 50)
    #    is in place but before its metadata: epoch 4 (step 40) stays in force
    third = killed_at("backup-commit:2")
    assert _resumed(third.stdout) == (4, 30)
    assert os.path.exists(out / "backup" / "epoch-5.weights.h5")
    assert _committed(out)["step"] == 40
    _all_checkpoints_load(out)

    # 4. the plain command, killed from outside at a random moment after it has resumed:
    #    as soon as its step checkpoints pass a random step between 45 and 85
    target = random.randint(45, 85)
    log_path = tmp_path / "fourth.log"
    pointer = out / "checkpoints" / "checkpoint.json"
    with open(log_path, "w") as log:
        fourth = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.time() + 600
        while time.time() < deadline and fourth.poll() is None:
            try:
                if json.loads(pointer.read_text())["step"] >= target:
                    break
            except (OSError, ValueError, KeyError):
                pass
            time.sleep(0.01)
        assert fourth.poll() is None, "the fourth run ended before it could be killed"
        fourth.send_signal(signal.SIGKILL)
        fourth.wait()
    assert _resumed(log_path.read_text()) == (5, 40)
    in_force = _committed(out)
    assert 40 <= in_force["step"] < 100 and in_force["step"] % 10 == 0

    # 5. the plain command again: resumes from what was in force at the kill, and finishes
    final = run(command)
    assert final.returncode == 0, final.stdout[-3000:] + final.stderr[-3000:]
    epoch, step = _resumed(final.stdout)
    assert (epoch - 1, step) == (in_force["epoch"], in_force["step"])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 100 and summary["resumed_from_step"] == step
    assert not (out / "backup").exists()  # deleted once training completed
    _all_checkpoints_load(out)

    # the loss curve carries on: one row per epoch at most, in order, and each run after a
    # kill starts where the previous one was, not back at the untrained loss
    rows = _history(out)
    epochs = [r["epoch"] for r in rows]
    assert epochs == sorted(set(epochs)) and epochs[-1] == 9 and len(epochs) >= 9, epochs
    loss = {r["epoch"]: r["loss"] for r in rows}
    first, last = loss[0], loss[9]
    assert last < first - 0.5, loss
    for resumed_at in (2, 3, 4, epoch - 1):
        if resumed_at in loss and resumed_at - 1 in loss:
            drop = first - loss[resumed_at - 1]
            assert loss[resumed_at] < first - 0.5 * drop, (resumed_at, loss)


# ----------------------------------------------------------------------------- output dir
def test_output_dir_that_cannot_be_created_is_refused_before_any_work(tmp_path, monkeypatch):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    vocab_dir = _tiny_vocab(tmp_path / "vocab")
    monkeypatch.setattr(pretrain_lib, "prepare_vocabulary",
                        lambda *a, **k: pytest.fail("work started"))
    config = _offline_config(tmp_path, vocab_dir, output_dir=str(blocker / "run"))
    with pytest.raises(OutputDirError, match="cannot create the output directory .*a_file/run"):
        pretrain_lib.pretrain(config, log=lambda *a: None)


def test_unwritable_output_dir_is_refused_with_a_clear_message(tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(preflight.tempfile, "NamedTemporaryFile", refuse)
    with pytest.raises(OutputDirError, match=r"is not writable: Permission denied; choose "
                                             r"another --output-dir"):
        check_output_dir(tmp_path / "run")


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0,
                    reason="root writes through permission bits")
def test_read_only_directory_is_refused(tmp_path):
    directory = tmp_path / "ro"
    directory.mkdir()
    directory.chmod(0o500)
    try:
        with pytest.raises(OutputDirError, match="not writable"):
            check_output_dir(directory)
    finally:
        directory.chmod(0o700)


def test_cli_reports_the_unwritable_output_dir(tmp_path, capsys):
    (tmp_path / "a_file").write_text("x")
    code = main(["pretrain", "--output-dir", str(tmp_path / "a_file" / "run"), "--quiet"])
    assert code == 1
    err = capsys.readouterr().err
    assert "kbert pretrain: error:" in err and "cannot create the output directory" in err
    assert "Traceback" not in err


def test_too_little_disk_space_is_refused_before_the_first_step(tmp_path, monkeypatch):
    vocab_dir = _tiny_vocab(tmp_path / "vocab")
    monkeypatch.setattr(pretrain_lib, "build_datasets", lambda config, tokenizer, resume_epoch=0: (
        _synthetic_batches(30), _synthetic_batches(30)))
    real = preflight.shutil.disk_usage

    def nearly_full(path):
        return real(path)._replace(free=2**20)  # 1 MiB free

    monkeypatch.setattr(preflight.shutil, "disk_usage", nearly_full)
    with pytest.raises(OutputDirError, match=r"1 MiB free on its disk, but training needs "
                                             r"about \d+ MiB"):
        pretrain_lib.pretrain(_offline_config(tmp_path, vocab_dir), log=lambda *a: None)
    run = tmp_path / "run"
    assert not glob.glob(str(run / "checkpoints" / "*.h5")) and not (run / "backup").exists()


def test_disk_space_estimate_covers_the_files_a_run_writes(tmp_path, monkeypatch):
    """The estimate is at least what a finished run has on disk at its peak."""
    model = BertPretrainer.from_bert_config(BertConfig(
        vocab_size=3000, hidden_size=64, num_layers=2, num_heads=2, intermediate_size=128))
    model.compile(optimizer=create_optimizer(1e-3, 10))
    model.optimizer.build(model.trainable_variables)
    model.save_weights(str(tmp_path / "one.weights.h5"))
    actual = os.path.getsize(tmp_path / "one.weights.h5")
    estimate = preflight.checkpoint_bytes(model)
    assert 0.9 * actual <= estimate <= 1.5 * actual, (estimate, actual)
    # keep=2: 2 checkpoints + 1 being written + 2 backups + 2 final models (weights only)
    assert preflight.run_bytes(model, keep_checkpoints=2) >= 5 * actual


# ----------------------------------------------------------------------------- disk full
def _fill_disk_on(monkeypatch, kind: str, on_call: int):
    """Make the `on_call`-th save_weights of `kind` ("backup" / "checkpoints") fail with
    ENOSPC after writing part of its file, as a full disk does."""
    original = keras.Model.save_weights
    calls = {"n": 0}

    def save_weights(self, filepath, *args, **kwargs):
        if f"{os.sep}{kind}{os.sep}" in os.fspath(filepath):
            calls["n"] += 1
            if calls["n"] == on_call:
                with open(filepath, "wb") as f:
                    f.write(b"\x89HDF\r\n\x1a\n" + b"\0" * 1000)  # a torn HDF5 file
                raise OSError(errno.ENOSPC, "No space left on device")
        return original(self, filepath, *args, **kwargs)

    monkeypatch.setattr(keras.Model, "save_weights", save_weights)


def test_disk_full_during_a_checkpoint_write_leaves_no_corrupt_file(tmp_path, monkeypatch):
    vocab_dir = _tiny_vocab(tmp_path / "vocab")
    monkeypatch.setattr(pretrain_lib, "build_datasets", lambda config, tokenizer, resume_epoch=0: (
        _synthetic_batches(30), _synthetic_batches(30)))
    _fill_disk_on(monkeypatch, "checkpoints", on_call=3)  # steps 2, 4 written; step 6 fails
    with pytest.raises(CheckpointWriteError, match=r"No space left on device.*nothing "
                                                   r"half-written was kept.*ckpt-4\.weights\.h5"):
        pretrain_lib.pretrain(_offline_config(tmp_path, vocab_dir), log=lambda *a: None)
    checkpoints = tmp_path / "run" / "checkpoints"
    assert sorted(os.listdir(checkpoints)) == ["checkpoint.json", "ckpt-2.weights.h5",
                                              "ckpt-4.weights.h5"]
    _all_checkpoints_load(tmp_path / "run")
    assert AtomicCheckpoint.latest(str(checkpoints)).endswith("ckpt-4.weights.h5")
    assert not (tmp_path / "run" / "encoder.keras").exists()


def test_disk_full_during_a_backup_write_keeps_the_previous_backup_and_resumes(tmp_path,
                                                                              monkeypatch):
    vocab_dir = _tiny_vocab(tmp_path / "vocab")
    monkeypatch.setattr(pretrain_lib, "build_datasets", lambda config, tokenizer, resume_epoch=0: (
        _synthetic_batches(30), _synthetic_batches(30)))
    with monkeypatch.context() as patch:
        _fill_disk_on(patch, "backup", on_call=2)  # epoch 1 backed up; epoch 2's write fails
        with pytest.raises(CheckpointWriteError, match=r"resume backup.*No space left"):
            pretrain_lib.pretrain(_offline_config(tmp_path, vocab_dir), log=lambda *a: None)
    run = tmp_path / "run"
    assert sorted(os.listdir(run / "backup")) == ["epoch-1.weights.h5", "training_metadata.json"]
    record = _committed(run)
    assert (record["epoch"], record["step"]) == (1, 4)
    # space is back: the same run resumes from the backup that was in force
    summary = pretrain_lib.pretrain(_offline_config(tmp_path, vocab_dir), log=lambda *a: None)
    assert summary["resumed_from_step"] == 4 and summary["steps"] == 12


def test_a_backup_that_does_not_match_its_record_is_not_loaded(tmp_path, monkeypatch):
    vocab_dir = _tiny_vocab(tmp_path / "vocab")
    monkeypatch.setattr(pretrain_lib, "build_datasets", lambda config, tokenizer, resume_epoch=0: (
        _synthetic_batches(30), _synthetic_batches(30)))
    with monkeypatch.context() as patch:
        _fill_disk_on(patch, "backup", on_call=2)
        with pytest.raises(CheckpointWriteError):
            pretrain_lib.pretrain(_offline_config(tmp_path, vocab_dir), log=lambda *a: None)
    weights = tmp_path / "run" / "backup" / "epoch-1.weights.h5"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte
    weights.write_bytes(bytes(data))
    with pytest.raises(BackupCorrupt, match="does not match the size / SHA-256"):
        pretrain_lib.pretrain(_offline_config(tmp_path, vocab_dir), log=lambda *a: None)


def test_metadata_naming_a_file_outside_the_backup_is_refused(tmp_path):
    backup = tmp_path / "backup"
    backup.mkdir()
    (backup / "training_metadata.json").write_text(json.dumps(
        {"epoch": 1, "batch": 0, "file": "../../etc/passwd", "bytes": 1, "sha256": "0"}))
    with pytest.raises(BackupCorrupt, match="not a backup file"):
        ResumableBackup(str(backup), verbose=False)._record()
