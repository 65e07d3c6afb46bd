"""Loading files from elsewhere: nothing in them runs, and bad ones fail with clear errors.

* `.keras` files load in Keras' safe mode through every kbert loader, even after
  `keras.config.enable_unsafe_deserialization()`: a Lambda layer (Python bytecode) and a config
  naming an arbitrary class (`os.system`) are refused, and their code never runs.
* transformers checkpoints: model.safetensors is read first (a malicious pytorch_model.bin
  beside it is never opened); a directory with only that .bin is refused by the allow-list
  unpickler (kbert.convert.safe_pickle) before anything in it runs.
* configuration and metadata files (config.json, bert_config.json, kbert model configs, task.json,
  TFLite sidecars) and vocabularies: size limits, types, required keys, and hypothesis-generated
  garbage gives the loader's own error (a ValueError with the file name), never a TypeError,
  RecursionError or an attempt to allocate a model of 10^12 weights.
"""

from __future__ import annotations

import json
import os
import pickle
import zipfile

import keras
import numpy as np
import pytest
from fuzzing import fuzz_settings
from hypothesis import given
from hypothesis import strategies as st
from keras.src.backend.common import global_state

from kbert.config import BertConfig, ConfigError, read_json_file
from kbert.convert import (
    CheckpointError,
    UnsafePickleError,
    save_kbert_model,
    save_transformers_checkpoint,
)
from kbert.convert.transformers_ckpt import config_from_transformers
from kbert.export.litert import LiteRTError, read_metadata
from kbert.fill_mask import load_pretrainer
from kbert.loading import load
from kbert.models import BertEncoder
from kbert.tasks import BertClassifier
from kbert.tasks.loading import load_encoder
from kbert.tokenization.tokenizer import BertTokenizer
from kbert.tokenization.vocab import Vocabulary, VocabularyError

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
TOKENS = SPECIALS + [f"w{i}" for i in range(25)]


def _vocab(directory):
    Vocabulary(TOKENS).save(directory)
    return directory


def _encoder():
    return BertEncoder(vocab_size=len(TOKENS), hidden_size=16, num_layers=1, num_heads=2,
                       intermediate_size=32, max_position_embeddings=16)


@pytest.fixture
def unsafe_allowed():
    """What another library in the process may have done: allow unsafe deserialization."""
    previous = global_state.get_global_attribute("safe_mode_saving")
    keras.config.enable_unsafe_deserialization()
    yield
    global_state.set_global_attribute("safe_mode_saving", previous)


# ------------------------------------------------------------------------------- .keras
def _lambda_model(path, marker):
    """A .keras file whose Lambda layer creates `marker` when it runs."""
    # a lambda, which Keras saves as bytecode (a named function would be saved by name); the
    # path is a constant of the code (Keras cannot restore default arguments)
    payload = eval(f"lambda x: (open({str(marker)!r}, 'w').close(), x)[1]")
    inputs = keras.Input((2,))
    model = keras.Model(inputs, keras.layers.Lambda(payload, output_shape=(2,))(inputs))
    if os.path.exists(marker):
        os.remove(marker)  # building the model ran it once
    model.save(path)
    return path


