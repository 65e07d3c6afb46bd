"""Hugging Face transformers BERT checkpoints <-> `BertEncoder`, without torch or transformers.

A transformers BERT directory holds `config.json`, the weights (`model.safetensors`, a sharded
`model.safetensors.index.json`, or `pytorch_model.bin`) and `vocab.txt`. Weights are read with
`safetensors.numpy` or, for `.bin`, with the allow-list unpickler of `kbert.convert.safe_pickle`
(no code in the file can run).

Key layouts: with a `bert.` prefix (BertForPreTraining, BertForMaskedLM, ...) or without
(BertModel, e.g. all-MiniLM-L6-v2). Every non-head key must map onto the encoder and every
encoder weight must be present, with its exact shape (the pooler alone may be absent from an
MLM-only checkpoint: BertForMaskedLM has none; it is then fresh, with a HeadWeightsWarning).

Pre-training heads (docs/convert.md): with `pretraining_heads=True` (what `kbert.load` asks for),
a checkpoint holding the masked-LM head (`cls.predictions.*`) loads as a `BertPretrainer`:

    cls.predictions.transform.dense.{weight,bias}      -> mlm_head/dense (kernel transposed)
    cls.predictions.transform.LayerNorm.{weight,bias}  -> mlm_head/layer_norm
    cls.predictions.bias (= cls.predictions.decoder.bias) -> mlm_head/output_bias
    cls.predictions.decoder.weight (if stored)         must equal the word embeddings (kbert ties)
    cls.seq_relationship.{weight [2, H], bias}         -> nsp_head (kernel [H, 2])

A BertForMaskedLM has no NSP head: the pretrainer's is fresh and a HeadWeightsWarning says so.
Otherwise (and for task heads: `classifier.*`, `qa_outputs.*`) head weights are skipped with a
HeadWeightsWarning. `save_transformers_checkpoint` of a BertPretrainer writes the
BertForPreTraining layout back (`bert.` prefix + `cls.*`, decoder tied, not stored).

Layout differences handled here: transformers' Linear stores [out, in] (Keras Dense: [in, out]),
and keeps query / key / value apart (kbert fuses them into one [H, 3H] kernel, columns
query | key | value).

Example:
    >>> encoder, tokenizer = load_transformers_checkpoint(  # doctest: +SKIP
    ...     "path/to/all-MiniLM-L6-v2")
    >>> save_transformers_checkpoint(encoder, "out/", vocab=tokenizer)  # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import re
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
from safetensors.numpy import load_file, save_file

from kbert.config import BertConfig, ConfigError, read_json_file
from kbert.convert.safe_pickle import load_pytorch_bin
from kbert.errors import KbertError, KbertWarning
from kbert.models.encoder import BertEncoder
from kbert.models.pretrainer import BertPretrainer
from kbert.tokenization.vocab import Vocabulary

CONFIG_FILE = "config.json"
SAFETENSORS_FILE = "model.safetensors"
SAFETENSORS_INDEX = "model.safetensors.index.json"
TORCH_FILE = "pytorch_model.bin"
VOCAB_FILE = "vocab.txt"
TOKENIZER_CONFIG = "tokenizer_config.json"

HEAD_PREFIXES = ("cls.", "classifier.", "qa_outputs.")
# Buffers, not weights: position ids are 0..max-1 by construction.
IGNORED_KEYS = ("embeddings.position_ids",)

_ACTIVATIONS = {"gelu": "gelu", "gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh",
                "gelu_fast": "gelu_tanh", "relu": "relu"}
_EXPORT_ACTIVATIONS = {"gelu": "gelu", "gelu_tanh": "gelu_new", "relu": "relu"}


class CheckpointError(KbertError, ValueError):
    """A checkpoint that cannot be converted: missing files or keys, wrong shapes, bad config."""


class HeadWeightsWarning(KbertWarning):
    """A checkpoint's head weights were left out of the loaded model, or heads (and the pooler)
    it lacks were freshly initialised; the message names them."""


MLM_PREFIX = "cls.predictions."
NSP_PREFIX = "cls.seq_relationship."
DECODER_WEIGHT = "cls.predictions.decoder.weight"
DECODER_BIAS = "cls.predictions.decoder.bias"
POOLER_KEYS = ("pooler.dense.weight", "pooler.dense.bias")
# BertPretrainer head weight -> (transformers key, stored transposed ([out, in]) there)
MLM_HEAD_KEYS = {
    "mlm_head/dense/kernel": ("cls.predictions.transform.dense.weight", True),
    "mlm_head/dense/bias": ("cls.predictions.transform.dense.bias", False),
    "mlm_head/layer_norm/gamma": ("cls.predictions.transform.LayerNorm.weight", False),
    "mlm_head/layer_norm/beta": ("cls.predictions.transform.LayerNorm.bias", False),
    "mlm_head/output_bias": ("cls.predictions.bias", False),
}
NSP_HEAD_KEYS = {
    "nsp_head/kernel": ("cls.seq_relationship.weight", True),
    "nsp_head/bias": ("cls.seq_relationship.bias", False),
}


# ------------------------------------------------------------------------------- config

def config_from_transformers(values: dict[str, Any], source: str = CONFIG_FILE) -> BertConfig:
    """A transformers BERT `config.json` (as a dict) -> BertConfig; refuses what kbert can't run."""
    model_type = values.get("model_type", "bert")
    if model_type != "bert":
        raise CheckpointError(f"{source}: model_type {model_type!r} is not supported (only 'bert')")
    position_type = values.get("position_embedding_type", "absolute")
    if position_type != "absolute":
        raise CheckpointError(
            f"{source}: position_embedding_type {position_type!r} is not supported (only "
            f"'absolute' learned positions)")
    for flag in ("is_decoder", "add_cross_attention"):
        if values.get(flag):
            raise CheckpointError(f"{source}: {flag}=true is not supported (kbert is an encoder)")
    act = values.get("hidden_act", "gelu")
    if not isinstance(act, str) or act not in _ACTIVATIONS:  # a list would be unhashable
        raise CheckpointError(
            f"{source}: hidden_act {act!r} is not supported; supported: {sorted(_ACTIVATIONS)}")
    required = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                "intermediate_size")
    missing = [k for k in required if k not in values]
    if missing:
        raise CheckpointError(f"{source}: missing config keys {missing}")
    try:
        return BertConfig(
            vocab_size=values["vocab_size"],
            hidden_size=values["hidden_size"],
            num_layers=values["num_hidden_layers"],
            num_heads=values["num_attention_heads"],
            intermediate_size=values["intermediate_size"],
            max_position_embeddings=values.get("max_position_embeddings", 512),
            type_vocab_size=values.get("type_vocab_size", 2),
            hidden_dropout=values.get("hidden_dropout_prob", 0.1),
            attention_dropout=values.get("attention_probs_dropout_prob", 0.1),
            layer_norm_epsilon=values.get("layer_norm_eps", 1e-12),
            hidden_act=_ACTIVATIONS[act],
            initializer_range=values.get("initializer_range", 0.02),
        )
    except ConfigError as e:
        raise CheckpointError(f"{source}: {e}") from None


