"""NSP pairs on synthetic documents whose token ids encode (document, sentence, position)."""

import numpy as np
import pytest
import tensorflow as tf

from kbert.data.pairs import IS_NEXT, NOT_NEXT, PairOptions, nsp_pairs

CLS, SEP, PAD = 2, 3, 0
SIGNATURE = {"doc_index": tf.TensorSpec([], tf.int64),
             "sentences": tf.RaggedTensorSpec([None, None], tf.int32, 1, tf.int64)}


def token(doc, sentence, position):
    return 10 + doc * 100_000 + sentence * 1000 + position


def decode(t):
    t = np.asarray(t) - 10
    return t // 100_000, (t // 1000) % 100, t % 1000


def make_docs(sentence_lengths):
    """sentence_lengths: one list of sentence lengths per document."""
    docs = [[[token(d, s, p) for p in range(n)] for s, n in enumerate(doc)]
            for d, doc in enumerate(sentence_lengths)]

    def gen():
        for d, doc in enumerate(docs):
            yield {"doc_index": np.int64(d), "sentences": tf.ragged.constant(doc, dtype=tf.int32)}

    return tf.data.Dataset.from_generator(gen, output_signature=SIGNATURE), docs


def collect(ds):
    out = {}
    for ex in ds.as_numpy_iterator():
        for k, v in ex.items():
            out.setdefault(k, []).append(v)
    return {k: np.stack(v) for k, v in out.items()}


def pairs_of(lengths, seq_length=32, seed=1, window=16, **options):
    docs, tokens = make_docs(lengths)
    ds = nsp_pairs(docs, tf.data.Dataset.random(seed=seed), PairOptions(seq_length=seq_length,
                   **options), window=window, with_provenance=True)
    return collect(ds), tokens


def segments(token_ids, segment_ids, padding_mask):
    """(A, B) token lists of one packed row, checking the [CLS] A [SEP] B [SEP] layout."""
    n = int(padding_mask.sum())
    assert (padding_mask[:n] == 1).all() and (padding_mask[n:] == 0).all()
    assert (token_ids[n:] == PAD).all() and (segment_ids[n:] == 0).all()
    first_sep = int(np.argmax(token_ids == SEP))
    assert token_ids[0] == CLS and token_ids[first_sep] == SEP and token_ids[n - 1] == SEP
    assert (segment_ids[:first_sep + 1] == 0).all() and (segment_ids[first_sep + 1:n] == 1).all()
    a, b = token_ids[1:first_sep], token_ids[first_sep + 1:n - 1]
    assert len(a) > 0 and len(b) > 0
    return a, b


def rng_lengths(seed, docs, low=1, high=12, min_sentences=2, max_sentences=30):
    rng = np.random.default_rng(seed)
    return [rng.integers(low, high, size=rng.integers(min_sentences, max_sentences)).tolist()
            for _ in range(docs)]


@pytest.fixture(scope="module")
def random_pairs():
    return pairs_of(rng_lengths(1, 60))


def test_pairs_are_packed_and_tokens_match_their_provenance(random_pairs):
    p, docs = random_pairs
    for i in range(len(p["token_ids"])):
        a, b = segments(p["token_ids"][i], p["segment_ids"][i], p["padding_mask"][i])
        flat_a = sum(docs[p["a_doc"][i]][p["a_start"][i]:p["a_end"][i]], [])
        flat_b = sum(docs[p["b_doc"][i]][p["b_start"][i]:p["b_end"][i]], [])
        assert a.tolist() == flat_a[p["a_offset"][i]:p["a_offset"][i] + p["a_length"][i]]
        assert b.tolist() == flat_b[p["b_offset"][i]:p["b_offset"][i] + p["b_length"][i]]
        assert len(a) + len(b) + 3 <= 32


def test_is_next_b_follows_a_and_not_next_b_is_another_document(random_pairs):
    p, _ = random_pairs
    is_next = p["next_sentence_labels"] == IS_NEXT
    assert (p["a_doc"][is_next] == p["b_doc"][is_next]).all()
    assert (p["b_start"][is_next] == p["a_end"][is_next]).all()
    assert (p["b_doc"][~is_next] != p["a_doc"][~is_next]).all()
    # the same facts read from the token ids alone
    for i in range(len(p["token_ids"])):
        a, b = segments(p["token_ids"][i], p["segment_ids"][i], p["padding_mask"][i])
        (da, sa, _), (db, sb, _) = decode(a), decode(b)
        assert len(set(da)) == 1 and len(set(db)) == 1
        if is_next[i]:
            assert db[0] == da[0] and sb.min() >= sa.max() and (a[-1] < b[0])
        else:
            assert db[0] != da[0]
    assert 0.4 < is_next.mean() < 0.6


