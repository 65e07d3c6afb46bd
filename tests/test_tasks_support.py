"""Shared tiny fixtures of the kbert.tasks tests (imported by tests/test_tasks_*.py).

A hand-written uncased vocabulary with multi-piece and accent-stripped words ("zürich" ->
"zur" "##ich", "josé" -> "jose"), and a 2-layer, hidden-16 encoder: every head test builds on
these in milliseconds.
"""

from __future__ import annotations

import functools

import keras
import numpy as np

from kbert.models.encoder import BertEncoder
from kbert.tokenization.tokenizer import BertTokenizer
from kbert.tokenization.vocab import Vocabulary

WORDS = [
    "the", "film", "movie", "good", "great", "bad", "awful", "is", "was", "and", "not",
    "fun", "dull", "lives", "in", "near", "jose", "sao", "paulo", "zur", "##ich", "cafe",
    "where", "does", "live", "who", "with", "his", "cat", "city", "big", "very", "un",
    "##believ", "##able", "story", "it", "rain", "##ing", "she", "opened", "umbrella",
    "because", "soup", "cold", ".", ",", "?", "!", "-",
]


def vocab_tokens() -> list[str]:
    letters = [chr(c) for c in range(ord("a"), ord("z") + 1)]
    return (["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[unused0]"] + WORDS + letters
            + ["##" + c for c in letters])


@functools.cache
def tokenizer():
    """One shared tokenizer (building one and tracing it costs seconds on a loaded machine)."""
    return BertTokenizer(Vocabulary(vocab_tokens()), lower_case=True)


def encoder(seed: int = 0, **overrides):
    keras.utils.set_random_seed(seed)
    config = dict(vocab_size=len(vocab_tokens()), hidden_size=16, num_layers=2, num_heads=2,
                  intermediate_size=32, max_position_embeddings=64)
    config.update(overrides)
    return BertEncoder(**config)


def with_tokenizer(model, max_length: int = 32):
    model.set_tokenizer(tokenizer(), max_length)
    return model


def features(batch: int = 2, seq: int = 8, choices: int | None = None, seed: int = 0):
    rng = np.random.default_rng(seed)
    shape = (batch, seq) if choices is None else (batch, choices, seq)
    ids = rng.integers(5, len(vocab_tokens()), shape).astype("int32")
    mask = np.ones(shape, "int32")
    mask[..., -2:] = 0
    ids[..., -2:] = 0
    ids[..., 0] = 2
    return {"token_ids": ids, "segment_ids": np.zeros(shape, "int32"), "padding_mask": mask}
