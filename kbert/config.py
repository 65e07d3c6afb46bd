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
import math
import operator
import os
from typing import Any

from kbert.errors import KbertError

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

# Upper bounds of the sizes, far above any real BERT (BERT-large: vocab 30,522, hidden 1,024,
# 24 layers, 340M parameters): a config file from elsewhere cannot make kbert try to allocate
# terabytes and die (tests/test_safe_loading.py).
MAX_SIZES = {"vocab_size": 2_000_000, "hidden_size": 65_536, "num_layers": 1_024,
             "num_heads": 1_024, "intermediate_size": 262_144,
             "max_position_embeddings": 1_048_576, "type_vocab_size": 1_024}
MAX_PARAMETERS = 10_000_000_000
MAX_JSON_BYTES = 16 * 2**20  # configuration and metadata files; real ones are a few KB


class ConfigError(KbertError, ValueError):
    """A model configuration that cannot describe a working BERT."""


def read_json_file(path: str | os.PathLike, error: type[Exception] = ConfigError,
                   max_bytes: int = MAX_JSON_BYTES, expected: type = dict) -> Any:
    """A JSON object from a configuration file, or `error` with a clear message.

    Refused: files over `max_bytes`, invalid UTF-8 or JSON (including nesting too deep for
    Python's parser, which would otherwise raise RecursionError), anything but an object (or
    but a list, with `expected=list`: sentence-transformers' modules.json).
    """
    path = os.fspath(path)
    try:
        size = os.path.getsize(path)
        if size > max_bytes:
            raise error(f"{path} is {size:,} bytes; a configuration file may be at most "
                        f"{max_bytes:,}")
        with open(path, "rb") as f:
            raw = f.read(max_bytes + 1)
    except OSError as e:
        raise error(f"{path} cannot be read: {e.strerror or e}") from None
    try:
        values = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise error(f"{path}: not UTF-8 ({e.reason} at byte {e.start})") from None
    except json.JSONDecodeError as e:
        raise error(f"{path}: not valid JSON ({e})") from None
    except RecursionError:
        raise error(f"{path}: JSON nested too deeply") from None
    if not isinstance(values, expected):
        what = "object" if expected is dict else expected.__name__
        raise error(f"{path}: expected a JSON {what}, got {type(values).__name__}")
    return values


def check_known_keys(values, known, noun: str = "config keys",
                     error: type[Exception] = ConfigError, where: str = "") -> None:
    """Refuse the keys of `values` outside `known`, in one line naming them and the known ones
    (`where`, e.g. "path: ", starts the message). BertConfig, PretrainConfig and
    `kbert finetune --config` share this rule."""
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise error(f"{where}unknown {noun} {unknown}; known keys: {sorted(known)}")


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
    def preset(cls, name: str, **overrides: Any) -> BertConfig:
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
    def from_dict(cls, values: dict[str, Any]) -> BertConfig:
        check_known_keys(values, {f.name for f in dataclasses.fields(cls)})
        return cls(**values)

    @classmethod
    def from_json(cls, path: str | os.PathLike) -> BertConfig:
        return cls.from_dict(read_json_file(path, ConfigError))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self, path: str | os.PathLike) -> None:
        with open(path, "w", encoding="utf-8") as f:
            json.dump(self.to_dict(), f, indent=2, sort_keys=True)
            f.write("\n")

    def replace(self, **changes: Any) -> BertConfig:
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
            if value > MAX_SIZES[name]:
                raise ConfigError(f"{name} must be at most {MAX_SIZES[name]:,}, got {value:,}")
        if self.num_parameters() > MAX_PARAMETERS:
            raise ConfigError(f"this configuration has {self.num_parameters():,} parameters, "
                              f"more than kbert accepts ({MAX_PARAMETERS:,})")
        if self.hidden_size % self.num_heads:
            raise ConfigError(
                f"hidden_size ({self.hidden_size}) must be divisible by num_heads "
                f"({self.num_heads})")
        for name in ("hidden_dropout", "attention_dropout"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
                raise ConfigError(f"{name} must be in [0, 1), got {value!r}")
        if (not isinstance(self.layer_norm_epsilon, (int, float))
                or not 0 < self.layer_norm_epsilon < math.inf):
            raise ConfigError(f"layer_norm_epsilon must be > 0 and finite, got "
                              f"{self.layer_norm_epsilon!r}")
        if self.hidden_act not in ACTIVATIONS:
            raise ConfigError(f"hidden_act must be one of {ACTIVATIONS}, got {self.hidden_act!r}")
        if (not isinstance(self.initializer_range, (int, float))
                or not 0 < self.initializer_range < math.inf):
            raise ConfigError(f"initializer_range must be > 0 and finite, got "
                              f"{self.initializer_range!r}")

    def num_parameters(self, pretraining_heads: bool = False) -> int:
        """Trainable weights of a BERT of these sizes, computed from the sizes alone.

        Encoder: embeddings V*H + P*H + T*H + 2H (LayerNorm); per block 4H^2 + 2HI + 9H + I
        (QKV and output projections, two LayerNorms, the feed-forward pair); pooler H^2 + H.
        `pretraining_heads` adds the MLM transform H^2 + H + 2H and output bias V (its decoder
        is the tied token table) and NSP 2H + 2. Equal to `count_params()` of BertEncoder /
        BertPretrainer (tests/test_safe_loading.py, tests/test_distribute.py check it).
        """
        h, i = self.hidden_size, self.intermediate_size
        embeddings = (self.vocab_size + self.max_position_embeddings
                      + self.type_vocab_size) * h + 2 * h
        block = 4 * h * h + 2 * h * i + 9 * h + i
        count = embeddings + self.num_layers * block + h * h + h
        if pretraining_heads:
            count += h * h + 3 * h + self.vocab_size + 2 * h + 2
        return count

    def check_vocab(self, vocab_size: int) -> None:
        """Refuse a tokenizer whose vocabulary does not fit this model.

        An id >= vocab_size indexes past the embedding table (NaN or garbage on some backends),
        so a mismatch is an error, not a warning.
        """
        if vocab_size != self.vocab_size:
            raise ConfigError(
                f"the vocabulary has {vocab_size} entries but the model expects "
                f"vocab_size={self.vocab_size}; use the vocab.txt the model was trained with")


class MaxLengthError(ConfigError):
    """A sequence length outside what a model takes; `value`, `limit` and `flag` say which."""

    def __init__(self, value, limit: int, flag: str = "--max-length"):
        self.value, self.limit, self.flag = value, limit, flag
        super().__init__(f"{flag} {value}: the model takes 2 to {limit} tokens (its "
                         f"max_position_embeddings)")

    def for_flag(self, flag: str) -> MaxLengthError:
        """The same error, naming another option (a command's flag for a library argument)."""
        return MaxLengthError(self.value, self.limit, flag)


def check_max_length(value, limit: int, flag: str = "--max-length") -> int:
    """`value` as an int if 2 <= value <= limit (the model's max_position_embeddings), else
    MaxLengthError: the one rule and message of every `--max-length` ([CLS] and [SEP] counted).

    >>> check_max_length(128, 512)
    128
    >>> check_max_length(100000, 512)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    kbert.config.MaxLengthError: --max-length 100000: the model takes 2 to 512 tokens ...
    """
    try:
        number = operator.index(value)  # ints and numpy integers, not floats or strings
    except TypeError:
        number = None
    if isinstance(value, bool) or number is None or not 2 <= number <= limit:
        raise MaxLengthError(value, limit, flag)
    return number
