"""Checkpoint import/export: transformers (safetensors, sharded, .bin), Google TF, kbert format."""

import json
import os
import pathlib
import shutil
import warnings

import numpy as np
import pytest
import safetensors.numpy
import tensorflow as tf
from pytorch_bin import save_pytorch_bin
from safetensors.numpy import load_file, save_file

from kbert.cli import main
from kbert.config import BertConfig
from kbert.convert import (
    CheckpointError,
    load_google_checkpoint,
    load_transformers_checkpoint,
    save_kbert_model,
    save_transformers_checkpoint,
)
from kbert.convert.transformers_ckpt import config_from_transformers
from kbert.loading import load
from kbert.models.encoder import BertEncoder

TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "bank", "river", "money", "a",
          "of", "on", "is", ".", ",", "!", "we", "sat", "by", "water", "##s", "##ing", "open",
          "account", "my", "i", "go", "to", "walk", "fish"]


def tiny_config(**changes):
    values = dict(vocab_size=len(TOKENS), hidden_size=16, num_layers=2, num_heads=2,
                  intermediate_size=24, max_position_embeddings=20, type_vocab_size=2)
    values.update(changes)
    return BertConfig(**values)


def random_encoder(seed=0, **changes):
    """A tiny encoder with every weight random (LayerNorm and biases too, so a swapped or
    untransposed weight cannot hide behind ones and zeros)."""
    encoder = BertEncoder.from_bert_config(tiny_config(**changes))
    rng = np.random.default_rng(seed)
    for v in encoder.weights:
        v.assign(rng.normal(0, 0.3, size=tuple(v.shape)).astype("float32"))
    return encoder


def sample_inputs(seed=1, batch=3, seq=9):
    rng = np.random.default_rng(seed)
    ids = rng.integers(5, len(TOKENS), size=(batch, seq)).astype("int32")
    ids[:, 0] = 2
    mask = np.ones((batch, seq), "int32")
    mask[1, 6:] = 0
    ids[1, 6:] = 0
    segments = np.zeros((batch, seq), "int32")
    segments[:, 5:] = 1
    segments[1, 6:] = 0
    return {"token_ids": ids, "segment_ids": segments, "padding_mask": mask}


def run(encoder, inputs):
    out = encoder(inputs, output_hidden_states=True)
    return [np.asarray(h) for h in out["hidden_states"]] + [np.asarray(out["pooled_output"])]


def assert_same_outputs(a, b, inputs, atol=0.0):
    for x, y in zip(run(a, inputs), run(b, inputs), strict=True):
        np.testing.assert_allclose(x, y, rtol=0, atol=atol)


# ----------------------------------------------------------------------------- config

def test_config_maps_activation_names():
    base = dict(vocab_size=30, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                intermediate_size=24)
    assert config_from_transformers(dict(base, hidden_act="gelu")).hidden_act == "gelu"
    for tanh_name in ("gelu_new", "gelu_pytorch_tanh"):
        assert config_from_transformers(dict(base, hidden_act=tanh_name)).hidden_act == "gelu_tanh"
    config = config_from_transformers(dict(base, layer_norm_eps=1e-5, hidden_dropout_prob=0.2))
    assert (config.layer_norm_epsilon, config.hidden_dropout, config.num_layers) == (1e-5, 0.2, 2)


@pytest.mark.parametrize("change, message", [
    ({"position_embedding_type": "relative_key"}, "position_embedding_type 'relative_key'"),
    ({"model_type": "roberta"}, "model_type 'roberta'"),
    ({"hidden_act": "swish"}, "hidden_act 'swish'"),
    ({"is_decoder": True}, "is_decoder"),
    ({"num_attention_heads": 5}, "divisible"),
])
def test_config_refuses_what_kbert_cannot_run(change, message):
    values = dict(vocab_size=30, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                  intermediate_size=24)
    values.update(change)
    with pytest.raises(CheckpointError, match=message):
        config_from_transformers(values, "x/config.json")


# ----------------------------------------------------------------------------- transformers

