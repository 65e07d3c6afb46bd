"""pack_segments: layout, transformers' longest-first truncation, graph mode, core ops only."""

import random

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st

from kbert.tokenization.packing import num_truncated, pack_id_lists, pack_segments

CLS, SEP, PAD = 101, 102, 0


def reference_pack(a, b, max_length):
    """Independent reference: a transcription of huggingface/tokenizers'
    `truncate_encodings` (utils/truncation.rs, LongestFirst), which BertTokenizerFast runs;
    then [CLS] A [SEP] B [SEP] and padding."""
    a, b = list(a), list(b) if b is not None else None
    budget = max_length - (3 if b is not None else 2)
    if b is None:
        a = a[:budget]
    elif len(a) + len(b) > budget:
        n1, n2 = len(a), len(b)
        swap = n1 > n2  # n1: the shorter
        if swap:
            n1, n2 = n2, n1
        n2 = n1 if n1 > budget else max(n1, budget - n1)
        if n1 + n2 > budget:
            n1 = budget // 2
            n2 = n1 + budget % 2
        if swap:
            n1, n2 = n2, n1
        a, b = a[:n1], b[:n2]
    ids = [CLS] + a + [SEP]
    segments = [0] * len(ids)
    if b is not None:
        ids += b + [SEP]
        segments += [1] * (len(b) + 1)
    mask = [1] * len(ids) + [0] * (max_length - len(ids))
    padding = max_length - len(ids)
    return ids + [PAD] * padding, segments + [0] * padding, mask


def ragged(rows):
    return tf.ragged.constant(rows, dtype=tf.int32, ragged_rank=1) if rows else (
        tf.RaggedTensor.from_row_lengths(tf.zeros([0], tf.int32), tf.zeros([0], tf.int64)))


def check_against_reference(rows_a, rows_b, max_length):
    segments = [ragged(rows_a)] + ([ragged(rows_b)] if rows_b is not None else [])
    packed = pack_segments(segments, max_length, CLS, SEP, PAD)
    removed = num_truncated(segments, max_length).numpy()
    for i, a in enumerate(rows_a):
        b = rows_b[i] if rows_b is not None else None
        ids, seg, mask = reference_pack(a, b, max_length)
        assert packed["token_ids"][i].numpy().tolist() == ids
        assert packed["segment_ids"][i].numpy().tolist() == seg
        assert packed["padding_mask"][i].numpy().tolist() == mask
        kept = sum(mask) - (3 if b is not None else 2)
        assert removed[i] == len(a) + (len(b) if b is not None else 0) - kept


def test_layout_of_a_pair_without_truncation():
    packed = pack_segments([ragged([[7, 8]]), ragged([[9]])], 8, CLS, SEP, PAD)
    assert packed["token_ids"].numpy().tolist() == [[CLS, 7, 8, SEP, 9, SEP, PAD, PAD]]
    assert packed["segment_ids"].numpy().tolist() == [[0, 0, 0, 0, 1, 1, 0, 0]]
    assert packed["padding_mask"].numpy().tolist() == [[1, 1, 1, 1, 1, 1, 0, 0]]
    assert all(v.dtype == tf.int32 and v.shape == (1, 8) for v in packed.values())


def test_odd_budget_gives_the_extra_token_to_the_longer_segment():
    # both cut, odd budget 5: the longer keeps 3 (B here, and B on a tie), unlike the
    # one-token-at-a-time rule that would give A the extra token
    check_against_reference([[1, 2, 3, 4], [1, 2, 3, 4], [1, 2, 3, 4, 5]],
                            [[5, 6, 7, 8, 9], [5, 6, 7, 8], [6, 7, 8, 9]], 8)
    packed = pack_segments([ragged([[1, 2, 3, 4]]), ragged([[5, 6, 7, 8]])], 8, CLS, SEP, PAD)
    assert packed["segment_ids"].numpy().sum() == 4  # B [SEP] is 4 long: B kept 3
    # a short segment that fits in half the budget is kept whole
    check_against_reference([[1, 2]], [[3] * 20], 9)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 30), st.integers(0, 30)), min_size=1, max_size=6),
       st.integers(3, 40), st.booleans())
def test_truncation_matches_one_token_at_a_time_reference(lengths, max_length, pair):
    rng = random.Random(sum(a * 31 + b for a, b in lengths) + max_length)
    rows_a = [[rng.randrange(1000, 2000) for _ in range(a)] for a, _ in lengths]
    rows_b = [[rng.randrange(2000, 3000) for _ in range(b)] for _, b in lengths] if pair else None
    check_against_reference(rows_a, rows_b, max_length)


