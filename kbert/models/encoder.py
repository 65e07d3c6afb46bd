"""The BERT encoder: embeddings, L post-LN transformer blocks, and the [CLS] pooler.

Example (random weights, then weights from a converter):
    >>> import numpy as np
    >>> from kbert.models import BertEncoder
    >>> encoder = BertEncoder.from_preset("tiny", vocab_size=1000)
    >>> outputs = encoder({"token_ids": np.array([[2, 17, 3, 0]]),
    ...                    "padding_mask": np.array([[1, 1, 1, 0]])})
    >>> tuple(outputs["sequence_output"].shape), tuple(outputs["pooled_output"].shape)
    ((1, 4, 128), (1, 128))
    >>> tuple(encoder.get_layer("transformer_layer_0").self_attention.qkv.kernel.shape)
    (128, 384)
"""

from __future__ import annotations

import dataclasses
from typing import Any

import keras
from keras import ops

from kbert.config import BertConfig
from kbert.layers.embeddings import BertEmbeddings
from kbert.layers.transformer import TransformerBlock

_CONFIG_FIELDS = tuple(f.name for f in dataclasses.fields(BertConfig))
INPUT_NAMES = ("token_ids", "segment_ids", "padding_mask")


@keras.saving.register_keras_serializable(package="kbert")
class BertEncoder(keras.Model):
    """Bidirectional BERT encoder (subclassed Keras model, `keras.ops` only).

    Every weight exists as soon as the model is constructed (`build()` runs in `__init__`), so
    converters can assign weights without calling the model; names follow
    docs/architecture.md ("embeddings", "transformer_layer_{i}", "pooler").

    Inputs: a dict with
        `token_ids` int [batch, seq] (required),
        `segment_ids` int [batch, seq] (default: all zeros),
        `padding_mask` int or bool [batch, seq], 1/True on real tokens (default: all ones, i.e.
            nothing is padding; pass it whenever the batch is padded).
    A bare tensor is taken as `token_ids`. Unknown keys are an error (a misspelt mask must not be
    ignored silently).

    Outputs: a dict with
        `sequence_output` float [batch, seq, H] (with `output_positions` [batch, P]: the final
            vectors at those positions only, [batch, P, H]),
        `pooled_output` float [batch, H] = tanh(dense(final [CLS] vector)),
        `hidden_states` (when `output_hidden_states=True`): list of L + 1 [batch, seq, H], the
            embeddings output then the output of every block,
        `attention_probs` (when `output_attentions=True`): list of L float32
            [batch, heads, seq, seq].
    Under a mixed policy ("mixed_bfloat16") outputs are in the compute dtype; LayerNorm and
    softmax are computed in float32.

    `output_positions` (call argument, int [batch, P]): the last block then computes only the
    rows asked for plus [CLS] (attention still reads the whole sequence), the same values as
    the full output gathered at those positions. Pre-training asks for the masked positions:
    no loss reads the other rows, so the last block's feed-forward, attention output and
    LayerNorms skip them (what that saves is measured in bench/RESULTS.md).

    Args: the `kbert.config.BertConfig` fields (validated; a bad value raises ConfigError),
        plus Keras `name`, `dtype`, `trainable`.
    """

    def __init__(
        self,
        vocab_size: int = 30522,
        hidden_size: int = 768,
        num_layers: int = 12,
        num_heads: int = 12,
        intermediate_size: int = 3072,
        max_position_embeddings: int = 512,
        type_vocab_size: int = 2,
        hidden_dropout: float = 0.1,
        attention_dropout: float = 0.1,
        layer_norm_epsilon: float = 1e-12,
        hidden_act: str = "gelu",
        initializer_range: float = 0.02,
        **kwargs,
    ):
        config = BertConfig(
            vocab_size=vocab_size, hidden_size=hidden_size, num_layers=num_layers,
            num_heads=num_heads, intermediate_size=intermediate_size,
            max_position_embeddings=max_position_embeddings, type_vocab_size=type_vocab_size,
            hidden_dropout=hidden_dropout, attention_dropout=attention_dropout,
            layer_norm_epsilon=layer_norm_epsilon, hidden_act=hidden_act,
            initializer_range=initializer_range)
        kwargs.setdefault("name", "bert_encoder")
        super().__init__(**kwargs)
        self._bert_config = config

        # === Layers ===
        policy = self.dtype_policy
        self.embeddings = BertEmbeddings(
            vocab_size=config.vocab_size,
            hidden_size=config.hidden_size,
            max_position_embeddings=config.max_position_embeddings,
            type_vocab_size=config.type_vocab_size,
            dropout=config.hidden_dropout,
            layer_norm_epsilon=config.layer_norm_epsilon,
            embeddings_initializer=self._initializer(),
            dtype=policy,
            name="embeddings",
        )
        self.transformer_layers = [
            TransformerBlock(
                hidden_size=config.hidden_size,
                num_heads=config.num_heads,
                intermediate_size=config.intermediate_size,
                hidden_dropout=config.hidden_dropout,
                attention_dropout=config.attention_dropout,
                layer_norm_epsilon=config.layer_norm_epsilon,
                hidden_act=config.hidden_act,
                kernel_initializer=self._initializer(),
                dtype=policy,
                name=f"transformer_layer_{i}",
            )
            for i in range(config.num_layers)
        ]
        self.pooler = keras.layers.Dense(
            config.hidden_size, activation="tanh", kernel_initializer=self._initializer(),
            dtype=policy, name="pooler")

        # === Weights, before any call ===
        self.build()

    def _initializer(self):
        return keras.initializers.TruncatedNormal(stddev=self._bert_config.initializer_range)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_bert_config(cls, config: BertConfig, **kwargs: Any) -> BertEncoder:
        """An encoder for `config`; `kwargs` are Keras arguments (name, dtype)."""
        return cls(**config.to_dict(), **kwargs)

    @classmethod
    def from_preset(cls, name: str, /, **overrides: Any) -> BertEncoder:
        """An official size ("tiny", "mini", "small", "medium", "base", "large"), random weights.

        `overrides` may change config fields (e.g. `vocab_size=8000`) and pass Keras arguments
        (`name`, `dtype`).
        """
        fields = {k: v for k, v in overrides.items() if k in _CONFIG_FIELDS}
        keras_kwargs = {k: v for k, v in overrides.items() if k not in _CONFIG_FIELDS}
        return cls.from_bert_config(BertConfig.preset(name, **fields), **keras_kwargs)

    @property
    def bert_config(self) -> BertConfig:
        return self._bert_config

    @property
    def token_embedding_matrix(self):
        """The [vocab, H] token table (the MLM decoder is tied to it)."""
        return self.embeddings.token_embedding_matrix

    def build(self, input_shape=None):
        """Create every weight. Shapes are not needed; `input_shape` is accepted and ignored."""
        if self.built:
            return
        self.embeddings.build()
        for block in self.transformer_layers:
            block.build()
        self.pooler.build((None, self._bert_config.hidden_size))

    # ------------------------------------------------------------------ forward
    def _unpack(self, inputs):
        if not isinstance(inputs, dict):
            inputs = {"token_ids": inputs}
        unknown = sorted(set(inputs) - set(INPUT_NAMES))
        if unknown:
            raise ValueError(
                f"{self.name}: unknown input keys {unknown}; expected {list(INPUT_NAMES)}")
        if "token_ids" not in inputs:
            raise ValueError(f"{self.name}: inputs need 'token_ids' [batch, seq]")
        token_ids = inputs["token_ids"]
        if len(token_ids.shape) != 2:
            raise ValueError(
                f"{self.name}: token_ids must be [batch, seq], got shape {tuple(token_ids.shape)}")
        segment_ids = inputs.get("segment_ids")
        padding_mask = inputs.get("padding_mask")
        return token_ids, segment_ids, padding_mask

    def call(self, inputs, training=False, output_hidden_states=False, output_attentions=False,
             output_positions=None):
        token_ids, segment_ids, padding_mask = self._unpack(inputs)
        x = self.embeddings(token_ids, segment_ids, training=training)
        last_rows = None
        if output_positions is not None:
            if output_hidden_states:
                raise ValueError(f"{self.name}: output_positions and output_hidden_states "
                                 "cannot be combined (the last block computes a few rows only)")
            # [CLS] first (for the pooler), then the rows asked for: [batch, 1 + P].
            positions = ops.cast(output_positions, "int32")
            last_rows = ops.concatenate([ops.zeros_like(positions[:, :1]), positions], axis=1)
        hidden_states = [x]
        attention_probs = []
        last = len(self.transformer_layers) - 1
        for i, block in enumerate(self.transformer_layers):
            rows = last_rows if i == last else None
            if output_attentions:
                x, probs = block(x, padding_mask=padding_mask, training=training,
                                 return_attention_scores=True, query_positions=rows)
                attention_probs.append(probs)
            else:
                x = block(x, padding_mask=padding_mask, training=training, query_positions=rows)
            hidden_states.append(x)

        pooled = self.pooler(x[:, 0, :])
        outputs = {"sequence_output": x if last_rows is None else x[:, 1:, :],
                   "pooled_output": pooled}
        if output_hidden_states:
            outputs["hidden_states"] = hidden_states
        if output_attentions:
            outputs["attention_probs"] = attention_probs
        return outputs

    # ------------------------------------------------------------------ serialization
    def get_config(self):
        """The BertConfig fields plus Keras' `name`, `trainable` and `dtype`."""
        config = {
            "name": self.name,
            "trainable": self.trainable,
            "dtype": keras.dtype_policies.serialize(self.dtype_policy),
        }
        config.update(self._bert_config.to_dict())
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if isinstance(config.get("dtype"), dict):
            config["dtype"] = keras.dtype_policies.deserialize(config["dtype"])
        return cls(**config)
