"""kbert.models.BertEncoder: outputs, masking semantics, config, weights, serialization,
precision."""

import doctest
import importlib

import keras
import numpy as np
import pytest
import tensorflow as tf
from layer_checks import check_round_trips, np_encoder, randomize_weights

from kbert.config import BertConfig, ConfigError
from kbert.models import BertEncoder

TINY = dict(vocab_size=60, hidden_size=16, num_layers=2, num_heads=4, intermediate_size=32,
            max_position_embeddings=12, hidden_dropout=0.1, attention_dropout=0.1)
ATOL = 2e-5


def _np(x):
    return keras.ops.convert_to_numpy(x)


def _encoder(seed=0, **overrides):
    encoder = BertEncoder(**{**TINY, **overrides})
    randomize_weights(encoder, seed=seed)
    return encoder


def _batch(seed=0, batch=3, seq=8, lengths=(8, 5, 2)):
    rng = np.random.default_rng(seed)
    token_ids = rng.integers(1, TINY["vocab_size"], size=(batch, seq)).astype("int32")
    padding_mask = (np.arange(seq)[None] < np.array(lengths)[:, None]).astype("int32")
    segment_ids = ((np.arange(seq)[None] >= 3) & (padding_mask == 1)).astype("int32")
    token_ids = token_ids * padding_mask
    return {"token_ids": token_ids, "segment_ids": segment_ids, "padding_mask": padding_mask}


# ------------------------------------------------------------------------------- outputs
def test_outputs_match_independent_numpy_reference():
    encoder, inputs = _encoder(), _batch()
    out = encoder(inputs, output_hidden_states=True, output_attentions=True)
    ref = np_encoder(encoder, inputs["token_ids"], inputs["segment_ids"], inputs["padding_mask"])
    np.testing.assert_allclose(_np(out["sequence_output"]), ref["sequence_output"], atol=ATOL)
    np.testing.assert_allclose(_np(out["pooled_output"]), ref["pooled_output"], atol=ATOL)
    for got, want in zip(out["hidden_states"], ref["hidden_states"], strict=True):
        np.testing.assert_allclose(_np(got), want, atol=ATOL)
    for got, want in zip(out["attention_probs"], ref["attention_probs"], strict=True):
        np.testing.assert_allclose(_np(got), want, atol=ATOL)


def test_output_shapes_and_optional_outputs():
    encoder, inputs = _encoder(), _batch()
    plain = encoder(inputs)
    assert set(plain) == {"sequence_output", "pooled_output"}
    assert plain["sequence_output"].shape == (3, 8, 16)
    assert plain["pooled_output"].shape == (3, 16)
    full = encoder(inputs, output_hidden_states=True, output_attentions=True)
    assert len(full["hidden_states"]) == 3 and len(full["attention_probs"]) == 2
    assert all(h.shape == (3, 8, 16) for h in full["hidden_states"])
    assert all(p.shape == (3, 4, 8, 8) for p in full["attention_probs"])
    np.testing.assert_array_equal(_np(full["hidden_states"][-1]), _np(plain["sequence_output"]))
    np.testing.assert_array_equal(_np(full["hidden_states"][0]),
                                  _np(encoder.embeddings(inputs["token_ids"],
                                                         inputs["segment_ids"])))
    # Asking for probabilities takes the explicit softmax path: same result as the fused one.
    np.testing.assert_allclose(_np(full["sequence_output"]), _np(plain["sequence_output"]),
                               atol=1e-5)


def test_output_positions_equal_the_full_output_gathered_there():
    """The last block computes only the rows asked for (+ [CLS]): same values, fewer rows."""
    encoder, inputs = _encoder(), _batch()
    positions = np.array([[1, 7, 0], [4, 4, 2], [0, 6, 1]], "int32")  # repeats, [CLS], padding
    full = encoder(inputs, output_attentions=True)
    part = encoder(inputs, output_positions=positions, output_attentions=True)
    assert part["sequence_output"].shape == (3, 3, 16)
    expected = np.take_along_axis(_np(full["sequence_output"]), positions[..., None], axis=1)
    np.testing.assert_allclose(_np(part["sequence_output"]), expected, atol=ATOL)
    np.testing.assert_allclose(_np(part["pooled_output"]), _np(full["pooled_output"]), atol=ATOL)
    # the earlier block is whole; the last one attends from [CLS] + the 3 rows to all 8 keys
    np.testing.assert_allclose(_np(part["attention_probs"][0]), _np(full["attention_probs"][0]),
                               atol=ATOL)
    assert part["attention_probs"][1].shape == (3, 4, 4, 8)
    # the fused path (no probabilities asked for) agrees too
    fused = encoder(inputs, output_positions=positions)
    np.testing.assert_allclose(_np(fused["sequence_output"]), expected, atol=ATOL)
    with pytest.raises(ValueError, match="output_positions and output_hidden_states"):
        encoder(inputs, output_positions=positions, output_hidden_states=True)


