"""Property-based fuzzing of MlmMasker: any batch of ids, any seed, any valid options.

Batches: 0-8 rows of 1-96 ids drawn from the whole vocabulary, specials and [PAD] anywhere (not
only where the packer puts them), "##" pieces anywhere (also first); seeds: any two int64.
Properties, eager and in a tf.function:
  * shapes and dtypes as documented; the same seed gives the same output;
  * a selected position never holds a special token or padding, and positions are distinct
    and ascending; masked_ids are the original ids there;
  * the prediction list never exceeds max_predictions, and holds exactly the count rule's
    number of tokens (at most that number with whole-word masking, whole words only);
  * masked_weights is 1.0 on the real slots and 0.0 exactly on the empty ones (which have
    position 0 and id 0), real slots first;
  * the masked ids differ from the input only at selected positions, and only by [MASK] or a
    replacement that is not special or [unusedN];
  * ids outside the vocabulary are an InvalidArgumentError, not a crash or a silent result.

Example counts: tests/fuzzing.py (KBERT_FUZZ_EXAMPLES=N for the longer run).
"""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from fuzzing import fuzz_settings
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from kbert.data.masking import EMPTY, KEEP, MASK, RANDOM, MlmMasker
from kbert.tokenization.vocab import Vocabulary

TOKENS = (["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[unused0]", "[unused1]"]
          + [f"w{i}" for i in range(40)] + [f"##p{i}" for i in range(12)])
VOCAB = Vocabulary(TOKENS, np.arange(len(TOKENS), dtype=np.int64) % 7)  # some counts are 0
SPECIAL = np.array(sorted(VOCAB.special_ids))
UNUSED = np.array(sorted(VOCAB.unused_ids))

seeds = st.tuples(st.integers(-2**63, 2**63 - 1), st.integers(-2**63, 2**63 - 1))


@st.composite
def id_batches(draw):
    """int32 [batch, seq]: ids of any kind anywhere, biased towards packed-looking rows."""
    batch = draw(st.integers(0, 8))
    seq = draw(st.integers(1, 96))
    ids = draw(hnp.arrays(np.int32, (batch, seq),
                          elements=st.one_of(st.integers(0, len(TOKENS) - 1),
                                             st.sampled_from([0, 0, 2, 3]))))
    if batch and draw(st.booleans()):  # packed-looking: [CLS] ... [SEP] then padding
        for row in ids:
            end = draw(st.integers(1, seq))
            row[0] = VOCAB.cls_id
            row[end - 1] = VOCAB.sep_id
            row[end:] = VOCAB.pad_id
    return ids


@st.composite
def maskers(draw):
    mask_rate = draw(st.floats(0.0, 1.0))
    random_rate = draw(st.floats(0.0, 1.0 - mask_rate))
    return MlmMasker(VOCAB, max_predictions=draw(st.integers(1, 40)),
                     masked_lm_prob=draw(st.floats(0.001, 1.0)),
                     mask_token_rate=mask_rate, random_token_rate=random_rate,
                     replacement=draw(st.sampled_from(["unigram", "uniform"])),
                     whole_word=draw(st.booleans()))


