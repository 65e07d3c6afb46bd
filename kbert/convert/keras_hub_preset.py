"""keras-hub BERT presets <-> `BertEncoder`, read and written with h5py (keras-hub not needed).

A keras-hub preset directory (what `BertBackbone.save_to_preset` / `BertTextClassifier
.save_to_preset` write, and what `keras_hub.models.BertBackbone.from_preset(dir)` reads):

    config.json                       {"module", "class_name": "BertBackbone", "config": {
                                      vocabulary_size, num_layers, num_heads, hidden_dim,
                                      intermediate_dim, dropout, max_sequence_length,
                                      num_segments, ...},
                                      "registered_name": "keras_hub>BertBackbone"}
    model.weights.h5                  the backbone's weights in Keras' saving layout (below)
    metadata.json                     keras_version, keras_hub_version, parameter_count, ...
    tokenizer.json                    (with a tokenizer) the BertTokenizer config: lowercase, ...
    preprocessor.json                 (written by kbert with a tokenizer) the text classifier's
                                      preprocessor, sequence_length within the model's positions
    assets/tokenizer/vocabulary.txt   (with a tokenizer) the WordPiece vocabulary
    task.json, task.weights.h5,       (a task preset) the task's config and head weights, the
    preprocessor.json                 preprocessor's config

Why h5py and not keras-hub: keras-hub is an optional dependency of kbert (the `test` extra has
it), and one code path that does not depend on what is installed is easier to trust: reading a
preset never imports keras-hub nor deserialises a foreign class (nothing in config.json is
executed: only its numbers are read), and writing never needs it either. The contract with
keras-hub is the variable paths that Keras' own `load_weights` matches on, which are fixed by
the layer types and their order in `BertBackbone` (h5py comes with Keras). The tests check both
directions against keras-hub itself (tests/test_keras_hub.py).

Weight paths in model.weights.h5 (`vars/0` = kernel / embeddings / gamma, `vars/1` = bias / beta):

    layers/reversible_embedding/vars/0                token_embedding      [vocab, H]
    layers/position_embedding/vars/0                  position_embedding   [max_seq, H]
    layers/embedding/vars/0                           segment_embedding    [segments, H]
    layers/layer_normalization/vars/{0,1}             embeddings_layer_norm
    layers/transformer_encoder{,_1,_2...}/            transformer_layer_{i}
        _self_attention_layer/{query,key,value}_dense/vars/{0,1}
                                                    [H, heads, head_dim], [heads, head_dim]
        _self_attention_layer/output_dense/vars/{0,1}
                                                    [heads, head_dim, H], [H]
        _self_attention_layer_norm, _feedforward_layer_norm        gamma, beta
        _feedforward_intermediate_dense, _feedforward_output_dense [H, I], [I, H] + biases
    layers/dense/vars/{0,1}                           pooled_dense (tanh)  [H, H], [H]

Activation: keras-hub's BertBackbone computes the tanh form of GELU (it has no option), so a
preset loads as a kbert encoder with `hidden_act="gelu_tanh"` (outputs match keras-hub to ~1e-6).
Exporting an exact-GELU encoder (transformers' "gelu", e.g. all-MiniLM-L6-v2) changes its
function: keras-hub's outputs then differ from kbert's by the GELU-form difference (measured in
docs/keras_hub.md; a `PresetExportWarning` says so). keras-hub's LayerNorm epsilon is fixed at
1e-12; an encoder with another epsilon is exported with a warning too.

Example:
    >>> encoder, tokenizer = load_keras_hub_preset("bert_tiny_preset/")      # doctest: +SKIP
    >>> save_keras_hub_preset(encoder, "out/", vocab=tokenizer)              # doctest: +SKIP
"""

from __future__ import annotations

import datetime
import json
import os
import warnings

import h5py
import keras
import ml_dtypes  # a Keras dependency
import numpy as np

