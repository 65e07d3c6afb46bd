"""Two worker processes on localhost under MultiWorkerMirroredStrategy (TF_CONFIG, free ports).

One scenario (module fixture), checked by the tests below: both workers start `pretrain` on a
tiny model with `strategy="multiworker"`; once the chief's backup holds epoch 2, worker 1 is
killed (SIGKILL), the chief is stopped too if it has not failed on its own, and both are
restarted with the same command. Every wait has a deadline, so a hung worker fails the test
instead of hanging CI; stray processes are killed at the end.
"""

import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from test_training import TINY_MODEL, make_corpus, make_vocab

pytestmark = pytest.mark.slow

STEPS, STEPS_PER_EPOCH = 24, 4
DRIVER = textwrap.dedent("""
    import json, sys
    import numpy as np
    from kbert.training import pretrain as lib

    config, weights_file = json.loads(sys.argv[1]), sys.argv[2]
    save_models = lib.save_models

    def save_and_dump(model, out):  # the final weights of this worker, for the test
        np.savez(weights_file, *[np.asarray(w) for w in model.get_weights()])
        save_models(model, out)

    lib.save_models = save_and_dump
    summary = lib.pretrain(config)
    print("SUMMARY " + json.dumps({k: summary[k] for k in
                                   ("steps", "resumed_from_step", "distribution", "files",
                                    "seconds")}),
          flush=True)
""")


def _free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


class Cluster:
    def __init__(self, tmp, config):
        self.tmp, self.config = tmp, config
        self.procs, self.logs, self.runs = [], [], 0

    def start(self):
        self.runs += 1
        ports = _free_ports(2)
        cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
        self.procs, self.logs = [], []
        for index in range(2):
            tmpdir = self.tmp / f"tmp-worker{index}"
            tmpdir.mkdir(exist_ok=True)
            env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", KERAS_BACKEND="tensorflow",
                       TMPDIR=str(tmpdir), TF_CONFIG=json.dumps(
                           {"cluster": cluster, "task": {"type": "worker", "index": index}}))
            log = open(self.tmp / f"run{self.runs}-worker{index}.log", "w")
            self.logs.append(log)
            self.procs.append(subprocess.Popen(
                [sys.executable, "-c", DRIVER, json.dumps(self.config),
                 str(self.tmp / f"weights{index}.npz")],
                env=env, stdout=log, stderr=subprocess.STDOUT))

    def wait(self, timeout):
        deadline = time.time() + timeout
        for proc in self.procs:
            try:
                proc.wait(max(1.0, deadline - time.time()))
            except subprocess.TimeoutExpired:
                self.kill()
                pytest.fail(f"a worker did not finish within {timeout}s:\n" + self.output())
        for log in self.logs:
            log.close()
        return [p.returncode for p in self.procs]

    def kill(self):
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                proc.wait()

    def output(self, run=None, index=None):
        run = run or self.runs
        indices = [index] if index is not None else [0, 1]
        return "\n".join((self.tmp / f"run{run}-worker{i}.log").read_text()[-4000:]
                         for i in indices)

    def summary(self, index):
        lines = [line for line in (self.tmp / f"run{self.runs}-worker{index}.log")
                 .read_text().splitlines() if line.startswith("SUMMARY ")]
        assert lines, self.output(index=index)
        return json.loads(lines[-1][len("SUMMARY "):])