def config_to_transformers(config: BertConfig) -> dict[str, Any]:
    """BertConfig -> a transformers `BertModel` config.json dict."""
    return {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "vocab_size": config.vocab_size,
        "hidden_size": config.hidden_size,
        "num_hidden_layers": config.num_layers,
        "num_attention_heads": config.num_heads,
        "intermediate_size": config.intermediate_size,
        "max_position_embeddings": config.max_position_embeddings,
        "type_vocab_size": config.type_vocab_size,
        "hidden_dropout_prob": config.hidden_dropout,
        "attention_probs_dropout_prob": config.attention_dropout,
        "layer_norm_eps": config.layer_norm_epsilon,
        "hidden_act": _EXPORT_ACTIVATIONS[config.hidden_act],
        "initializer_range": config.initializer_range,
        "position_embedding_type": "absolute",
        "pad_token_id": 0,
        "torch_dtype": "float32",
    }


def read_json(path: str) -> dict[str, Any]:
    """A JSON object file of a checkpoint (size-limited, see `kbert.config.read_json_file`)."""
    if not os.path.isfile(path):
        raise CheckpointError(f"{path} does not exist")
    return read_json_file(path, CheckpointError)


# ------------------------------------------------------------------------------- weights

def encoder_variables(encoder) -> dict[str, Any]:
    """The encoder's weights by their docs/architecture.md names ("embeddings/token_embedding")."""
    emb = encoder.get_layer("embeddings")
    out = {
        "embeddings/token_embedding": emb.token_embedding.embeddings,
        "embeddings/position_embedding": emb.position_embedding.embeddings,
        "embeddings/segment_embedding": emb.segment_embedding.embeddings,
        "embeddings/layer_norm/gamma": emb.layer_norm.gamma,
        "embeddings/layer_norm/beta": emb.layer_norm.beta,
    }
    for i in range(encoder.bert_config.num_layers):
        block = encoder.get_layer(f"transformer_layer_{i}")
        p = f"transformer_layer_{i}/"
        for name, dense in (("self_attention/qkv", block.self_attention.qkv),
                            ("self_attention/output", block.self_attention.output_dense),
                            ("intermediate", block.intermediate), ("output", block.output_dense)):
            out[p + name + "/kernel"] = dense.kernel
            out[p + name + "/bias"] = dense.bias
        for name, norm in (("attention_layer_norm", block.attention_layer_norm),
                           ("output_layer_norm", block.output_layer_norm)):
            out[p + name + "/gamma"] = norm.gamma
            out[p + name + "/beta"] = norm.beta
    pooler = encoder.get_layer("pooler")
    out["pooler/kernel"] = pooler.kernel
    out["pooler/bias"] = pooler.bias
    return out