from kbert.config import BertConfig, ConfigError
from kbert.convert.transformers_ckpt import (
    CheckpointError,
    encoder_variables,
    read_json,
    tokenizer_for_directory,
    vocab_tokens,
)
from kbert.errors import KbertWarning
from kbert.models.encoder import BertEncoder
from kbert.tokenization.vocab import Vocabulary

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.weights.h5"
SHARDED_WEIGHTS_FILE = "model.weights.json"
METADATA_FILE = "metadata.json"
TOKENIZER_FILE = "tokenizer.json"
PREPROCESSOR_FILE = "preprocessor.json"
TASK_FILE = "task.json"
TASK_WEIGHTS_FILE = "task.weights.h5"
VOCAB_ASSET = os.path.join("assets", "tokenizer", "vocabulary.txt")
BACKBONE_CLASS = "BertBackbone"
KERAS_HUB_LAYER_NORM_EPSILON = 1e-12
# The keras-hub version whose layout this module reads and writes (metadata.json says it).
KERAS_HUB_VERSION = "0.32.0"


class PresetExportWarning(KbertWarning):
    """Writing a keras-hub preset changes what the model computes (keras-hub's BertBackbone has
    only the tanh GELU and LayerNorm epsilon 1e-12); the message says what and by how much."""


def is_keras_hub_config(values: dict) -> bool:
    """True for a Keras-serialised object config (keras-hub's config.json), False for a
    transformers config.json (`model_type`, flat keys) or anything else."""
    return (isinstance(values.get("class_name"), str) and isinstance(values.get("config"), dict)
            and "model_type" not in values)


def is_keras_hub_preset(directory: str) -> bool:
    """config.json is a Keras object config and the backbone weights are beside it."""
    has = lambda name: os.path.isfile(os.path.join(directory, name))  # noqa: E731
    if not has(CONFIG_FILE) or not (has(WEIGHTS_FILE) or has(SHARDED_WEIGHTS_FILE)):
        return False
    return is_keras_hub_config(read_json(os.path.join(directory, CONFIG_FILE)))


# ------------------------------------------------------------------------------- config

def config_from_keras_hub(values: dict, source: str = CONFIG_FILE) -> BertConfig:
    """keras-hub's config.json (a dict) -> BertConfig with the tanh GELU keras-hub computes."""
    name = values.get("class_name")
    if name != BACKBONE_CLASS:
        raise CheckpointError(f"{source}: class_name {name!r} is not supported (kbert reads "
                              f"keras-hub's {BACKBONE_CLASS} only)")
    config = values["config"]
    required = ("vocabulary_size", "num_layers", "num_heads", "hidden_dim", "intermediate_dim")
    missing = [k for k in required if k not in config]
    if missing:
        raise CheckpointError(f"{source}: missing config keys {missing}")
    dropout = config.get("dropout", 0.1)
    try:
        return BertConfig(
            vocab_size=config["vocabulary_size"], hidden_size=config["hidden_dim"],
            num_layers=config["num_layers"], num_heads=config["num_heads"],
            intermediate_size=config["intermediate_dim"],
            max_position_embeddings=config.get("max_sequence_length", 512),
            type_vocab_size=config.get("num_segments", 2),
            hidden_dropout=dropout, attention_dropout=dropout,
            layer_norm_epsilon=KERAS_HUB_LAYER_NORM_EPSILON, hidden_act="gelu_tanh")
    except (ConfigError, TypeError) as e:
        raise CheckpointError(f"{source}: {e}") from None


def config_to_keras_hub(config: BertConfig) -> dict:
    """BertConfig -> keras-hub's config.json dict for a float32 BertBackbone."""
    return {
        "module": "keras_hub.src.models.bert.bert_backbone",
        "class_name": BACKBONE_CLASS,
        "config": {
            "name": "bert_backbone", "trainable": True,
            "dtype": {"module": "keras", "class_name": "DTypePolicy",
                      "config": {"name": "float32"}, "registered_name": None},
            "vocabulary_size": config.vocab_size, "num_layers": config.num_layers,
            "num_heads": config.num_heads, "hidden_dim": config.hidden_size,
            "intermediate_dim": config.intermediate_size, "dropout": config.hidden_dropout,
            "max_sequence_length": config.max_position_embeddings,
            "num_segments": config.type_vocab_size,
        },
        "registered_name": f"keras_hub>{BACKBONE_CLASS}",
    }