def test_transformers_round_trip_gives_identical_outputs(tmp_path):
    source = random_encoder()
    save_transformers_checkpoint(source, tmp_path, vocab=TOKENS)
    assert sorted(os.listdir(tmp_path)) == ["config.json", "model.safetensors",
                                            "tokenizer_config.json", "vocab.txt"]
    loaded, tokenizer = load_transformers_checkpoint(tmp_path)
    assert loaded.bert_config == source.bert_config
    assert list(tokenizer.vocab.tokens) == TOKENS
    for a, b in zip(source.weights, loaded.weights, strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=a.path)
    assert_same_outputs(source, loaded, sample_inputs())


def test_saved_file_uses_transformers_layout(tmp_path):
    source = random_encoder()
    save_transformers_checkpoint(source, tmp_path, vocab=TOKENS)
    state = load_file(tmp_path / "model.safetensors")
    block = source.get_layer("transformer_layer_1")
    qkv = np.asarray(block.self_attention.qkv.kernel)          # [H, 3H], query | key | value
    np.testing.assert_array_equal(state["encoder.layer.1.attention.self.key.weight"],
                                  qkv[:, 16:32].T)
    np.testing.assert_array_equal(state["encoder.layer.1.intermediate.dense.weight"],
                                  np.asarray(block.intermediate.kernel).T)
    assert state["encoder.layer.1.output.dense.weight"].shape == (16, 24)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["num_hidden_layers"] == 2 and config["hidden_act"] == "gelu"


def test_prefixed_pytorch_bin_with_heads_loads_and_warns(tmp_path):
    source = random_encoder()
    save_transformers_checkpoint(source, tmp_path / "st", vocab=TOKENS)
    state = {f"bert.{k}": v for k, v in load_file(tmp_path / "st" / "model.safetensors").items()}
    state["bert.embeddings.position_ids"] = np.arange(20, dtype=np.int64)[None]
    state["cls.predictions.bias"] = np.zeros(len(TOKENS), np.float32)
    state["cls.seq_relationship.weight"] = np.zeros((2, 16), np.float32)
    os.makedirs(tmp_path / "bin")
    save_pytorch_bin(state, tmp_path / "bin" / "pytorch_model.bin")
    for name in ("config.json", "vocab.txt"):
        (tmp_path / "bin" / name).write_bytes((tmp_path / "st" / name).read_bytes())
    with pytest.warns(UserWarning, match="2 head weights"):
        loaded, _ = load_transformers_checkpoint(tmp_path / "bin")
    assert_same_outputs(source, loaded, sample_inputs())


def test_sharded_safetensors_load(tmp_path):
    source = random_encoder()
    save_transformers_checkpoint(source, tmp_path, vocab=TOKENS)
    state = load_file(tmp_path / "model.safetensors")
    os.remove(tmp_path / "model.safetensors")
    keys = sorted(state)
    shards = {"model-00001-of-00002.safetensors": keys[::2],
              "model-00002-of-00002.safetensors": keys[1::2]}
    for shard, names in shards.items():
        save_file({k: state[k] for k in names}, tmp_path / shard)
    index = {"weight_map": {k: s for s, names in shards.items() for k in names}}
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(index))
    loaded, _ = load_transformers_checkpoint(tmp_path)
    assert_same_outputs(source, loaded, sample_inputs())


def _edit_checkpoint(tmp_path, edit):
    save_transformers_checkpoint(random_encoder(), tmp_path, vocab=TOKENS)
    state = load_file(tmp_path / "model.safetensors")
    edit(state)
    save_file(state, tmp_path / "model.safetensors")


def test_missing_key_is_named(tmp_path):
    _edit_checkpoint(tmp_path, lambda s: s.pop("encoder.layer.1.attention.self.value.bias"))
    with pytest.raises(CheckpointError,
                       match=r"missing keys \['encoder.layer.1.attention.self.value.bias'\]"):
        load_transformers_checkpoint(tmp_path)


