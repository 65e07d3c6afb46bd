"""MLM masking on plain id tensors: count rule, specials, whole words, seeds, outputs."""

import numpy as np
import pytest
import tensorflow as tf

from kbert.data.masking import (
    EMPTY,
    KEEP,
    MASK,
    RANDOM,
    MaskingError,
    MlmMasker,
    replacement_distribution,
)
from kbert.tokenization.vocab import Vocabulary

WORDS = [f"w{i}" for i in range(30)]
PIECES = [f"##p{i}" for i in range(10)]
TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[unused0]", "[unused1]"] + WORDS + PIECES
FIRST_WORD, FIRST_PIECE = 7, 7 + len(WORDS)


def vocab(counts=True) -> Vocabulary:
    c = np.arange(len(TOKENS), dtype=np.int64) + 10  # specials get counts too: must be ignored
    return Vocabulary(TOKENS, c if counts else None)


def packed(rows, seq=24):
    """[CLS] ids [SEP] padded: a batch from lists of non-special ids."""
    out = np.zeros((len(rows), seq), np.int32)
    for r, ids in enumerate(rows):
        out[r, :len(ids) + 2] = [2] + list(ids) + [3]
    return out


def random_rows(rng, batch, length, with_pieces=False):
    high = len(TOKENS) if with_pieces else FIRST_PIECE
    return [rng.integers(FIRST_WORD, high, size=length).tolist() for _ in range(batch)]


def test_count_rule_min_max_round_half_even():
    m = MlmMasker(vocab(), max_predictions=20, masked_lm_prob=0.15)
    n = np.array([0, 1, 3, 10, 50, 123, 134, 200])
    # min(P, max(1, round(0.15 n))), never more than n; Python's round is half-to-even
    expected = [min(20, max(1, round(0.15 * k)), k) for k in n]
    assert m.num_to_predict(tf.constant(n)).numpy().tolist() == expected
    assert expected[3] == 2 and round(1.5) == 2 and round(2.5) == 2


def test_selects_exactly_the_count_and_never_specials():
    rng = np.random.default_rng(0)
    lengths = [0, 1, 5, 13, 22]
    ids = packed([random_rows(rng, 1, k)[0] for k in lengths])
    m = MlmMasker(vocab(), max_predictions=5, masked_lm_prob=0.3)
    out = m(ids, tf.constant([3, 4]), with_actions=True)
    weights = out["masked_weights"].numpy()
    assert weights.sum(axis=1).tolist() == [min(5, max(1, round(0.3 * k)), k) for k in lengths]
    positions = out["masked_positions"].numpy()
    for r in range(len(lengths)):
        real = positions[r][weights[r] == 1]
        assert (np.diff(real) > 0).all()                  # ascending, distinct
        assert not np.isin(ids[r, real], [0, 1, 2, 3, 4]).any()
        assert (positions[r][weights[r] == 0] == 0).all()
        expected_ids = np.where(weights[r] == 1, ids[r, positions[r]], 0)
        assert (out["masked_ids"].numpy()[r] == expected_ids).all()
    actions = out["masked_actions"].numpy()
    assert ((actions == EMPTY) == (weights == 0)).all()


def test_outputs_apply_the_recorded_actions():
    rng = np.random.default_rng(1)
    ids = packed(random_rows(rng, 64, 20))
    m = MlmMasker(vocab(), max_predictions=6, masked_lm_prob=0.3)
    out = {k: v.numpy() for k, v in m(ids, tf.constant([5, 6]), with_actions=True).items()}
    rows, slots = np.nonzero(out["masked_weights"])
    pos = out["masked_positions"][rows, slots]
    new = out["token_ids"][rows, pos]
    act = out["masked_actions"][rows, slots]
    assert (new[act == MASK] == 4).all()
    assert (new[act == KEEP] == ids[rows, pos][act == KEEP]).all()
    assert not np.isin(new[act == RANDOM], [0, 1, 2, 3, 4, 5, 6]).any()
    untouched = np.ones_like(ids, bool)
    untouched[rows, pos] = False
    assert (out["token_ids"][untouched] == ids[untouched]).all()
    assert {MASK, RANDOM, KEEP} <= set(act.tolist())


