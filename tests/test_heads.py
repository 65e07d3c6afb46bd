"""MaskedLMHead and NextSentenceHead against a float64 numpy reference; tying; round trips."""

import keras
import numpy as np
import pytest
from layer_checks import (
    check_config_round_trip,
    check_round_trips,
    np_dense,
    np_gelu_exact,
    np_layer_norm,
    randomize_weights,
)

from kbert.layers.heads import MaskedLMHead, NextSentenceHead, gather_positions

V, H, B, S, P = 23, 8, 3, 7, 4


def _table(seed=0):
    table = keras.layers.Embedding(V, H, name="token_embedding")
    table.build((None,))
    table.embeddings.assign(np.random.default_rng(seed).normal(0, 0.5, (V, H)).astype("float32"))
    return table


def _inputs(seed=1):
    rng = np.random.default_rng(seed)
    sequence = rng.normal(0, 1, (B, S, H)).astype("float32")
    positions = np.array([[1, 3, 0, 0], [6, 2, 5, 1], [4, 0, 0, 0]], "int32")
    return sequence, positions


def _np_mlm(head, table, sequence, positions):
    picked = np.stack([sequence[b, positions[b]] for b in range(B)]).astype("float64")
    x = np_layer_norm(np_gelu_exact(np_dense(picked, head.dense)), head.layer_norm)
    emb = keras.ops.convert_to_numpy(table.embeddings).astype("float64")
    return x @ emb.T + keras.ops.convert_to_numpy(head.output_bias)


def _mlm_head(table):
    head = MaskedLMHead(vocab_size=V, token_embedding=table, name="mlm_head")
    head.build((None, None, H), (None, None))
    randomize_weights(head, seed=3)
    return head


def test_gather_positions_picks_rows():
    sequence, positions = _inputs()
    got = keras.ops.convert_to_numpy(gather_positions(sequence, positions))
    assert got.shape == (B, P, H)
    for b in range(B):
        np.testing.assert_array_equal(got[b], sequence[b, positions[b]])


def test_mlm_head_matches_numpy_reference():
    table = _table()
    head = _mlm_head(table)
    sequence, positions = _inputs()
    logits = keras.ops.convert_to_numpy(head(sequence, positions))
    assert logits.shape == (B, P, V) and logits.dtype == np.float32
    np.testing.assert_allclose(logits, _np_mlm(head, table, sequence, positions), atol=2e-5)


def test_mlm_head_reads_only_the_selected_positions():
    table = _table()
    head = _mlm_head(table)
    sequence, positions = _inputs()
    before = keras.ops.convert_to_numpy(head(sequence, positions))
    changed = sequence.copy()
    changed[0, 2] += 10.0  # row 0 selects positions 1, 3, 0
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(head(changed, positions)), before)
    changed[0, 3] += 10.0
    after = keras.ops.convert_to_numpy(head(changed, positions))
    assert not np.allclose(after[0, 1], before[0, 1])
    np.testing.assert_array_equal(after[1:], before[1:])


def test_decoder_is_tied_to_the_embedding_variable():
    table = _table()
    head = _mlm_head(table)
    sequence, positions = _inputs()
    before = keras.ops.convert_to_numpy(head(sequence, positions))
    # the head owns no [V, H] weight: the table stays the only one
    assert all(tuple(w.shape) != (V, H) for w in head.weights)
    assert head.embedding_matrix is table.embeddings
    table.embeddings.assign(table.embeddings * 2.0 + 0.1)
    after = keras.ops.convert_to_numpy(head(sequence, positions))
    assert not np.allclose(after, before)
    np.testing.assert_allclose(after, _np_mlm(head, table, sequence, positions), atol=5e-5)


def test_mlm_head_refuses_a_table_of_the_wrong_size():
    head = MaskedLMHead(vocab_size=V + 1, token_embedding=_table())
    with pytest.raises(ValueError, match="tied token table"):
        head.build((None, None, H), (None, None))
    with pytest.raises(ValueError, match="no token embedding"):
        MaskedLMHead(vocab_size=V).build((None, None, H), (None, None))


def test_mlm_head_config_round_trip_retied():
    table = _table()
    head = _mlm_head(table)
    sequence, positions = _inputs()
    clone = MaskedLMHead.from_config(head.get_config())
    assert clone.get_config() == head.get_config()
    clone.tie(table)
    clone.build((None, None, H), (None, None))
    clone.set_weights(head.get_weights())
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(clone(sequence, positions)),
                                  keras.ops.convert_to_numpy(head(sequence, positions)))


def test_nsp_head_matches_numpy_and_round_trips(tmp_path):
    pooled = np.random.default_rng(4).normal(0, 1, (B, H)).astype("float32")
    head = NextSentenceHead(name="nsp_head")
    head.build((None, H))
    randomize_weights(head, seed=5)
    logits = keras.ops.convert_to_numpy(head(pooled))
    expected = pooled.astype("float64") @ keras.ops.convert_to_numpy(head.kernel) + \
        keras.ops.convert_to_numpy(head.bias)
    assert logits.shape == (B, 2)
    np.testing.assert_allclose(logits, expected, atol=1e-5)
    check_round_trips(head, pooled, tmp_path)


def test_logits_are_float32_under_mixed_precision():
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        table = keras.layers.Embedding(V, H)
        table.build((None,))
        head = MaskedLMHead(vocab_size=V, token_embedding=table)
        nsp = NextSentenceHead()
        sequence, positions = _inputs()
        assert head.compute_dtype == "bfloat16"
        assert keras.backend.standardize_dtype(head(sequence, positions).dtype) == "float32"
        assert keras.backend.standardize_dtype(nsp(sequence[:, 0]).dtype) == "float32"
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_nsp_head_config_round_trip():
    check_config_round_trip(NextSentenceHead(initializer_range=0.05), np.ones((2, H), "float32"))