def test_unexpected_key_is_named(tmp_path):
    def add(state):
        state["encoder.layer.2.output.dense.bias"] = np.zeros(16, np.float32)

    _edit_checkpoint(tmp_path, add)
    with pytest.raises(CheckpointError,
                       match=r"unexpected keys \['encoder.layer.2.output.dense.bias'\]"):
        load_transformers_checkpoint(tmp_path)


def test_shape_mismatch_is_named(tmp_path):
    def shrink(state):
        state["encoder.layer.0.intermediate.dense.weight"] = np.zeros((20, 16), np.float32)

    _edit_checkpoint(tmp_path, shrink)
    with pytest.raises(CheckpointError,
                       match=r"encoder.layer.0.intermediate.dense.weight has shape "
                             r"\(20, 16\).*\(24, 16\)"):
        load_transformers_checkpoint(tmp_path)


def test_vocab_size_mismatch_names_the_file(tmp_path):
    save_transformers_checkpoint(random_encoder(), tmp_path, vocab=TOKENS)
    (tmp_path / "vocab.txt").write_text("\n".join(TOKENS[:-1]) + "\n")
    with pytest.raises(CheckpointError, match=r"vocab.txt has 29 entries .* vocab_size is 30"):
        load_transformers_checkpoint(tmp_path)


def test_missing_weights_file_is_reported(tmp_path):
    save_transformers_checkpoint(random_encoder(), tmp_path, vocab=TOKENS)
    os.remove(tmp_path / "model.safetensors")
    with pytest.raises(CheckpointError, match="no weights found"):
        load_transformers_checkpoint(tmp_path)


# What torch / transformers made of kbert's files and the files they wrote, recorded once by
# scripts/make_torch_fixtures.py (the test command installs neither library).
TORCH_FIXTURES = pathlib.Path(__file__).parent / "fixtures" / "torch"
REGENERATE = "rerun scripts/make_torch_fixtures.py"


def _fixture_inputs(reference):
    inputs = sample_inputs()
    for key, value in inputs.items():
        np.testing.assert_array_equal(reference[key], value, err_msg=f"{key}; {REGENERATE}")
    return inputs


def test_transformers_loads_our_export_and_agrees(tmp_path):
    """The export is, tensor for tensor and in its config, the file transformers' BertModel
    loaded (no missing / unexpected key) when the fixture was made, and kbert's outputs are
    the ones transformers computed from it."""
    reference = np.load(TORCH_FIXTURES / "kbert_export.npz")
    source = random_encoder()
    save_transformers_checkpoint(source, tmp_path, vocab=TOKENS)
    exported = safetensors.numpy.load_file(tmp_path / "model.safetensors")
    loaded_by_transformers = {k[len("tensor/"):]: reference[k] for k in reference.files
                              if k.startswith("tensor/")}
    assert sorted(exported) == sorted(loaded_by_transformers), REGENERATE
    for name, value in exported.items():
        assert value.dtype == loaded_by_transformers[name].dtype, name
        np.testing.assert_array_equal(value, loaded_by_transformers[name], err_msg=name)
    assert json.loads((tmp_path / "config.json").read_text()) == json.loads(
        str(reference["config_json"])), REGENERATE
    inputs = _fixture_inputs(reference)
    ours = source(inputs)
    mask = inputs["padding_mask"].astype(bool)
    np.testing.assert_allclose(np.asarray(ours["sequence_output"])[mask],
                               reference["last_hidden_state"][mask], atol=1e-5)
    np.testing.assert_allclose(np.asarray(ours["pooled_output"]), reference["pooler_output"],
                               atol=1e-5)


