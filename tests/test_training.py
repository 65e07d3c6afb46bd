"""Optimizer, schedule, callbacks and the pretrain job: decay exclusion, NaN stop, resume."""

import json
import os
import re

import keras
import numpy as np
import pytest
import tensorflow as tf

from kbert.config import BertConfig, ConfigError
from kbert.data.corpus import is_heldout, iter_documents
from kbert.models.pretrainer import BertPretrainer
from kbert.tokenization.vocab import Vocabulary
from kbert.training import pretrain as pretrain_lib
from kbert.training.callbacks import AtomicCheckpoint, StopOnDivergence, TrainingDiverged
from kbert.training.optimizer import WarmupLinearDecay, create_optimizer, warmup_steps_for

TINY_MODEL = dict(hidden_size=16, num_layers=1, num_heads=2, intermediate_size=32,
                  hidden_dropout=0.0, attention_dropout=0.0)
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


# ------------------------------------------------------------------------- shared test data
def make_corpus(path, sentences_per_doc=4):
    """Austen chapter openings in the one-sentence-per-line format, with >= 2 held-out docs."""
    lines, held, train = [], 0, 0
    for k, doc in enumerate(iter_documents("austen")):
        lines.extend(doc.sentences[:sentences_per_doc] + ("",))
        if is_heldout(f"{os.path.basename(path)}:{k}"):
            held += 1
        else:
            train += 1
        if held >= 2 and train >= 12:
            break
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    return str(path)


def make_vocab(corpus_path, directory):
    """A whole-word vocabulary of the corpus with counts (fast; no WordPiece learning)."""
    text = open(corpus_path, encoding="utf-8").read().lower()
    words = re.findall(r"[a-z]+|[^\sa-z]", text)
    counts = {}
    for w in words:
        counts[w] = counts.get(w, 0) + 1
    chars = sorted({c for w in counts for c in w})
    tokens = SPECIALS + sorted(counts) + [f"##{c}" for c in chars if c.isalpha()]
    tokens = list(dict.fromkeys(tokens))
    vocab = Vocabulary(tokens, [counts.get(t, 1) for t in tokens])
    vocab.save(directory)
    return vocab


# ------------------------------------------------------------------------- optimizer
def test_schedule_values_at_chosen_steps():
    schedule = WarmupLinearDecay(1e-3, total_steps=100, warmup_steps=10)
    # warmup: peak * step / 10; decay: peak * (100 - step) / 90; 0 after the end
    expected = {0: 0.0, 1: 1e-4, 5: 5e-4, 10: 1e-3, 40: 1e-3 * 60 / 90, 55: 5e-4, 99: 1e-3 / 90,
                100: 0.0, 250: 0.0}
    for step, value in expected.items():
        assert float(schedule(step)) == pytest.approx(value, abs=1e-9), step
    no_warmup = WarmupLinearDecay(2e-3, total_steps=10)
    assert float(no_warmup(0)) == pytest.approx(2e-3)
    assert WarmupLinearDecay.from_config(schedule.get_config()).get_config() == \
        schedule.get_config()


def test_warmup_as_fraction_or_steps():
    assert warmup_steps_for(1000, 0.1) == 100
    assert warmup_steps_for(1000, 250) == 250
    assert warmup_steps_for(1000, 0) == 0
    with pytest.raises(ValueError, match="longer than the run"):
        warmup_steps_for(100, 500)
    with pytest.raises(ValueError):
        WarmupLinearDecay(1e-3, total_steps=10, warmup_steps=11)


def test_optimizer_defaults():
    opt = create_optimizer(1e-3, total_steps=50)
    assert isinstance(opt, keras.optimizers.AdamW)
    assert opt.weight_decay == pytest.approx(0.01)
    assert opt.epsilon == pytest.approx(1e-6) and opt.beta_2 == pytest.approx(0.999)
    assert opt.global_clipnorm == pytest.approx(1.0)
    assert opt._learning_rate.warmup_steps == 5