def tokenizer_to_keras_hub(lower_case: bool) -> dict:
    """keras-hub's tokenizer.json for a BertTokenizer whose vocabulary is the preset asset."""
    return {
        "module": "keras_hub.src.models.bert.bert_tokenizer",
        "class_name": "BertTokenizer",
        "config": {
            "name": "bert_tokenizer", "trainable": True,
            "dtype": {"module": "keras", "class_name": "DTypePolicy",
                      "config": {"name": "int32"}, "registered_name": None},
            "config_file": TOKENIZER_FILE, "vocabulary": None, "sequence_length": None,
            "lowercase": bool(lower_case), "strip_accents": bool(lower_case), "split": True,
            "suffix_indicator": "##", "oov_token": "[UNK]", "special_tokens": None,
            "special_tokens_in_strings": False,
        },
        "registered_name": "keras_hub>BertTokenizer",
    }


def preprocessor_to_keras_hub(lower_case: bool, sequence_length: int) -> dict:
    """keras-hub's preprocessor.json: a BertTextClassifierPreprocessor packing to
    `sequence_length` (keras-hub's default, 512, would overrun a model with fewer positions)."""
    return {
        "module": "keras_hub.src.models.bert.bert_text_classifier_preprocessor",
        "class_name": "BertTextClassifierPreprocessor",
        "config": {
            "name": "bert_text_classifier_preprocessor", "trainable": True,
            "dtype": {"module": "keras", "class_name": "DTypePolicy",
                      "config": {"name": "float32"}, "registered_name": None},
            "tokenizer": tokenizer_to_keras_hub(lower_case),
            "config_file": PREPROCESSOR_FILE, "sequence_length": int(sequence_length),
            "truncate": "round_robin",
        },
        "registered_name": "keras_hub>BertTextClassifierPreprocessor",
    }


# ------------------------------------------------------------------------------- weights

def _block_path(i: int) -> str:
    return "layers/transformer_encoder" + (f"_{i}" if i else "") + "/"


def _paths(num_layers: int) -> dict[str, str]:
    """kbert weight name (docs/architecture.md) -> its h5 dataset path. The attention kernels
    map to three (query | key | value) paths joined by ','."""
    m = {
        "embeddings/token_embedding": "layers/reversible_embedding/vars/0",
        "embeddings/position_embedding": "layers/position_embedding/vars/0",
        "embeddings/segment_embedding": "layers/embedding/vars/0",
        "embeddings/layer_norm/gamma": "layers/layer_normalization/vars/0",
        "embeddings/layer_norm/beta": "layers/layer_normalization/vars/1",
        "pooler/kernel": "layers/dense/vars/0",
        "pooler/bias": "layers/dense/vars/1",
    }
    for i in range(num_layers):
        k, h = f"transformer_layer_{i}/", _block_path(i)
        a = h + "_self_attention_layer/"
        for j, part in enumerate(("kernel", "bias")):
            m[k + f"self_attention/qkv/{part}"] = ",".join(
                f"{a}{n}_dense/vars/{j}" for n in ("query", "key", "value"))
            m[k + f"self_attention/output/{part}"] = f"{a}output_dense/vars/{j}"
            m[k + f"intermediate/{part}"] = f"{h}_feedforward_intermediate_dense/vars/{j}"
            m[k + f"output/{part}"] = f"{h}_feedforward_output_dense/vars/{j}"
        for j, part in enumerate(("gamma", "beta")):
            m[k + f"attention_layer_norm/{part}"] = f"{h}_self_attention_layer_norm/vars/{j}"
            m[k + f"output_layer_norm/{part}"] = f"{h}_feedforward_layer_norm/vars/{j}"
    return m


