"""BertPretrainer: outputs, the MLM/NSP losses and metrics against numpy, fit, saving, JAX."""

import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

from kbert.config import BertConfig
from kbert.models.pretrainer import BertPretrainer
from kbert.training.optimizer import create_optimizer

V, S, P = 40, 10, 4
TINY = BertConfig(vocab_size=V, hidden_size=16, num_layers=1, num_heads=2, intermediate_size=32,
                  max_position_embeddings=S, hidden_dropout=0.0, attention_dropout=0.0)


def _model():
    return BertPretrainer.from_bert_config(TINY)


def _batch(seed=0, batch=3):
    """A hand-made batch: row 0 has 2 real slots, row 1 four, row 2 one (weight-0 slots padded)."""
    rng = np.random.default_rng(seed)
    token_ids = rng.integers(5, V, (batch, S)).astype("int32")
    token_ids[:, 0] = 2
    padding = np.ones((batch, S), "int32")
    padding[0, 7:] = 0
    token_ids[padding == 0] = 0
    x = {"token_ids": token_ids, "segment_ids": np.zeros((batch, S), "int32"),
         "padding_mask": padding,
         "masked_positions": np.array([[1, 4, 0, 0], [2, 3, 5, 8], [6, 0, 0, 0]], "int32")[:batch]}
    weights = np.array([[1, 1, 0, 0], [1, 1, 1, 1], [1, 0, 0, 0]], "float32")[:batch]
    masked_ids = rng.integers(5, V, (batch, P)).astype("int32")
    masked_ids[weights == 0] = 0
    y = {"masked_ids": masked_ids, "masked_weights": weights,
         "next_sentence_labels": np.array([0, 1, 1], "int32")[:batch]}
    return x, y


def _np_log_softmax(logits):
    logits = np.asarray(logits, "float64")
    shifted = logits - logits.max(-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))


def _np_reference(out, y):
    mlm_lp = _np_log_softmax(out["mlm_logits"])
    ce = -np.take_along_axis(mlm_lp, y["masked_ids"][..., None], -1)[..., 0]
    w = y["masked_weights"]
    mlm = (ce * w).sum() / w.sum()
    nsp_lp = _np_log_softmax(out["nsp_logits"])
    nsp = -nsp_lp[np.arange(len(y["next_sentence_labels"])), y["next_sentence_labels"]].mean()
    mlm_acc = ((np.argmax(out["mlm_logits"], -1) == y["masked_ids"]) * w).sum() / w.sum()
    nsp_acc = (np.argmax(out["nsp_logits"], -1) == y["next_sentence_labels"]).mean()
    return mlm, nsp, mlm_acc, nsp_acc


def _numpy(out):
    return {k: keras.ops.convert_to_numpy(v) for k, v in out.items()}


def test_outputs_and_layer_names():
    model = _model()
    x, _ = _batch()
    out = _numpy(model(x))
    assert out["mlm_logits"].shape == (3, P, V) and out["nsp_logits"].shape == (3, 2)
    assert [layer.name for layer in model.layers] == ["encoder", "mlm_head", "nsp_head"]
    # the tied decoder: exactly one [V, H] variable in the whole model
    assert sum(tuple(w.shape) == (V, TINY.hidden_size) for w in model.weights) == 1
    with pytest.raises(ValueError, match="masked_positions"):
        model({k: v for k, v in x.items() if k != "masked_positions"})


def test_last_block_at_the_masked_rows_only_changes_nothing_but_the_cost():
    """Logits, loss and every gradient equal those of the full encoder output gathered."""
    config = BertConfig(**{**TINY.to_dict(), "num_layers": 2})
    model = BertPretrainer.from_bert_config(config)
    for w in model.weights:  # non-trivial LayerNorms and biases
        w.assign(w + np.random.default_rng(len(w.path)).normal(0, 0.05, w.shape).astype("float32"))
    x, y = _batch()
    x["segment_ids"][:, 5:] = 1

    def full_path():
        out = model.encoder({k: x[k] for k in ("token_ids", "segment_ids", "padding_mask")})
        return {"mlm_logits": model.mlm_head(out["sequence_output"], x["masked_positions"]),
                "nsp_logits": model.nsp_head(out["pooled_output"])}

    results = []
    for forward in (lambda: model(x), full_path):
        with tf.GradientTape() as tape:
            out = forward()
            loss = model.compute_loss(x, y, out, training=False)
        grads = tape.gradient(loss, model.trainable_weights)
        results.append((_numpy(out), float(loss), [keras.ops.convert_to_numpy(g) for g in grads]))
    (fast, fast_loss, fast_grads), (ref, ref_loss, ref_grads) = results
    np.testing.assert_allclose(fast["mlm_logits"], ref["mlm_logits"], atol=1e-5)
    np.testing.assert_allclose(fast["nsp_logits"], ref["nsp_logits"], atol=1e-5)
    assert fast_loss == pytest.approx(ref_loss, rel=1e-6)
    assert len(fast_grads) == len(model.trainable_weights)
    for w, a, b in zip(model.trainable_weights, fast_grads, ref_grads, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5, err_msg=w.path)