def test_a_is_whole_sentences_and_not_next_puts_unused_sentences_back():
    p, docs = pairs_of([[3] * 40 for _ in range(6)], seq_length=64, short_seq_prob=0.0)
    for d in range(6):
        rows = np.flatnonzero(p["a_doc"] == d)
        starts, ends, labels = p["a_start"][rows], p["a_end"][rows], p["next_sentence_labels"][rows]
        b_ends = p["b_end"][rows]
        assert starts[0] == 0
        for k in range(1, len(rows)):
            # after NotNext the next chunk starts where A ended (unused sentences put back);
            # after IsNext it starts after B
            expected = ends[k - 1] if labels[k - 1] == NOT_NEXT else b_ends[k - 1]
            # ... except a last lone sentence drawn IsNext, which takes the previous one as A
            lone_last = (labels[k] == IS_NEXT and b_ends[k] == 40 and ends[k] == expected
                         and starts[k] == expected - 1)
            assert starts[k] == expected or lone_last
        # chunks just reach the target of 61 tokens: at most 2 tokens are cut
        cut = 3 * (ends - starts) - p["a_length"][rows]
        assert (cut >= 0).all() and (cut <= 2).all()


def test_truncation_is_longest_first_from_front_or_back():
    def reference_lengths(la, lb, max_tokens):  # google-research truncate_seq_pair, lengths only
        while la + lb > max_tokens:
            if la > lb:
                la -= 1
            else:
                lb -= 1
        return la, lb

    p, docs = pairs_of(rng_lengths(2, 40, low=10, high=60), seq_length=40)
    fronts = backs = 0
    for i in range(len(p["token_ids"])):
        la = sum(len(s) for s in docs[p["a_doc"][i]][p["a_start"][i]:p["a_end"][i]])
        lb = sum(len(s) for s in docs[p["b_doc"][i]][p["b_start"][i]:p["b_end"][i]])
        assert (p["a_length"][i], p["b_length"][i]) == reference_lengths(la, lb, 37)
        removed = la - p["a_length"][i]
        fronts += p["a_offset"][i]
        backs += removed - p["a_offset"][i]
    assert fronts > 100 and backs > 100
    assert 0.4 < fronts / (fronts + backs) < 0.6


def test_sentences_longer_than_the_sequence_are_cut():
    p, _ = pairs_of([[200, 150, 300], [500, 20], [90]], seq_length=16)
    assert len(p["token_ids"]) > 0
    assert (p["padding_mask"].sum(axis=1) == 16).all()


def test_short_seq_prob_makes_shorter_targets():
    full, _ = pairs_of(rng_lengths(3, 30, low=2, high=6, min_sentences=60, max_sentences=80),
                       seq_length=64, short_seq_prob=0.0)
    short, _ = pairs_of(rng_lengths(3, 30, low=2, high=6, min_sentences=60, max_sentences=80),
                        seq_length=64, short_seq_prob=1.0)
    full_len = full["padding_mask"].sum(axis=1)
    short_len = short["padding_mask"].sum(axis=1)
    assert np.median(full_len) >= 60
    assert np.median(short_len) < 45 and short_len.min() <= 10


def test_one_sentence_documents_only_give_not_next():
    lengths = [[5] for _ in range(200)]
    p, _ = pairs_of(lengths, window=8)
    assert (p["next_sentence_labels"] == NOT_NEXT).all()
    assert (p["b_doc"] != p["a_doc"]).all()
    assert 0.35 < len(p["a_doc"]) / 200 < 0.65  # a pair when the coin says NotNext


def test_lone_last_window_borrows_b_from_the_first_window():
    lengths = [[4, 4, 4, 4]] * 4 + [[4] * 30]  # windows of 2: {0, 1}, {2, 3}, {4}
    docs, _ = make_docs(lengths)
    ds = nsp_pairs(docs, tf.data.Dataset.random(seed=5, rerandomize_each_iteration=True),
                   PairOptions(seq_length=32), window=2, with_provenance=True)
    labels_of_lone = []
    for _ in range(5):  # each iteration draws new pairs
        p = collect(ds)
        lone = p["a_doc"] == 4
        labels_of_lone += p["next_sentence_labels"][lone].tolist()
        not_next = lone & (p["next_sentence_labels"] == NOT_NEXT)
        assert set(p["b_doc"][not_next]) <= {0, 1}
    assert 0.3 < np.mean(labels_of_lone) < 0.7


def test_seeded_reproducible_and_new_pairs_each_iteration():
    docs, _ = make_docs(rng_lengths(4, 20))
    options = PairOptions(seq_length=32)

    def build(dynamic):
        return nsp_pairs(docs, tf.data.Dataset.random(seed=9, rerandomize_each_iteration=dynamic),
                         options)

    first = collect(build(True))["token_ids"]
    again = collect(build(True))["token_ids"]
    np.testing.assert_array_equal(first, again)            # re-running: identical
    ds = build(True)
    epoch1, epoch2 = collect(ds)["token_ids"], collect(ds)["token_ids"]
    assert epoch1.shape != epoch2.shape or not np.array_equal(epoch1, epoch2)  # dynamic
    static = build(False)
    np.testing.assert_array_equal(collect(static)["token_ids"], collect(static)["token_ids"])


def test_options_are_validated():
    with pytest.raises(ValueError, match="seq_length"):
        PairOptions(seq_length=4)
    with pytest.raises(ValueError, match="short_seq_prob"):
        PairOptions(short_seq_prob=1.5)
    docs, _ = make_docs([[3]])
    with pytest.raises(ValueError, match="window"):
        nsp_pairs(docs, tf.data.Dataset.random(seed=1), PairOptions(), window=1)