@pytest.mark.parametrize("weights", ["model.safetensors", "pytorch_model.bin"])
def test_imports_a_checkpoint_transformers_wrote(tmp_path, weights):
    """A BertForPreTraining (gelu_new) that transformers saved, as safetensors or as the classic
    torch.save of its state dict (tied weights), gives transformers' own outputs in kbert."""
    written = TORCH_FIXTURES / "transformers_bert"
    shutil.copy(written / "config.json", tmp_path)
    shutil.copy(written / weights, tmp_path)
    (tmp_path / "vocab.txt").write_text("\n".join(TOKENS) + "\n")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the cls.* heads are skipped with a warning
        encoder, _ = load_transformers_checkpoint(tmp_path)
    assert encoder.bert_config.hidden_act == "gelu_tanh"
    reference = np.load(written / "outputs.npz")
    inputs = _fixture_inputs(reference)
    ours = encoder(inputs)
    mask = inputs["padding_mask"].astype(bool)
    np.testing.assert_allclose(np.asarray(ours["sequence_output"])[mask],
                               reference["last_hidden_state"][mask], atol=1e-5)
    np.testing.assert_allclose(np.asarray(ours["pooled_output"]), reference["pooler_output"],
                               atol=1e-5)


# ----------------------------------------------------------------------------- Google

def google_variables(encoder) -> dict:
    """The encoder's weights under google-research/bert's variable names (written out here
    independently of the converter)."""
    emb = encoder.get_layer("embeddings")
    h = encoder.bert_config.hidden_size
    v = {
        "bert/embeddings/word_embeddings": emb.token_embedding.embeddings,
        "bert/embeddings/position_embeddings": emb.position_embedding.embeddings,
        "bert/embeddings/token_type_embeddings": emb.segment_embedding.embeddings,
        "bert/embeddings/LayerNorm/gamma": emb.layer_norm.gamma,
        "bert/embeddings/LayerNorm/beta": emb.layer_norm.beta,
        "bert/pooler/dense/kernel": encoder.get_layer("pooler").kernel,
        "bert/pooler/dense/bias": encoder.get_layer("pooler").bias,
    }
    v = {k: np.asarray(x) for k, x in v.items()}
    for i in range(encoder.bert_config.num_layers):
        block = encoder.get_layer(f"transformer_layer_{i}")
        p = f"bert/encoder/layer_{i}/"
        qkv_k = np.asarray(block.self_attention.qkv.kernel)
        qkv_b = np.asarray(block.self_attention.qkv.bias)
        for j, name in enumerate(("query", "key", "value")):
            v[f"{p}attention/self/{name}/kernel"] = qkv_k[:, j * h:(j + 1) * h]
            v[f"{p}attention/self/{name}/bias"] = qkv_b[j * h:(j + 1) * h]
        for name, dense in (("attention/output/dense", block.self_attention.output_dense),
                            ("intermediate/dense", block.intermediate),
                            ("output/dense", block.output_dense)):
            v[f"{p}{name}/kernel"] = np.asarray(dense.kernel)
            v[f"{p}{name}/bias"] = np.asarray(dense.bias)
        for name, norm in (("attention/output/LayerNorm", block.attention_layer_norm),
                           ("output/LayerNorm", block.output_layer_norm)):
            v[f"{p}{name}/gamma"] = np.asarray(norm.gamma)
            v[f"{p}{name}/beta"] = np.asarray(norm.beta)
    return v


def write_google_release(directory, encoder, extra=None):
    os.makedirs(directory, exist_ok=True)
    values = google_variables(encoder)
    values.update(extra or {})
    variables = {name: tf.Variable(value, name=name) for name, value in values.items()}
    tf.compat.v1.train.Saver(var_list=variables).save(
        sess=None, save_path=os.path.join(directory, "bert_model.ckpt"), write_meta_graph=False)
    c = encoder.bert_config
    with open(os.path.join(directory, "bert_config.json"), "w") as f:
        json.dump({"attention_probs_dropout_prob": 0.1, "hidden_act": "gelu",
                   "hidden_dropout_prob": 0.1, "hidden_size": c.hidden_size,
                   "initializer_range": 0.02, "intermediate_size": c.intermediate_size,
                   "max_position_embeddings": c.max_position_embeddings,
                   "num_attention_heads": c.num_heads, "num_hidden_layers": c.num_layers,
                   "type_vocab_size": c.type_vocab_size, "vocab_size": c.vocab_size}, f)
    with open(os.path.join(directory, "vocab.txt"), "w") as f:
        f.write("\n".join(TOKENS) + "\n")