def test_layer_norm_and_biases_do_not_decay():
    """Zero gradients: Adam's step is 0, so only decoupled decay can move a variable."""
    model = BertPretrainer.from_bert_config(BertConfig(vocab_size=30, **TINY_MODEL))
    lr, wd = 0.1, 0.01
    opt = create_optimizer(lr, total_steps=10, warmup=0, weight_decay=wd)
    before = {w.path: keras.ops.convert_to_numpy(w).copy() for w in model.trainable_variables}
    opt.apply_gradients([(keras.ops.zeros_like(w), w) for w in model.trainable_variables])
    decayed, kept = [], []
    for w in model.trainable_variables:
        after = keras.ops.convert_to_numpy(w)
        if np.array_equal(after, before[w.path]):
            kept.append(w.path)
        else:
            np.testing.assert_allclose(after, before[w.path] * (1 - lr * wd), rtol=1e-6)
            decayed.append(w.path)
    no_decay = re.compile(r"(bias|gamma|beta)$")
    assert kept and decayed
    assert all(no_decay.search(p) for p in kept), kept
    assert not any(no_decay.search(p) for p in decayed), decayed
    assert any("layer_norm" in p for p in kept)
    assert any(p.endswith("mlm_head/output_bias") for p in kept), kept
    assert any(p.endswith("nsp_head/bias") for p in kept), kept
    assert any(p.endswith("encoder/embeddings/token_embedding/embeddings") for p in decayed)
    assert any(p.endswith("nsp_head/kernel") for p in decayed)


# ------------------------------------------------------------------------- the job, offline
def _synthetic_batches(vocab_size, seq=8, preds=2, batch=4, nan_at=None):
    rng = np.random.default_rng(0)
    x = {"token_ids": rng.integers(5, vocab_size, (batch, seq)).astype("int32"),
         "segment_ids": np.zeros((batch, seq), "int32"),
         "padding_mask": np.ones((batch, seq), "int32"),
         "masked_positions": rng.integers(1, seq, (batch, preds)).astype("int32")}
    y = {"masked_ids": rng.integers(5, vocab_size, (batch, preds)).astype("int32"),
         "masked_weights": np.ones((batch, preds), "float32"),
         "next_sentence_labels": rng.integers(0, 2, (batch,)).astype("int32")}
    bad = dict(y, masked_weights=np.full((batch, preds), np.nan, "float32"))

    def gen():
        step = 0
        while True:
            step += 1
            yield x, (bad if nan_at is not None and step >= nan_at else y)

    spec = tf.data.Dataset.from_tensors((x, y)).element_spec
    return tf.data.Dataset.from_generator(gen, output_signature=spec)


def _offline_config(tmp_path, vocab_dir, **changes):
    values = dict(corpus="unused", output_dir=str(tmp_path / "run"), vocab=str(vocab_dir),
                  model=dict(TINY_MODEL), seq_length=8, batch_size=4, max_predictions=2,
                  steps=12, steps_per_epoch=4, checkpoint_every=2, eval_batches=1, examples=0,
                  verbose=0, learning_rate=1e-3)
    values.update(changes)
    return pretrain_lib.PretrainConfig(**values)


def _tiny_vocab(directory, size=30):
    tokens = SPECIALS + [f"w{i}" for i in range(size - len(SPECIALS))]
    Vocabulary(tokens, np.ones(size, "int64")).save(directory)
    return directory


def test_nan_loss_stops_with_the_step_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    vocab_dir = _tiny_vocab(tmp_path / "vocab")
    monkeypatch.setattr(pretrain_lib, "build_datasets", lambda config, tokenizer, resume_epoch=0: (
        _synthetic_batches(30, nan_at=8), _synthetic_batches(30)))
    config = _offline_config(tmp_path, vocab_dir)
    with pytest.raises(TrainingDiverged, match=r"at step 8\b.*ckpt-6\.weights\.h5"):
        pretrain_lib.pretrain(config, log=lambda *a: None)
    checkpoints = tmp_path / "run" / "checkpoints"
    latest = AtomicCheckpoint.latest(str(checkpoints))
    assert latest.endswith("ckpt-6.weights.h5")
    assert sorted(os.listdir(checkpoints)) == ["checkpoint.json", "ckpt-4.weights.h5",
                                              "ckpt-6.weights.h5"]

    model = BertPretrainer.from_bert_config(BertConfig(vocab_size=30, **TINY_MODEL))
    model.compile(optimizer=create_optimizer(1e-3, 12))
    model.optimizer.build(model.trainable_variables)
    model.load_weights(latest)
    assert all(np.isfinite(keras.ops.convert_to_numpy(w)).all() for w in model.weights)
    assert int(keras.ops.convert_to_numpy(model.optimizer.iterations)) == 6
    assert not (tmp_path / "run" / "encoder.keras").exists()


