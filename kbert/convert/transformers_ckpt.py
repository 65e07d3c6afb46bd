"""Hugging Face transformers BERT checkpoints <-> `BertEncoder`, without torch or transformers.

A transformers BERT directory holds `config.json`, the weights (`model.safetensors`, a sharded
`model.safetensors.index.json`, or `pytorch_model.bin`) and `vocab.txt`. Weights are read with
`safetensors.numpy` or, for `.bin`, with the allow-list unpickler of `kbert.convert.safe_pickle`
(no code in the file can run).

Key layouts: with a `bert.` prefix (BertForPreTraining, BertForMaskedLM, ...) or without
(BertModel, e.g. all-MiniLM-L6-v2). Head weights (`cls.*`, `classifier.*`, `qa_outputs.*`) are
not part of the encoder: they are skipped with a warning. Every other key must map onto the
encoder and every encoder weight must be present, with its exact shape.

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
from kbert.errors import KbertError
from kbert.models.encoder import BertEncoder
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
    assigned unless everything fits. Head weights are skipped with a warning.
    """
    weights, heads = _canonical_keys(state_dict, source)
    assign_weights(weights, encoder, source)
    if heads:
        warnings.warn(f"{source}: {len(heads)} head weights are not part of the encoder and were "
                      f"not imported (e.g. {heads[0]})", stacklevel=2)


def _listing(keys: list[str]) -> str:
    return f"{keys[:10]}" + (f" and {len(keys) - 10} more" if len(keys) > 10 else "")


def assign_weights(weights: dict[str, tuple[str, np.ndarray]], encoder, source: str,
                   display: Callable[[str], str] = lambda key: key) -> None:
    """Assign {transformers key without prefix: (name in the file, array)} to `encoder`.

    `display` turns a transformers key into the name the file would use, for error messages.
    All checks run before the first assignment.
    """
    mapping = _mapping(encoder.bert_config.num_layers)
    variables = encoder_variables(encoder)
    needed = {key for keys, _ in mapping.values() for key in keys}
    missing = sorted(display(k) for k in needed - set(weights))
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
        name, array = weights[key]
        if tuple(np.shape(array)) != expected:
            raise CheckpointError(f"{source}: {name} has shape {tuple(np.shape(array))}, but the "
                                  f"config implies {expected}")
        if not np.issubdtype(np.asarray(array).dtype, np.floating):
            raise CheckpointError(f"{source}: {name} has dtype {np.asarray(array).dtype}, "
                                  f"expected a float tensor")
    values = {}
    for name, (keys, convert) in mapping.items():
        value = convert(*[np.asarray(weights[k][1], np.float32) for k in keys])
        if value.shape != tuple(variables[name].shape):  # a bug here, not in the file
            raise AssertionError(f"{name}: converted {value.shape}, variable "
                                 f"{tuple(variables[name].shape)}")
        values[name] = value
    for name, value in values.items():
        variables[name].assign(value.astype(variables[name].dtype))


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


def load_transformers_checkpoint(directory: str | os.PathLike):
    """A transformers BERT directory -> (BertEncoder, BertTokenizer).

    Reads config.json, model.safetensors (or its sharded index, or pytorch_model.bin, unpickled
    safely) and vocab.txt (tokenizer_config.json's do_lower_case is honoured when present).
    """
    directory = os.fspath(directory)
    if not os.path.isdir(directory):
        raise CheckpointError(f"{directory} is not a directory")
    config_path = os.path.join(directory, CONFIG_FILE)
    config = config_from_transformers(read_json(config_path), config_path)
    tokenizer = tokenizer_for_directory(directory, config)
    state, source = read_transformers_weights(directory)
    encoder = BertEncoder.from_bert_config(config)
    transformers_weights_to_encoder(state, encoder, source=source)
    return encoder, tokenizer


def _vocab_tokens(vocab) -> list[str]:
    if vocab is None:
        return []
    if hasattr(vocab, "vocab") and isinstance(vocab.vocab, Vocabulary):  # a BertTokenizer
        vocab = vocab.vocab
    if isinstance(vocab, (str, os.PathLike)):
        vocab = Vocabulary.load(vocab)
    return list(vocab.tokens if isinstance(vocab, Vocabulary) else vocab)


def save_transformers_checkpoint(encoder, directory: str | os.PathLike, vocab=None,
                                 lower_case: bool | None = None) -> str:
    """Write `encoder` as a transformers `BertModel` directory; returns the directory.

    Files: config.json, model.safetensors (float32, [out, in] kernels, separate q/k/v) and, when
    `vocab` is given (a BertTokenizer, Vocabulary, vocab.txt path or token list), vocab.txt and
    tokenizer_config.json. `transformers.BertModel.from_pretrained(directory)` loads it.
    """
    directory = os.fspath(directory)
    config = encoder.bert_config
    tokens = _vocab_tokens(vocab)
    if tokens and len(tokens) != config.vocab_size:
        raise CheckpointError(f"the vocabulary has {len(tokens)} entries but the encoder's "
                              f"vocab_size is {config.vocab_size}")
    if lower_case is None and vocab is not None:
        lower_case = getattr(vocab, "lower_case", None)
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, CONFIG_FILE), "w", encoding="utf-8") as f:
        json.dump(config_to_transformers(config), f, indent=2)
        f.write("\n")
    save_file(encoder_to_transformers_weights(encoder), os.path.join(directory, SAFETENSORS_FILE),
              metadata={"format": "pt"})
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
