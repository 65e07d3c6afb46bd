"""Original Google BERT TF checkpoints (google-research/bert) -> `BertEncoder` / `BertPretrainer`.

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

Kernels are already [in, out]. Optimizer slots (`.../adam_m`, `.../adam_v`) and `global_step`
are ignored. The pre-training heads

    cls/predictions/transform/dense/{kernel,bias}          [H, H] ([in, out]), [H]
    cls/predictions/transform/LayerNorm/{gamma,beta}
    cls/predictions/output_bias                            [V] (the decoder is the word table)
    cls/seq_relationship/output_weights                    [2, H] ([out, in]), output_bias [2]

load into a `BertPretrainer` with `pretraining_heads=True` (what `kbert.load` asks for); without
it they are skipped with a HeadWeightsWarning. The mapping goes through the transformers names
(`kbert.convert.transformers_ckpt.head_values`), so both importers check heads alike.

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

import numpy as np

from kbert.convert.transformers_ckpt import (
    CheckpointError,
    build_model,
    config_from_transformers,
    expected_shapes,
    read_json,
    tokenizer_for_directory,
)

CONFIG_NAMES = ("bert_config.json", "config.json")
_OPTIMIZER_SLOT = re.compile(r"(/adam_[mv]|/Adam(_1)?|/Momentum)$")
_IGNORED = ("global_step", "bad_steps", "good_steps", "loss_scale")
# Google head variable -> (transformers key, transposed between the two layouts)
GOOGLE_HEAD_NAMES = {
    "cls/predictions/transform/dense/kernel": ("cls.predictions.transform.dense.weight", True),
    "cls/predictions/transform/dense/bias": ("cls.predictions.transform.dense.bias", False),
    "cls/predictions/transform/LayerNorm/gamma": ("cls.predictions.transform.LayerNorm.weight",
                                                  False),
    "cls/predictions/transform/LayerNorm/beta": ("cls.predictions.transform.LayerNorm.bias",
                                                 False),
    "cls/predictions/output_bias": ("cls.predictions.bias", False),
    "cls/seq_relationship/output_weights": ("cls.seq_relationship.weight", False),
    "cls/seq_relationship/output_bias": ("cls.seq_relationship.bias", False),
}
_HEAD_DISPLAY = {key: name for name, (key, _) in GOOGLE_HEAD_NAMES.items()}


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


def _display(key: str) -> str:
    if key in _HEAD_DISPLAY:
        return _HEAD_DISPLAY[key]
    return key.replace(".", "/") if key.startswith("cls.") else transformers_to_google_key(key)


def google_weights_to_model(variables: dict[str, np.ndarray], config, source: str = "checkpoint",
                            pretraining_heads: bool = False):
    """Google-named variables ({name: array}) -> a BertEncoder, or a BertPretrainer when
    `pretraining_heads` and the masked-LM head is there (everything is checked first)."""
    weights, heads, unexpected = {}, {}, []
    for name, value in variables.items():
        if name.startswith("cls/"):
            key, transposed = GOOGLE_HEAD_NAMES.get(name, (name.replace("/", "."), False))
            heads[key] = (name, np.transpose(value) if transposed else value)
            continue
        key = google_to_transformers_key(name)
        if key is None:
            unexpected.append(name)
            continue
        weights[key] = (name, value)
    if unexpected:
        raise CheckpointError(f"{source}: unexpected variables {sorted(unexpected)[:10]}")
    for key, expected in expected_shapes(config).items():
        if key in weights:
            name, value = weights[key]
            want = expected[::-1] if _is_kernel(key) else expected
            if tuple(np.shape(value)) != want:
                raise CheckpointError(f"{source}: {name} has shape {tuple(np.shape(value))}, but "
                                      f"the config implies {want}")
    converted = {k: (n, np.transpose(v) if _is_kernel(k) else v) for k, (n, v) in weights.items()}
    return build_model(config, converted, heads, source, pretraining_heads, display=_display,
                       noun="variables")


def load_google_checkpoint(path: str | os.PathLike, hidden_act: str | None = None,
                           lower_case: bool | None = None, *, pretraining_heads: bool = False):
    """A google-research/bert release (directory or checkpoint prefix) -> (model, BertTokenizer).

    The model is a BertEncoder; with `pretraining_heads=True` a BertPretrainer when the
    checkpoint holds the masked-LM head (`cls/predictions/...`).

    Args:
        path: the directory holding bert_config.json, vocab.txt and one bert_model.ckpt, or the
            checkpoint prefix (".../bert_model.ckpt") with those files beside it.
        hidden_act: override the activation ("gelu_tanh" is what the original code computes).
        lower_case: override the tokenizer's casing (default: inferred from the vocabulary).
        pretraining_heads: load the MLM / NSP heads too (see the module docstring).
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
    model = google_weights_to_model(read_google_weights(prefix), config, source=prefix,
                                    pretraining_heads=pretraining_heads)
    return model, tokenizer