def _foreign_class_model(path):
    """A .keras file whose config names `os.system` as a layer class, with a shell command."""
    inputs = keras.Input((2,))
    keras.Model(inputs, keras.layers.Dense(2)(inputs)).save(path)
    with zipfile.ZipFile(path) as z:
        files = {n: z.read(n) for n in z.namelist()}
    config = json.loads(files["config.json"])
    for layer in config["config"]["layers"]:
        if layer["class_name"] == "Dense":
            layer.update(module="os", class_name="system", registered_name=None,
                         config={"command": f"touch {path}.pwned"})
    files["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(path, "w") as z:
        for name, data in files.items():
            z.writestr(name, data)
    return path


def test_the_lambda_payload_is_real(tmp_path, unsafe_allowed):
    marker = tmp_path / "ran"
    path = _lambda_model(str(tmp_path / "m.keras"), marker)
    model = keras.saving.load_model(path, safe_mode=False)
    model(np.zeros((1, 2), "float32"))
    assert marker.exists()  # without safe mode, loading and calling runs the file's code


def _loaders(tmp_path, keras_file):
    """Every kbert entry point that reads a .keras file, pointed at `keras_file`."""
    model_dir = _vocab(tmp_path / "model_dir")
    os.replace(keras_file, model_dir / "encoder.keras")
    keras_file = str(model_dir / "encoder.keras")
    pretrain_dir = _vocab(tmp_path / "pretrain_dir")
    (pretrain_dir / "pretrainer.keras").write_bytes(open(keras_file, "rb").read())
    task_dir = _vocab(tmp_path / "task_dir")
    (task_dir / "model.keras").write_bytes(open(keras_file, "rb").read())
    (task_dir / "task.json").write_text(json.dumps({"task": "BertClassifier", "max_length": 8}))
    return {
        "kbert.load(model dir)": lambda: load(model_dir),
        "kbert.load(.keras)": lambda: load(keras_file),
        "tasks.load_encoder(.keras)": lambda: load_encoder(keras_file),
        "fill_mask.load_pretrainer": lambda: load_pretrainer(str(pretrain_dir)),
        "BertClassifier.from_pretrained(task dir)": lambda: BertClassifier.from_pretrained(
            str(task_dir)),
    }


def test_every_loader_refuses_a_lambda_layer_and_runs_nothing(tmp_path, unsafe_allowed):
    marker = tmp_path / "ran"
    path = _lambda_model(str(tmp_path / "m.keras"), marker)
    for name, loader in _loaders(tmp_path, path).items():
        with pytest.raises(CheckpointError, match="Lambda layer"):
            loader()
        assert not marker.exists(), name


def test_every_loader_refuses_a_foreign_class_and_runs_nothing(tmp_path, unsafe_allowed):
    path = _foreign_class_model(str(tmp_path / "m.keras"))
    for loader in _loaders(tmp_path, path).values():
        with pytest.raises(CheckpointError, match="not loaded"):
            loader()
    assert not list(tmp_path.rglob("*.pwned"))


def test_a_real_kbert_model_still_loads(tmp_path):
    encoder = _encoder()
    save_kbert_model(encoder, BertTokenizer(Vocabulary(TOKENS)), tmp_path / "model")
    loaded, tokenizer = load(tmp_path / "model")
    ids = np.array([[2, 7, 3]], np.int32)
    inputs = {"token_ids": ids, "segment_ids": ids * 0, "padding_mask": ids * 0 + 1}
    np.testing.assert_allclose(loaded(inputs)["pooled_output"], encoder(inputs)["pooled_output"],
                               atol=1e-6)
    assert tokenizer.vocab_size == len(TOKENS)


# ------------------------------------------------------------------------------- weights
class _RunsShell:
    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


def _malicious_bin(path, marker):
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", pickle.dumps(
            {"embeddings.word_embeddings.weight": _RunsShell(f"touch {marker}")}, protocol=2))
        z.writestr("archive/version", "3\n")


def test_safetensors_first_and_a_malicious_bin_never_runs(tmp_path):
    encoder = _encoder()
    directory = tmp_path / "hf"
    save_transformers_checkpoint(encoder, directory, vocab=BertTokenizer(Vocabulary(TOKENS)))
    marker = tmp_path / "pwned"
    _malicious_bin(directory / "pytorch_model.bin", marker)
    loaded, _ = load(directory)  # model.safetensors is there: the .bin is not read
    np.testing.assert_array_equal(loaded.get_weights()[0], encoder.get_weights()[0])
    assert not marker.exists()

    os.remove(directory / "model.safetensors")  # only the .bin left: refused, nothing runs
    with pytest.raises(UnsafePickleError, match="refusing to load (posix|os)\\.system"):
        load(directory)
    assert not marker.exists()


# ------------------------------------------------------------------------------- configs
def _transformers_dir(tmp_path, config: dict | bytes):
    directory = tmp_path / "hf_cfg"
    directory.mkdir(exist_ok=True)
    data = config if isinstance(config, bytes) else json.dumps(config).encode()
    (directory / "config.json").write_bytes(data)
    _vocab(directory)
    return directory


GOOD = {"model_type": "bert", "vocab_size": 30, "hidden_size": 16, "num_hidden_layers": 1,
        "num_attention_heads": 2, "intermediate_size": 32}


