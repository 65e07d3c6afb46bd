"""Original Google BERT TF checkpoints (google-research/bert) -> `BertEncoder`.

A release directory holds `bert_config.json`, `bert_model.ckpt.{index,data-*}` and `vocab.txt`.
Variables are read with `tf.train.load_checkpoint` (no graph is rebuilt). Names:

    bert/embeddings/{word,position,token_type}_embeddings      [rows, H]
    bert/embeddings/LayerNorm/{gamma,beta}
    bert/encoder/layer_{i}/attention/self/{query,key,value}/{kernel,bias}
    bert/encoder/layer_{i}/attention/output/dense/{kernel,bias}
    bert/encoder/layer_{i}/attention/output/LayerNorm/{gamma,beta}
    bert/encoder/layer_{i}/{intermediate,output}/dense/{kernel,bias}
    bert/encoder/layer_{i}/output/LayerNorm/{gamma,beta}
    bert/pooler/dense/{kernel,bias}

Kernels are already [in, out]. Pre-training heads (`cls/...`) are skipped with a warning;
optimizer slots (`.../adam_m`, `.../adam_v`) and `global_step` are ignored.

Activation: the original code's `gelu` is the tanh approximation, so `"hidden_act": "gelu"` in a
bert_config.json maps to kbert's "gelu_tanh" (transformers' converter maps it to the exact erf
form instead; the two differ by < 1e-3 per activation). Pass `hidden_act="gelu"` to override.

Example:
    >>> encoder, tokenizer = load_google_checkpoint("uncased_L-2_H-128_A-2/")  # doctest: +SKIP
"""

from __future__ import annotations

import glob
import os
import re
import warnings

import numpy as np

from kbert.convert.transformers_ckpt import (
    CheckpointError,
    assign_weights,
    config_from_transformers,
    expected_shapes,
    read_json,
    tokenizer_for_directory,
)
from kbert.models.encoder import BertEncoder

CONFIG_NAMES = ("bert_config.json", "config.json")
_OPTIMIZER_SLOT = re.compile(r"(/adam_[mv]|/Adam(_1)?|/Momentum)$")
_IGNORED = ("global_step", "bad_steps", "good_steps", "loss_scale")


def google_to_transformers_key(name: str) -> str | None:
    """'bert/encoder/layer_3/attention/self/query/kernel' ->
    'encoder.layer.3.attention.self.query.weight'.

    None for names outside `bert/` (heads, optimizer state).
    """
    if not name.startswith("bert/"):
        return None
    parts = name[len("bert/"):].split("/")
    out = []
    for part in parts:
        match = re.fullmatch(r"layer_(\d+)", part)
        if match:
            out += ["layer", match.group(1)]
        else:
            out.append({"kernel": "weight", "gamma": "weight", "beta": "bias"}.get(part, part))
    if out[0] == "embeddings" and out[-1].endswith("_embeddings"):
        out.append("weight")
    return ".".join(out)


def transformers_to_google_key(key: str) -> str:
    """The inverse of `google_to_transformers_key` (for error messages and for writing)."""
    parts = key.split(".")
    out = ["bert"]
    i = 0
    while i < len(parts):
        part = parts[i]
        if part == "layer" and i + 1 < len(parts) and parts[i + 1].isdigit():
            out.append(f"layer_{parts[i + 1]}")
            i += 2
            continue
        if i == len(parts) - 1:
            previous = parts[i - 1]
            if previous == "LayerNorm":
                part = {"weight": "gamma", "bias": "beta"}[part]
            elif previous.endswith("_embeddings"):
                break
            elif part == "weight":
                part = "kernel"
        out.append(part)
        i += 1
    return "/".join(out)


def _is_kernel(key: str) -> bool:
    return key.endswith(".weight") and "LayerNorm" not in key and "_embeddings" not in key