def _t(x):
    return np.ascontiguousarray(np.transpose(x))


# kbert name -> (transformers keys, numpy function of those arrays -> kbert array)
def _mapping(num_layers: int) -> dict[str, tuple[tuple[str, ...], Callable]]:
    same = lambda x: x  # noqa: E731
    m = {
        "embeddings/token_embedding": (("embeddings.word_embeddings.weight",), same),
        "embeddings/position_embedding": (("embeddings.position_embeddings.weight",), same),
        "embeddings/segment_embedding": (("embeddings.token_type_embeddings.weight",), same),
        "embeddings/layer_norm/gamma": (("embeddings.LayerNorm.weight",), same),
        "embeddings/layer_norm/beta": (("embeddings.LayerNorm.bias",), same),
        "pooler/kernel": (("pooler.dense.weight",), _t),
        "pooler/bias": (("pooler.dense.bias",), same),
    }
    for i in range(num_layers):
        k, h = f"transformer_layer_{i}/", f"encoder.layer.{i}."
        qkv = tuple(f"{h}attention.self.{n}" for n in ("query", "key", "value"))
        m[k + "self_attention/qkv/kernel"] = (
            tuple(q + ".weight" for q in qkv), lambda q, k_, v: _t(np.concatenate([q, k_, v])))
        m[k + "self_attention/qkv/bias"] = (
            tuple(q + ".bias" for q in qkv), lambda q, k_, v: np.concatenate([q, k_, v]))
        for kb, hf in (("self_attention/output", "attention.output.dense"),
                       ("intermediate", "intermediate.dense"), ("output", "output.dense")):
            m[k + kb + "/kernel"] = ((h + hf + ".weight",), _t)
            m[k + kb + "/bias"] = ((h + hf + ".bias",), same)
        for kb, hf in (("attention_layer_norm", "attention.output.LayerNorm"),
                       ("output_layer_norm", "output.LayerNorm")):
            m[k + kb + "/gamma"] = ((h + hf + ".weight",), same)
            m[k + kb + "/beta"] = ((h + hf + ".bias",), same)
    return m


