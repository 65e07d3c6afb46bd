"""Distribution (kbert/training/distribute.py): roles, sharding policy, backups, and numbers.

The numeric checks run in child processes: logical CPU devices must be configured before
TensorFlow initialises, and a JAX child needs XLA_FLAGS before JAX starts. Two logical CPU
devices stand in for two GPUs; the same code paths run (MirroredStrategy, all-reduce).
"""

import argparse
import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
from script_loader import BENCH, load_script
from test_training import TINY_MODEL, make_corpus, make_vocab

from kbert.commands import pretrain as pretrain_cmd
from kbert.config import BertConfig
from kbert.models.encoder import BertEncoder
from kbert.models.pretrainer import BertPretrainer
from kbert.training import distribute
from kbert.training.callbacks import ResumableBackup
from kbert.training.pretrain import pretrain

TWO_CPUS = """
import tensorflow as tf
_cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(_cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
"""

SHARED = """
import contextlib, json, sys
import numpy as np
import keras
from kbert.config import BertConfig

def report(name, value):
    print("RESULT " + json.dumps([name, value]), flush=True)

def max_diff(a, b):
    return max(float(np.max(np.abs(np.asarray(u, "float64") - np.asarray(v, "float64"))))
               for u, v in zip(a, b))

CFG = BertConfig(vocab_size=40, hidden_size=16, num_layers=2, num_heads=2, intermediate_size=32,
                 max_position_embeddings=16, hidden_dropout=0.0, attention_dropout=0.0)
B, S, P = 8, 16, 4
rng = np.random.default_rng(0)
lengths = np.array([16, 12, 9, 16, 14, 16, 10, 16])
padding_mask = (np.arange(S)[None] < lengths[:, None]).astype("int32")
X = {"token_ids": (rng.integers(5, 40, (B, S)) * padding_mask).astype("int32"),
     "segment_ids": ((np.arange(S)[None] >= 6) * padding_mask).astype("int32"),
     "padding_mask": padding_mask,
     "masked_positions": rng.integers(1, 9, (B, P)).astype("int32")}
# Uneven masked counts: rows 0-3 (replica 0) hold 3 real slots, rows 4-7 (replica 1) hold 15,
# so a per-replica mean would weigh replica 0's three tokens 5x too much.
W = np.zeros((B, P), "float32")
W[0, 0] = W[1, 0] = W[2, 1] = 1.0
W[4:] = 1.0
W[7, 3] = 0.0
Y = {"masked_ids": rng.integers(5, 40, (B, P)).astype("int32"), "masked_weights": W,
     "next_sentence_labels": np.array([0, 1, 1, 0, 1, 0, 0, 1], "int32")}
"""