def test_pretrain_offline_writes_models_and_summary(tmp_path, monkeypatch):
    vocab_dir = _tiny_vocab(tmp_path / "vocab")
    monkeypatch.setattr(pretrain_lib, "build_datasets", lambda config, tokenizer, resume_epoch=0: (
        _synthetic_batches(30), _synthetic_batches(30).take(2)))
    summary = pretrain_lib.pretrain(_offline_config(tmp_path, vocab_dir), log=lambda *a: None)
    run = tmp_path / "run"
    assert summary["steps"] == 12
    assert 0 <= summary["heldout"]["mlm_accuracy"] <= 1
    assert json.loads((run / "summary.json").read_text())["steps"] == 12
    assert not (run / "backup").exists()  # deleted once training completed
    # the newest two checkpoints, nothing half-written, and the pointer to the last one
    assert sorted(os.listdir(run / "checkpoints")) == ["checkpoint.json", "ckpt-10.weights.h5",
                                                      "ckpt-12.weights.h5"]
    assert json.loads((run / "checkpoints" / "checkpoint.json").read_text()) == {
        "step": 12, "file": "ckpt-12.weights.h5"}
    encoder = keras.saving.load_model(run / "encoder.keras")
    assert encoder.bert_config.vocab_size == 30
    loaded = keras.saving.load_model(run / "pretrainer.keras")
    assert getattr(loaded, "optimizer", None) is None  # saved without optimizer state


def test_vocabulary_that_disagrees_with_the_model_is_refused(tmp_path, monkeypatch):
    vocab_dir = _tiny_vocab(tmp_path / "vocab", size=30)
    monkeypatch.setattr(pretrain_lib, "build_datasets", lambda *a, **k: pytest.fail("trained"))
    config = _offline_config(tmp_path, vocab_dir, model=dict(TINY_MODEL, vocab_size=64))
    with pytest.raises(ConfigError, match="30 entries but the model expects vocab_size=64"):
        pretrain_lib.pretrain(config, log=lambda *a: None)


def test_config_validation_and_unknown_keys(tmp_path):
    with pytest.raises(ValueError, match="unknown pretrain config keys"):
        pretrain_lib.PretrainConfig.from_dict({"stepz": 3})
    with pytest.raises(ValueError, match="batch_size"):
        pretrain_lib.PretrainConfig(batch_size=0).validate()
    config = pretrain_lib.PretrainConfig(steps=450, steps_per_epoch=200)
    assert (config.epochs, config.total_steps) == (3, 600)


# Resume after SIGKILL (at four points, including inside checkpoint writes), disk full and an
# unwritable output directory: tests/test_faults.py, which reuses make_corpus / make_vocab.


def test_infinite_loss_stops_training_like_nan():
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    model.optimizer.build(model.trainable_variables)
    stop = StopOnDivergence()
    stop.set_model(model)
    stop.on_train_batch_end(0, {"loss": 1.5})
    assert stop.diverged_at_step is None and not model.stop_training
    stop.on_train_batch_end(1, {"loss": float("inf")})
    assert stop.loss == float("inf") and stop.diverged_at_step == 0
    assert model.stop_training


def test_a_failed_final_save_leaves_the_old_file_and_no_debris(tmp_path, monkeypatch):
    model = BertPretrainer.from_bert_config(BertConfig(vocab_size=30, **TINY_MODEL))
    model(_synthetic_batches(30).take(1).get_single_element()[0])
    pretrain_lib.save_models(model, str(tmp_path))
    before = (tmp_path / "encoder.keras").read_bytes()
    real_save = keras.saving.save_model

    def disk_full(layer, path, **kwargs):
        real_save(layer, path, **kwargs)  # a file appears, then the disk fills up
        with open(path, "ab") as f:
            f.write(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(keras.saving, "save_model", disk_full)
    with pytest.raises(OSError, match="No space left"):
        pretrain_lib.save_models(model, str(tmp_path))
    assert sorted(os.listdir(tmp_path)) == ["encoder.keras", "pretrainer.keras"]
    assert (tmp_path / "encoder.keras").read_bytes() == before


@pytest.mark.parametrize("text, message", [
    ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
    ('{"steps": 1, "pad": "' + "x" * (17 * 2**20) + '"}', "at most"),
    ("[1, 2]", "object"),
    ('{"steps": 1', "not valid JSON"),
], ids=["deeply-nested", "17MB", "not-an-object", "truncated"])
def test_config_file_errors_are_clear(tmp_path, text, message):
    path = tmp_path / "config.json"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        pretrain_lib.PretrainConfig.from_json(str(path))