def expected_shapes(config: BertConfig) -> dict[str, tuple[int, ...]]:
    """transformers key (no prefix) -> the shape `config` implies ([out, in] for Linear weights)."""
    h, i = config.hidden_size, config.intermediate_size
    shapes = {
        "embeddings.word_embeddings.weight": (config.vocab_size, h),
        "embeddings.position_embeddings.weight": (config.max_position_embeddings, h),
        "embeddings.token_type_embeddings.weight": (config.type_vocab_size, h),
        "embeddings.LayerNorm.weight": (h,), "embeddings.LayerNorm.bias": (h,),
        "pooler.dense.weight": (h, h), "pooler.dense.bias": (h,),
    }
    for n in range(config.num_layers):
        p = f"encoder.layer.{n}."
        for proj in ("attention.self.query", "attention.self.key", "attention.self.value",
                     "attention.output.dense"):
            shapes[f"{p}{proj}.weight"], shapes[f"{p}{proj}.bias"] = (h, h), (h,)
        shapes[f"{p}intermediate.dense.weight"] = (i, h)
        shapes[f"{p}intermediate.dense.bias"] = (i,)
        shapes[f"{p}output.dense.weight"], shapes[f"{p}output.dense.bias"] = (h, i), (h,)
        for norm in ("attention.output.LayerNorm", "output.LayerNorm"):
            shapes[f"{p}{norm}.weight"], shapes[f"{p}{norm}.bias"] = (h,), (h,)
    return shapes


def _canonical_keys(state_dict: dict[str, np.ndarray], source: str):
    """Strip the `bert.` prefix, rename old LayerNorm gamma/beta, split off head weights."""
    prefixed = any(k.startswith("bert.") for k in state_dict)
    weights, heads = {}, []
    for key, value in state_dict.items():
        name = key
        if prefixed:
            if key.startswith("bert."):
                name = key[len("bert."):]
            elif key.startswith(HEAD_PREFIXES):
                heads.append(key)
                continue
        elif key.startswith(HEAD_PREFIXES):
            heads.append(key)
            continue
        name = re.sub(r"LayerNorm\.gamma$", "LayerNorm.weight", name)
        name = re.sub(r"LayerNorm\.beta$", "LayerNorm.bias", name)
        if name in IGNORED_KEYS:
            continue
        if name in weights:
            raise CheckpointError(f"{source}: key {key!r} appears twice after renaming")
        weights[name] = (key, value)
    return weights, heads


def transformers_weights_to_encoder(state_dict: dict[str, np.ndarray], encoder,
                                    source: str = "state dict") -> None:
    """Assign a transformers BERT state dict ({key: numpy array}) to `encoder`, in place.

    Raises CheckpointError naming any missing key, unexpected key or shape mismatch; nothing is
    assigned unless everything fits. Head weights are skipped with a HeadWeightsWarning.
    """
    weights, heads = _canonical_keys(state_dict, source)
    head_weights = {_canonical_head_key(k): (k, state_dict[k]) for k in heads}
    assign_weights(weights, encoder, source, optional=_optional_keys(head_weights))
    warn_about_heads(source, skipped=heads, fresh=_fresh_parts(weights, head_weights, False))


def _canonical_head_key(key: str) -> str:
    key = re.sub(r"LayerNorm\.gamma$", "LayerNorm.weight", key)
    return re.sub(r"LayerNorm\.beta$", "LayerNorm.bias", key)


def _has(head_weights, prefix: str) -> bool:
    return any(k.startswith(prefix) for k in head_weights)


def _optional_keys(head_weights) -> tuple[str, ...]:
    """The pooler may be absent from an MLM-only checkpoint (BertForMaskedLM has none)."""
    mlm_only = _has(head_weights, MLM_PREFIX) and not _has(head_weights, NSP_PREFIX)
    return POOLER_KEYS if mlm_only else ()


def _fresh_parts(weights, head_weights, with_heads: bool) -> list[str]:
    fresh = []
    if any(k not in weights for k in POOLER_KEYS):
        fresh.append("the pooler (pooler.dense.*)")
    if with_heads and not _has(head_weights, NSP_PREFIX):
        fresh.append(f"the next-sentence head ({NSP_PREFIX}*)")
    return fresh


def warn_about_heads(source: str, skipped=(), fresh=(), noun: str = "weights") -> None:
    """One HeadWeightsWarning naming head weights left out and parts freshly initialised."""
    parts = []
    if skipped:
        parts.append(f"{len(skipped)} head {noun} are not part of the loaded model and were "
                     f"not imported (e.g. {min(skipped)})")
    if fresh:
        missing = " and no ".join(f.removeprefix("the ") for f in fresh)
        parts.append(f"the checkpoint has no {missing}: "
                     f"{'they are' if len(fresh) > 1 else 'it is'} freshly initialised (train "
                     f"before relying on pooled_output / nsp_logits)")
    if parts:
        warnings.warn(f"{source}: " + "; ".join(parts), HeadWeightsWarning, stacklevel=3)


