"""`kbert pretrain` and `kbert fill-mask`: flags and config file, end to end on a corpus slice."""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys

import keras
import numpy as np
import pytest
from test_training import TINY_MODEL, make_corpus, make_vocab

import kbert.fill_mask as fill_mask_lib
from kbert.commands import pretrain as pretrain_cmd
from kbert.config import BertConfig
from kbert.models.pretrainer import BertPretrainer
from kbert.tokenization.tokenizer import BertTokenizer
from kbert.tokenization.vocab import Vocabulary
from kbert.training.pretrain import PretrainConfig, build_datasets


def _args(argv):
    parser = argparse.ArgumentParser()
    pretrain_cmd.add_arguments(parser)
    return parser.parse_args(argv)


def test_flags_override_the_config_file_which_overrides_defaults(tmp_path):
    path = tmp_path / "run.json"
    path.write_text(json.dumps({"steps": 77, "batch_size": 5, "preset": "mini"}))
    config = pretrain_cmd.config_from_args(_args(
        ["--config", str(path), "--batch-size", "9", "--corpus", "a.txt", "b.txt", "--xla",
         "--mixed-precision", "--warmup", "300"]))
    assert (config.steps, config.batch_size, config.preset) == (77, 9, "mini")
    assert config.corpus == ["a.txt", "b.txt"]
    assert config.jit_compile is True and config.mixed_precision == "mixed_bfloat16"
    assert config.warmup == 300 and isinstance(config.warmup, int)
    default = pretrain_cmd.config_from_args(_args([]))
    assert default == type(default)()
    path.write_text(json.dumps({"stepz": 1}))
    with pytest.raises(ValueError, match="unknown pretrain config keys"):
        pretrain_cmd.config_from_args(_args(["--config", str(path)]))


def test_fill_mask_probabilities_are_the_softmax_at_each_mask(tmp_path):
    words = ["the", "cat", "sat", "on", "mat", "a", "dog"]
    vocab = Vocabulary(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + words)
    tokenizer = BertTokenizer(vocab)
    model = BertPretrainer.from_bert_config(BertConfig(vocab_size=vocab.size, **TINY_MODEL))
    texts = ["the [MASK] sat on the [MASK]", "a dog [MASK]"]
    results = fill_mask_lib.fill_mask(model, tokenizer, texts, top_k=3)
    assert [len(r) for r in results] == [2, 1]
    ids = tokenizer(texts, max_length=8)
    logits = np.asarray(model({**{k: np.asarray(v) for k, v in ids.items()},
                               "masked_positions": np.array([[2, 6], [3, 0]])})["mlm_logits"],
                        "float64")
    probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    for (i, j) in [(0, 0), (0, 1), (1, 0)]:
        best = np.argsort(-probs[i, j])[:3]
        assert [t for t, _ in results[i][j]] == [vocab.tokens[b] for b in best]
        np.testing.assert_allclose([p for _, p in results[i][j]], probs[i, j, best], rtol=1e-5)
    with pytest.raises(ValueError, match=r"no \[MASK\]"):
        fill_mask_lib.fill_mask(model, tokenizer, ["the cat sat"])


@pytest.mark.slow
def test_pretrain_then_fill_mask_end_to_end(tmp_path):
    corpus = make_corpus(tmp_path / "corpus.txt")
    out = tmp_path / "run"
    make_vocab(corpus, out)  # a vocabulary already in the output dir is reused
    (tmp_path / "model.json").write_text(json.dumps(TINY_MODEL))
    (tmp_path / "run.json").write_text(json.dumps({
        "corpus": corpus, "output_dir": str(out), "model": str(tmp_path / "model.json"),
        "seq_length": 32, "batch_size": 8, "max_predictions": 5, "steps": 40,
        "steps_per_epoch": 20, "eval_batches": 3, "examples": 2}))
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    kbert = [sys.executable, "-m", "kbert.cli"]
    result = subprocess.run(kbert + ["pretrain", "--config", str(tmp_path / "run.json"),
                                     "--learning-rate", "2e-3"],
                            env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "vocabulary: reusing" in result.stdout
    assert re.search(r"Epoch 2/2", result.stdout)
    # stdout is a pipe: one plain line per epoch, no progress-bar escapes or redraws
    assert "\x1b[" not in result.stdout and "\r" not in result.stdout
    assert len(re.findall(r"^20/20 - \d+s - .*loss: ", result.stdout, re.M)) == 2
    held = re.search(r"MLM accuracy\s+([\d.]+)\s+\(always predicting the most frequent token "
                     r"'.+': ([\d.]+);", result.stdout)
    assert held, result.stdout[-2000:]
    assert re.search(r"NSP accuracy\s+[\d.]+", result.stdout)
    assert result.stdout.count("[MASK]") == 2  # the fill-in-the-blank examples
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 40 and summary["config"]["learning_rate"] == 2e-3
    assert summary["heldout"]["mlm_accuracy"] == pytest.approx(float(held.group(1)), abs=1e-3)
    # The held-out evaluation pools 3 drawings (own pairs and masks each), all counted.
    assert summary["heldout"]["drawings"] == 3 and "3 drawings" in result.stdout

    config = PretrainConfig.from_dict(summary["config"])

    keras.utils.set_random_seed(config.seed)
    _, drawings = build_datasets(config, BertTokenizer(str(out), max_length=32))
    firsts = [next(iter(d))[0]["token_ids"].numpy() for d in drawings]
    assert not np.array_equal(firsts[0], firsts[1])
    counted = sum(int(y["next_sentence_labels"].shape[0]) for d in drawings for _, y in d.take(3))
    assert summary["heldout"]["pairs"] == counted
    for name in ("encoder.keras", "pretrainer.keras", "vocab.txt", "model_config.json",
                 "history.csv"):
        assert (out / name).is_file(), name

    fill = subprocess.run(kbert + ["fill-mask", "She was [MASK] to hear it.", "--model", str(out),
                                   "--top-k", "3"],
                          env=env, capture_output=True, text=True, timeout=300)
    assert fill.returncode == 0, fill.stderr[-3000:]
    line = fill.stdout.splitlines()[1]
    probs = [float(p) for p in re.findall(r" (\d\.\d{3})", line)]
    assert line.startswith("  [MASK]:") and len(probs) == 3
    assert probs == sorted(probs, reverse=True) and sum(probs) <= 1.0 + 1e-3

    bad = subprocess.run(kbert + ["fill-mask", "no mask here", "--model", str(out)],
                         env=env, capture_output=True, text=True, timeout=300)
    assert bad.returncode == 1 and "no [MASK]" in bad.stderr
    shutil.rmtree(out)
