"""Fine-tuning controls: freezing the lower encoder layers, layer-wise learning-rate decay, and
the BERT fine-tuning optimizer.

Layer-wise learning-rate decay (ELECTRA, Clark et al. 2020): with L blocks and decay d, a
variable at depth k gets lr * d ** (L + 1 - k), where the embeddings are depth 0, block i is
depth i + 1 and everything above the blocks (pooler, task head) is depth L + 1 (full rate).
`LayerwiseAdamW` is a `keras.optimizers.AdamW` that applies these multipliers to each variable's
step and to its weight decay. A variable's depth is read from its path ("embeddings/",
"transformer_layer_{i}/": the encoder's stable sub-layer names), so the rule survives `.keras`
saving and re-loading.

Example:
    >>> optimizer = bert_finetuning_optimizer(3e-5, total_steps=1000, num_layers=6,
    ...                                       layerwise_lr_decay=0.9)
    >>> round(optimizer.lr_multiplier("encoder/transformer_layer_0/output/kernel"), 4)
    0.5905
"""

from __future__ import annotations

import re

import keras
from keras import ops

from kbert.training.optimizer import NO_DECAY_NAMES, WarmupLinearDecay, warmup_steps_for

_EMBEDDINGS = re.compile(r"(^|/)embeddings/")
_BLOCK = re.compile(r"(^|/)transformer_layer_(\d+)/")


def freeze_encoder_layers(encoder, num_blocks: int | None) -> None:
    """Make the embeddings and the first `num_blocks` transformer blocks non-trainable.

    None leaves everything trainable; 0 freezes the embeddings only; `num_blocks` >= L freezes
    every block (the pooler stays trainable).
    """
    if num_blocks is None:
        return
    if isinstance(num_blocks, bool) or not isinstance(num_blocks, int) or num_blocks < 0:
        raise ValueError(f"freeze_layers must be None or an integer >= 0, got {num_blocks!r}")
    blocks = encoder.transformer_layers
    if num_blocks > len(blocks):
        raise ValueError(
            f"freeze_layers={num_blocks} but the encoder has only {len(blocks)} blocks")
    encoder.embeddings.trainable = False
    for block in blocks[:num_blocks]:
        block.trainable = False


def freeze_pooler(encoder) -> None:
    """Make the encoder's [CLS] pooler non-trainable: for heads that never read
    `pooled_output` (token and span heads, mean / max / cls classifiers), so no optimizer step
    looks for its gradients (Keras' "Gradients do not exist" warning)."""
    encoder.pooler.trainable = False


def layer_depth(path: str, num_layers: int) -> int:
    """0 for the embeddings, i + 1 for transformer_layer_i, num_layers + 1 for anything else."""
    block = _BLOCK.search(path)
    if block:
        return int(block.group(2)) + 1
    if _EMBEDDINGS.search(path):
        return 0
    return num_layers + 1


@keras.saving.register_keras_serializable(package="kbert")
class LayerwiseAdamW(keras.optimizers.AdamW):
    """AdamW whose learning rate (and so its decoupled weight decay) shrinks with depth.

    Args:
        layer_decay: d in (0, 1]; 1 is plain AdamW.
        num_layers: L, the encoder's number of transformer blocks.
        no_decay_names: variable-name patterns excluded from weight decay (kept in the config,
            unlike Keras' `exclude_from_weight_decay`, so a re-loaded optimizer keeps the rule).
        **kwargs: `keras.optimizers.AdamW` arguments.
    """

    def __init__(self, layer_decay: float = 1.0, num_layers: int = 12,
                 no_decay_names=NO_DECAY_NAMES, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 < float(layer_decay) <= 1.0:
            raise ValueError(f"layerwise_lr_decay must be in (0, 1], got {layer_decay!r}")
        self.layer_decay = float(layer_decay)
        self.num_layers = int(num_layers)
        self.no_decay_names = tuple(no_decay_names or ())
        if self.no_decay_names:
            self.exclude_from_weight_decay(var_names=list(self.no_decay_names))
        self._multipliers: list[float] = []

    def lr_multiplier(self, path: str) -> float:
        depth = layer_depth(path, self.num_layers)
        return self.layer_decay ** (self.num_layers + 1 - depth)

    def build(self, variables):
        if self.built:
            return
        super().build(variables)
        self._multipliers = [self.lr_multiplier(v.path) for v in variables]

    def _multiplier(self, variable) -> float:
        return self._multipliers[self._get_variable_index(variable)]

    def update_step(self, gradient, variable, learning_rate):
        m = self._multiplier(variable)
        super().update_step(gradient, variable, learning_rate if m == 1.0 else learning_rate * m)

    def _apply_weight_decay(self, variables):
        # Same as AdamW's (variable -= variable * wd * lr), with the variable's multiplier.
        if self.weight_decay is None:
            return
        for variable in variables:
            if self._use_weight_decay(variable):
                lr = ops.cast(self.learning_rate, variable.dtype) * self._multiplier(variable)
                wd = ops.cast(self.weight_decay, variable.dtype)
                variable.assign(variable - variable * wd * lr)

    def get_config(self):
        config = super().get_config()
        config.update(layer_decay=self.layer_decay, num_layers=self.num_layers,
                      no_decay_names=list(self.no_decay_names))
        return config


def bert_finetuning_optimizer(learning_rate: float = 3e-5, total_steps: int | None = None,
                              warmup: float | int = 0.1, weight_decay: float = 0.01,
                              num_layers: int = 12, layerwise_lr_decay: float = 1.0,
                              epsilon: float = 1e-6,
                              global_clipnorm: float | None = 1.0) -> LayerwiseAdamW:
    """The BERT fine-tuning recipe: AdamW (decay 0.01, none on LayerNorm / biases), epsilon 1e-6,
    clipping at global norm 1, peak lr 3e-5 after a 10% linear warmup, then linear decay to 0.

    `total_steps=None` (steps unknown when compiling) gives a constant learning rate.
    """
    if total_steps is None:
        lr = float(learning_rate)
    else:
        lr = WarmupLinearDecay(learning_rate, total_steps, warmup_steps_for(total_steps, warmup))
    return LayerwiseAdamW(
        layer_decay=layerwise_lr_decay, num_layers=num_layers, learning_rate=lr,
        weight_decay=weight_decay, epsilon=epsilon, global_clipnorm=global_clipnorm)