def _to_kbert(name: str, arrays: list[np.ndarray], hidden: int) -> np.ndarray:
    """keras-hub arrays -> the kbert variable `name` (heads folded into the hidden axis)."""
    if name.endswith("qkv/kernel"):
        return np.concatenate([a.reshape(hidden, hidden) for a in arrays], axis=1)
    if name.endswith("qkv/bias"):
        return np.concatenate([a.reshape(hidden) for a in arrays])
    if name.endswith("self_attention/output/kernel"):
        return arrays[0].reshape(hidden, hidden)
    return arrays[0]


def _to_keras_hub(name: str, value: np.ndarray, config: BertConfig) -> list[np.ndarray]:
    """A kbert variable -> keras-hub's arrays ([H, heads, head_dim] attention kernels)."""
    hidden, heads = config.hidden_size, config.num_heads
    head_dim = hidden // heads
    if name.endswith("qkv/kernel"):
        return [value[:, j * hidden:(j + 1) * hidden].reshape(hidden, heads, head_dim)
                for j in range(3)]
    if name.endswith("qkv/bias"):
        return [value[j * hidden:(j + 1) * hidden].reshape(heads, head_dim) for j in range(3)]
    if name.endswith("self_attention/output/kernel"):
        return [value.reshape(heads, head_dim, hidden)]
    return [value]


def _float_array(dataset, path: str) -> np.ndarray:
    """An h5 dataset as float32. Keras stores bfloat16 as raw 2-byte values with a `dtype`
    attribute (a preset saved with dtype="bfloat16"); quantized (integer) weights are refused."""
    value = dataset[()]
    stored = dataset.attrs.get("dtype")
    if isinstance(stored, bytes):
        stored = stored.decode()
    if stored == "bfloat16" and value.dtype.itemsize == 2:
        value = value.view(ml_dtypes.bfloat16)
    if not np.issubdtype(value.dtype, np.floating) and str(value.dtype) != "bfloat16":
        raise CheckpointError(f"{path}: {dataset.name} holds {stored or value.dtype} values, not "
                              f"floats (quantized presets are not supported)")
    return np.asarray(value, np.float32)


def read_keras_hub_weights(path: str, encoder) -> None:
    """Assign model.weights.h5 (keras-hub's BertBackbone layout) to `encoder`, in place.

    Raises CheckpointError naming a missing dataset or a shape that does not fit the config;
    nothing is assigned unless everything fits.
    """
    config = encoder.bert_config
    variables = encoder_variables(encoder)
    try:
        h5 = h5py.File(path, "r")
    except OSError as e:
        raise CheckpointError(f"{path}: cannot read HDF5 weights ({e})") from None
    values = {}
    with h5:
        for name, joined in _paths(config.num_layers).items():
            arrays = []
            for dataset in joined.split(","):
                if not isinstance(h5.get(dataset), h5py.Dataset):
                    raise CheckpointError(
                        f"{path}: no {dataset} (the weight of kbert's {name}): not a keras-hub "
                        f"BertBackbone with {config.num_layers} layers, as config.json says")
                arrays.append(_float_array(h5[dataset], path))
            try:
                value = _to_kbert(name, arrays, config.hidden_size)
            except ValueError:
                value = None
            expected = tuple(variables[name].shape)
            if value is None or value.shape != expected:
                shapes = [a.shape for a in arrays]
                raise CheckpointError(f"{path}: {joined} has shape {shapes}, but config.json "
                                      f"implies kbert's {name} {expected}")
            values[name] = value
        extra = _block_path(config.num_layers).rstrip("/")
        if extra in h5:
            raise CheckpointError(f"{path}: holds more transformer layers than config.json's "
                                  f"num_layers={config.num_layers}")
    for name, value in values.items():
        variables[name].assign(value.astype(variables[name].dtype))


def _vars(group, name: str, arrays=()) -> None:
    """A Keras saving-layout layer group: `vars` with its layer name and numbered datasets."""
    v = group.create_group("vars")
    v.attrs["name"] = name
    for j, array in enumerate(arrays):
        v.create_dataset(str(j), data=np.asarray(array, np.float32))