def test_loss_equals_numpy_reference_with_padding_slots():
    model = _model()
    x, y = _batch()
    out = model(x)
    loss = float(model.compute_loss(x, y, out, training=False))
    mlm, nsp, _, _ = _np_reference(_numpy(out), y)
    assert loss == pytest.approx(mlm + nsp, rel=1e-5)
    # the divisor is the number of real slots (7), not batch x max_predictions (12)
    y_changed = dict(y, masked_ids=np.where(y["masked_weights"] > 0, y["masked_ids"], 7))
    assert float(model.compute_loss(x, y_changed, out, training=False)) == pytest.approx(loss)


def test_labels_may_travel_in_x():
    model = _model()
    x, y = _batch()
    out = model(x)
    both = float(model.compute_loss({**x, **y}, None, out))
    assert both == pytest.approx(float(model.compute_loss(x, y, out)))
    with pytest.raises(ValueError, match="next_sentence_labels"):
        model.compute_loss(x, {k: v for k, v in y.items() if k != "next_sentence_labels"}, out)


def test_metrics_match_numpy_and_have_clean_names():
    model = _model()
    model.compile(optimizer="sgd")
    x, y = _batch()
    result = model.evaluate(tf.data.Dataset.from_tensors((x, y)), return_dict=True, verbose=0)
    assert sorted(result) == ["loss", "mlm_accuracy", "mlm_loss", "mlm_perplexity",
                              "nsp_accuracy", "nsp_loss"]
    mlm, nsp, mlm_acc, nsp_acc = _np_reference(_numpy(model(x)), y)
    assert result["mlm_loss"] == pytest.approx(mlm, rel=1e-5)
    assert result["nsp_loss"] == pytest.approx(nsp, rel=1e-5)
    assert result["loss"] == pytest.approx(mlm + nsp, rel=1e-5)
    assert result["mlm_perplexity"] == pytest.approx(np.exp(mlm), rel=1e-5)
    assert result["mlm_accuracy"] == pytest.approx(mlm_acc)
    assert result["nsp_accuracy"] == pytest.approx(nsp_acc)


def test_accuracy_metrics_count_weighted_slots_only():
    model = _model()
    model.compile(optimizer="sgd")
    x, y = _batch()
    out = _numpy(model(x))
    # make exactly the real slots of row 1 correct, and every padding slot "correct" too
    predicted = np.argmax(out["mlm_logits"], -1)
    ids = np.where(y["masked_weights"] > 0, (predicted + 1) % V, predicted)
    ids[1] = predicted[1]
    nsp = np.argmax(out["nsp_logits"], -1).astype("int32")
    y2 = dict(y, masked_ids=ids.astype("int32"), next_sentence_labels=nsp)
    result = model.evaluate(tf.data.Dataset.from_tensors((x, y2)), return_dict=True, verbose=0)
    assert result["mlm_accuracy"] == pytest.approx(4 / 7)
    assert result["nsp_accuracy"] == 1.0


def test_few_steps_of_fit_decrease_the_loss():
    model = _model()
    model.compile(optimizer=create_optimizer(3e-3, total_steps=40, warmup=0))
    x, y = _batch(batch=3)
    data = tf.data.Dataset.from_tensors((x, y)).repeat()
    history = model.fit(data, epochs=4, steps_per_epoch=10, verbose=0).history
    assert history["loss"][-1] < 0.8 * history["loss"][0]
    assert history["mlm_accuracy"][-1] > history["mlm_accuracy"][0]


