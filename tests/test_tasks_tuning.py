"""Freezing, layer-wise learning-rate decay and the fine-tuning compile defaults."""

import keras
import numpy as np
import pytest
from test_tasks_support import encoder, features

from kbert.tasks import BertClassifier
from kbert.tasks.tuning import LayerwiseAdamW, bert_finetuning_optimizer, layer_depth


def _one_step(model, optimizer, seed=0):
    """Apply one optimizer step on a classification batch; returns {path: |delta|}."""
    model.compile(optimizer=optimizer)
    x = features(4, 8, seed=seed)
    y = np.array([0, 1, 0, 1])
    before = {v.path: np.array(v.numpy()) for v in model.trainable_variables}
    model.train_on_batch(x, y)
    return {v.path: np.abs(v.numpy() - before[v.path]) for v in model.trainable_variables}, before


def test_layer_depth_from_paths():
    assert layer_depth("encoder/embeddings/token_embedding/embeddings", 2) == 0
    assert layer_depth("encoder/transformer_layer_0/output/kernel", 2) == 1
    assert layer_depth("encoder/transformer_layer_1/output/bias", 2) == 2
    assert layer_depth("encoder/pooler/kernel", 2) == 3
    assert layer_depth("bert_classifier/logits/kernel", 2) == 3


def test_lower_layers_really_get_smaller_updates():
    # Adam's first step moves each weight by lr * m / (sqrt(v) + eps) = lr * sign(g) where g is
    # not tiny, so the mean |delta| of a variable is its effective learning rate.
    model = BertClassifier(encoder(hidden_dropout=0.0, attention_dropout=0.0), num_classes=2,
                           dropout=0.0)
    lr, decay = 1e-2, 0.5
    optimizer = LayerwiseAdamW(layer_decay=decay, num_layers=2, learning_rate=lr,
                               weight_decay=0.0, epsilon=1e-12)
    deltas, _ = _one_step(model, optimizer)
    qkv = {i: deltas[f"encoder/transformer_layer_{i}/self_attention/qkv/kernel"].mean()
           for i in (0, 1)}
    # only the 6 real (unpadded) positions of the batch get a gradient
    emb = deltas["encoder/embeddings/position_embedding/embeddings"][:6].mean()
    head = deltas[[p for p in deltas if p.endswith("logits/kernel")][0]].mean()
    # depth 3 (head) full rate; block 1: lr * 0.5; block 0: lr * 0.25; embeddings lr * 0.125
    assert head == pytest.approx(lr, rel=0.05)
    assert qkv[1] == pytest.approx(lr * decay, rel=0.05)
    assert qkv[0] == pytest.approx(lr * decay ** 2, rel=0.05)
    assert emb == pytest.approx(lr * decay ** 3, rel=0.05)


def test_weight_decay_is_scaled_too_and_skips_layer_norm_and_bias():
    model = BertClassifier(encoder(), num_classes=2)
    optimizer = LayerwiseAdamW(layer_decay=0.5, num_layers=2, learning_rate=0.1,
                               weight_decay=0.1)
    model.compile(optimizer=optimizer)
    optimizer.build(model.trainable_variables)
    variables = {v.path: v for v in model.trainable_variables}
    kernel = variables["encoder/transformer_layer_0/output/kernel"]
    gamma = variables["encoder/transformer_layer_0/output_layer_norm/gamma"]
    before_k, before_g = kernel.numpy().copy(), gamma.numpy().copy()
    optimizer._apply_weight_decay([kernel, gamma])
    np.testing.assert_allclose(kernel.numpy(), before_k * (1 - 0.1 * 0.1 * 0.25), rtol=1e-6)
    np.testing.assert_array_equal(gamma.numpy(), before_g)


def test_layerwise_optimizer_config_round_trip():
    optimizer = bert_finetuning_optimizer(5e-5, total_steps=100, num_layers=6,
                                          layerwise_lr_decay=0.8)
    clone = LayerwiseAdamW.from_config(optimizer.get_config())
    assert (clone.layer_decay, clone.num_layers, clone.no_decay_names) == (
        0.8, 6, ("bias", "gamma", "beta"))
    with pytest.raises(ValueError, match="layerwise_lr_decay"):
        LayerwiseAdamW(layer_decay=1.5)


def test_compile_defaults_follow_the_bert_recipe():
    model = BertClassifier(encoder(), num_classes=2)
    model.compile(total_steps=1000)
    opt = model.optimizer
    assert isinstance(opt, LayerwiseAdamW)
    assert opt.weight_decay == pytest.approx(0.01) and opt.epsilon == pytest.approx(1e-6)
    schedule = opt._learning_rate
    assert float(schedule(100)) == pytest.approx(3e-5)  # peak at the end of a 10% warmup
    assert float(schedule(50)) == pytest.approx(1.5e-5)
    assert float(schedule(550)) == pytest.approx(1.5e-5)  # linear decay to 0 at the end
    assert float(schedule(1000)) == pytest.approx(0.0)
    assert isinstance(model.loss, keras.losses.SparseCategoricalCrossentropy)


def test_frozen_layers_do_not_move():
    model = BertClassifier(encoder(), num_classes=2, freeze_layers=1)
    trainable = {v.path for v in model.trainable_variables}
    assert not any("embeddings/" in p or "transformer_layer_0/" in p for p in trainable)
    assert any("transformer_layer_1/" in p for p in trainable)
    frozen_vars = model.encoder.embeddings.weights + model.encoder.transformer_layers[0].weights
    frozen = [v.numpy().copy() for v in frozen_vars]
    moving = model.encoder.transformer_layers[1].weights[0]
    before = moving.numpy().copy()
    _one_step(model, keras.optimizers.Adam(1e-2))
    for v, value in zip(frozen_vars, frozen, strict=True):
        np.testing.assert_array_equal(v.numpy(), value)
    assert not np.array_equal(moving.numpy(), before)
    with pytest.raises(ValueError, match="only 2 blocks"):
        BertClassifier(encoder(), num_classes=2, freeze_layers=3)


def test_freezing_survives_config_round_trip():
    model = BertClassifier(encoder(), num_classes=2, freeze_layers=0)
    clone = BertClassifier.from_config(model.get_config())
    assert not clone.encoder.embeddings.trainable
    assert clone.encoder.transformer_layers[0].trainable