# --------------------------------------------------------------------- TF: 2 replicas vs 1
TF_NUMERIC_CHILD = TWO_CPUS + SHARED + textwrap.dedent("""
    from kbert.models.encoder import BertEncoder
    from kbert.models.pretrainer import BertPretrainer
    from kbert.tasks import BertClassifier
    from kbert.training.distribute import DistributedJob, sum_gradients_before_clipping
    from kbert.training.optimizer import create_optimizer

    job = DistributedJob("mirrored", sys.argv[1], log=lambda *a: None)
    strategy = job.strategy
    report("replicas", job.num_replicas)

    def pretrainer(scope):  # scope: a function returning a context manager
        with scope():
            keras.utils.set_random_seed(3)
            return BertPretrainer.from_bert_config(CFG)

    # 1) the gradient of one global batch: summed over the replicas vs one device
    single = pretrainer(contextlib.nullcontext)
    with tf.GradientTape() as tape:
        loss = single.compute_loss(X, Y, single(X, training=True))
    single_grads = [tf.convert_to_tensor(g) for g in
                    tape.gradient(loss, single.trainable_variables)]
    report("global_norm", float(tf.linalg.global_norm(single_grads)))

    mirrored = pretrainer(job.scope)
    batch = next(iter(strategy.experimental_distribute_dataset(
        tf.data.Dataset.from_tensors((X, Y)))))

    @tf.function
    def distributed_grads(batch):
        def replica_step(x, y):
            with tf.GradientTape() as tape:
                loss = mirrored.compute_loss(x, y, mirrored(x, training=True))
            grads = [tf.convert_to_tensor(g) for g in
                     tape.gradient(loss, mirrored.trainable_variables)]
            context = tf.distribute.get_replica_context()
            count = tf.reduce_sum(y["masked_weights"])
            return context.all_reduce("SUM", grads), count
        return strategy.run(replica_step, args=batch)

    grads, counts = distributed_grads(batch)
    report("replica_counts", [float(c) for c in strategy.experimental_local_results(counts)])
    report("grad_diff", max_diff(single_grads,
                                 [strategy.experimental_local_results(g)[0] for g in grads]))

    # 2) three fit steps with the pre-training optimizer (AdamW, global-norm clipping that
    #    binds): with the clipping fix, and as Keras does it alone
    def fit_pretrainer(scope, fix):
        model = pretrainer(scope)
        with scope():
            model.compile(optimizer=create_optimizer(3e-2, total_steps=10, warmup=0,
                                                     global_clipnorm=0.05), jit_compile=False)
            if fix:
                sum_gradients_before_clipping(model.optimizer)
        model.fit(tf.data.Dataset.from_tensors((X, Y)).repeat(3), epochs=1, verbose=0)
        return [np.asarray(w) for w in model.weights]

    one = fit_pretrainer(contextlib.nullcontext, False)
    report("fit_diff", max_diff(one, fit_pretrainer(job.scope, True)))
    report("fit_diff_keras_clipping", max_diff(one, fit_pretrainer(job.scope, False)))

    # 3) fine-tuning: a classifier compiled with the BERT recipe (TaskModel.compile)
    def fit_classifier(scope):
        with scope():
            keras.utils.set_random_seed(5)
            model = BertClassifier(BertEncoder.from_bert_config(CFG), num_classes=3)
            model.compile(learning_rate=1e-2, total_steps=10, warmup=0)
        features = {k: X[k] for k in ("token_ids", "segment_ids", "padding_mask")}
        labels = np.array([0, 1, 2, 0, 1, 2, 0, 1], "int32")
        model.fit(tf.data.Dataset.from_tensors((features, labels)).repeat(3), epochs=1,
                  verbose=0)
        return [np.asarray(w) for w in model.weights]

    report("finetune_diff", max_diff(fit_classifier(contextlib.nullcontext),
                                     fit_classifier(job.scope)))
""")


