"""Serialization checks every kbert layer and model must pass (reusable by any test module).

    from layer_checks import check_round_trips

    def test_my_layer_round_trips(tmp_path):
        layer = MyLayer(units=4)
        check_round_trips(layer, np.ones((2, 3), "float32"), tmp_path)

`inputs` is the first positional argument of `call` (a tensor, array or dict), or a tuple of
positional arguments; `call_kwargs` go to every call (e.g. `{"padding_mask": mask}`).
Outputs may be any nest of tensors (tuple, list, dict). Outputs are compared exactly by
default: same weights and same ops on one machine must give the same numbers.
"""

from __future__ import annotations

import os
from math import erf

import keras
import numpy as np


def _call(layer, inputs, call_kwargs):
    args = inputs if isinstance(inputs, tuple) else (inputs,)
    return layer(*args, training=False, **(call_kwargs or {}))


def _as_numpy(outputs):
    return [keras.ops.convert_to_numpy(x) for x in keras.tree.flatten(outputs)]


def assert_same_outputs(expected, actual, atol=0.0, what="outputs"):
    expected, actual = _as_numpy(expected), _as_numpy(actual)
    assert len(expected) == len(actual), f"{what}: {len(expected)} vs {len(actual)} tensors"
    for i, (e, a) in enumerate(zip(expected, actual, strict=True)):
        assert e.shape == a.shape, f"{what}[{i}]: shape {e.shape} vs {a.shape}"
        np.testing.assert_allclose(a.astype("float64"), e.astype("float64"), rtol=0, atol=atol,
                                   err_msg=f"{what}[{i}] differ")


def _weight_signature(layer):
    # Paths include the object's own name, which a clone keeps; compare the full list so a
    # renamed or reordered sub-layer (which would break converters) is caught.
    return [(w.path, tuple(w.shape), str(w.dtype)) for w in layer.weights]


def check_config_round_trip(layer, inputs, call_kwargs=None, atol=0.0):
    """`from_config(get_config())` rebuilds the same layer: same config, weights, outputs."""
    expected = _call(layer, inputs, call_kwargs)
    config = layer.get_config()
    clone = layer.__class__.from_config(config)
    assert clone.get_config() == config, "get_config changed across from_config"
    _call(clone, inputs, call_kwargs)  # builds the clone if its build is lazy
    assert _weight_signature(clone) == _weight_signature(layer), "weights differ in name/shape"
    clone.set_weights(layer.get_weights())
    assert_same_outputs(expected, _call(clone, inputs, call_kwargs), atol, "config round trip")
    return clone


def check_saving_round_trip(layer, inputs, tmp_path, call_kwargs=None, atol=0.0):
    """`.keras` save then load gives an object of the same class with identical outputs."""
    expected = _call(layer, inputs, call_kwargs)
    os.makedirs(tmp_path, exist_ok=True)
    path = os.path.join(str(tmp_path), f"{layer.name}.keras")
    keras.saving.save_model(layer, path)
    loaded = keras.saving.load_model(path)
    assert type(loaded) is type(layer), f"loaded a {type(loaded).__name__}"
    assert loaded.get_config() == layer.get_config(), "config changed across .keras saving"
    assert _weight_signature(loaded) == _weight_signature(layer), "weights differ in name/shape"
    assert_same_outputs(expected, _call(loaded, inputs, call_kwargs), atol, ".keras round trip")
    return loaded


def check_round_trips(layer, inputs, tmp_path, call_kwargs=None, atol=0.0):
    """Both checks above."""
    check_config_round_trip(layer, inputs, call_kwargs, atol)
    check_saving_round_trip(layer, inputs, tmp_path, call_kwargs, atol)


# ---------------------------------------------------------------------------------------------
# An independent float64 numpy reference of the kbert encoder (loops over heads on purpose: it
# shares no code or layout trick with the Keras implementation except the documented weight
# layout). Tests compare the Keras layers against it.

def _np(variable):
    return np.asarray(keras.ops.convert_to_numpy(variable), dtype="float64")