@pytest.fixture(scope="module")
def scenario(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("multiworker")
    corpus = make_corpus(tmp / "corpus.txt")
    make_vocab(corpus, tmp / "vocab")
    out = tmp / "run"
    config = {"corpus": corpus, "output_dir": str(out), "vocab": str(tmp / "vocab"),
              "model": TINY_MODEL, "seq_length": 32, "batch_size": 8, "max_predictions": 5,
              "steps": STEPS, "steps_per_epoch": STEPS_PER_EPOCH, "checkpoint_every": 8,
              "eval_batches": 1, "examples": 0, "verbose": 2, "strategy": "multiworker"}
    cluster = Cluster(tmp, config)
    facts = {"tmp": tmp, "out": out}
    try:
        # 1) start both workers; kill worker 1 once the chief's backup holds epoch >= 2
        cluster.start()
        metadata = out / "backup" / "training_metadata.json"
        deadline = time.time() + 400  # generous: the 2 shared cores may be busy
        while time.time() < deadline and all(p.poll() is None for p in cluster.procs):
            try:
                if json.loads(metadata.read_text() or "{}").get("epoch", 0) >= 2:
                    break
            except (OSError, ValueError):
                pass
            time.sleep(0.1)
        assert all(p.poll() is None for p in cluster.procs), (
            "a worker ended before it could be killed:\n" + cluster.output())
        cluster.procs[1].send_signal(signal.SIGKILL)
        cluster.procs[1].wait()
        try:  # the chief blocks in the next all-reduce; it may or may not fail on its own
            cluster.procs[0].wait(5)
            facts["chief_exited_by_itself"] = True
        except subprocess.TimeoutExpired:
            facts["chief_exited_by_itself"] = False
        cluster.kill()
        cluster.wait(10)
        facts["killed_output"] = cluster.output(run=1)
        facts["summary_after_kill"] = (out / "summary.json").exists()

        # 2) restart both with the same command: they resume from the chief's backup
        cluster.start()
        facts["codes"] = cluster.wait(500)
        facts["output"] = cluster.output()
        facts["summaries"] = [cluster.summary(i) for i in (0, 1)] if facts["codes"] == [0, 0] \
            else None
        yield facts
    finally:
        cluster.kill()


def _require_success(scenario):
    assert scenario["codes"] == [0, 0], scenario["output"]


def test_both_workers_finish_with_identical_weights(scenario):
    _require_success(scenario)
    tmp = scenario["tmp"]
    chief, worker = (np.load(tmp / f"weights{i}.npz") for i in (0, 1))
    assert len(chief.files) == len(worker.files) > 10
    for name in chief.files:
        np.testing.assert_array_equal(chief[name], worker[name], err_msg=name)
    for index, summary in enumerate(scenario["summaries"]):
        assert summary["steps"] == STEPS
        assert summary["distribution"] == {
            "strategy": "multiworker", "replicas": 2, "workers": 2, "task": f"worker {index}",
            "chief": index == 0, "jit_compile": False}
    assert "XLA (jit_compile) is off for this run" in scenario["output"]


def test_checkpoints_and_models_are_written_once_by_the_chief(scenario):
    _require_success(scenario)
    out, tmp = scenario["out"], scenario["tmp"]
    chief, worker = scenario["summaries"]
    assert chief["files"]["encoder"] == str(out / "encoder.keras")
    # worker 1 wrote its copies in a private temp dir (under its TMPDIR), deleted at the end
    assert worker["files"]["encoder"].startswith(str(tmp / "tmp-worker1"))
    assert not os.path.exists(os.path.dirname(worker["files"]["encoder"]))
    assert not [p for p in os.listdir(tmp / "tmp-worker1") if p.startswith("kbert-")]
    assert sorted(os.listdir(out / "checkpoints")) == [
        "checkpoint.json", f"ckpt-{STEPS - 8}.weights.h5", f"ckpt-{STEPS}.weights.h5"]
    expected = {"checkpoints", "encoder.keras", "history.csv", "model_config.json",
                "pretrainer.keras", "summary.json", "vocab.txt", "vocab_counts.txt"}
    if importlib.util.find_spec("tensorboard") is not None:
        expected.add("logs")
    assert set(os.listdir(out)) == expected  # no backup/ (finished), nothing of worker 1
    # history.csv: written by the chief only, appended by the resumed run, no epoch twice
    epochs = [int(line.split(",")[0]) for line in
              (out / "history.csv").read_text().splitlines()[1:]]
    assert epochs == sorted(set(epochs)) and epochs[-1] == STEPS // STEPS_PER_EPOCH - 1, epochs
    assert json.loads((out / "summary.json").read_text())["distribution"]["chief"] is True


def test_killed_worker_then_restart_resumes_from_the_backup(scenario):
    _require_success(scenario)
    assert not scenario["summary_after_kill"]
    resumed = [s["resumed_from_step"] for s in scenario["summaries"]]
    assert resumed[0] == resumed[1], resumed
    assert resumed[0] is not None and resumed[0] >= 2 * STEPS_PER_EPOCH, resumed
    assert resumed[0] % STEPS_PER_EPOCH == 0
    assert scenario["output"].count("resuming from the backup") == 2
    assert not (scenario["out"] / "backup").exists()  # deleted by the chief at the end
