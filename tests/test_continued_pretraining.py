"""Continued pre-training (`init_from`, `kbert pretrain --init-from`): from a tiny transformers
checkpoint written by kbert's own converter, offline; then from the run it made (imported heads);
the CLI journey pretrain --init-from -> finetune in subprocesses."""

import argparse
import json
import subprocess
import sys

import keras
import numpy as np
import pytest
from test_training import TINY_MODEL, make_corpus, make_vocab

import kbert
import kbert.training.pretrain as pretrain_lib
from kbert.commands import pretrain as pretrain_cmd
from kbert.config import BertConfig
from kbert.convert import save_transformers_checkpoint
from kbert.models.encoder import BertEncoder

RUN_OPTIONS = dict(seq_length=32, batch_size=8, max_predictions=5, steps=6, steps_per_epoch=3,
                   eval_batches=1, eval_drawings=1, examples=0, verbose=0, learning_rate=5e-3,
                   warmup=0, jit_compile=False, checkpoint_every=100)


def weights_of(model):
    return {w.path: keras.ops.convert_to_numpy(w).copy() for w in model.weights}


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """(corpus path, transformers checkpoint dir, its encoder weights): random tiny weights."""
    root = tmp_path_factory.mktemp("continued")
    corpus = make_corpus(root / "corpus.txt")
    vocab = make_vocab(corpus, root / "vocab")
    encoder = BertEncoder.from_bert_config(BertConfig(
        vocab_size=vocab.size, max_position_embeddings=64, **TINY_MODEL))
    save_transformers_checkpoint(encoder, root / "hf", vocab=vocab, lower_case=True)
    return corpus, str(root / "hf"), kbert.load(root / "hf").encoder.get_weights()


def test_init_from_a_checkpoint_starts_from_its_weights_and_vocabulary(source, tmp_path,
                                                                         monkeypatch):
    corpus, checkpoint, source_weights = source
    started = {}
    original = pretrain_lib.initial_pretrainer

    def recording(loaded, log=print):  # the weights the run starts from (step 0)
        model, heads = original(loaded, log)
        started["encoder"] = model.encoder.get_weights()
        started["heads"] = heads
        return model, heads

    monkeypatch.setattr(pretrain_lib, "initial_pretrainer", recording)
    lines = []
    summary = pretrain_lib.continue_pretraining(checkpoint, corpus, tmp_path / "run",
                                                log=lines.append, **RUN_OPTIONS)
    assert started["heads"] == "fresh" and summary["init"]["heads"] == "fresh"
    assert summary["init"]["kind"] == "transformers" and summary["steps"] == 6
    assert sum("fresh MLM head" in line for line in lines) == 1
    for start, original_weight in zip(started["encoder"], source_weights, strict=True):
        np.testing.assert_array_equal(start, original_weight)

    run = kbert.load(tmp_path / "run")
    assert run.kind == "pretrain_run" and run.tokenizer.lower_case is True
    assert run.encoder.bert_config == kbert.load(checkpoint).encoder.bert_config
    changed = [not np.array_equal(a, b) for a, b in zip(run.encoder.get_weights(),
                                                         source_weights, strict=True)]
    assert sum(changed) > len(changed) // 2  # trained: most encoder variables moved
    assert (tmp_path / "run" / "vocab.txt").read_bytes() == \
        open(f"{checkpoint}/vocab.txt", "rb").read()
    assert not (tmp_path / "run" / "vocab_counts.txt").exists()  # uniform replacements
    assert json.loads((tmp_path / "run" / "tokenizer_config.json").read_text()) == {
        "do_lower_case": True}

    # from the run it made: a BertPretrainer, its heads imported as they are
    started.clear()
    again = pretrain_lib.continue_pretraining(tmp_path / "run", corpus, tmp_path / "again",
                                              log=lines.append, **{**RUN_OPTIONS, "steps": 3})
    assert started["heads"] == again["init"]["heads"] == "imported"
    assert again["init"]["kind"] == "pretrain_run"
    for start, previous in zip(started["encoder"], run.encoder.get_weights(),
                               strict=True):
        np.testing.assert_array_equal(start, previous)


def test_size_options_conflict_with_init_from(source, tmp_path):
    corpus, checkpoint, _ = source
    with pytest.raises(ValueError, match=r"--preset 'mini' conflicts with init_from"):
        pretrain_lib.continue_pretraining(checkpoint, corpus, tmp_path / "x", preset="mini")
    with pytest.raises(ValueError, match=r"--vocab-size .* drop --vocab-size"):
        pretrain_lib.continue_pretraining(checkpoint, corpus, tmp_path / "x", vocab_size=100)
    parser = argparse.ArgumentParser()
    pretrain_cmd.add_arguments(parser)
    for flags in (["--preset", "tiny"], ["--vocab", "v"], ["--model-config", "m.json"],
                  ["--dropout", "0.1"]):
        args = parser.parse_args(["--init-from", checkpoint, *flags])
        with pytest.raises(ValueError, match=f"^{flags[0]} conflicts with --init-from"):
            pretrain_cmd.config_from_args(args)
    with pytest.raises(ValueError, match="seq_length 128 exceeds the checkpoint's "
                                         "max_position_embeddings 64"):
        pretrain_lib.continue_pretraining(checkpoint, corpus, tmp_path / "y",
                                          **{**RUN_OPTIONS, "seq_length": 128})


@pytest.mark.slow
def test_cli_pretrain_init_from_then_finetune(source, tmp_path):
    corpus, checkpoint, _ = source

    def kbert_cli(*args):
        result = subprocess.run([sys.executable, "-m", "kbert.cli", *map(str, args)],
                                cwd=tmp_path, capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
        return result

    done = kbert_cli("pretrain", "--init-from", checkpoint, "--corpus", corpus, "--output-dir",
                     "run", "--seq-length", "32", "--batch-size", "8", "--max-predictions", "5",
                     "--steps", "4", "--steps-per-epoch", "4", "--eval-batches", "1",
                     "--eval-drawings", "1", "--examples", "0", "--no-xla", "--quiet")
    assert done.stdout.count("fresh MLM head") == 1
    rows = [("the cat sat", "a"), ("the dog ran", "b")] * 4
    (tmp_path / "train.csv").write_text(
        "text,label\n" + "".join(f"{t},{label}\n" for t, label in rows))
    kbert_cli("finetune", "--model", "run", "--train", "train.csv", "--epochs", "1",
              "--batch-size", "4", "--output-dir", "clf", "--quiet")
    assert kbert.load(tmp_path / "clf").kind == "task"
    refused = subprocess.run([sys.executable, "-m", "kbert.cli", "pretrain", "--init-from",
                              checkpoint, "--preset", "mini", "--output-dir", "other"],
                             cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert refused.returncode != 0
    assert "--preset conflicts with --init-from" in refused.stderr
    assert "Traceback" not in refused.stderr