def np_layer_norm(x, layer_norm):
    gamma, beta = _np(layer_norm.gamma), _np(layer_norm.beta)
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + layer_norm.epsilon) * gamma + beta


def np_dense(x, dense):
    return x @ _np(dense.kernel) + _np(dense.bias)


def np_gelu_exact(x):
    return 0.5 * x * (1.0 + np.vectorize(erf)(x / np.sqrt(2.0)))


def np_gelu_tanh(x):
    return 0.5 * x * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (x + 0.044715 * x ** 3)))


NP_ACTIVATIONS = {"gelu": np_gelu_exact, "gelu_tanh": np_gelu_tanh,
                  "relu": lambda x: np.maximum(x, 0.0)}


def np_embeddings(layer, token_ids, segment_ids=None):
    token_ids = np.asarray(token_ids)
    if segment_ids is None:
        segment_ids = np.zeros_like(token_ids)
    seq = token_ids.shape[1]
    x = (_np(layer.token_embedding.embeddings)[token_ids]
         + _np(layer.position_embedding.embeddings)[np.arange(seq)][None]
         + _np(layer.segment_embedding.embeddings)[np.asarray(segment_ids)])
    return np_layer_norm(x, layer.layer_norm)


def np_attention(layer, x, padding_mask=None):
    """Returns (output [B,S,H], probs [B,heads,S,S])."""
    batch, seq, hidden = x.shape
    heads, size = layer.num_heads, layer.head_size
    kernel, bias = _np(layer.qkv.kernel), _np(layer.qkv.bias)
    if padding_mask is None:
        padding_mask = np.ones((batch, seq))
    keep = np.asarray(padding_mask).astype(bool)
    context = np.zeros((batch, seq, hidden))
    probs = np.zeros((batch, heads, seq, seq))
    for h in range(heads):
        cols = [part * hidden + h * size + np.arange(size) for part in range(3)]
        q, k, v = (x @ kernel[:, c] + bias[c] for c in cols)
        logits = q @ k.transpose(0, 2, 1) / np.sqrt(size)
        for b in range(batch):
            if keep[b].any():
                logits[b][:, ~keep[b]] = -np.inf
            else:  # every key is padding: the documented result is uniform attention
                logits[b][:] = 0.0
        weights = np.exp(logits - logits.max(-1, keepdims=True))
        weights /= weights.sum(-1, keepdims=True)
        probs[:, h] = weights
        context[:, :, h * size:(h + 1) * size] = weights @ v
    return np_dense(context, layer.output_dense), probs


def np_transformer_block(block, x, padding_mask=None):
    attended, probs = np_attention(block.self_attention, x, padding_mask)
    x = np_layer_norm(x + attended, block.attention_layer_norm)
    h = np_dense(NP_ACTIVATIONS[block.hidden_act](np_dense(x, block.intermediate)),
                 block.output_dense)
    return np_layer_norm(x + h, block.output_layer_norm), probs


def np_encoder(encoder, token_ids, segment_ids=None, padding_mask=None):
    """Returns a dict like BertEncoder's with hidden_states and attention_probs."""
    x = np_embeddings(encoder.embeddings, token_ids, segment_ids)
    hidden_states, attention_probs = [x], []
    for block in encoder.transformer_layers:
        x, probs = np_transformer_block(block, x, padding_mask)
        hidden_states.append(x)
        attention_probs.append(probs)
    pooled = np.tanh(np_dense(x[:, 0], encoder.pooler))
    return {"sequence_output": x, "pooled_output": pooled,
            "hidden_states": hidden_states, "attention_probs": attention_probs}


def randomize_weights(layer, seed=0, scale=0.3):
    """Give every weight (LayerNorm and biases included) random values, so a test cannot pass
    because a gamma is 1 or a bias is 0."""
    rng = np.random.default_rng(seed)
    for w in layer.weights:
        value = rng.normal(0.0, scale, tuple(w.shape))
        if w.path.endswith("gamma"):
            value = 1.0 + 0.2 * value
        w.assign(value.astype(keras.backend.standardize_dtype(w.dtype)))
