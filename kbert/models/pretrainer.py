"""The pre-training model: a BERT encoder with the masked-LM and next-sentence heads and losses.

Example:
    >>> import numpy as np
    >>> from kbert.models.pretrainer import BertPretrainer
    >>> model = BertPretrainer.from_preset("tiny", vocab_size=100, max_position_embeddings=16)
    >>> x = {"token_ids": np.array([[2, 7, 4, 3, 9, 3]]),
    ...      "segment_ids": np.array([[0, 0, 0, 0, 1, 1]]),
    ...      "padding_mask": np.ones((1, 6), "int32"), "masked_positions": np.array([[2, 0]])}
    >>> out = model(x)
    >>> tuple(out["mlm_logits"].shape), tuple(out["nsp_logits"].shape)
    ((1, 2, 100), (1, 2))

Training data: `fit` takes batches `(x, y)` (or `(x, y, sample_weight)`) of dicts holding the
tensors of docs/architecture.md. `x` needs token_ids, segment_ids, padding_mask, masked_positions;
the labels masked_ids, masked_weights and next_sentence_labels are looked up in `y`, then in
`sample_weight`, then in `x`, so any of these layouts works.
"""

from __future__ import annotations

import sys
from typing import Any

import keras
from keras import ops

from kbert.config import BertConfig
from kbert.layers.heads import MaskedLMHead, NextSentenceHead
from kbert.models.encoder import INPUT_NAMES, BertEncoder

LABEL_NAMES = ("masked_ids", "masked_weights", "next_sentence_labels")


@keras.saving.register_keras_serializable(package="kbert")
class Perplexity(keras.metrics.Mean):
    """exp of the (token-weighted) mean cross entropy it is fed."""

    def result(self):
        return ops.exp(super().result())


def _global_sum(value):
    """Sum of `value` over the replicas of a TensorFlow distribution strategy.

    Why: each replica sees a different number of masked tokens, and the MLM loss must be divided
    by the GLOBAL count. Keras (TF backend) sums the replicas' gradients without rescaling a
    loss returned by an overridden `compute_loss`, so a replica returns
    `its_sum / all_replicas_count`: the summed gradient is exactly that of the global mean.
    TensorFlow is not imported here: with the TF backend it is already loaded, so it is taken
    from sys.modules. On JAX (keras.distribution) arrays are global, so the plain sum is already
    the global one; on a single device nothing changes.
    """
    if keras.backend.backend() != "tensorflow":
        return value
    tf = sys.modules.get("tensorflow")
    context = tf.distribute.get_replica_context() if tf is not None else None
    if context is None or context.num_replicas_in_sync == 1:
        return value
    return context.all_reduce(tf.distribute.ReduceOp.SUM, value)