@pytest.mark.parametrize("config,message", [
    (b"{" + b" " * (17 * 2**20) + b"}", "may be at most 16,777,216"),
    (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    (b"\xff\xfe{}", "not UTF-8"),
    (b"[1, 2]", "expected a JSON object, got list"),
    (dict(GOOD, vocab_size=10**12), "vocab_size must be at most 2,000,000"),
    (dict(GOOD, vocab_size=2_000_000, hidden_size=65_536, num_attention_heads=64),
     "parameters, more than kbert accepts"),
    (dict(GOOD, hidden_size="16"), "hidden_size must be a positive integer"),
    (dict(GOOD, hidden_act=["gelu"]), "hidden_act \\['gelu'\\] is not supported"),
    (dict(GOOD, layer_norm_eps=float("inf")), "layer_norm_epsilon must be > 0 and finite"),
    ({k: v for k, v in GOOD.items() if k != "intermediate_size"},
     "missing config keys \\['intermediate_size'\\]"),
])
def test_bad_transformers_configs_are_clear_errors(tmp_path, config, message):
    directory = _transformers_dir(tmp_path, config)
    with pytest.raises(CheckpointError, match=message) as error:
        load(directory)
    assert "config.json" in str(error.value)


def test_parameter_count_matches_the_model():
    config = BertConfig(vocab_size=30, hidden_size=16, num_layers=2, num_heads=2,
                        intermediate_size=32, max_position_embeddings=16)
    assert config.num_parameters() == BertEncoder.from_bert_config(config).count_params()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                               max_size=3),
    max_leaves=6)
plausible = st.one_of(json_values, st.integers(-5, 5000), st.integers(10**6, 10**13),
                      st.sampled_from(["gelu", "relu", "bert", "absolute", "gelu_new"]))
TRANSFORMERS_KEYS = list(GOOD) + ["hidden_act", "max_position_embeddings", "type_vocab_size",
                                  "hidden_dropout_prob", "attention_probs_dropout_prob",
                                  "layer_norm_eps", "initializer_range", "is_decoder",
                                  "position_embedding_type"]


@fuzz_settings(300)
@given(st.dictionaries(st.sampled_from(TRANSFORMERS_KEYS), plausible))
def test_any_transformers_config_gives_a_config_or_a_checkpoint_error(values):
    try:
        config = config_from_transformers(values, "config.json")
    except CheckpointError as e:
        assert "config.json" in str(e)
        return
    assert isinstance(config, BertConfig)
    assert config.num_parameters() <= 10_000_000_000


@fuzz_settings(300)
@given(st.dictionaries(st.sampled_from([f.name for f in BertConfig.__dataclass_fields__.values()]
                                       + ["extra"]), plausible))
def test_any_kbert_config_gives_a_config_or_a_config_error(values):
    try:
        BertConfig.from_dict(values)
    except ConfigError:
        pass


@fuzz_settings(200)
@given(st.binary(max_size=300) | json_values.map(lambda v: json.dumps(v).encode()))
def test_any_json_file_gives_an_object_or_the_given_error(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("json") / "f.json"
    path.write_bytes(data)
    try:
        assert isinstance(read_json_file(path, ConfigError), dict)
    except ConfigError as e:
        assert str(path) in str(e)


@fuzz_settings(200)
@given(st.lists(st.binary(max_size=40) | st.sampled_from([s.encode() for s in SPECIALS]),
                max_size=12),
       st.none() | st.lists(st.binary(max_size=12), max_size=14))
def test_any_vocabulary_file_gives_a_vocabulary_or_a_vocabulary_error(tmp_path_factory, lines,
                                                                       counts):
    directory = tmp_path_factory.mktemp("vocab")
    (directory / "vocab.txt").write_bytes(b"\n".join(lines))
    if counts is not None:
        (directory / "vocab_counts.txt").write_bytes(b"\n".join(counts))
    try:
        vocab = Vocabulary.load(directory)
    except VocabularyError as e:
        assert str(directory) in str(e)
        return
    assert all(t in vocab.token_to_id for t in SPECIALS)


@fuzz_settings(200)
@given(st.dictionaries(st.sampled_from(["signature", "inputs", "custom_ops", "hidden_size",
                                        "max_length", "pairs", "special_ids", "labels",
                                        "max_positions", "format"]),
                       plausible | st.dictionaries(st.sampled_from(["pad", "unk"]), plausible)))
def test_any_tflite_sidecar_gives_metadata_or_a_litert_error(tmp_path_factory, values):
    path = tmp_path_factory.mktemp("sidecar") / "m.tflite.json"
    path.write_text(json.dumps(values))
    try:
        metadata = read_metadata(str(path))
    except LiteRTError:
        return
    assert metadata["inputs"] in ("ids", "text") and isinstance(metadata["hidden_size"], int)


@pytest.mark.parametrize("task,message", [
    ({"task": "BertClassifier", "max_length": "128"}, "max_length must be an integer >= 2"),
    ({"task": "BertClassifier", "lower_case": "yes"}, "lower_case must be true or false"),
    ([1], "expected a JSON object"),
])
def test_bad_task_files_are_clear_errors(tmp_path, task, message):
    (tmp_path / "task.json").write_text(json.dumps(task))
    with pytest.raises(ValueError, match=message):
        BertClassifier.from_pretrained(tmp_path)