def check_masking(masker: MlmMasker, ids: np.ndarray, out: dict):
    batch, seq = ids.shape
    slots = masker.max_predictions
    assert out["token_ids"].shape == (batch, seq) and out["token_ids"].dtype == tf.int32
    for key, dtype in (("masked_positions", tf.int32), ("masked_ids", tf.int32),
                       ("masked_weights", tf.float32), ("masked_actions", tf.int32)):
        assert out[key].shape == (batch, slots) and out[key].dtype == dtype, key
    masked = out["token_ids"].numpy()
    positions = out["masked_positions"].numpy()
    targets = out["masked_ids"].numpy()
    weights = out["masked_weights"].numpy()
    actions = out["masked_actions"].numpy()
    candidate = ~np.isin(ids, SPECIAL)
    budget = masker.num_to_predict(tf.constant(candidate.sum(axis=1), tf.int32)).numpy()
    for r in range(batch):
        w = weights[r]
        assert set(np.unique(w)) <= {0.0, 1.0}
        count = int(w.sum())
        assert count <= slots
        # weights: 1 on the first `count` slots, 0 exactly on the empty ones after them
        np.testing.assert_array_equal(w, (np.arange(slots) < count).astype(np.float32))
        empty = w == 0
        assert (positions[r][empty] == 0).all() and (targets[r][empty] == 0).all()
        assert (actions[r][empty] == EMPTY).all() and (actions[r][~empty] != EMPTY).all()
        real = positions[r][~empty]
        assert (np.diff(real) > 0).all() and ((real >= 0) & (real < seq)).all()
        assert candidate[r][real].all(), "a special token or padding was selected"
        assert (ids[r][real] != VOCAB.pad_id).all()
        np.testing.assert_array_equal(targets[r][~empty], ids[r][real])
        if masker.whole_word:
            assert count <= budget[r]
            _check_whole_words(ids[r], candidate[r], set(real.tolist()))
        else:
            assert count == budget[r]
        # the input changes only at selected positions, as the recorded action says
        changed = np.flatnonzero(masked[r] != ids[r])
        assert set(changed.tolist()) <= set(real.tolist())
        for position, action in zip(real, actions[r][~empty], strict=True):
            new = masked[r][position]
            if action == MASK:
                assert new == VOCAB.mask_id
            elif action == KEEP:
                assert new == ids[r][position]
            else:
                assert action == RANDOM
                assert new not in SPECIAL and new not in UNUSED and 0 <= new < len(TOKENS)


def _check_whole_words(row, candidate, selected):
    """A word (a candidate that is not a "##" piece, or follows a non-candidate, plus the "##"
    candidates right after it) is selected entirely or not at all."""
    continuation = VOCAB.is_continuation[row]
    word = []
    for position in range(len(row) + 1):
        starts = position == len(row) or not candidate[position] or not continuation[position] \
            or (position > 0 and not candidate[position - 1])
        if starts and word:
            chosen = [p in selected for p in word]
            assert all(chosen) or not any(chosen), (row.tolist(), word, sorted(selected))
            word = []
        if position < len(row) and candidate[position]:
            word.append(position)


@fuzz_settings(300)
@given(masker=maskers(), ids=id_batches(), seed=seeds)
def test_eager_masking_properties(masker, ids, seed):
    out = masker(ids, tf.constant(seed, tf.int64), with_actions=True)
    check_masking(masker, ids, out)
    again = masker(ids, tf.constant(seed, tf.int64), with_actions=True)
    for key in out:
        np.testing.assert_array_equal(out[key], again[key])


_GRAPH_MASKERS = {
    "default": dict(max_predictions=20),
    "whole_word": dict(max_predictions=7, masked_lm_prob=0.4, whole_word=True),
    "all_selected": dict(max_predictions=40, masked_lm_prob=1.0, mask_token_rate=0.0,
                         random_token_rate=1.0, replacement="uniform"),
}


@pytest.fixture(scope="module")
def graph_maskers():
    out = {}
    for name, options in _GRAPH_MASKERS.items():
        masker = MlmMasker(VOCAB, **options)
        out[name] = (masker, tf.function(
            lambda ids, seed, m=masker: m(ids, seed, with_actions=True),
            input_signature=[tf.TensorSpec([None, None], tf.int32),
                             tf.TensorSpec([2], tf.int64)]))
    return out


@fuzz_settings(1000)
@given(name=st.sampled_from(sorted(_GRAPH_MASKERS)), ids=id_batches(), seed=seeds)
def test_in_graph_masking_properties(graph_maskers, name, ids, seed):
    masker, function = graph_maskers[name]
    out = function(tf.constant(ids), tf.constant(seed, tf.int64))
    check_masking(masker, ids, out)


@fuzz_settings(30)
@given(ids=id_batches(), bad=st.one_of(st.integers(-2**31, -1),
                                       st.integers(len(TOKENS), 2**31 - 1)), seed=seeds)
def test_ids_outside_the_vocabulary_are_an_error(ids, bad, seed):
    if ids.size == 0:
        ids = np.zeros((1, 1), np.int32)
    ids = ids.copy()
    ids.flat[len(ids.flat) // 2] = bad
    with pytest.raises(tf.errors.InvalidArgumentError):
        MlmMasker(VOCAB)(ids, tf.constant(seed, tf.int64))