def pretrainer_head_variables(pretrainer) -> dict[str, Any]:
    """A BertPretrainer's head weights by the names of MLM_HEAD_KEYS / NSP_HEAD_KEYS."""
    mlm, nsp = pretrainer.mlm_head, pretrainer.nsp_head
    return {
        "mlm_head/dense/kernel": mlm.dense.kernel, "mlm_head/dense/bias": mlm.dense.bias,
        "mlm_head/layer_norm/gamma": mlm.layer_norm.gamma,
        "mlm_head/layer_norm/beta": mlm.layer_norm.beta,
        "mlm_head/output_bias": mlm.output_bias,
        "nsp_head/kernel": nsp.kernel, "nsp_head/bias": nsp.bias,
    }


def head_values(head_weights: dict[str, tuple[str, np.ndarray]], config: BertConfig,
                word_embeddings: np.ndarray, source: str,
                display: Callable[[str], str] = lambda key: key) -> dict[str, np.ndarray]:
    """{transformers head key: (name in the file, array)} -> {pretrainer head weight: array}.

    Checks everything first: the MLM head complete, the NSP head complete or absent, shapes,
    a stored decoder equal to the word embeddings (kbert ties it), no other `cls.*` key. Keys of
    task heads (`classifier.*`, `qa_outputs.*`) are not looked at.
    """
    weights = dict(head_weights)
    if DECODER_BIAS in weights:
        name, bias = weights.pop(DECODER_BIAS)
        if MLM_HEAD_KEYS["mlm_head/output_bias"][0] not in weights:
            weights[MLM_HEAD_KEYS["mlm_head/output_bias"][0]] = (name, bias)
        elif not np.array_equal(weights["cls.predictions.bias"][1], bias):
            raise CheckpointError(f"{source}: {name} differs from {display('cls.predictions.bias')}"
                                  f" (transformers ties the two)")
    if DECODER_WEIGHT in weights:
        name, decoder = weights.pop(DECODER_WEIGHT)
        if np.shape(decoder) != np.shape(word_embeddings) or not np.array_equal(
                np.asarray(decoder, np.float32), word_embeddings):
            raise CheckpointError(
                f"{source}: {name} differs from the word embeddings; kbert's masked-LM decoder is "
                f"tied to them (an untied decoder cannot be imported)")
    wanted = dict(MLM_HEAD_KEYS)
    if _has(weights, NSP_PREFIX):
        wanted.update(NSP_HEAD_KEYS)
    keys = {key for key, _ in wanted.values()}
    ours = {k: v for k, v in weights.items() if k.startswith("cls.")}
    missing = sorted(display(k) for k in keys - set(ours))
    unexpected = sorted(ours[k][0] for k in set(ours) - keys)
    if missing or unexpected:
        parts = ([f"missing keys {_listing(missing)}"] if missing else []) + (
            [f"unexpected keys {_listing(unexpected)}"] if unexpected else [])
        raise CheckpointError(f"{source}: incomplete or unknown pre-training heads: "
                              + "; ".join(parts))
    h, v = config.hidden_size, config.vocab_size
    shapes = {"mlm_head/dense/kernel": (h, h), "mlm_head/dense/bias": (h,),
              "mlm_head/layer_norm/gamma": (h,), "mlm_head/layer_norm/beta": (h,),
              "mlm_head/output_bias": (v,), "nsp_head/kernel": (2, h), "nsp_head/bias": (2,)}
    values = {}
    for ours_name, (key, transposed) in wanted.items():
        name, array = ours[key]
        if tuple(np.shape(array)) != shapes[ours_name]:
            raise CheckpointError(f"{source}: {name} has shape {tuple(np.shape(array))}, but the "
                                  f"config implies {shapes[ours_name]}")
        if not np.issubdtype(np.asarray(array).dtype, np.floating):
            raise CheckpointError(f"{source}: {name} has dtype {np.asarray(array).dtype}, "
                                  f"expected a float tensor")
        array = np.asarray(array, np.float32)
        values[ours_name] = _t(array) if transposed else array
    return values