def _run_child(script, args=(), env=None, timeout=600):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", **(env or {}))
    result = subprocess.run([sys.executable, "-c", script, *map(str, args)], env=env,
                            capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    found = dict(json.loads(line[len("RESULT "):]) for line in result.stdout.splitlines()
                 if line.startswith("RESULT "))
    return found, result.stdout


@pytest.fixture(scope="module")
def tf_numbers(tmp_path_factory):
    return _run_child(TF_NUMERIC_CHILD, [tmp_path_factory.mktemp("tf_numbers")],
                      env={"KERAS_BACKEND": "tensorflow"})[0]


def test_distributed_gradient_equals_the_single_device_gradient(tf_numbers):
    """2 logical CPU replicas vs 1 device, same weights and global batch: the summed replica
    gradients equal the single-device gradient (MLM divisor = the global masked count)."""
    assert tf_numbers["replicas"] == 2
    assert tf_numbers["replica_counts"] == [3.0, 15.0]  # the replicas saw uneven counts
    assert tf_numbers["grad_diff"] < 1e-5, tf_numbers


def test_distributed_fit_takes_the_single_device_update(tf_numbers):
    """Three AdamW steps with binding global-norm clipping: the same weights as on one device.
    Keras alone clips each replica's gradient before the all-reduce, which is not the update
    of the global batch; `sum_gradients_before_clipping` fixes that."""
    assert tf_numbers["global_norm"] > 0.05 * 4  # the clipping binds
    assert tf_numbers["fit_diff"] < 1e-5, tf_numbers
    assert tf_numbers["fit_diff_keras_clipping"] > 1e-3, (
        "Keras now clips after the all-reduce: sum_gradients_before_clipping may be removed",
        tf_numbers)


def test_distributed_finetuning_takes_the_single_device_update(tf_numbers):
    assert tf_numbers["finetune_diff"] < 1e-5, tf_numbers


# --------------------------------------------------------------------- TF: the jobs, mirrored
TF_JOB_CHILD = TWO_CPUS + textwrap.dedent("""
    import json, sys
    import numpy as np
    from kbert.data import BatchOptions, MaskingOptions, PairOptions, pretraining_dataset
    from kbert.training.distribute import DistributedJob
    from kbert.training.pretrain import pretrain

    corpus, vocab, out, model = sys.argv[1:5]
    def report(name, value):
        print("RESULT " + json.dumps([name, value]), flush=True)

    # the input pipeline: the replicas' halves put together are the single-device batches
    def data():
        return pretraining_dataset(corpus, vocab, PairOptions(32), MaskingOptions(5),
                                   BatchOptions(8, repeat=True))
    job = DistributedJob("mirrored", out, log=lambda *a: None)
    single = list(data().take(3))
    distributed = iter(job.strategy.experimental_distribute_dataset(
        job.distribute_dataset(data(), corpus)))
    same = True
    for x, y in single:
        dx, dy = next(distributed)
        for key, value in {**x, **y}.items():
            parts = job.strategy.experimental_local_results({**dx, **dy}[key])
            same &= [p.shape[0] for p in parts] == [4, 4]
            same &= bool(np.array_equal(np.concatenate([p.numpy() for p in parts]), value.numpy()))
    report("pipeline_same", same)

    # the pre-training job with --strategy mirrored
    logs = []
    summary = pretrain({"corpus": corpus, "vocab": vocab, "output_dir": out,
                        "model": json.loads(model), "seq_length": 32, "batch_size": 8,
                        "max_predictions": 5, "steps": 4, "steps_per_epoch": 2,
                        "checkpoint_every": 2, "eval_batches": 1, "examples": 0, "verbose": 0,
                        "strategy": "mirrored"}, log=logs.append)
    report("summary", {k: summary[k] for k in ("steps", "distribution", "files")})
    report("logs", logs)
""")


@pytest.mark.slow
def test_pretrain_job_and_input_pipeline_under_mirrored_strategy(tmp_path):
    corpus = make_corpus(tmp_path / "corpus.txt")
    make_vocab(corpus, tmp_path / "vocab")
    out = tmp_path / "run"
    found, _ = _run_child(TF_JOB_CHILD, [corpus, tmp_path / "vocab", out, json.dumps(TINY_MODEL)],
                          env={"KERAS_BACKEND": "tensorflow"})
    assert found["pipeline_same"] is True
    summary = found["summary"]
    assert summary["steps"] == 4
    assert summary["distribution"] == {"strategy": "mirrored", "replicas": 2, "workers": 1,
                                       "task": "single worker", "chief": True,
                                       "jit_compile": False}
    assert summary["files"]["encoder"] == str(out / "encoder.keras")
    assert any("XLA (jit_compile) is off" in line for line in found["logs"])
    assert any("global batch 8 = 4 sequences per replica" in line for line in found["logs"])
    assert sorted(os.listdir(out / "checkpoints")) == ["checkpoint.json", "ckpt-2.weights.h5",
                                                      "ckpt-4.weights.h5"]
    # the weights saved from the distributed model load into a plain (undistributed) one

    encoder = keras.saving.load_model(out / "encoder.keras")
    assert encoder.bert_config.hidden_size == TINY_MODEL["hidden_size"]


# --------------------------------------------------------------------- JAX: DataParallel
JAX_CHILD = SHARED + textwrap.dedent("""
    import jax
    assert keras.backend.backend() == "jax"
    from kbert.models.encoder import BertEncoder
    from kbert.models.pretrainer import BertPretrainer
    from kbert.tasks import BertClassifier
    from kbert.training.distribute import DistributedJob
    from kbert.training.optimizer import create_optimizer

    job = DistributedJob("mirrored", sys.argv[1], log=lambda *a: None)  # = data_parallel
    report("devices", len(jax.devices()))
    report("distribution", type(job.strategy).__name__)
    report("replicas", job.num_replicas)

    def fit_pretrainer(scope):
        with scope:
            keras.utils.set_random_seed(3)
            model = BertPretrainer.from_bert_config(CFG)
            model.compile(optimizer=create_optimizer(3e-2, total_steps=10, warmup=0,
                                                     global_clipnorm=0.05))
            model.fit(X, Y, batch_size=B, epochs=3, verbose=0, shuffle=False)
        devices = {len(w.value.sharding.device_set) for w in model.weights}
        return [np.asarray(w) for w in model.weights], devices

    one, one_devices = fit_pretrainer(contextlib.nullcontext())
    parallel, parallel_devices = fit_pretrainer(job.scope())
    report("weight_devices", [sorted(one_devices), sorted(parallel_devices)])
    report("pretrain_diff", max_diff(one, parallel))

    def fit_classifier(scope):
        with scope:
            keras.utils.set_random_seed(5)
            model = BertClassifier(BertEncoder.from_bert_config(CFG), num_classes=3)
            model.compile(learning_rate=1e-2, total_steps=10, warmup=0)
            features = {k: X[k] for k in ("token_ids", "segment_ids", "padding_mask")}
            history = model.fit(features, np.array([0, 1, 2, 0, 1, 2, 0, 1], "int32"),
                                batch_size=B, epochs=3, verbose=0, shuffle=False)
        return [np.asarray(w) for w in model.weights], history.history["loss"]

    (w1, _), (w2, losses) = fit_classifier(contextlib.nullcontext()), fit_classifier(job.scope())
    report("finetune_diff", max_diff(w1, w2))
    report("finetune_losses", losses)
""")


@pytest.mark.slow
def test_jax_data_parallel_over_two_cpu_devices_matches_one_device(tmp_path):
    pytest.importorskip("jax")
    found, _ = _run_child(JAX_CHILD, [tmp_path / "run"], env={
        "KERAS_BACKEND": "jax", "XLA_FLAGS": "--xla_force_host_platform_device_count=2",
        "JAX_PLATFORMS": "cpu"})
    assert found["devices"] == 2 and found["replicas"] == 2
    assert found["distribution"] == "DataParallel"
    assert found["weight_devices"] == [[1], [2]]  # replicated over both devices
    assert found["pretrain_diff"] < 1e-5, found
    assert found["finetune_diff"] < 1e-5, found
    assert found["finetune_losses"][-1] < found["finetune_losses"][0]


# --------------------------------------------------------------------- roles and policies
def test_roles_from_tf_config():
    assert distribute.role_from_tf_config(None) == distribute.WorkerRole()
    cluster = {"worker": ["h0:1", "h1:1", "h2:1"]}
    roles = [distribute.role_from_tf_config(json.dumps(
        {"cluster": cluster, "task": {"type": "worker", "index": i}})) for i in range(3)]
    assert [r.is_chief for r in roles] == [True, False, False]
    assert {r.num_workers for r in roles} == {3} and roles[2].label == "worker 2"
    with_chief = {"chief": ["c:1"], "worker": ["h0:1", "h1:1"], "evaluator": ["e:1"]}
    role = lambda t, i: distribute.role_from_tf_config(  # noqa: E731
        {"cluster": with_chief, "task": {"type": t, "index": i}})
    assert role("chief", 0).is_chief and role("chief", 0).num_workers == 3
    assert not role("worker", 0).is_chief and not role("evaluator", 0).is_chief


def test_strategy_names():
    assert distribute.canonical_name(None) == "default"
    assert distribute.canonical_name(" Multi-Worker ") == "multiworker"
    assert distribute.canonical_name("mirrored") == "mirrored"
    with pytest.raises(ValueError, match=r"unknown strategy 'horovod'.*'mirrored'"):
        distribute.canonical_name("horovod")


def test_shard_policy_by_files_only_with_enough_tfrecord_shards(tmp_path):
    (tmp_path / "pairs.json").write_text(json.dumps(
        {"splits": {"train": {"files": ["a", "b", "c"]}, "heldout": {"files": ["h"]}}}))
    assert distribute.tfrecord_shards(tmp_path) == 3
    assert distribute.tfrecord_shards("austen") is None
    assert distribute.shard_policy(1, 3) == "OFF"
    assert distribute.shard_policy(2, 3) == "FILE" and distribute.shard_policy(3, 3) == "FILE"
    assert distribute.shard_policy(4, 3) == "DATA" and distribute.shard_policy(2, None) == "DATA"


def test_default_job_changes_nothing(tmp_path):
    job = distribute.DistributedJob(None, str(tmp_path))
    assert job.strategy is None and not job.distributed and job.is_chief
    assert job.write_dir == str(tmp_path) and job.num_replicas == 1
    assert job.jit_compile(True) is True and job.jit_compile(False) is False
    dataset = object()
    assert job.distribute_dataset(dataset, "austen") is dataset
    assert type(job.backup(str(tmp_path / "backup"))) is ResumableBackup
    job.close()
    assert os.path.isdir(tmp_path)


def _dense_model(value):
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(optimizer="sgd", loss="mse")
    model.set_weights([np.full((3, 2), value, "float32"), np.zeros(2, "float32")])
    return model


def test_distributed_backup_restores_the_chiefs_and_writes_its_own(tmp_path):
    chief_dir, own_dir = tmp_path / "backup", tmp_path / "worker1" / "backup"
    chief = ResumableBackup(str(chief_dir), verbose=False)
    chief.set_model(_dense_model(7.0))
    chief.on_epoch_end(2)  # the chief's backup after 3 epochs
    worker = distribute.DistributedBackup(str(chief_dir), str(own_dir), verbose=False)
    worker.set_model(_dense_model(0.0))
    worker.on_train_begin()
    assert np.all(worker.model.get_weights()[0] == 7.0) and worker.resumed_from_epoch == 3
    before = {p: os.path.getmtime(chief_dir / p) for p in os.listdir(chief_dir)}
    worker.model.set_weights([np.full((3, 2), 1.0, "float32"), np.zeros(2, "float32")])
    worker.on_epoch_end(3)
    assert "training_metadata.json" in os.listdir(own_dir)
    assert {p: os.path.getmtime(chief_dir / p) for p in os.listdir(chief_dir)} == before
    again = distribute.DistributedBackup(str(chief_dir), str(tmp_path / "w2"), verbose=False)
    again.set_model(_dense_model(0.0))
    again.on_train_begin()  # still the chief's weights, not worker 1's later copy
    assert np.all(again.model.get_weights()[0] == 7.0)
    worker.on_train_end()
    assert not own_dir.exists() and chief_dir.exists()  # the chief's backup is the chief's


def test_non_chief_job_writes_to_a_private_temp_dir(tmp_path, monkeypatch):
    monkeypatch.setattr(distribute, "worker_role",
                        lambda strategy: distribute.WorkerRole("worker", 1, 2, False))
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(distribute.tempfile, "tempdir", None)
    job = distribute.DistributedJob(None, str(tmp_path / "run"))
    assert job.write_dir.startswith(str(tmp_path / "tmp" / "kbert-worker1-"))
    assert os.path.isdir(job.write_dir) and not job.is_chief
    backup = job.backup(str(tmp_path / "run" / "backup"))
    assert isinstance(backup, distribute.DistributedBackup)
    assert backup.write_dir == os.path.join(job.write_dir, "backup")
    stale = os.path.join(job.write_dir, "left-by-a-killed-run")
    open(stale, "w").close()
    again = distribute.DistributedJob(None, str(tmp_path / "run"))  # a restarted worker
    assert again.write_dir == job.write_dir and not os.path.exists(stale)
    again.close()
    assert not os.path.exists(job.write_dir)


def test_pretrain_strategy_flag_and_unknown_name():
    parser = argparse.ArgumentParser()
    pretrain_cmd.add_arguments(parser)
    config = pretrain_cmd.config_from_args(parser.parse_args(["--strategy", "multiworker"]))
    assert config.strategy == "multiworker"
    assert pretrain_cmd.config_from_args(parser.parse_args([])).strategy is None

    with pytest.raises(ValueError, match="unknown strategy 'mirored'"):
        pretrain({"strategy": "mirored", "output_dir": "unused"}, log=lambda *a: None)


def test_parameter_count_matches_the_built_models_and_the_table():
    cfg = BertConfig(vocab_size=50, hidden_size=16, num_layers=2, num_heads=2,
                     intermediate_size=24, max_position_embeddings=20)
    pretrainer = BertPretrainer.from_bert_config(cfg)
    assert cfg.num_parameters(pretraining_heads=True) == pretrainer.count_params()
    assert cfg.num_parameters() == BertEncoder.from_bert_config(cfg).count_params()
    base = BertConfig.preset("base", vocab_size=30522)
    assert base.num_parameters() == 109_482_240  # bert-base
    allreduce_table = load_script("allreduce_table", BENCH)
    assert allreduce_table.allreduce_bytes_per_step(1000, 1) == 0
    assert allreduce_table.allreduce_bytes_per_step(1000, 2) == 4000  # 2 (N-1)/N x 4 bytes
    table = allreduce_table.scaling_table()
    assert "| base | 110.1M | 440 | 771 | 616.6 |" in table
    with open(os.path.join(os.path.dirname(__file__), "..", "docs", "distributed.md"),
              encoding="utf-8") as f:
        assert table in f.read()  # the docs show the table this code computes