def test_smallest_lengths_and_empty_rows():
    check_against_reference([[5, 6], []], None, 2)
    check_against_reference([[5, 6], [], [7]], [[], [8, 9], [10]], 3)
    packed = pack_segments([ragged([[5, 6]]), ragged([[8, 9]])], 3, CLS, SEP, PAD)
    assert packed["token_ids"].numpy().tolist() == [[CLS, SEP, SEP]]
    assert packed["segment_ids"].numpy().tolist() == [[0, 0, 1]]


def test_empty_batch():
    empty = ragged([])
    packed = pack_segments([empty, empty], 6, CLS, SEP, PAD)
    assert packed["token_ids"].shape == (0, 6)
    assert num_truncated([empty], 6).shape == (0,)


def test_int64_values_are_accepted():
    a = tf.ragged.constant([[3, 4, 5]], dtype=tf.int64)
    assert pack_segments([a], 4, CLS, SEP, PAD)["token_ids"].numpy().tolist() == [[CLS, 3, 4, SEP]]


@pytest.mark.parametrize("segments,max_length", [(1, 1), (2, 2), (1, 0)])
def test_max_length_too_small_is_an_error(segments, max_length):
    with pytest.raises(ValueError, match="max_length must be an integer >= "):
        pack_segments([ragged([[1]])] * segments, max_length, CLS, SEP, PAD)


def test_bad_segments_are_errors():
    with pytest.raises(ValueError, match="1 or 2"):
        pack_segments([ragged([[1]])] * 3, 8, CLS, SEP, PAD)
    with pytest.raises(ValueError, match="RaggedTensor"):
        pack_segments([tf.constant([[1, 2]])], 8, CLS, SEP, PAD)


def _pair_graph(max_length):
    spec = tf.RaggedTensorSpec([None, None], tf.int32, ragged_rank=1, row_splits_dtype=tf.int64)

    @tf.function(input_signature=[spec, spec])
    def pack(a, b):
        packed = pack_segments([a, b], max_length, CLS, SEP, PAD)
        packed["num_truncated"] = num_truncated([a, b], max_length)
        return packed

    return pack


def test_graph_mode_matches_eager():
    pack = _pair_graph(7)
    rows_a, rows_b = [[1, 2, 3, 4, 5], [6], []], [[7, 8], [9, 10, 11, 12, 13, 14], []]
    graph = pack(ragged(rows_a), ragged(rows_b))
    eager = pack_segments([ragged(rows_a), ragged(rows_b)], 7, CLS, SEP, PAD)
    for key in eager:
        np.testing.assert_array_equal(graph[key], eager[key])
    expected_removed = [len(a) + len(b) - sum(reference_pack(a, b, 7)[2]) + 3
                        for a, b in zip(rows_a, rows_b, strict=True)]
    assert graph["num_truncated"].numpy().tolist() == expected_removed
    empty = pack(ragged([]), ragged([]))
    assert empty["token_ids"].shape == (0, 7)


def test_graph_uses_core_tensorflow_ops_only():
    """TF Serving 2.16-2.19 lacks tf-text's trimmer ops ("TFText>RoundRobinTrim") and TFLite
    has no kernel for RaggedRange / RaggedTensorToTensor: the packing graph must contain none of
    them. Checked: every op type is a core TF op (listed in tf.raw_ops, which tf-text's ops are
    not), and no op type mentions "Ragged", "RoundRobin" or "Trim"."""
    graph = _pair_graph(16).get_concrete_function().graph
    types = {op.type for op in graph.get_operations()}
    assert types, "empty graph"
    forbidden = {t for t in types if any(w in t for w in ("Ragged", "RoundRobin", "Trim", ">"))}
    assert not forbidden
    not_core = {t for t in types if not hasattr(tf.raw_ops, t)
                and t not in ("Placeholder", "NoOp", "Identity")}
    assert not not_core


def test_pack_id_lists_packs_python_lists_as_pack_segments_does():
    a, b = [[7, 8, 9], [5], []], [[10, 11], [12, 13, 14], [15]]
    got = pack_id_lists([a, b], 8, cls_id=2, sep_id=3, pad_id=0)
    want = pack_segments([tf.ragged.constant(a, tf.int32), tf.ragged.constant(b, tf.int32)], 8,
                         cls_id=2, sep_id=3, pad_id=0)
    for key, value in want.items():
        assert isinstance(got[key], np.ndarray)
        np.testing.assert_array_equal(got[key], value.numpy())
    single = pack_id_lists([a], 5, cls_id=2, sep_id=3)
    assert single["token_ids"].tolist() == [[2, 7, 8, 9, 3], [2, 5, 3, 0, 0], [2, 3, 0, 0, 0]]
    with pytest.raises(ValueError, match="8 tokens do not fit max_length=6"):
        pack_id_lists([a, b], 6, cls_id=2, sep_id=3)