def test_keras_round_trip_keeps_the_tie(tmp_path):
    model = _model()
    x, _ = _batch()
    for i, w in enumerate(model.weights):
        w.assign(np.random.default_rng(i).normal(0, 0.3, tuple(w.shape)).astype("float32"))
    path = os.path.join(tmp_path, "pretrainer.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert type(loaded) is BertPretrainer and loaded.get_config() == model.get_config()
    for key, value in _numpy(model(x)).items():
        np.testing.assert_array_equal(_numpy(loaded(x))[key], value)
    assert sum(tuple(w.shape) == (V, TINY.hidden_size) for w in loaded.weights) == 1
    before = _numpy(loaded(x))["mlm_logits"]
    table = loaded.encoder.embeddings.token_embedding.embeddings
    table.assign(table * 0.5)
    assert not np.allclose(_numpy(loaded(x))["mlm_logits"], before)


def test_mlm_loss_divisor_is_global_under_mirrored_strategy():
    """Two CPU replicas with different masked counts give the single-device update."""
    script = textwrap.dedent("""
        import numpy as np, tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        import keras
        from kbert.config import BertConfig
        from kbert.models.pretrainer import BertPretrainer
        cfg = BertConfig(vocab_size=30, hidden_size=8, num_layers=1, num_heads=2,
                         intermediate_size=16, max_position_embeddings=8, hidden_dropout=0.0,
                         attention_dropout=0.0)
        rng = np.random.default_rng(0)
        x = {"token_ids": rng.integers(5, 30, (4, 8)).astype("int32"),
             "segment_ids": np.zeros((4, 8), "int32"), "padding_mask": np.ones((4, 8), "int32"),
             "masked_positions": rng.integers(1, 8, (4, 3)).astype("int32")}
        # replica 0 gets rows 0-1 (1 real slot), replica 1 rows 2-3 (6 real slots)
        w = np.array([[1, 0, 0], [0, 0, 0], [1, 1, 1], [1, 1, 1]], "float32")
        y = {"masked_ids": rng.integers(5, 30, (4, 3)).astype("int32"), "masked_weights": w,
             "next_sentence_labels": np.array([0, 1, 0, 1], "int32")}
        def updated(strategy):
            with strategy.scope():
                keras.utils.set_random_seed(3)
                model = BertPretrainer.from_bert_config(cfg)
                model.compile(optimizer=keras.optimizers.SGD(1.0))
            model.fit(tf.data.Dataset.from_tensors((x, y)), epochs=1, verbose=0, shuffle=False)
            return [np.asarray(v) for v in model.weights]
        single = updated(tf.distribute.get_strategy())
        mirrored = updated(tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]))
        print("MAXDIFF", max(float(np.abs(a - b).max()) for a, b in zip(single, mirrored)))
    """)
    env = dict(os.environ, KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                            text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    diff = float(result.stdout.split("MAXDIFF")[-1])
    assert diff < 1e-5, diff


def test_forward_loss_and_fit_on_jax(tmp_path):
    """The same weights give the same logits and loss on the JAX backend, and fit runs there."""
    model = _model()
    x, y = _batch()
    out = model(x)
    loss = float(model.compute_loss(x, y, out, training=False))
    weights = os.path.join(tmp_path, "w.weights.h5")
    model.save_weights(weights)
    np.savez(os.path.join(tmp_path, "batch.npz"), **{**x, **y},
             mlm_logits=keras.ops.convert_to_numpy(out["mlm_logits"]))
    script = textwrap.dedent(f"""
        import numpy as np, keras
        assert keras.backend.backend() == "jax"
        from kbert.config import BertConfig
        from kbert.models.pretrainer import BertPretrainer
        cfg = BertConfig(**{TINY.to_dict()!r})
        model = BertPretrainer.from_bert_config(cfg)
        model.load_weights({weights!r})
        d = dict(np.load({os.path.join(tmp_path, "batch.npz")!r}))
        x = {{k: d[k] for k in ("token_ids", "segment_ids", "padding_mask", "masked_positions")}}
        y = {{k: d[k] for k in ("masked_ids", "masked_weights", "next_sentence_labels")}}
        out = model(x)
        print("LOGITDIFF", float(np.abs(np.asarray(out["mlm_logits"]) - d["mlm_logits"]).max()))
        print("LOSS", float(model.compute_loss(x, y, out, training=False)))
        model.compile(optimizer=keras.optimizers.Adam(3e-3))
        h = model.fit(x, y, batch_size=3, epochs=15, verbose=0).history
        print("FIT", h["loss"][0], h["loss"][-1], h["mlm_accuracy"][-1])
    """)
    env = dict(os.environ, KERAS_BACKEND="jax", TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                            text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = dict(line.split(" ", 1) for line in result.stdout.splitlines() if " " in line)
    assert float(lines["LOGITDIFF"]) < 1e-4
    assert float(lines["LOSS"]) == pytest.approx(loss, rel=1e-4)
    first, last, _ = map(float, lines["FIT"].split())
    assert last < first
