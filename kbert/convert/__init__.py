"""Pretrained weights in and out: transformers and Google BERT checkpoints, and kbert's own format.

A kbert model directory (what `kbert convert --output` and `save_kbert_model` write):

    encoder.keras          the BertEncoder (Keras archive: config + weights)
    config.json            its BertConfig (`BertConfig.from_json` reads it; informational)
    vocab.txt              the WordPiece vocabulary, one token per line
    tokenizer_config.json  {"do_lower_case": bool}

`load_pretrained(path)` recognises all three layouts: a kbert directory (encoder.keras), a
transformers directory (config.json + model.safetensors / pytorch_model.bin) and a Google release
(bert_config.json + bert_model.ckpt.*).

Example:
    >>> from kbert.convert import load_pretrained, save_kbert_model          # doctest: +SKIP
    >>> encoder, tokenizer = load_pretrained("path/to/all-MiniLM-L6-v2")     # doctest: +SKIP
    >>> save_kbert_model(encoder, tokenizer, "runs/minilm")                  # doctest: +SKIP
"""

from __future__ import annotations

import json
import os

from kbert.convert.google_ckpt import load_google_checkpoint
from kbert.convert.safe_pickle import UnsafePickleError, load_pytorch_bin, save_pytorch_bin
from kbert.convert.transformers_ckpt import (
    CheckpointError, load_transformers_checkpoint, save_transformers_checkpoint,
    transformers_weights_to_encoder)

ENCODER_FILE = "encoder.keras"

__all__ = [
    "CheckpointError", "UnsafePickleError", "load_google_checkpoint", "load_kbert_model",
    "load_pretrained", "load_pytorch_bin", "load_transformers_checkpoint", "save_kbert_model",
    "save_pytorch_bin", "save_transformers_checkpoint", "transformers_weights_to_encoder",
]


def save_kbert_model(encoder, tokenizer, directory: str | os.PathLike) -> str:
    """Write a kbert model directory (see the module docstring); returns the directory."""
    import keras

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


def load_kbert_model(directory: str | os.PathLike):
    """A kbert model directory -> (BertEncoder, BertTokenizer); encoder.keras is loaded in
    Keras' safe mode (`kbert.convert.keras_files`)."""
    from kbert.convert.keras_files import load_keras_file
    from kbert.convert.transformers_ckpt import _tokenizer_for
    from kbert.models.encoder import BertEncoder

    directory = os.fspath(directory)
    path = os.path.join(directory, ENCODER_FILE)
    if not os.path.isfile(path):
        raise CheckpointError(f"{path} does not exist")
    encoder = load_keras_file(path, custom_objects={"BertEncoder": BertEncoder})
    if not isinstance(encoder, BertEncoder):
        raise CheckpointError(f"{path} holds a {type(encoder).__name__}, not a BertEncoder")
    return encoder, _tokenizer_for(directory, encoder.bert_config)


def load_pretrained(path: str | os.PathLike):
    """Any supported checkpoint (kbert, transformers, Google) -> (BertEncoder, BertTokenizer)."""
    path = os.fspath(path)
    if os.path.isdir(path):
        if os.path.isfile(os.path.join(path, ENCODER_FILE)):
            return load_kbert_model(path)
        if os.path.isfile(os.path.join(path, "bert_config.json")):
            return load_google_checkpoint(path)
        if os.path.isfile(os.path.join(path, "config.json")):
            return load_transformers_checkpoint(path)
        raise CheckpointError(
            f"{path}: not a model directory (expected {ENCODER_FILE}, config.json + weights, or "
            f"bert_config.json + bert_model.ckpt)")
    if os.path.isfile(path + ".index"):
        return load_google_checkpoint(path)
    raise CheckpointError(f"{path} does not exist or is not a model directory")