def build_model(config: BertConfig, weights: dict[str, tuple[str, np.ndarray]],
                head_weights: dict[str, tuple[str, np.ndarray]], source: str,
                pretraining_heads: bool, display: Callable[[str], str] = lambda key: key,
                noun: str = "weights"):
    """A BertEncoder, or a BertPretrainer when `pretraining_heads` and the checkpoint has the
    masked-LM head, from checked {transformers key: (name in the file, array)} maps (encoder
    keys without prefix; head keys `cls.*`, `classifier.*`, ...). Warns once about heads left
    out and parts freshly initialised."""
    encoder = BertEncoder.from_bert_config(config)
    with_heads = pretraining_heads and _has(head_weights, MLM_PREFIX)
    assign_weights(weights, encoder, source, display=display,
                   optional=_optional_keys(head_weights))
    values = {}
    if with_heads:  # all checked before the pretrainer is built
        values = head_values(head_weights, config,
                             np.asarray(weights["embeddings.word_embeddings.weight"][1],
                                        np.float32), source, display)
    skipped = [name for key, (name, _) in head_weights.items()
               if not (with_heads and key.startswith("cls."))]
    warn_about_heads(source, skipped=skipped,
                     fresh=_fresh_parts(weights, head_weights, with_heads), noun=noun)
    if not with_heads:
        return encoder
    model = BertPretrainer(encoder)
    variables = pretrainer_head_variables(model)
    for name, value in values.items():
        variables[name].assign(value.astype(variables[name].dtype))
    return model


def _listing(keys: list[str]) -> str:
    return f"{keys[:10]}" + (f" and {len(keys) - 10} more" if len(keys) > 10 else "")


def assign_weights(weights: dict[str, tuple[str, np.ndarray]], encoder, source: str,
                   display: Callable[[str], str] = lambda key: key,
                   optional: tuple[str, ...] = ()) -> None:
    """Assign {transformers key without prefix: (name in the file, array)} to `encoder`.

    `display` turns a transformers key into the name the file would use, for error messages.
    Keys in `optional` may be missing (their variables keep their initial values). All checks
    run before the first assignment.
    """
    mapping = _mapping(encoder.bert_config.num_layers)
    variables = encoder_variables(encoder)
    needed = {key for keys, _ in mapping.values() for key in keys}
    missing = sorted(display(k) for k in needed - set(weights) - set(optional))
    unexpected = sorted(weights[k][0] for k in set(weights) - needed)
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing keys {_listing(missing)}")
        if unexpected:
            parts.append(f"unexpected keys {_listing(unexpected)}")
        raise CheckpointError(
            f"{source}: does not match a BERT with {encoder.bert_config.num_layers} layers "
            f"(config): " + "; ".join(parts))
    shapes = expected_shapes(encoder.bert_config)
    for key, expected in shapes.items():
        if key not in weights:  # an optional key
            continue
        name, array = weights[key]
        if tuple(np.shape(array)) != expected:
            raise CheckpointError(f"{source}: {name} has shape {tuple(np.shape(array))}, but the "
                                  f"config implies {expected}")
        if not np.issubdtype(np.asarray(array).dtype, np.floating):
            raise CheckpointError(f"{source}: {name} has dtype {np.asarray(array).dtype}, "
                                  f"expected a float tensor")
    values = {}
    for name, (keys, convert) in mapping.items():
        if any(k not in weights for k in keys):  # an optional key
            continue
        value = convert(*[np.asarray(weights[k][1], np.float32) for k in keys])
        if value.shape != tuple(variables[name].shape):  # a bug here, not in the file
            raise AssertionError(f"{name}: converted {value.shape}, variable "
                                 f"{tuple(variables[name].shape)}")
        values[name] = value
    for name, value in values.items():
        variables[name].assign(value.astype(variables[name].dtype))


def is_pretrainer(model) -> bool:
    """A BertPretrainer (the encoder with its MLM and NSP heads)?"""
    return hasattr(model, "mlm_head") and hasattr(model, "nsp_head") and hasattr(model, "encoder")