def test_rates_are_configurable():
    rng = np.random.default_rng(2)
    ids = packed(random_rows(rng, 128, 20))
    out = MlmMasker(vocab(), max_predictions=20, masked_lm_prob=0.5, mask_token_rate=0.0,
                    random_token_rate=1.0)(ids, tf.constant([1, 1]), with_actions=True)
    weights = out["masked_weights"].numpy()
    assert weights.sum() == 128 * 10
    assert set(out["masked_actions"].numpy()[weights == 1].tolist()) == {RANDOM}
    with pytest.raises(MaskingError, match="sum <= 1"):
        MlmMasker(vocab(), mask_token_rate=0.8, random_token_rate=0.3)
    with pytest.raises(MaskingError, match="masked_lm_prob"):
        MlmMasker(vocab(), masked_lm_prob=0.0)


def test_replacement_distribution_excludes_specials_and_unused():
    v = vocab()
    p = replacement_distribution(v, "unigram")
    assert p[:7].sum() == 0 and np.isclose(p.sum(), 1.0)
    counts = v.counts[7:].astype(float)
    np.testing.assert_allclose(p[7:], counts / counts.sum())
    u = replacement_distribution(v, "uniform")
    np.testing.assert_allclose(u[7:], 1 / (len(TOKENS) - 7))
    with pytest.raises(MaskingError, match="no unigram counts"):
        replacement_distribution(vocab(counts=False))
    assert MlmMasker(vocab(counts=False), replacement="uniform").replacement == "uniform"


def test_drawn_replacements_follow_the_distribution():
    v = vocab()
    m = MlmMasker(v)
    draws = m.draw_replacements([200_000], tf.constant([7, 7], tf.int64)).numpy()
    freq = np.bincount(draws, minlength=len(TOKENS)) / draws.size
    assert freq[:7].sum() == 0
    p = m.probabilities
    seen = freq > 0
    kl = float(np.sum(freq[seen] * np.log(freq[seen] / p[seen])))
    assert kl < 1e-3


def test_whole_word_masks_all_pieces_of_a_word_together():
    rng = np.random.default_rng(3)
    rows = random_rows(rng, 256, 20, with_pieces=True)
    for r in rows:
        if r[0] >= FIRST_PIECE:
            r[0] = FIRST_WORD  # a row starts with a word start
    ids = packed(rows)
    m = MlmMasker(vocab(), max_predictions=8, masked_lm_prob=0.25, whole_word=True)
    out = m(ids, tf.constant([9, 9]))
    selected = np.zeros_like(ids, bool)
    w = out["masked_weights"].numpy() == 1
    rr, ss = np.nonzero(w)
    selected[rr, out["masked_positions"].numpy()[rr, ss]] = True
    continuation = ids >= FIRST_PIECE
    total = 0
    for r in range(len(rows)):
        budget = min(8, max(1, round(0.25 * 20)))
        assert selected[r].sum() <= budget
        total += selected[r].sum()
        # every word (start + following ## pieces) is all in or all out
        word = np.cumsum(~continuation[r] | (ids[r] <= 4))
        for k in np.unique(word[1:21 + 1]):
            members = selected[r][(word == k) & (ids[r] > 4)]
            assert members.all() or not members.any()
    assert total > 0.8 * len(rows) * 5  # the skip rule still fills most of the budget


def test_same_seed_same_output_other_seed_other_output():
    rng = np.random.default_rng(4)
    ids = packed(random_rows(rng, 16, 20))
    for whole_word in (False, True):
        m = MlmMasker(vocab(), whole_word=whole_word)
        a = m(ids, tf.constant([1, 2]))
        b = m(ids, tf.constant([1, 2]))
        c = m(ids, tf.constant([1, 3]))
        for k in a:
            np.testing.assert_array_equal(a[k].numpy(), b[k].numpy())
        assert not np.array_equal(a["masked_positions"].numpy(), c["masked_positions"].numpy())


def test_single_sequence_and_shapes():
    ids = packed([[10, 11, 12, 13]], seq=8)[0]
    out = MlmMasker(vocab(), max_predictions=3)(ids, tf.constant([0, 0]))
    assert out["token_ids"].shape == (8,) and out["masked_positions"].shape == (3,)
    assert out["masked_ids"].dtype == tf.int32 and out["masked_weights"].dtype == tf.float32
    with pytest.raises(MaskingError, match="max_predictions"):
        MlmMasker(vocab(), max_predictions=0)