def test_google_checkpoint_imports_with_identical_outputs(tmp_path):
    source = random_encoder(hidden_act="gelu_tanh")  # what the original code's "gelu" computes
    extra = {"cls/predictions/output_bias": np.zeros(len(TOKENS), np.float32),
             "bert/pooler/dense/kernel/adam_m": np.zeros((16, 16), np.float32),
             "global_step": np.array(7, np.int64)}
    write_google_release(tmp_path, source, extra)
    names = {n for n, _ in tf.train.list_variables(str(tmp_path / "bert_model.ckpt"))}
    assert "bert/encoder/layer_1/attention/self/query/kernel" in names
    with pytest.warns(UserWarning, match="1 head variables"):
        for path in (tmp_path, tmp_path / "bert_model.ckpt"):
            encoder, tokenizer = load_google_checkpoint(path)
            assert encoder.bert_config.hidden_act == "gelu_tanh"
            assert_same_outputs(source, encoder, sample_inputs())
    assert len(tokenizer.vocab) == len(TOKENS)
    with pytest.warns(UserWarning, match="head variables"):
        exact, _ = load_google_checkpoint(tmp_path, hidden_act="gelu")
    assert exact.bert_config.hidden_act == "gelu"


def test_google_checkpoint_shape_error_uses_tf_names(tmp_path):
    source = random_encoder(hidden_act="gelu_tanh")
    write_google_release(tmp_path, source, {
        "bert/encoder/layer_0/intermediate/dense/kernel": np.zeros((16, 8), np.float32)})
    with pytest.raises(CheckpointError,
                       match=r"bert/encoder/layer_0/intermediate/dense/kernel has shape "
                             r"\(16, 8\).*\(16, 24\)"):
        load_google_checkpoint(tmp_path)


# ----------------------------------------------------------------------------- kbert format

def test_kbert_directory_round_trip_and_dispatch(tmp_path):
    source = random_encoder()
    save_transformers_checkpoint(source, tmp_path / "hf", vocab=TOKENS)
    encoder, tokenizer = load(tmp_path / "hf")
    save_kbert_model(encoder, tokenizer, tmp_path / "kb")
    assert {"encoder.keras", "config.json", "vocab.txt", "tokenizer_config.json"} <= set(
        os.listdir(tmp_path / "kb"))
    loaded, loaded_tokenizer = load(tmp_path / "kb")
    assert loaded_tokenizer.lower_case == tokenizer.lower_case
    assert_same_outputs(source, loaded, sample_inputs())
    again, _ = load(tmp_path / "kb")
    assert_same_outputs(source, again, sample_inputs())
    with pytest.raises(CheckpointError, match="not a model directory"):
        load(tmp_path)


# ----------------------------------------------------------------------------- CLI

def test_cli_convert_round_trips_through_kbert_and_transformers(tmp_path, capsys):
    source = random_encoder()
    save_transformers_checkpoint(source, tmp_path / "hf", vocab=TOKENS)
    assert main(["convert", "--from-transformers", str(tmp_path / "hf"),
                 "--output", str(tmp_path / "kb")]) == 0
    assert main(["convert", "--to-transformers", str(tmp_path / "kb"),
                 "--output", str(tmp_path / "hf2")]) == 0
    out = capsys.readouterr().out
    assert out.count("verified") == 2 and "L=2 H=16" in out
    loaded, _ = load_transformers_checkpoint(tmp_path / "hf2")
    assert_same_outputs(source, loaded, sample_inputs())


def test_cli_convert_from_google_and_errors(tmp_path, capsys):
    source = random_encoder(hidden_act="gelu_tanh")
    write_google_release(tmp_path / "g", source)
    assert main(["convert", "--from-google", str(tmp_path / "g" / "bert_model.ckpt"),
                 "--output", str(tmp_path / "kb")]) == 0
    loaded, _ = load(tmp_path / "kb")
    assert_same_outputs(source, loaded, sample_inputs())
    capsys.readouterr()
    assert main(["convert", "--from-transformers", str(tmp_path / "g"),
                 "--output", str(tmp_path / "x")]) == 1
    assert "config.json does not exist" in capsys.readouterr().err