def pretrainer_to_transformers_weights(pretrainer) -> dict[str, np.ndarray]:
    """A BertPretrainer as a transformers `BertForPreTraining` state dict: `bert.` + the
    encoder's keys, and `cls.*` (the decoder is tied to the word embeddings, so not stored)."""
    out = {f"bert.{k}": v for k, v in encoder_to_transformers_weights(pretrainer.encoder).items()}
    variables = pretrainer_head_variables(pretrainer)
    for name, (key, transposed) in {**MLM_HEAD_KEYS, **NSP_HEAD_KEYS}.items():
        value = np.asarray(variables[name].numpy(), np.float32)
        out[key] = _t(value) if transposed else np.ascontiguousarray(value)
    return out


def encoder_to_transformers_weights(encoder) -> dict[str, np.ndarray]:
    """The encoder's weights as a transformers `BertModel` state dict (no prefix, [out, in])."""
    variables = {k: np.asarray(v.numpy(), np.float32)
                 for k, v in encoder_variables(encoder).items()}
    hidden = encoder.bert_config.hidden_size
    out = {}
    for name, (keys, _) in _mapping(encoder.bert_config.num_layers).items():
        value = variables[name]
        if name.endswith("qkv/kernel"):
            parts = [_t(value[:, j * hidden:(j + 1) * hidden]) for j in range(3)]
        elif name.endswith("qkv/bias"):
            parts = [value[j * hidden:(j + 1) * hidden] for j in range(3)]
        elif name.endswith("/kernel"):
            parts = [_t(value)]
        else:
            parts = [value]
        for key, part in zip(keys, parts, strict=True):
            out[key] = np.ascontiguousarray(part)
    return out


# ------------------------------------------------------------------------------- files

def read_transformers_weights(directory: str) -> tuple[dict[str, np.ndarray], str]:
    """-> (state dict, the file it came from). Prefers safetensors over pytorch_model.bin."""
    single = os.path.join(directory, SAFETENSORS_FILE)
    index = os.path.join(directory, SAFETENSORS_INDEX)
    torch_file = os.path.join(directory, TORCH_FILE)
    if os.path.isfile(single):
        try:
            return load_file(single), single
        except Exception as e:  # safetensors raises its own error types
            raise CheckpointError(f"{single}: cannot read safetensors ({e})") from None
    if os.path.isfile(index):
        weight_map = read_json(index).get("weight_map")
        if not isinstance(weight_map, dict) or not all(
                isinstance(v, str) for v in weight_map.values()):
            raise CheckpointError(f"{index}: no 'weight_map' object of file names")
        state = {}
        for shard in sorted(set(weight_map.values())):
            path = os.path.join(directory, shard)
            if os.path.basename(shard) != shard or not os.path.isfile(path):
                raise CheckpointError(f"{index}: shard {shard!r} is missing or not a plain name")
            state.update(load_file(path))
        return state, index
    if os.path.isfile(torch_file):
        return load_pytorch_bin(torch_file), torch_file
    raise CheckpointError(
        f"{directory}: no weights found (expected {SAFETENSORS_FILE}, {SAFETENSORS_INDEX} or "
        f"{TORCH_FILE})")


def tokenizer_for_directory(directory: str, config: BertConfig, vocab_file: str = VOCAB_FILE,
                            lower_case: bool | None = None):
    """The BertTokenizer of `directory`'s vocab.txt, checked against the model's vocab_size;
    casing from `lower_case`, else tokenizer_config.json's do_lower_case, else inferred."""
    # deferred: the tokenizer is TensorFlow code, not needed on JAX
    from kbert.tokenization.tokenizer import BertTokenizer  # noqa: PLC0415

    vocab_path = os.path.join(directory, vocab_file)
    if not os.path.isfile(vocab_path):
        raise CheckpointError(f"{vocab_path} does not exist: the checkpoint needs its vocab.txt")
    vocab = Vocabulary.load(vocab_path)
    if len(vocab) != config.vocab_size:
        raise CheckpointError(
            f"{vocab_path} has {len(vocab)} entries but the model's vocab_size is "
            f"{config.vocab_size}: this vocabulary does not belong to these weights")
    tokenizer_config = os.path.join(directory, TOKENIZER_CONFIG)
    if lower_case is None and os.path.isfile(tokenizer_config):
        value = read_json(tokenizer_config).get("do_lower_case")
        if isinstance(value, bool):
            lower_case = value
    return BertTokenizer(vocab, lower_case=lower_case,
                         max_length=min(512, config.max_position_embeddings))