def test_attention_probs_sum_to_one_over_real_keys_and_vanish_on_padding():
    encoder, inputs = _encoder(), _batch()
    lengths = inputs["padding_mask"].sum(1)
    for probs in encoder(inputs, output_attentions=True)["attention_probs"]:
        probs = _np(probs)
        for b, n in enumerate(lengths):
            np.testing.assert_allclose(probs[b, :, :, :n].sum(-1), 1.0, atol=1e-5)
            assert np.all(probs[b, :, :, n:] == 0.0)


def test_appending_padding_leaves_real_positions_unchanged():
    encoder, inputs = _encoder(), _batch(seq=8)
    short = encoder(inputs)
    longer = {k: np.pad(v, [(0, 0), (0, 4)]) for k, v in inputs.items()}
    long = encoder(longer)
    mask = inputs["padding_mask"].astype(bool)
    np.testing.assert_allclose(_np(long["sequence_output"])[:, :8][mask],
                               _np(short["sequence_output"])[mask], atol=1e-5)
    np.testing.assert_allclose(_np(long["pooled_output"]), _np(short["pooled_output"]),
                               atol=1e-5)


def test_attention_is_bidirectional_not_causal():
    encoder, inputs = _encoder(), _batch(lengths=(8, 8, 8))
    changed = {**inputs, "token_ids": inputs["token_ids"].copy()}
    changed["token_ids"][:, -1] = (changed["token_ids"][:, -1] % 50) + 1
    before = _np(encoder(inputs)["sequence_output"])
    after = _np(encoder(changed)["sequence_output"])
    assert np.all(np.abs(after[:, 0] - before[:, 0]).max(-1) > 1e-4)


def test_defaults_are_all_ones_mask_and_zero_segments():
    encoder = _encoder()
    token_ids = _batch(lengths=(8, 8, 8))["token_ids"]
    explicit = encoder({"token_ids": token_ids, "segment_ids": np.zeros_like(token_ids),
                        "padding_mask": np.ones_like(token_ids)})
    for implicit in (encoder({"token_ids": token_ids}), encoder(token_ids)):
        np.testing.assert_allclose(_np(implicit["sequence_output"]),
                                   _np(explicit["sequence_output"]), atol=1e-6)


def test_bool_padding_mask_equals_int_mask():
    encoder, inputs = _encoder(), _batch()
    as_bool = {**inputs, "padding_mask": inputs["padding_mask"].astype(bool)}
    np.testing.assert_array_equal(_np(encoder(as_bool)["sequence_output"]),
                                  _np(encoder(inputs)["sequence_output"]))


def test_fully_padded_sequence_gives_finite_outputs():
    encoder, inputs = _encoder(), _batch(lengths=(8, 0, 3))
    out = encoder(inputs, output_attentions=True)
    assert all(np.all(np.isfinite(_np(t))) for t in keras.tree.flatten(out))
    assert np.all(np.isfinite(_np(encoder(inputs)["sequence_output"])))


def test_dropout_only_in_training():
    encoder, inputs = _encoder(), _batch()
    a = _np(encoder(inputs)["sequence_output"])
    np.testing.assert_array_equal(_np(encoder(inputs, training=False)["sequence_output"]), a)
    b = _np(encoder(inputs, training=True)["sequence_output"])
    assert not np.allclose(a, b, atol=1e-3)


def test_every_weight_gets_a_gradient():
    encoder, inputs = _encoder(), _batch()
    with tf.GradientTape() as tape:
        out = encoder(inputs, training=True)
        loss = tf.reduce_sum(out["pooled_output"]) + tf.reduce_sum(out["sequence_output"] ** 2)
    grads = tape.gradient(loss, encoder.trainable_weights)
    assert len(grads) == len(encoder.weights) == 5 + 2 * 12 + 2
    missing = [w.path for w, g in zip(encoder.trainable_weights, grads, strict=True) if g is None]
    assert not missing


