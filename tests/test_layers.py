"""kbert.layers: embeddings, self-attention and the transformer block against a numpy reference."""

import keras
import numpy as np
import pytest
from layer_checks import (
    check_round_trips,
    np_attention,
    np_embeddings,
    np_transformer_block,
    randomize_weights,
)

from kbert.layers import BertEmbeddings, MultiHeadSelfAttention, TransformerBlock

H, HEADS, INTER = 16, 4, 32
ATOL = 1e-5


def _x(batch=2, seq=6, seed=0):
    return np.random.default_rng(seed).normal(size=(batch, seq, H)).astype("float32")


def _mask(lengths, seq=6):
    return (np.arange(seq)[None, :] < np.asarray(lengths)[:, None]).astype("int32")


def _np(x):
    return keras.ops.convert_to_numpy(x)


# ------------------------------------------------------------------------------- embeddings
def _embeddings(**kwargs):
    layer = BertEmbeddings(vocab_size=50, hidden_size=H, max_position_embeddings=8,
                           type_vocab_size=3, **kwargs)
    layer.build()
    randomize_weights(layer)
    return layer


def test_embeddings_match_reference_sum_of_three_tables():
    layer = _embeddings()
    ids = np.array([[2, 7, 9, 3, 0], [2, 7, 3, 11, 3]])
    segments = np.array([[0, 0, 0, 0, 0], [0, 0, 0, 1, 2]])
    out = _np(layer(ids, segments))
    assert out.shape == (2, 5, H)
    np.testing.assert_allclose(out, np_embeddings(layer, ids, segments), atol=ATOL)


def test_embeddings_default_segments_are_zeros_and_positions_matter():
    layer = _embeddings()
    ids = np.array([[5, 5, 5]])
    out = _np(layer(ids))
    np.testing.assert_array_equal(out, _np(layer(ids, np.zeros_like(ids))))
    assert not np.allclose(out[0, 0], out[0, 1])  # same token, different position


def test_embeddings_expose_the_token_table_for_tying():
    layer = _embeddings()
    matrix = layer.token_embedding_matrix
    assert tuple(matrix.shape) == (50, H)
    assert matrix is layer.token_embedding.embeddings


def test_embeddings_weight_names_are_stable():
    layer = _embeddings(name="embeddings")
    assert [w.path for w in layer.weights] == [
        "embeddings/token_embedding/embeddings",
        "embeddings/position_embedding/embeddings",
        "embeddings/segment_embedding/embeddings",
        "embeddings/layer_norm/gamma",
        "embeddings/layer_norm/beta",
    ]


def test_embeddings_refuse_sequences_longer_than_the_position_table():
    layer = _embeddings()
    with pytest.raises(ValueError, match=r"sequence length 9 exceeds max_position_embeddings=8"):
        layer(np.ones((1, 9), "int32"))
    with pytest.raises(ValueError, match="max_position_embeddings"):
        layer(keras.KerasTensor((None, 9), dtype="int32"))  # static seq at trace time


def test_embeddings_round_trip(tmp_path):
    layer = _embeddings(dropout=0.1, layer_norm_epsilon=1e-6, name="embeddings")
    check_round_trips(layer, (np.array([[2, 4, 3]]), np.array([[0, 1, 1]])), tmp_path)


# ------------------------------------------------------------------------------- attention
def _attention(**kwargs):
    layer = MultiHeadSelfAttention(hidden_size=H, num_heads=HEADS, **kwargs)
    layer.build()
    randomize_weights(layer)
    return layer


@pytest.mark.parametrize("scores", [False, True], ids=["fused_path", "explicit_path"])
def test_attention_matches_reference_with_padding(scores):
    layer = _attention(fused_attention=True)  # the fused path is off by default on TF
    x, mask = _x(), _mask([6, 3])
    expected, expected_probs = np_attention(layer, x.astype("float64"), mask)
    out = layer(x, padding_mask=mask, return_attention_scores=scores)
    if scores:
        out, probs = out
        assert probs.shape == (2, HEADS, 6, 6)
        np.testing.assert_allclose(_np(probs), expected_probs, atol=ATOL)
    np.testing.assert_allclose(_np(out), expected, atol=ATOL)


def test_attention_qkv_kernel_layout_is_query_key_value_then_heads():
    # Put the value projection in the last H columns only: the output must then depend on the
    # values, and zeroing those columns (not any other block) must zero the context.
    layer = _attention()
    x = _x()
    kernel = _np(layer.qkv.kernel).copy()
    bias = _np(layer.qkv.bias).copy()
    kernel[:, 2 * H:] = 0.0
    bias[2 * H:] = 0.0
    layer.qkv.kernel.assign(kernel)
    layer.qkv.bias.assign(bias)
    out = _np(layer(x))
    np.testing.assert_allclose(out, np.broadcast_to(_np(layer.output_dense.bias), out.shape),
                               atol=ATOL)


def test_attention_probabilities_sum_to_one_over_real_keys_and_zero_on_padding():
    layer = _attention()
    _, probs = layer(_x(), padding_mask=_mask([6, 2]), return_attention_scores=True)
    probs = _np(probs)
    np.testing.assert_allclose(probs.sum(-1), 1.0, atol=1e-6)
    assert np.all(probs[1, :, :, 2:] == 0.0)
    assert np.all(probs[1, :, :, :2] > 0.0)