def load_transformers_checkpoint(directory: str | os.PathLike, *,
                                 pretraining_heads: bool = False):
    """A transformers BERT directory -> (model, BertTokenizer).

    Reads config.json, model.safetensors (or its sharded index, or pytorch_model.bin, unpickled
    safely) and vocab.txt (tokenizer_config.json's do_lower_case is honoured when present).
    The model is a BertEncoder; with `pretraining_heads=True` it is a BertPretrainer when the
    checkpoint holds the masked-LM head (see the module docstring), else still the encoder.
    """
    directory = os.fspath(directory)
    if not os.path.isdir(directory):
        raise CheckpointError(f"{directory} is not a directory")
    config_path = os.path.join(directory, CONFIG_FILE)
    config = config_from_transformers(read_json(config_path), config_path)
    tokenizer = tokenizer_for_directory(directory, config)
    state, source = read_transformers_weights(directory)
    weights, heads = _canonical_keys(state, source)
    head_weights = {_canonical_head_key(k): (k, state[k]) for k in heads}
    model = build_model(config, weights, head_weights, source, pretraining_heads)
    return model, tokenizer


def vocab_tokens(vocab, vocab_size: int) -> list[str]:
    """The tokens of a BertTokenizer, Vocabulary, vocab path or token list ([] for None), checked
    against the model's vocab_size (the writers of transformers and keras-hub folders)."""
    if vocab is None:
        return []
    if hasattr(vocab, "vocab") and isinstance(vocab.vocab, Vocabulary):  # a BertTokenizer
        vocab = vocab.vocab
    if isinstance(vocab, (str, os.PathLike)):
        vocab = Vocabulary.load(vocab)
    tokens = list(vocab.tokens if isinstance(vocab, Vocabulary) else vocab)
    if tokens and len(tokens) != vocab_size:
        raise CheckpointError(f"the vocabulary has {len(tokens)} entries but the encoder's "
                              f"vocab_size is {vocab_size}")
    return tokens


def save_transformers_checkpoint(model, directory: str | os.PathLike, vocab=None,
                                 lower_case: bool | None = None) -> str:
    """Write a BertEncoder as a transformers `BertModel` directory, or a BertPretrainer as a
    `BertForPreTraining` one (encoder + MLM and NSP heads); returns the directory.

    Files: config.json, model.safetensors (float32, [out, in] kernels, separate q/k/v) and, when
    `vocab` is given (a BertTokenizer, Vocabulary, vocab.txt path or token list), vocab.txt and
    tokenizer_config.json. `transformers.BertModel.from_pretrained(directory)` (or
    `BertForPreTraining.from_pretrained` for a pretrainer) loads it with no missing key.
    """
    directory = os.fspath(directory)
    config = model.bert_config
    tokens = vocab_tokens(vocab, config.vocab_size)
    if lower_case is None and vocab is not None:
        lower_case = getattr(vocab, "lower_case", None)
    os.makedirs(directory, exist_ok=True)
    values = config_to_transformers(config)
    if is_pretrainer(model):
        values.update(architectures=["BertForPreTraining"], tie_word_embeddings=True)
        state = pretrainer_to_transformers_weights(model)
    else:
        state = encoder_to_transformers_weights(model)
    with open(os.path.join(directory, CONFIG_FILE), "w", encoding="utf-8") as f:
        json.dump(values, f, indent=2)
        f.write("\n")
    save_file(state, os.path.join(directory, SAFETENSORS_FILE), metadata={"format": "pt"})
    if tokens:
        with open(os.path.join(directory, VOCAB_FILE), "w", encoding="utf-8", newline="\n") as f:
            f.writelines(t + "\n" for t in tokens)
        tokenizer_config = {"tokenizer_class": "BertTokenizer", "model_max_length":
                            config.max_position_embeddings}
        if lower_case is not None:
            tokenizer_config["do_lower_case"] = bool(lower_case)
        with open(os.path.join(directory, TOKENIZER_CONFIG), "w", encoding="utf-8") as f:
            json.dump(tokenizer_config, f, indent=2)
            f.write("\n")
    return directory
