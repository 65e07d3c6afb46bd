"""Model configuration: the sizes of a BERT, its presets, and their validation.

Pure Python (no TensorFlow, no Keras), so every other module can import it cheaply.

Example:
    >>> from kbert.config import BertConfig
    >>> cfg = BertConfig.preset("mini", vocab_size=8000)
    >>> cfg.hidden_size, cfg.num_layers, cfg.num_heads
    (256, 4, 4)
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

# The official BERT sizes (google-research/bert "BERT miniatures" plus base and large):
# name -> (num_layers, hidden_size). Heads = hidden / 64, intermediate = 4 * hidden.
PRESETS: dict[str, tuple[int, int]] = {
    "tiny": (2, 128),
    "mini": (4, 256),
    "small": (4, 512),
    "medium": (8, 512),
    "base": (12, 768),
    "large": (24, 1024),
}

ACTIVATIONS = ("gelu", "gelu_tanh", "relu")


class ConfigError(ValueError):
    """A model configuration that cannot describe a working BERT."""


@dataclasses.dataclass(frozen=True)
class BertConfig:
    """Sizes and hyper-parameters of a BERT encoder.

    Attributes:
        vocab_size: number of WordPiece ids; must equal the tokenizer's vocabulary size.
        hidden_size: H, width of every token vector.
        num_layers: L, number of transformer blocks.
        num_heads: A, attention heads; H must be divisible by A.
        intermediate_size: width of the feed-forward layer (4H in the official sizes).
        max_position_embeddings: longest sequence the learned positions cover.
        type_vocab_size: number of segment ids (2: sentence A and B).
        hidden_dropout: dropout on embeddings, attention output and feed-forward output.
        attention_dropout: dropout on attention probabilities.
        layer_norm_epsilon: LayerNorm epsilon (1e-12 as in the reference BERT).
        hidden_act: "gelu" (exact erf form, as transformers' configs mean it),
            "gelu_tanh" (the tanh approximation of the original TF code) or "relu".
        initializer_range: stddev of the truncated-normal weight initializer.
    """

    vocab_size: int = 30522
    hidden_size: int = 768
    num_layers: int = 12
    num_heads: int = 12
    intermediate_size: int = 3072
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    hidden_dropout: float = 0.1
    attention_dropout: float = 0.1
    layer_norm_epsilon: float = 1e-12
    hidden_act: str = "gelu"
    initializer_range: float = 0.02

    def __post_init__(self):
        self.validate()

    # ------------------------------------------------------------------ construction
    @classmethod
    def preset(cls, name: str, **overrides: Any) -> "BertConfig":
        """An official size by name ("tiny", "mini", "small", "medium", "base", "large")."""
        if name not in PRESETS:
            raise ConfigError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
        layers, hidden = PRESETS[name]
        values = dict(
            num_layers=layers,
            hidden_size=hidden,
            num_heads=max(1, hidden // 64),
            intermediate_size=4 * hidden,
        )
        values.update(overrides)
        return cls(**values)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "BertConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown config keys {unknown}; known keys are {sorted(known)}")
        return cls(**values)

    @classmethod
    def from_json(cls, path: str | os.PathLike) -> "BertConfig":
        with open(path, encoding="utf-8") as f:
            try:
                values = json.load(f)
            except json.JSONDecodeError as e:
                raise ConfigError(f"{path}: not valid JSON ({e})") from None
        if not isinstance(values, dict):
            raise ConfigError(f"{path}: expected a JSON object, got {type(values).__name__}")
        return cls.from_dict(values)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self, path: str | os.PathLike) -> None:
        with open(path, "w", encoding="utf-8") as f:
            json.dump(self.to_dict(), f, indent=2, sort_keys=True)
            f.write("\n")

    def replace(self, **changes: Any) -> "BertConfig":
        return dataclasses.replace(self, **changes)

    # ------------------------------------------------------------------ checks
    @property
    def head_size(self) -> int:
        return self.hidden_size // self.num_heads

    def validate(self) -> None:
        """Raise ConfigError naming the first inconsistent field."""
        for name in ("vocab_size", "hidden_size", "num_layers", "num_heads",
                     "intermediate_size", "max_position_embeddings", "type_vocab_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        if self.hidden_size % self.num_heads:
            raise ConfigError(
                f"hidden_size ({self.hidden_size}) must be divisible by num_heads "
                f"({self.num_heads})")
        for name in ("hidden_dropout", "attention_dropout"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
                raise ConfigError(f"{name} must be in [0, 1), got {value!r}")
        if not isinstance(self.layer_norm_epsilon, (int, float)) or not self.layer_norm_epsilon > 0:
            raise ConfigError(f"layer_norm_epsilon must be > 0, got {self.layer_norm_epsilon!r}")
        if self.hidden_act not in ACTIVATIONS:
            raise ConfigError(f"hidden_act must be one of {ACTIVATIONS}, got {self.hidden_act!r}")
        if not isinstance(self.initializer_range, (int, float)) or self.initializer_range <= 0:
            raise ConfigError(f"initializer_range must be > 0, got {self.initializer_range!r}")

    def check_vocab(self, vocab_size: int) -> None:
        """Refuse a tokenizer whose vocabulary does not fit this model.

        An id >= vocab_size indexes past the embedding table (NaN or garbage on some backends),
        so a mismatch is an error, not a warning.
        """
        if vocab_size != self.vocab_size:
            raise ConfigError(
                f"the vocabulary has {vocab_size} entries but the model expects "
                f"vocab_size={self.vocab_size}; use the vocab.txt the model was trained with")
