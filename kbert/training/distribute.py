"""Scale-out: the strategy of a run, who writes files, and the fixes distributed Keras needs.

    kbert pretrain --strategy mirrored      # every local GPU (or the CPU) of one machine
    kbert pretrain --strategy multiworker   # one process per host, TF_CONFIG set on each
    kbert finetune ... --strategy mirrored

Names (`STRATEGIES`), TensorFlow backend:
    default       no distribution (what a run without --strategy does)
    mirrored      tf.distribute.MirroredStrategy: one replica per local GPU (the CPU if none)
    multiworker   tf.distribute.MultiWorkerMirroredStrategy from TF_CONFIG (docs/distributed.md)
    tpu           tf.distribute.TPUStrategy on the TPU named by $TPU_NAME (a local TPU VM if unset)
JAX backend: mirrored / data_parallel = keras.distribution.DataParallel over every local device.

The batch size a job is given is the GLOBAL batch: each step, the global batch is split across
the replicas (and, with several workers, across the workers), and the gradients are summed,
so a step of N replicas sees the data and takes the update of one device on the whole batch.
The pre-training loss is normalised by global counts (`kbert.models.pretrainer._global_sum`).

What this module does for a job (`DistributedJob`):
    * builds the strategy first (MultiWorkerMirroredStrategy must exist before any TF op);
    * `scope()`: build the model, the optimizer and `compile` inside it;
    * `write_dir`: the chief writes to the output directory; every other worker writes the same
      files (Keras/TF recommend that every worker saves, since saving may run collectives) to a
      private temporary directory that `close()` deletes;
    * `backup()`: BackupAndRestore that every worker restores from the chief's backup (the
      output directory must be on a file system all workers see to resume) and that only the
      chief writes there;
    * `distribute_dataset()`: per-worker sharding policy: FILE for `kbert prepare` TFRecord
      shards (when there are at least as many shards as workers), DATA otherwise;
    * `jit_compile()`: XLA is turned off for multi-replica TF strategies (it fails there; see
      the function), with the reason logged;
    * `prepare_optimizer()`: gradient clipping on the all-reduced (global) gradient.
TensorFlow is imported lazily, inside the functions, so the JAX backend can use this module.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import shutil
import sys
import tempfile

import keras

from kbert.config import read_json_file
from kbert.training.callbacks import ResumableBackup

STRATEGIES = ("default", "mirrored", "multiworker", "tpu")
JAX_STRATEGIES = ("default", "mirrored", "data_parallel")
_ALIASES = {None: "default", "": "default", "none": "default", "one_device": "default",
            "multi_worker": "multiworker", "multi-worker": "multiworker",
            "data-parallel": "data_parallel"}


def canonical_name(name: str | None) -> str:
    """The strategy name in `STRATEGIES` (or `JAX_STRATEGIES`); ValueError for anything else."""
    key = name.strip().lower() if isinstance(name, str) else name
    key = _ALIASES.get(key, key)
    known = JAX_STRATEGIES if keras.backend.backend() == "jax" else STRATEGIES
    if key not in known:
        raise ValueError(f"unknown strategy {name!r} for the {keras.backend.backend()} backend; "
                         f"choose one of {list(known)}")
    return key


# ------------------------------------------------------------------------------ strategies
_MULTI_WORKER_CLASS = None


def _multi_worker_class():
    """MultiWorkerMirroredStrategy with `reduce` fixed for Keras 3 (keras-team/keras#20585).

    Keras 3's TF trainer calls `strategy.reduce("MEAN", batch, axis=None)` on a whole (nested)
    data batch before the first step, and `strategy.reduce("MEAN", scalar, axis=0)` on each
    metric after every step; MultiWorkerMirroredStrategy accepts neither a nest nor axis=0 on
    a scalar, so `fit` fails on its first batch. This subclass reduces a nest leaf by leaf (the
    same collective order on every worker) and a scalar with axis=None.
    """
    global _MULTI_WORKER_CLASS
    if _MULTI_WORKER_CLASS is None:
        # deferred: TensorFlow, not needed on JAX
        import tensorflow as tf  # noqa: PLC0415

        class KerasMultiWorkerMirroredStrategy(tf.distribute.MultiWorkerMirroredStrategy):
            def reduce(self, reduce_op, value, axis):
                if not (isinstance(value, tf.distribute.DistributedValues) or tf.is_tensor(value)):
                    return tf.nest.map_structure(
                        lambda v: self.reduce(reduce_op, v, axis), value)
                if axis is not None and self.experimental_local_results(value)[0].shape.rank == 0:
                    axis = None
                return super().reduce(reduce_op, value, axis)

        _MULTI_WORKER_CLASS = KerasMultiWorkerMirroredStrategy
    return _MULTI_WORKER_CLASS


def create_strategy(name: str | None = None, *, devices=None, tpu: str | None = None):
    """The strategy object for a name of `STRATEGIES`.

    TensorFlow backend: a `tf.distribute.Strategy` ("default": the default strategy);
    JAX backend: a `keras.distribution.DataParallel`, or None for "default".
    `devices`: mirrored / data_parallel over these devices instead of all local ones.
    `tpu`: the TPU name or address for TPUClusterResolver (default: $TPU_NAME, else local).
    """
    name = canonical_name(name)
    if keras.backend.backend() == "jax":
        if name == "default":
            return None
        return keras.distribution.DataParallel(devices=devices or keras.distribution.list_devices())
    # deferred: TensorFlow, not needed on JAX
    import tensorflow as tf  # noqa: PLC0415

    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        # Every local GPU; without one, every logical CPU device (one, unless the process split
        # the CPU with tf.config.set_logical_device_configuration, as the tests do).
        devices = devices or [d.name for d in tf.config.list_logical_devices("GPU")] or [
            d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices)
    if name == "multiworker":
        return _multi_worker_class()()
    # TPU (by construction; not run in CI): connect, initialise, then one replica per core.
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver(
        tpu=tpu if tpu is not None else os.environ.get("TPU_NAME", "local"))
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    return tf.distribute.TPUStrategy(resolver)


def num_replicas(strategy) -> int:
    """Replicas that share one global batch (1 without a strategy)."""
    if strategy is None:
        return 1
    if hasattr(strategy, "num_replicas_in_sync"):
        return int(strategy.num_replicas_in_sync)
    return int(getattr(strategy, "num_model_replicas", None) or
               strategy.device_mesh.devices.size)  # keras.distribution.DataParallel


# ------------------------------------------------------------------------------ workers
@dataclasses.dataclass(frozen=True)
class WorkerRole:
    """This process in its cluster: task type and index, cluster size, and whether it is the
    chief (the one worker that writes the run's files)."""

    task_type: str | None = None
    task_id: int = 0
    num_workers: int = 1
    is_chief: bool = True

    @property
    def label(self) -> str:
        return "single worker" if self.task_type is None else f"{self.task_type} {self.task_id}"


def role_from_tf_config(tf_config: dict | str | None) -> WorkerRole:
    """The role TF_CONFIG describes (pure Python; no TensorFlow needed).

    The chief is the task of type "chief" when the cluster has one, else worker 0 (the
    convention of MultiWorkerMirroredStrategy). An "evaluator" is not counted as a worker.
    """
    if isinstance(tf_config, str):
        tf_config = json.loads(tf_config) if tf_config.strip() else None
    if not tf_config or not tf_config.get("task"):
        return WorkerRole()
    cluster = tf_config.get("cluster") or {}
    task = tf_config["task"]
    task_type, task_id = task.get("type"), int(task.get("index", 0))
    workers = len(cluster.get("chief", [])) + len(cluster.get("worker", []))
    if "chief" in cluster:
        chief = task_type == "chief"
    else:
        chief = task_type == "worker" and task_id == 0
    return WorkerRole(task_type, task_id, max(workers, 1), chief)


def worker_role(strategy=None) -> WorkerRole:
    """This process's role under `strategy` (TF_CONFIG for a multi-worker strategy; a
    single-process strategy, JAX DataParallel or none: the only worker, hence the chief)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    extended = getattr(strategy, "extended", None)
    multi = extended is not None and getattr(extended, "_in_multi_worker_mode", lambda: False)()
    if resolver is None or not multi:
        return WorkerRole()
    spec = resolver.cluster_spec().as_dict()
    return role_from_tf_config({"cluster": spec, "task": {"type": resolver.task_type,
                                                          "index": resolver.task_id}})


# ------------------------------------------------------------------------------ XLA
def jit_compile_for(requested: bool, strategy, name: str, log=print) -> bool:
    """`requested` unless XLA cannot compile a step of this strategy (then False, logged).

    Measured with TF 2.21 on CPU: under MirroredStrategy with 2 replicas the XLA step fails
    ("Trying to access resource ... located in device CPU:1 from device CPU:0": XLA compiles
    one cluster on one device and the replicas' variables live on several), and under
    MultiWorkerMirroredStrategy ("Collectives are not yet implemented for CPU devices when
    compiling with XLA"). So every TF strategy with more than one replica, and every
    multi-worker one, runs without XLA, except TPUStrategy, which compiles with XLA anyway.
    """
    if not requested or keras.backend.backend() != "tensorflow" or name == "tpu":
        return bool(requested)
    if num_replicas(strategy) > 1 or name == "multiworker":
        log(f"XLA (jit_compile) is off for this run: a {name} step with "
            f"{num_replicas(strategy)} replicas cannot be compiled by XLA in TensorFlow "
            f"(variables on several devices; no XLA collectives on CPU)")
        return False
    return True


# ------------------------------------------------------------------------------ optimizer
def sum_gradients_before_clipping(optimizer) -> None:
    """Clip the GLOBAL gradient under a tf.distribute strategy, as on one device.

    Keras 3 (TF backend) clips each replica's gradient (`_clip_gradients`, before the
    all-reduce in `_backend_update_step`): with `global_clipnorm` each replica's share is
    scaled by its own norm, so the summed update is not the single-device update on the same
    global batch. On this optimizer instance the all-reduce moves before the clipping (and the
    later one is skipped); with one replica nothing changes. Idempotent; no-op off TensorFlow.
    """
    if keras.backend.backend() != "tensorflow":
        return
    optimizer = getattr(optimizer, "inner_optimizer", optimizer)  # LossScaleOptimizer
    if getattr(optimizer, "_kbert_sums_before_clipping", False):
        return
    tf = sys.modules["tensorflow"]
    clip, all_reduce = optimizer._clip_gradients, optimizer._all_reduce_sum_gradients

    def replicated():
        context = tf.distribute.get_replica_context()
        return context if context is not None and context.num_replicas_in_sync > 1 else None

    def clip_summed(grads):
        context = replicated()
        if context is not None:
            grads = list(grads)
            present = [i for i, g in enumerate(grads) if g is not None]
            summed = context.all_reduce(tf.distribute.ReduceOp.SUM, [grads[i] for i in present])
            for i, g in zip(present, summed, strict=True):
                grads[i] = g
        return clip(grads)

    def all_reduce_unless_summed(grads_and_vars):
        if replicated() is not None:
            return list(grads_and_vars)  # already summed in clip_summed
        return all_reduce(grads_and_vars)

    with _no_tracking(optimizer):
        optimizer._clip_gradients = clip_summed
        optimizer._all_reduce_sum_gradients = all_reduce_unless_summed
        optimizer._kbert_sums_before_clipping = True


@contextlib.contextmanager
def _no_tracking(obj):
    previous = getattr(obj, "_self_setattr_tracking", True)
    obj._self_setattr_tracking = False
    try:
        yield
    finally:
        obj._self_setattr_tracking = previous


# ------------------------------------------------------------------------------ datasets
def tfrecord_shards(corpus) -> int | None:
    """Number of train TFRecord files when `corpus` is a `kbert prepare` directory, else None."""
    if not isinstance(corpus, (str, os.PathLike)) or not os.path.isfile(
            os.path.join(corpus, "pairs.json")):
        return None

    meta = read_json_file(os.path.join(corpus, "pairs.json"), ValueError)
    return len(((meta.get("splits") or {}).get("train") or {}).get("files") or [])


def shard_policy(num_workers: int, file_shards: int | None) -> str:
    """"FILE" (each worker reads its own TFRecord files) when there are at least as many files
    as workers; "DATA" otherwise (each worker runs the whole pipeline and keeps its part of
    every global batch); "OFF" with one worker (replicas split each batch, nothing to shard)."""
    if num_workers <= 1:
        return "OFF"
    return "FILE" if file_shards and file_shards >= num_workers else "DATA"


# ------------------------------------------------------------------------------ backup
class DistributedBackup(ResumableBackup):
    """`ResumableBackup` for a worker that is not the chief: it restores from `backup_dir` (the
    chief's) like every worker, and writes its own backups to `write_dir` (deleted when
    training ends), so no two processes write the same file. Keras restores whole epochs.
    """

    def __init__(self, backup_dir: str, write_dir: str, verbose: bool = True):
        super().__init__(backup_dir, verbose=verbose)
        self.write_dir = write_dir
        self._writer = ResumableBackup(write_dir, verbose=False)

    def set_model(self, model):
        super().set_model(model)
        self._writer.set_model(model)

    # reading: ResumableBackup.on_train_begin on backup_dir; writing: the writer on write_dir
    def on_epoch_end(self, epoch, logs=None):
        self._writer.on_epoch_end(epoch, logs)

    def on_train_batch_end(self, batch, logs=None):
        self._writer.on_train_batch_end(batch, logs)

    def on_train_end(self, logs=None):
        self._writer.on_train_end(logs)


# ------------------------------------------------------------------------------ the job
class DistributedJob:
    """The distribution of one training job (see the module docstring).

    Create it before any other TensorFlow op of the process. `name=None` ("default") changes
    nothing: no strategy scope, this process is the chief, files go to `output_dir`.
    """

    def __init__(self, name: str | None, output_dir: str, log=print, *, devices=None):
        self.name = canonical_name(name)
        self.output_dir = output_dir
        self.log = log
        self.strategy = None if self.name == "default" else create_strategy(self.name,
                                                                            devices=devices)
        self.role = worker_role(self.strategy)
        self.num_replicas = num_replicas(self.strategy)
        self._temp = None
        if not self.role.is_chief:
            # One fixed name per (output_dir, task): a restarted worker first deletes what its
            # killed predecessor left there.
            key = hashlib.sha1(os.path.abspath(output_dir).encode("utf-8")).hexdigest()[:12]
            self._temp = os.path.join(tempfile.gettempdir(), f"kbert-{self.role.task_type}"
                                                             f"{self.role.task_id}-{key}")
            shutil.rmtree(self._temp, ignore_errors=True)
            os.makedirs(self._temp)
        self.jit = None

    @property
    def distributed(self) -> bool:
        return self.strategy is not None

    @property
    def is_chief(self) -> bool:
        return self.role.is_chief

    @property
    def write_dir(self) -> str:
        """Where this process writes: output_dir (chief) or its private temporary directory."""
        return self.output_dir if self._temp is None else self._temp

    def scope(self):
        return contextlib.nullcontext() if self.strategy is None else self.strategy.scope()

    def jit_compile(self, requested: bool) -> bool:
        self.jit = jit_compile_for(requested, self.strategy, self.name, self.log)
        return self.jit

    def prepare_optimizer(self, optimizer) -> None:
        if self.num_replicas > 1:
            sum_gradients_before_clipping(optimizer)

    def distribute_dataset(self, dataset, corpus=None):
        """`dataset` with the per-worker sharding policy set (unchanged on one worker)."""
        policy = shard_policy(self.role.num_workers, tfrecord_shards(corpus))
        if policy == "OFF" or keras.backend.backend() != "tensorflow":
            return dataset
        # deferred: TensorFlow, not needed on JAX
        import tensorflow as tf  # noqa: PLC0415

        shards = tfrecord_shards(corpus)
        if shards is not None and policy == "DATA":
            self.log(f"{shards} TFRecord shards for {self.role.num_workers} workers: sharding by "
                     f"data (every worker reads every file); prepare >= "
                     f"{self.role.num_workers} shards to shard by file")
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = getattr(
            tf.data.experimental.AutoShardPolicy, policy)
        return dataset.with_options(options)

    def backup(self, backup_dir: str, verbose: bool = True) -> ResumableBackup:
        if self.is_chief:
            return ResumableBackup(backup_dir, verbose=verbose)
        return DistributedBackup(backup_dir, os.path.join(self.write_dir, "backup"),
                                 verbose=verbose)

    def describe(self) -> dict:
        return {"strategy": self.name, "replicas": self.num_replicas,
                "workers": self.role.num_workers, "task": self.role.label,
                "chief": self.is_chief, "jit_compile": self.jit}

    def close(self) -> None:
        """Delete this worker's temporary directory (nothing for the chief)."""
        if self._temp is not None:
            shutil.rmtree(self._temp, ignore_errors=True)
            self._temp = None
