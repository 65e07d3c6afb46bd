"""Pretrained weights in and out: transformers and Google BERT checkpoints, and kbert's own format.

A kbert model directory (what `kbert convert --output` and `save_kbert_model` write):

    encoder.keras          the BertEncoder (Keras archive: config + weights)
    config.json            its BertConfig (`BertConfig.from_json` reads it; informational)
    vocab.txt              the WordPiece vocabulary, one token per line
    tokenizer_config.json  {"do_lower_case": bool}

`kbert.load(path)` (kbert/loading.py, the one loader) reads all of them back.

Example:
    >>> import kbert                                                        # doctest: +SKIP
    >>> encoder, tokenizer = kbert.load("path/to/all-MiniLM-L6-v2")          # doctest: +SKIP
    >>> from kbert.convert import save_kbert_model                          # doctest: +SKIP
    >>> save_kbert_model(encoder, tokenizer, "runs/minilm")                  # doctest: +SKIP
"""

from __future__ import annotations

import json
import os

import keras

from kbert.convert.google_ckpt import load_google_checkpoint
from kbert.convert.safe_pickle import UnsafePickleError, load_pytorch_bin
from kbert.convert.transformers_ckpt import (
    CheckpointError,
    load_transformers_checkpoint,
    save_transformers_checkpoint,
    transformers_weights_to_encoder,
)

ENCODER_FILE = "encoder.keras"

__all__ = [
    "CheckpointError", "UnsafePickleError", "load_google_checkpoint",
    "load_pytorch_bin", "load_transformers_checkpoint", "save_kbert_model",
    "save_transformers_checkpoint", "transformers_weights_to_encoder",
]


def save_kbert_model(encoder, tokenizer, directory: str | os.PathLike) -> str:
    """Write a kbert model directory (see the module docstring); returns the directory."""
    directory = os.fspath(directory)
    if len(tokenizer.vocab) != encoder.bert_config.vocab_size:
        raise CheckpointError(f"the tokenizer has {len(tokenizer.vocab)} entries but the "
                              f"encoder's vocab_size is {encoder.bert_config.vocab_size}")
    os.makedirs(directory, exist_ok=True)
    keras.saving.save_model(encoder, os.path.join(directory, ENCODER_FILE))
    encoder.bert_config.to_json(os.path.join(directory, "config.json"))
    tokenizer.vocab.save(directory)
    with open(os.path.join(directory, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump({"do_lower_case": bool(tokenizer.lower_case)}, f, indent=2)
        f.write("\n")
    return directory
