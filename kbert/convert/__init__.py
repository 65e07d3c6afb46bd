"""Pretrained weights in and out: transformers and Google BERT checkpoints, keras-hub presets
(`keras_hub_preset.py`), and kbert's own format.

A kbert model directory (what `kbert convert --output` and `save_kbert_model` write):

    encoder.keras          the BertEncoder (Keras archive: config + weights)
    pretrainer.keras       only for a whole checkpoint: the BertPretrainer (encoder + MLM and
                           NSP heads), as a `kbert pretrain` run writes it
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
from kbert.convert.keras_hub_preset import (
    PresetExportWarning,
    load_keras_hub_preset,
    save_keras_hub_preset,
)
from kbert.convert.safe_pickle import UnsafePickleError, load_pytorch_bin
from kbert.convert.transformers_ckpt import (
    CheckpointError,
    HeadWeightsWarning,
    is_pretrainer,
    load_transformers_checkpoint,
    save_transformers_checkpoint,
    transformers_weights_to_encoder,
)

ENCODER_FILE = "encoder.keras"
PRETRAINER_FILE = "pretrainer.keras"

__all__ = [
    "CheckpointError", "HeadWeightsWarning", "PresetExportWarning", "UnsafePickleError",
    "load_google_checkpoint", "load_keras_hub_preset", "load_pytorch_bin",
    "load_transformers_checkpoint", "save_keras_hub_preset", "save_kbert_model",
    "save_transformers_checkpoint", "transformers_weights_to_encoder",
]


def save_kbert_model(model, tokenizer, directory: str | os.PathLike) -> str:
    """Write a kbert model directory (see the module docstring); returns the directory.

    `model` is a BertEncoder, or a BertPretrainer: then pretrainer.keras is written too, and
    `kbert.load(directory)` gives the pretrainer back (its `.encoder` for everything else).
    """

    directory = os.fspath(directory)
    encoder = model.encoder if is_pretrainer(model) else model
    if len(tokenizer.vocab) != encoder.bert_config.vocab_size:
        raise CheckpointError(f"the tokenizer has {len(tokenizer.vocab)} entries but the "
                              f"encoder's vocab_size is {encoder.bert_config.vocab_size}")
    os.makedirs(directory, exist_ok=True)
    keras.saving.save_model(encoder, os.path.join(directory, ENCODER_FILE))
    if is_pretrainer(model):
        keras.saving.save_model(model, os.path.join(directory, PRETRAINER_FILE))
    encoder.bert_config.to_json(os.path.join(directory, "config.json"))
    tokenizer.vocab.save(directory)
    with open(os.path.join(directory, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump({"do_lower_case": bool(tokenizer.lower_case)}, f, indent=2)
        f.write("\n")
    return directory