def find_checkpoint(path: str) -> tuple[str, str]:
    """A directory or checkpoint prefix -> (checkpoint prefix, directory)."""
    # deferred: TensorFlow, not needed on JAX
    import tensorflow as tf  # noqa: PLC0415

    path = os.fspath(path)
    if os.path.isdir(path):
        prefix = tf.train.latest_checkpoint(path)
        if prefix is None:
            indexes = sorted(glob.glob(os.path.join(path, "*.ckpt*.index")))
            if len(indexes) != 1:
                raise CheckpointError(
                    f"{path}: expected one TF checkpoint (*.ckpt.index), found {len(indexes)}")
            prefix = indexes[0][: -len(".index")]
        return prefix, path
    if os.path.isfile(path + ".index"):
        return path, os.path.dirname(path) or "."
    if path.endswith(".index") and os.path.isfile(path):
        return path[: -len(".index")], os.path.dirname(path) or "."
    raise CheckpointError(f"{path}: neither a directory nor a checkpoint prefix (no {path}.index)")


def read_google_weights(prefix: str) -> dict[str, np.ndarray]:
    """All variables of a TF checkpoint as {name: array} (optimizer slots dropped)."""
    # deferred: TensorFlow, not needed on JAX
    import tensorflow as tf  # noqa: PLC0415

    try:
        reader = tf.train.load_checkpoint(prefix)
    except (tf.errors.OpError, ValueError) as e:
        raise CheckpointError(f"{prefix}: cannot read the TF checkpoint ({e})") from None
    names = sorted(reader.get_variable_to_shape_map())
    return {n: reader.get_tensor(n) for n in names
            if not _OPTIMIZER_SLOT.search(n) and n not in _IGNORED}


def google_weights_to_encoder(variables: dict[str, np.ndarray], encoder,
                              source: str = "checkpoint") -> None:
    """Assign Google-named variables ({name: array}) to `encoder`, in place (all checked first)."""
    weights, heads, unexpected = {}, [], []
    for name, value in variables.items():
        key = google_to_transformers_key(name)
        if key is None:
            (heads if name.startswith("cls/") else unexpected).append(name)
            continue
        weights[key] = (name, value)
    if unexpected:
        raise CheckpointError(f"{source}: unexpected variables {sorted(unexpected)[:10]}")
    for key, expected in expected_shapes(encoder.bert_config).items():
        if key in weights:
            name, value = weights[key]
            want = expected[::-1] if _is_kernel(key) else expected
            if tuple(np.shape(value)) != want:
                raise CheckpointError(f"{source}: {name} has shape {tuple(np.shape(value))}, but "
                                      f"the config implies {want}")
    converted = {k: (n, np.transpose(v) if _is_kernel(k) else v) for k, (n, v) in weights.items()}
    assign_weights(converted, encoder, source, display=transformers_to_google_key)
    if heads:
        warnings.warn(f"{source}: {len(heads)} head variables are not part of the encoder and "
                      f"were not imported (e.g. {heads[0]})", stacklevel=2)


def load_google_checkpoint(path: str | os.PathLike, hidden_act: str | None = None,
                           lower_case: bool | None = None):
    """A google-research/bert release (directory or checkpoint prefix) -> (BertEncoder,
    BertTokenizer).

    Args:
        path: the directory holding bert_config.json, vocab.txt and one bert_model.ckpt, or the
            checkpoint prefix (".../bert_model.ckpt") with those files beside it.
        hidden_act: override the activation ("gelu_tanh" is what the original code computes).
        lower_case: override the tokenizer's casing (default: inferred from the vocabulary).
    """
    prefix, directory = find_checkpoint(os.fspath(path))
    config_path = next((os.path.join(directory, n) for n in CONFIG_NAMES
                        if os.path.isfile(os.path.join(directory, n))), None)
    if config_path is None:
        raise CheckpointError(f"{directory}: no {CONFIG_NAMES[0]} beside the checkpoint")
    values = dict(read_json(config_path))
    if hidden_act is None and values.get("hidden_act", "gelu") == "gelu":
        values["hidden_act"] = "gelu_new"  # the tanh form, see the module docstring
    config = config_from_transformers(values, config_path)
    if hidden_act is not None:
        config = config.replace(hidden_act=hidden_act)
    tokenizer = tokenizer_for_directory(directory, config)
    if lower_case is not None:
        # deferred: the tokenizer is TensorFlow code, not needed on JAX
        from kbert.tokenization.tokenizer import BertTokenizer  # noqa: PLC0415

        tokenizer = BertTokenizer(tokenizer.vocab, lower_case=lower_case,
                                  max_length=tokenizer.max_length)
    encoder = BertEncoder.from_bert_config(config)
    google_weights_to_encoder(read_google_weights(prefix), encoder, source=prefix)
    return encoder, tokenizer