# ------------------------------------------------------------------------------- errors
@pytest.mark.parametrize("overrides, message", [
    (dict(hidden_size=10, num_heads=3), r"hidden_size \(10\) must be divisible by num_heads \(3\)"),
    (dict(hidden_act="swish"), r"hidden_act must be one of .*'swish'"),
    (dict(num_layers=0), r"num_layers must be a positive integer"),
    (dict(attention_dropout=1.5), r"attention_dropout must be in \[0, 1\)"),
])
def test_bad_config_raises_config_error(overrides, message):
    with pytest.raises(ConfigError, match=message):
        BertEncoder(**{**TINY, **overrides})


def test_sequence_longer_than_positions_is_refused():
    encoder = _encoder()
    with pytest.raises(ValueError, match=r"sequence length 13 exceeds max_position_embeddings=12"):
        encoder({"token_ids": np.ones((1, 13), "int32")})


def test_bad_inputs_are_named():
    encoder, inputs = _encoder(), _batch()
    with pytest.raises(ValueError, match=r"unknown input keys \['attention_mask'\]"):
        encoder({**inputs, "attention_mask": inputs["padding_mask"]})
    with pytest.raises(ValueError, match="token_ids"):
        encoder({"padding_mask": inputs["padding_mask"]})
    with pytest.raises(ValueError, match=r"token_ids must be \[batch, seq\]"):
        encoder({"token_ids": np.ones((2, 3, 4), "int32")})


# ------------------------------------------------------------------------------- config, weights
def test_bert_config_and_constructors_agree():
    cfg = BertConfig.preset("tiny", vocab_size=100, max_position_embeddings=32)
    encoder = BertEncoder.from_bert_config(cfg, name="enc")
    assert encoder.bert_config == cfg and encoder.name == "enc"
    preset = BertEncoder.from_preset("tiny", vocab_size=100, max_position_embeddings=32,
                                     name="p", dtype="float32")
    assert preset.bert_config == cfg and preset.name == "p"
    config = encoder.get_config()
    assert {k: config[k] for k in cfg.to_dict()} == cfg.to_dict()
    assert set(config) == set(cfg.to_dict()) | {"name", "trainable", "dtype"}


def test_weights_exist_before_the_first_call_with_documented_names():
    encoder = BertEncoder(**{**TINY, "num_layers": 1}, name="bert")
    assert encoder.built
    h, i = 16, 32
    assert [(w.path, tuple(w.shape)) for w in encoder.weights] == [
        ("bert/embeddings/token_embedding/embeddings", (60, h)),
        ("bert/embeddings/position_embedding/embeddings", (12, h)),
        ("bert/embeddings/segment_embedding/embeddings", (2, h)),
        ("bert/embeddings/layer_norm/gamma", (h,)),
        ("bert/embeddings/layer_norm/beta", (h,)),
        ("bert/transformer_layer_0/self_attention/qkv/kernel", (h, 3 * h)),
        ("bert/transformer_layer_0/self_attention/qkv/bias", (3 * h,)),
        ("bert/transformer_layer_0/self_attention/output/kernel", (h, h)),
        ("bert/transformer_layer_0/self_attention/output/bias", (h,)),
        ("bert/transformer_layer_0/attention_layer_norm/gamma", (h,)),
        ("bert/transformer_layer_0/attention_layer_norm/beta", (h,)),
        ("bert/transformer_layer_0/intermediate/kernel", (h, i)),
        ("bert/transformer_layer_0/intermediate/bias", (i,)),
        ("bert/transformer_layer_0/output/kernel", (i, h)),
        ("bert/transformer_layer_0/output/bias", (h,)),
        ("bert/transformer_layer_0/output_layer_norm/gamma", (h,)),
        ("bert/transformer_layer_0/output_layer_norm/beta", (h,)),
        ("bert/pooler/kernel", (h, h)),
        ("bert/pooler/bias", (h,)),
    ]
    assert encoder.get_layer("transformer_layer_0") is encoder.transformer_layers[0]
    assert encoder.get_layer("embeddings") is encoder.embeddings
    assert encoder.token_embedding_matrix is encoder.embeddings.token_embedding.embeddings
    encoder.build({"token_ids": (None, None)})  # building again is a no-op
    assert len(encoder.weights) == 19