@pytest.mark.parametrize("scores", [False, True], ids=["fused_path", "explicit_path"])
def test_attention_fully_padded_row_gives_no_nan(scores):
    layer = _attention(fused_attention=True)
    x, mask = _x(), _mask([4, 0])
    out = layer(x, padding_mask=mask, return_attention_scores=scores)
    out = out[0] if scores else out
    assert np.all(np.isfinite(_np(out)))
    np.testing.assert_allclose(_np(out), np_attention(layer, x.astype("float64"), mask)[0],
                               atol=ATOL)


@pytest.mark.parametrize("fused", [None, True, False])
def test_attention_default_fused_and_explicit_paths_agree(fused):
    layer = _attention(fused_attention=fused)
    x, mask = _x(), _mask([6, 2])
    out = _np(layer(x, padding_mask=mask))
    np.testing.assert_allclose(out, np_attention(layer, x.astype("float64"), mask)[0], atol=ATOL)
    np.testing.assert_array_equal(_np(layer(x, padding_mask=mask.astype(bool))), out)


def test_attention_dropout_applies_only_in_training():
    layer = _attention(attention_dropout=0.5)
    x = _x()
    inference = _np(layer(x))
    np.testing.assert_array_equal(_np(layer(x, training=False)), inference)
    trained = _np(layer(x, training=True))
    assert np.all(np.isfinite(trained))
    assert not np.allclose(trained, inference, atol=1e-3)


def test_attention_rejects_hidden_not_divisible_by_heads():
    with pytest.raises(ValueError, match=r"hidden_size \(10\) must be divisible by num_heads"):
        MultiHeadSelfAttention(hidden_size=10, num_heads=3)


def test_attention_round_trip(tmp_path):
    layer = _attention(attention_dropout=0.1, fused_attention=True, name="self_attention")
    check_round_trips(layer, _x(), tmp_path, call_kwargs={"padding_mask": _mask([6, 4])})
    check_round_trips(layer, _x(), tmp_path / "scores",
                      call_kwargs={"padding_mask": _mask([6, 4]), "return_attention_scores": True})


# ------------------------------------------------------------------------------- block
def _block(**kwargs):
    layer = TransformerBlock(hidden_size=H, num_heads=HEADS, intermediate_size=INTER, **kwargs)
    layer.build()
    randomize_weights(layer)
    return layer


@pytest.mark.parametrize("act", ["gelu", "gelu_tanh", "relu"])
def test_block_matches_post_layer_norm_reference(act):
    block = _block(hidden_act=act)
    x, mask = _x(), _mask([6, 4])
    expected, expected_probs = np_transformer_block(block, x.astype("float64"), mask)
    out, probs = block(x, padding_mask=mask, return_attention_scores=True)
    np.testing.assert_allclose(_np(out), expected, atol=ATOL)
    np.testing.assert_allclose(_np(probs), expected_probs, atol=ATOL)
    np.testing.assert_allclose(_np(block(x, padding_mask=mask)), expected, atol=ATOL)


def test_block_gelu_exact_and_tanh_differ():
    exact = _block(hidden_act="gelu")
    approx = TransformerBlock.from_config({**exact.get_config(), "hidden_act": "gelu_tanh"})
    approx.build()
    approx.set_weights(exact.get_weights())
    x = 3.0 * _x()
    diff = np.abs(_np(exact(x)) - _np(approx(x))).max()
    assert diff > 1e-4


def test_block_default_activation_is_exact_gelu():
    assert TransformerBlock(hidden_size=H, num_heads=HEADS, intermediate_size=INTER).hidden_act \
        == "gelu"


def test_block_rejects_unknown_activation():
    with pytest.raises(ValueError, match=r"hidden_act must be one of .*'swish'"):
        TransformerBlock(hidden_size=H, num_heads=HEADS, intermediate_size=INTER,
                         hidden_act="swish")


def test_block_weight_names_are_stable():
    block = _block(name="transformer_layer_3")
    assert [(w.path, tuple(w.shape)) for w in block.weights] == [
        ("transformer_layer_3/self_attention/qkv/kernel", (H, 3 * H)),
        ("transformer_layer_3/self_attention/qkv/bias", (3 * H,)),
        ("transformer_layer_3/self_attention/output/kernel", (H, H)),
        ("transformer_layer_3/self_attention/output/bias", (H,)),
        ("transformer_layer_3/attention_layer_norm/gamma", (H,)),
        ("transformer_layer_3/attention_layer_norm/beta", (H,)),
        ("transformer_layer_3/intermediate/kernel", (H, INTER)),
        ("transformer_layer_3/intermediate/bias", (INTER,)),
        ("transformer_layer_3/output/kernel", (INTER, H)),
        ("transformer_layer_3/output/bias", (H,)),
        ("transformer_layer_3/output_layer_norm/gamma", (H,)),
        ("transformer_layer_3/output_layer_norm/beta", (H,)),
    ]


def test_block_round_trip(tmp_path):
    block = _block(hidden_dropout=0.1, attention_dropout=0.1, hidden_act="gelu_tanh",
                   layer_norm_epsilon=1e-6, name="transformer_layer_0")
    check_round_trips(block, _x(), tmp_path, call_kwargs={"padding_mask": _mask([6, 1])})