@keras.saving.register_keras_serializable(package="kbert")
class BertPretrainer(keras.Model):
    """BERT pre-training: encoder -> MaskedLMHead (tied decoder) + NextSentenceHead.

    Inputs (dict): `token_ids`, `segment_ids`, `padding_mask` int [B, S] and
    `masked_positions` int [B, P]; any other key (labels) is ignored by `call`.
    Outputs (dict): `mlm_logits` float32 [B, P, V], `nsp_logits` float32 [B, 2].

    Loss (`compute_loss`, the same on every backend):
        mlm = sum_i w_i * CE(masked_ids_i, mlm_logits_i) / sum_i w_i  (w = masked_weights; the
              divisor is the global count under a distribution strategy, see `_global_sum`),
        nsp = mean over the batch of CE(next_sentence_labels, nsp_logits),
        loss = mlm + nsp (+ any `self.losses`).
    Metrics: mlm_loss, mlm_accuracy (weighted by masked_weights), mlm_perplexity, nsp_loss,
    nsp_accuracy; they appear under these names in the progress bar and `History`.

    Sub-layers: "encoder" (the encoder passed in, renamed "encoder"), "mlm_head", "nsp_head".

    Args:
        encoder: a `BertEncoder`.
    """

    def __init__(self, encoder: BertEncoder, **kwargs):
        kwargs.setdefault("name", "bert_pretrainer")
        super().__init__(**kwargs)
        config = encoder.bert_config
        encoder.name = "encoder"

        # === Layers ===
        self.encoder = encoder
        self.mlm_head = MaskedLMHead(
            vocab_size=config.vocab_size, token_embedding=encoder.embeddings,
            activation=config.hidden_act, layer_norm_epsilon=config.layer_norm_epsilon,
            initializer_range=config.initializer_range, dtype=encoder.dtype_policy,
            name="mlm_head")
        self.nsp_head = NextSentenceHead(initializer_range=config.initializer_range,
                                         dtype=encoder.dtype_policy, name="nsp_head")

        # === Metrics (updated in compute_loss, so they work in fit and evaluate alike) ===
        self.mlm_loss_metric = keras.metrics.Mean(name="mlm_loss")
        self.mlm_accuracy_metric = keras.metrics.SparseCategoricalAccuracy(name="mlm_accuracy")
        self.mlm_perplexity_metric = Perplexity(name="mlm_perplexity")
        self.nsp_loss_metric = keras.metrics.Mean(name="nsp_loss")
        self.nsp_accuracy_metric = keras.metrics.SparseCategoricalAccuracy(name="nsp_accuracy")

        # === Weights, before any call ===
        self.build()

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_bert_config(cls, config: BertConfig, **kwargs: Any) -> BertPretrainer:
        """A randomly initialised pre-trainer for `config` (Keras kwargs: name, dtype)."""
        encoder_kwargs = {k: v for k, v in kwargs.items() if k == "dtype"}
        return cls(BertEncoder.from_bert_config(config, name="encoder", **encoder_kwargs),
                   **kwargs)

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> BertPretrainer:
        """An official size with config overrides, e.g. `from_preset("mini", vocab_size=8000)`."""
        keras_kwargs = {k: overrides.pop(k) for k in ("name", "dtype") if k in overrides}
        return cls.from_bert_config(BertConfig.preset(name, **overrides), **keras_kwargs)

    @property
    def bert_config(self) -> BertConfig:
        return self.encoder.bert_config

    def build(self, input_shape=None):
        hidden = self.bert_config.hidden_size
        self.mlm_head.build((None, None, hidden), (None, None))
        self.nsp_head.build((None, hidden))

    # ------------------------------------------------------------------ forward
    def call(self, inputs, training=False):
        if not isinstance(inputs, dict) or "masked_positions" not in inputs:
            raise ValueError(
                f"{self.name}: inputs must be a dict with {list(INPUT_NAMES)} and "
                "'masked_positions' [batch, max_predictions]")
        features = {k: inputs[k] for k in INPUT_NAMES if k in inputs}
        positions = inputs["masked_positions"]
        # The last block computes only the masked rows and [CLS]: nothing else reaches a loss.
        outputs = self.encoder(features, training=training, output_positions=positions)
        return {
            "mlm_logits": self.mlm_head(outputs["sequence_output"]),
            "nsp_logits": self.nsp_head(outputs["pooled_output"]),
        }

    # ------------------------------------------------------------------ loss and metrics
    @staticmethod
    def _labels(x, y, sample_weight):
        sources = [s for s in (y, sample_weight, x) if isinstance(s, dict)]
        labels = {}
        for name in LABEL_NAMES:
            found = next((s[name] for s in sources if name in s), None)
            if found is None:
                raise ValueError(
                    f"BertPretrainer needs {name!r} in the labels (y) or the inputs (x); "
                    f"got y keys {sorted(y) if isinstance(y, dict) else type(y).__name__}")
            labels[name] = found
        return labels

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        labels = self._labels(x, y, sample_weight)
        mlm_logits, nsp_logits = y_pred["mlm_logits"], y_pred["nsp_logits"]
        masked_ids = ops.cast(labels["masked_ids"], "int32")
        weights = ops.cast(labels["masked_weights"], "float32")
        nsp_labels = ops.cast(ops.reshape(labels["next_sentence_labels"], (-1,)), "int32")

        token_ce = ops.sparse_categorical_crossentropy(masked_ids, mlm_logits, from_logits=True)
        mlm_sum = ops.sum(token_ce * weights)
        mlm_count = ops.sum(weights)
        nsp_ce = ops.sparse_categorical_crossentropy(nsp_labels, nsp_logits, from_logits=True)
        nsp_sum = ops.sum(nsp_ce)
        nsp_count = ops.cast(ops.shape(nsp_ce)[0], "float32")

        mlm_loss = mlm_sum / ops.maximum(_global_sum(mlm_count), 1.0)
        nsp_loss = nsp_sum / ops.maximum(_global_sum(nsp_count), 1.0)
        total = mlm_loss + nsp_loss
        for extra in self.losses:
            total = total + ops.cast(ops.sum(extra), "float32")

        # Metrics use this replica's own means, weighted by their counts (Keras syncs them).
        local_mlm = mlm_sum / ops.maximum(mlm_count, 1.0)
        self.mlm_loss_metric.update_state(local_mlm, sample_weight=mlm_count)
        self.mlm_perplexity_metric.update_state(local_mlm, sample_weight=mlm_count)
        self.mlm_accuracy_metric.update_state(masked_ids, mlm_logits, sample_weight=weights)
        self.nsp_loss_metric.update_state(nsp_sum / ops.maximum(nsp_count, 1.0),
                                          sample_weight=nsp_count)
        self.nsp_accuracy_metric.update_state(nsp_labels, nsp_logits)
        return total

    # ------------------------------------------------------------------ serialization
    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "encoder": keras.saving.serialize_keras_object(self.encoder),
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["encoder"] = keras.saving.deserialize_keras_object(config["encoder"])
        return cls(**config)