def write_keras_hub_weights(encoder, path: str) -> None:
    """Write `encoder`'s weights as keras-hub's BertBackbone model.weights.h5 (every layer
    group Keras' `save_weights` writes, weightless ones included)."""
    config = encoder.bert_config
    values = {k: np.asarray(v.numpy(), np.float32) for k, v in encoder_variables(encoder).items()}
    arrays = {}
    for name, joined in _paths(config.num_layers).items():
        for dataset, array in zip(joined.split(","), _to_keras_hub(name, values[name], config),
                                  strict=True):
            arrays[dataset] = array

    def weights(prefix):
        return [arrays[f"{prefix}/vars/{j}"] for j in range(2) if f"{prefix}/vars/{j}" in arrays]

    with h5py.File(path, "w") as h5:
        layers = h5.create_group("layers")
        names = {"input_layer": "token_ids", "input_layer_1": "segment_ids",
                 "input_layer_2": "padding_mask", "reversible_embedding": "token_embedding",
                 "position_embedding": "position_embedding", "embedding": "segment_embedding",
                 "add": "embeddings_add", "layer_normalization": "embeddings_layer_norm",
                 "dropout": "embeddings_dropout", "dense": "pooled_dense"}
        for key, name in names.items():
            _vars(layers.create_group(key), name, weights("layers/" + key))
        for i in range(config.num_layers):
            prefix = _block_path(i).rstrip("/")
            block = h5.create_group(prefix)
            _vars(block, f"transformer_layer_{i}")
            sub = {"_self_attention_layer_norm": "self_attention_layer_norm",
                   "_self_attention_dropout": "self_attention_dropout",
                   "_feedforward_intermediate_dense": "feedforward_intermediate_dense",
                   "_feedforward_output_dense": "feedforward_output_dense",
                   "_feedforward_layer_norm": "feedforward_layer_norm",
                   "_feedforward_dropout": "feedforward_dropout"}
            for key, name in sub.items():
                _vars(block.create_group(key), name, weights(f"{prefix}/{key}"))
            attention = block.create_group("_self_attention_layer")
            _vars(attention, "self_attention_layer")
            suffix = f"_{i}" if i else ""
            for key, name in (("query_dense", "query"), ("key_dense", "key"),
                              ("value_dense", "value"), ("output_dense", "attention_output"),
                              ("_softmax", "softmax" + suffix),
                              ("_dropout_layer", "dropout" + suffix)):
                _vars(attention.create_group(key), name,
                      weights(f"{prefix}/_self_attention_layer/{key}"))
        _vars(h5, "bert_backbone")


# ------------------------------------------------------------------------------- files

def _tokenizer_of_preset(directory: str, config: BertConfig, lower_case: bool | None):
    """The preset's tokenizer (None when it has no vocabulary asset); casing from `lower_case`,
    else tokenizer.json's `lowercase`."""
    if not os.path.isfile(os.path.join(directory, VOCAB_ASSET)):
        return None
    tokenizer_json = os.path.join(directory, TOKENIZER_FILE)
    if lower_case is None and os.path.isfile(tokenizer_json):
        values = read_json(tokenizer_json)
        setting = values.get("config", {}).get("lowercase") if isinstance(
            values.get("config"), dict) else None
        if setting is not None and not isinstance(setting, bool):
            raise CheckpointError(f"{tokenizer_json}: lowercase must be true or false, got "
                                  f"{setting!r}")
        lower_case = setting
    return tokenizer_for_directory(directory, config, vocab_file=VOCAB_ASSET,
                                   lower_case=lower_case)