def test_initialization_truncated_normal_unit_gamma_zero_beta_and_bias():
    encoder = BertEncoder(**{**TINY, "hidden_size": 64, "intermediate_size": 128,
                             "initializer_range": 0.05})
    for w in encoder.weights:
        value = _np(w)
        if w.path.endswith(("gamma",)):
            np.testing.assert_array_equal(value, 1.0)
        elif w.path.endswith(("beta", "bias")):
            np.testing.assert_array_equal(value, 0.0)
        else:
            assert np.abs(value).max() <= 2 * 0.05 + 1e-7, w.path
            if value.size >= 4096:
                assert 0.03 < value.std() < 0.05, w.path  # truncation shrinks std by ~12%


# ------------------------------------------------------------------------------- serialization
def test_config_and_keras_file_round_trip(tmp_path):
    encoder = _encoder(hidden_act="gelu_tanh", layer_norm_epsilon=1e-6)
    check_round_trips(encoder, _batch(), tmp_path)


def test_saved_weights_reload_into_fresh_encoder(tmp_path):
    encoder, inputs = _encoder(), _batch()
    encoder.save_weights(str(tmp_path / "enc.weights.h5"))
    fresh = BertEncoder.from_bert_config(encoder.bert_config)
    fresh.load_weights(str(tmp_path / "enc.weights.h5"))
    np.testing.assert_array_equal(_np(fresh(inputs)["sequence_output"]),
                                  _np(encoder(inputs)["sequence_output"]))


def test_dynamic_sequence_length_in_a_compiled_graph():
    encoder, inputs = _encoder(), _batch()
    spec = tf.TensorSpec([None, None], tf.int32)
    fn = tf.function(lambda x: encoder(x)["sequence_output"], jit_compile=False,
                     input_signature=[{k: spec for k in inputs}])
    for seq in (8, 5):
        part = {k: v[:, :seq] for k, v in inputs.items()}
        np.testing.assert_allclose(_np(fn(part)), _np(encoder(part)["sequence_output"]),
                                   atol=1e-5)


# ------------------------------------------------------------------------------- precision
def test_mixed_bfloat16_runs_with_float32_weights_and_stable_softmax():
    reference = _encoder()
    mixed = BertEncoder(**TINY, dtype="mixed_bfloat16")
    mixed.set_weights(reference.get_weights())
    inputs = _batch()
    out = mixed(inputs, output_attentions=True)
    assert all(w.dtype == "float32" for w in mixed.weights)
    assert keras.backend.standardize_dtype(out["sequence_output"].dtype) == "bfloat16"
    lengths = inputs["padding_mask"].sum(1)
    for probs in out["attention_probs"]:
        assert keras.backend.standardize_dtype(probs.dtype) == "float32"
        probs = _np(probs)
        for b, n in enumerate(lengths):
            np.testing.assert_allclose(probs[b, :, :, :n].sum(-1), 1.0, atol=1e-5)
    expected = _np(reference(inputs)["sequence_output"])
    got = _np(mixed(inputs)["sequence_output"]).astype("float32")
    assert np.all(np.isfinite(got))
    # bf16 keeps ~3 significant digits; LayerNorm outputs are O(1).
    assert np.abs(got - expected).max() < 0.1
    assert np.corrcoef(got.ravel(), expected.ravel())[0, 1] > 0.999


def test_global_mixed_policy_is_picked_up():
    keras.mixed_precision.set_dtype_policy("mixed_bfloat16")
    try:
        encoder = BertEncoder(**TINY)
        out = encoder(_batch())
    finally:
        keras.mixed_precision.set_dtype_policy("float32")
    assert encoder.dtype_policy.name == "mixed_bfloat16"
    assert encoder.transformer_layers[0].self_attention.qkv.dtype_policy.name == "mixed_bfloat16"
    assert keras.backend.standardize_dtype(out["pooled_output"].dtype) == "bfloat16"
    assert np.all(np.isfinite(_np(out["pooled_output"]).astype("float32")))


def test_docstring_examples_run():
    for name in ("kbert.layers.embeddings", "kbert.layers.attention",
                 "kbert.layers.transformer", "kbert.models.encoder"):
        result = doctest.testmod(importlib.import_module(name))
        assert result.attempted > 0 and result.failed == 0, name
