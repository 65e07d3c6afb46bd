"""BERT's optimizer: AdamW (decay 0.01, none on LayerNorm and biases), warmup + linear decay,
clipping.

Example:
    >>> from kbert.training.optimizer import WarmupLinearDecay, create_optimizer
    >>> schedule = WarmupLinearDecay(1e-3, total_steps=100, warmup_steps=10)
    >>> [round(float(schedule(s)), 6) for s in (0, 5, 10, 55, 100)]
    [0.0, 0.0005, 0.001, 0.0005, 0.0]
    >>> optimizer = create_optimizer(1e-3, total_steps=100)
"""

from __future__ import annotations

import keras
from keras import ops

# Matched (re.search) against each variable's short name: Dense/EinsumDense "bias", the MLM
# "output_bias", LayerNormalization "gamma"/"beta". Kernels and embedding tables do decay.
NO_DECAY_NAMES = ("bias", "gamma", "beta")


def warmup_steps_for(total_steps: int, warmup: float | int) -> int:
    """A warmup given as a fraction of the run (float < 1) or as a step count (int)."""
    if isinstance(warmup, bool) or not isinstance(warmup, (int, float)) or warmup < 0:
        raise ValueError(
            f"warmup must be a fraction in [0, 1) or a step count >= 0, got {warmup!r}")
    if isinstance(warmup, float) and warmup < 1:
        return int(round(total_steps * warmup))
    steps = int(warmup)
    if steps > total_steps:
        raise ValueError(f"warmup ({steps} steps) is longer than the run ({total_steps} steps)")
    return steps


@keras.saving.register_keras_serializable(package="kbert")
class WarmupLinearDecay(keras.optimizers.schedules.LearningRateSchedule):
    """lr(step) = peak * step / warmup for step < warmup, then peak * (total - step) /
    (total - warmup), reaching 0 at `total_steps` and staying there.

    Continuous at the end of the warmup (transformers' `get_linear_schedule_with_warmup`);
    google-research/bert instead decays from step 0 and so jumps down when the warmup ends.
    `step` is the optimizer's iteration count: the first update uses lr(0) = 0 when warmup > 0.
    """

    def __init__(self, peak_learning_rate: float, total_steps: int, warmup_steps: int = 0):
        if not peak_learning_rate > 0:
            raise ValueError(f"peak_learning_rate must be > 0, got {peak_learning_rate!r}")
        if int(total_steps) < 1:
            raise ValueError(f"total_steps must be >= 1, got {total_steps!r}")
        if not 0 <= int(warmup_steps) <= int(total_steps):
            raise ValueError(f"warmup_steps must be in [0, total_steps={total_steps}], "
                             f"got {warmup_steps!r}")
        self.peak_learning_rate = float(peak_learning_rate)
        self.total_steps = int(total_steps)
        self.warmup_steps = int(warmup_steps)

    def __call__(self, step):
        step = ops.cast(step, "float32")
        peak = self.peak_learning_rate
        warm = peak * step / max(self.warmup_steps, 1)
        decay_span = max(self.total_steps - self.warmup_steps, 1)
        decay = peak * ops.maximum(self.total_steps - step, 0.0) / decay_span
        return ops.where(step < self.warmup_steps, warm, decay)

    def get_config(self):
        return {"peak_learning_rate": self.peak_learning_rate, "total_steps": self.total_steps,
                "warmup_steps": self.warmup_steps}


def create_optimizer(
    learning_rate: float = 1e-4,
    total_steps: int = 10_000,
    warmup: float | int = 0.1,
    weight_decay: float = 0.01,
    beta_1: float = 0.9,
    beta_2: float = 0.999,
    epsilon: float = 1e-6,
    global_clipnorm: float | None = 1.0,
) -> keras.optimizers.AdamW:
    """The reference BERT optimizer as a `keras.optimizers.AdamW`.

    Args:
        learning_rate: the peak learning rate (reached at the end of the warmup).
        total_steps: optimizer steps of the whole run; the rate is 0 from there on.
        warmup: fraction of `total_steps` (float < 1) or a number of steps (int).
        weight_decay: decoupled decay (multiplied by the current lr, as in AdamW) on every
            variable except LayerNorm weights and biases (`NO_DECAY_NAMES`).
        global_clipnorm: clip the gradients' global norm to this (None: no clipping).
    """
    schedule = WarmupLinearDecay(learning_rate, total_steps,
                                 warmup_steps_for(total_steps, warmup))
    optimizer = keras.optimizers.AdamW(
        learning_rate=schedule, weight_decay=weight_decay, beta_1=beta_1, beta_2=beta_2,
        epsilon=epsilon, global_clipnorm=global_clipnorm)
    # Keras does not serialize this exclusion: an optimizer restored from a .keras file decays
    # everything. Resuming (BackupAndRestore) rebuilds the optimizer here, so it keeps the rule.
    optimizer.exclude_from_weight_decay(var_names=list(NO_DECAY_NAMES))
    return optimizer


def set_precision(mixed_precision: bool | str | None) -> str:
    """Set Keras' global dtype policy before building a model; returns the policy name.

    True or "mixed_bfloat16" -> bf16 compute with float32 weights (the CPU here has AVX512_BF16;
    no loss scaling needed); "mixed_float16" is accepted for GPUs; False/None -> "float32".
    """
    name = {True: "mixed_bfloat16", False: "float32", None: "float32"}.get(
        mixed_precision, mixed_precision)
    if name not in ("float32", "mixed_bfloat16", "mixed_float16", "bfloat16"):
        raise ValueError(f"unknown precision {mixed_precision!r}; use float32, mixed_bfloat16 "
                         "or mixed_float16")
    keras.mixed_precision.set_global_policy(name)
    return name