def load_keras_hub_preset(directory: str | os.PathLike, lower_case: bool | None = None):
    """A keras-hub BertBackbone (or Bert task) preset directory -> (BertEncoder, tokenizer).

    The tokenizer is None when the preset has no `assets/tokenizer/vocabulary.txt` (a backbone
    saved alone). A task preset's head (task.weights.h5) is not imported: a warning says so.
    """
    directory = os.fspath(directory)
    config_path = os.path.join(directory, CONFIG_FILE)
    values = read_json(config_path)
    if not is_keras_hub_config(values):
        raise CheckpointError(f"{config_path} is not a keras-hub preset config (no "
                              f"class_name / config object)")
    config = config_from_keras_hub(values, config_path)
    weights = os.path.join(directory, WEIGHTS_FILE)
    if not os.path.isfile(weights):
        raise CheckpointError(f"{weights} does not exist (sharded keras-hub weights, "
                              f"{SHARDED_WEIGHTS_FILE}, are not supported): save the preset "
                              f"with max_shard_size=None")
    tokenizer = _tokenizer_of_preset(directory, config, lower_case)
    encoder = BertEncoder.from_bert_config(config)
    read_keras_hub_weights(weights, encoder)
    if os.path.isfile(os.path.join(directory, TASK_WEIGHTS_FILE)):
        warnings.warn(f"{directory}: the task head in {TASK_WEIGHTS_FILE} is not imported; "
                      f"kbert loads the backbone (fine-tune a kbert head on it)", KbertWarning,
                      stacklevel=2)
    return encoder, tokenizer


def save_keras_hub_preset(encoder, directory: str | os.PathLike, vocab=None,
                          lower_case: bool | None = None) -> str:
    """Write `encoder` as a keras-hub BertBackbone preset directory; returns the directory.

    Files: config.json, model.weights.h5, metadata.json and, when `vocab` is given (a
    BertTokenizer, Vocabulary, vocab path or token list), tokenizer.json, preprocessor.json
    (sequence_length = the model's positions, at most 512) and assets/tokenizer/vocabulary.txt,
    so `keras_hub.models.BertBackbone.from_preset(directory)`,
    `BertTokenizer.from_preset` and `BertTextClassifier.from_preset(directory, num_classes=n)`
    load it. Warns (PresetExportWarning) where keras-hub will compute something else.
    """
    directory = os.fspath(directory)
    config = encoder.bert_config
    tokens = vocab_tokens(vocab, config.vocab_size)
    if config.hidden_act != "gelu_tanh":
        warnings.warn(f"keras-hub's BertBackbone computes the tanh GELU; this encoder uses "
                      f"{config.hidden_act!r}, so keras-hub's outputs will differ from kbert's "
                      f"(for exact GELU by ~1e-3, see docs/keras_hub.md)", PresetExportWarning,
                      stacklevel=2)
    if config.layer_norm_epsilon != KERAS_HUB_LAYER_NORM_EPSILON:
        warnings.warn(f"keras-hub's BertBackbone uses LayerNorm epsilon 1e-12; this encoder "
                      f"uses {config.layer_norm_epsilon}", PresetExportWarning, stacklevel=2)
    if lower_case is None and vocab is not None:
        lower_case = getattr(vocab, "lower_case", None)
    if tokens and lower_case is None:
        lower_case = not Vocabulary(tokens).is_cased
    os.makedirs(directory, exist_ok=True)

    def dump(name, value):
        with open(os.path.join(directory, name), "w", encoding="utf-8") as f:
            json.dump(value, f, indent=4)
            f.write("\n")

    dump(CONFIG_FILE, config_to_keras_hub(config))
    write_keras_hub_weights(encoder, os.path.join(directory, WEIGHTS_FILE))
    dump(METADATA_FILE, {
        "keras_version": keras.version(), "keras_hub_version": KERAS_HUB_VERSION,
        "parameter_count": int(encoder.count_params()),
        "date_saved": datetime.datetime.now().strftime("%Y-%m-%d@%H:%M:%S"),
        "tasks": ["MaskedLM", "TextClassifier", "TextEmbedder"], "written_by": "kbert"})
    if tokens:
        dump(TOKENIZER_FILE, tokenizer_to_keras_hub(lower_case))
        dump(PREPROCESSOR_FILE, preprocessor_to_keras_hub(
            lower_case, min(512, config.max_position_embeddings)))
        os.makedirs(os.path.dirname(os.path.join(directory, VOCAB_ASSET)), exist_ok=True)
        with open(os.path.join(directory, VOCAB_ASSET), "w", encoding="utf-8",
                  newline="\n") as f:
            f.writelines(t + "\n" for t in tokens)
    return directory
