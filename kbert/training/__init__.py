"""kbert.training: BERT's optimizer and schedule, training callbacks, and the pre-training job.

    optimizer.py   create_optimizer (AdamW, no decay on LayerNorm/biases), WarmupLinearDecay
    callbacks.py   StopOnDivergence, AtomicCheckpoint, ResumableBackup, TrainingDiverged
    pretrain.py    PretrainConfig, pretrain() -- what `kbert pretrain` runs (import the function
                   as `from kbert.training.pretrain import pretrain`: `kbert.training.pretrain`
                   is the module); continue_pretraining() -- the same from a checkpoint
    distribute.py  DistributedJob, create_strategy: tf.distribute / keras.distribution for the
                   jobs (`--strategy`; docs/distributed.md)

Names resolve lazily, so importing the package does not import Keras or TensorFlow.
"""

from __future__ import annotations

from kbert._lazy import lazy_exports

_EXPORTS = {
    "create_optimizer": "kbert.training.optimizer",
    "WarmupLinearDecay": "kbert.training.optimizer",
    "set_precision": "kbert.training.optimizer",
    "StopOnDivergence": "kbert.training.callbacks",
    "AtomicCheckpoint": "kbert.training.callbacks",
    "ResumableBackup": "kbert.training.callbacks",
    "TrainingDiverged": "kbert.training.callbacks",
    "PretrainConfig": "kbert.training.pretrain",
    "continue_pretraining": "kbert.training.pretrain",
    "DistributedJob": "kbert.training.distribute",
    "create_strategy": "kbert.training.distribute",
}


__getattr__, __dir__ = lazy_exports(__name__, globals(), _EXPORTS)


__all__ = sorted(_EXPORTS)
