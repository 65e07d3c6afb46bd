"""Run a `kbert` command that kills itself with SIGKILL at a chosen moment of a checkpoint write.

An outside `kill -9` cannot hit a write of a few milliseconds reliably; this launcher makes the
process do it to itself at the exact point, leaving on disk what a kill at that point leaves
(no cleanup code runs after SIGKILL). Used by tests/test_faults.py.

    python tests/fault_launcher.py POINT:N -- pretrain --output-dir ... (the kbert arguments)

POINT:
    backup-write       during the N-th write of a resume backup: the temporary file holds half
                       of its bytes when the process dies
    checkpoint-write   during the N-th write of a step checkpoint (ckpt-*.weights.h5), likewise
    backup-commit      after the N-th backup's weights file is in place, before the metadata
                       that commits it is written
"""

from __future__ import annotations

import os
import signal
import sys


def die():
    sys.stdout.flush()
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def install(point: str, count: int) -> None:
    import keras

    from kbert.training import callbacks

    seen = {"backup": 0, "checkpoint": 0, "commit": 0}
    original_save = keras.Model.save_weights

    def save_weights(self, filepath, *args, **kwargs):
        original_save(self, filepath, *args, **kwargs)
        kind = "backup" if f"{os.sep}backup{os.sep}" in os.fspath(filepath) else "checkpoint"
        seen[kind] += 1
        if point == f"{kind}-write" and seen[kind] == count:
            size = os.path.getsize(filepath)
            with open(filepath, "r+b") as f:  # as if the writer had got half way
                f.truncate(size // 2)
            print(f"fault_launcher: SIGKILL while writing {filepath} ({size // 2} of {size} "
                  f"bytes)", flush=True)
            die()

    original_json = callbacks.write_json_atomic

    def write_json_atomic(path, value):
        if os.path.basename(path) == "training_metadata.json":
            seen["commit"] += 1
            if point == "backup-commit" and seen["commit"] == count:
                print(f"fault_launcher: SIGKILL before committing {value.get('file')}", flush=True)
                die()
        return original_json(path, value)

    keras.Model.save_weights = save_weights
    callbacks.write_json_atomic = write_json_atomic


def main(argv: list[str]) -> int:
    spec, separator, *args = argv
    if separator != "--":
        raise SystemExit(__doc__)
    point, _, count = spec.partition(":")
    if point not in ("backup-write", "checkpoint-write", "backup-commit"):
        raise SystemExit(f"unknown point {point!r}\n{__doc__}")
    install(point, int(count or 1))
    from kbert.cli import main as kbert_main

    return kbert_main(args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
