"""Statistics of the full pipeline on the real Austen corpus (>= 1M tokens, trained vocabulary).

One module-scoped pass collects two dynamic epochs of `pretraining_dataset(debug=True)`; the
tests read it. The vocabulary is trained once with `train_vocabulary` and kept in pytest's cache
(.pytest_cache), so later local runs skip the training.
"""

import os

import numpy as np
import pytest
import tensorflow as tf
from scipy import stats

from kbert.data import BatchOptions, MaskingOptions, PairOptions, pretraining_dataset
from kbert.data.corpus import iter_documents
from kbert.data.masking import KEEP, MASK, RANDOM, MlmMasker
from kbert.tokenization.tokenizer import BertTokenizer
from kbert.tokenization.vocab import Vocabulary
from kbert.tokenization.vocab_training import train_vocabulary

pytestmark = pytest.mark.slow
VOCAB_SIZE = 2000  # small pieces: the 4M-character corpus gives ~1.09M of them
SEQ, BATCH, PREDICTIONS = 128, 64, 20


@pytest.fixture(scope="module")
def austen_vocab(request) -> Vocabulary:
    directory = request.config.cache.mkdir(f"kbert-austen-vocab-{VOCAB_SIZE}")
    if not os.path.isfile(os.path.join(directory, "vocab_counts.txt")):
        train_vocabulary("austen", vocab_size=VOCAB_SIZE, output_dir=str(directory))
    return Vocabulary.load(str(directory))


def gather(dataset, epochs):
    keys = ("original_token_ids", "token_ids", "masked_positions", "masked_ids",
            "masked_weights", "masked_actions", "next_sentence_labels", "a_doc", "b_doc",
            "a_start", "a_end", "b_start", "b_end", "a_offset", "a_length", "b_offset",
            "b_length", "padding_mask", "segment_ids")
    out = []
    for _ in range(epochs):
        parts = {k: [] for k in keys}
        for batch in dataset.as_numpy_iterator():
            for k in keys:
                parts[k].append(batch[k])
        out.append({k: np.concatenate(v) for k, v in parts.items()})
    return out


@pytest.fixture(scope="module")
def epochs(austen_vocab):
    ds = pretraining_dataset("austen", austen_vocab, PairOptions(SEQ), MaskingOptions(PREDICTIONS),
                             BatchOptions(BATCH), seed=2024, split="all", debug=True)
    return gather(ds, 2)


def selection(data, vocab):
    special = np.isin(data["original_token_ids"], vocab.special_ids)
    candidates = int((~special & (data["padding_mask"] == 1)).sum())
    real = data["masked_weights"] == 1
    return candidates, real


def test_at_least_a_million_tokens_and_fifteen_percent_selected(epochs, austen_vocab):
    data = epochs[0]
    candidates, real = selection(data, austen_vocab)
    rate = real.sum() / candidates
    # The count rule applied by hand to each row; a full row has 125 candidates -> 19 = 15.2%.
    per_row = (~np.isin(data["original_token_ids"], austen_vocab.special_ids)).sum(axis=1)
    rule = [min(PREDICTIONS, max(1, round(0.15 * n)), n) for n in per_row]
    print(f"\ncandidate tokens {candidates:,}, selected {real.sum():,} = {rate:.4%}")
    assert candidates >= 1_000_000
    assert real.sum(axis=1).tolist() == rule
    assert abs(rate - 0.15) < 0.002


def test_eighty_ten_ten(epochs, austen_vocab):
    actions = epochs[0]["masked_actions"][epochs[0]["masked_weights"] == 1]
    shares = [np.mean(actions == a) for a in (MASK, RANDOM, KEEP)]
    print(f"\n[MASK] {shares[0]:.4%}  random {shares[1]:.4%}  unchanged {shares[2]:.4%}")
    for share, want in zip(shares, (0.8, 0.1, 0.1), strict=True):
        assert abs(share - want) < 0.005


def test_outputs_agree_with_actions_and_no_special_token_is_selected_or_used(epochs, austen_vocab):
    data = epochs[0]
    rows, slots = np.nonzero(data["masked_weights"] == 1)
    pos = data["masked_positions"][rows, slots]
    original = data["original_token_ids"][rows, pos]
    new = data["token_ids"][rows, pos]
    actions = data["masked_actions"][rows, slots]
    forbidden = list(austen_vocab.special_ids) + list(austen_vocab.unused_ids)
    assert not np.isin(original, austen_vocab.special_ids).any()
    assert (data["masked_ids"][rows, slots] == original).all()
    assert (new[actions == MASK] == austen_vocab.mask_id).all()
    assert (new[actions == KEEP] == original[actions == KEEP]).all()
    assert not np.isin(new[actions == RANDOM], forbidden).any()


def test_random_replacements_follow_the_unigram_distribution(epochs, austen_vocab):
    replaced = []
    for data in epochs:
        rows, slots = np.nonzero(data["masked_actions"] == RANDOM)
        replaced.append(data["token_ids"][rows, data["masked_positions"][rows, slots]])
    replaced = np.concatenate(replaced)
    counts = austen_vocab.counts.astype(float).copy()
    counts[list(austen_vocab.special_ids) + list(austen_vocab.unused_ids)] = 0
    expected_p = counts / counts.sum()
    observed = np.bincount(replaced, minlength=len(expected_p))
    assert observed[expected_p == 0].sum() == 0
    # Pool the rarest ids into bins of >= 5 expected draws for the chi-square test.
    order = np.argsort(expected_p[expected_p > 0])
    ids = np.flatnonzero(expected_p > 0)[order]
    obs, exp, acc_o, acc_e = [], [], 0, 0.0
    for i in ids:
        acc_o += observed[i]
        acc_e += expected_p[i] * len(replaced)
        if acc_e >= 5:
            obs.append(acc_o)
            exp.append(acc_e)
            acc_o, acc_e = 0, 0.0
    if acc_e:
        obs[-1] += acc_o
        exp[-1] += acc_e
    chi2, p_value = stats.chisquare(obs, exp)
    freq = np.array(obs) / len(replaced)
    kl = float(np.sum(freq[freq > 0] * np.log(freq[freq > 0] / (np.array(exp)[freq > 0]
                                                                 / len(replaced)))))
    uniform_p = (expected_p > 0) / (expected_p > 0).sum()
    _, p_uniform = stats.chisquare(observed[ids], uniform_p[ids] * len(replaced))
    print(f"\n{len(replaced):,} random replacements, {len(obs)} bins: chi2 {chi2:.1f}, "
          f"p = {p_value:.3f}, binned KL {kl:.5f}; p vs uniform = {p_uniform:.2g}")
    assert p_value > 0.001
    assert p_uniform < 1e-6  # the test can tell unigram from uniform


def test_nsp_labels_balanced_and_provenance_true(epochs, austen_vocab):
    labels = np.concatenate([d["next_sentence_labels"] for d in epochs])
    share = labels.mean()
    print(f"\n{len(labels):,} pairs over 2 epochs, NotNext {share:.4%}")
    assert abs(share - 0.5) < 0.01
    for data in epochs:
        is_next = data["next_sentence_labels"] == 0
        assert (data["b_doc"][is_next] == data["a_doc"][is_next]).all()
        assert (data["b_start"][is_next] == data["a_end"][is_next]).all()
        assert (data["b_doc"][~is_next] != data["a_doc"][~is_next]).all()
    # The provenance is true to the text: re-tokenize the named sentences independently.
    data = epochs[0]
    tokenizer = BertTokenizer(austen_vocab)
    docs = {d.index: d.sentences for d in iter_documents("austen")}
    rng = np.random.default_rng(0)
    segments, texts = [], []
    for i in rng.choice(len(data["next_sentence_labels"]), size=300, replace=False):
        ids = data["original_token_ids"][i]
        first_sep = int(np.argmax(ids == austen_vocab.sep_id))
        last = int(data["padding_mask"][i].sum()) - 1
        for side, tokens in (("a", ids[1:first_sep]), ("b", ids[first_sep + 1:last])):
            doc = docs[int(data[f"{side}_doc"][i])]
            sentences = list(doc[data[f"{side}_start"][i]:data[f"{side}_end"][i]])
            segments.append((tokens, len(texts), len(sentences), int(data[f"{side}_offset"][i]),
                             int(data[f"{side}_length"][i])))
            texts.extend(sentences)
    encoded = tokenizer.encode(texts)
    for tokens, first, count, offset, length in segments:
        flat = [t for row in encoded[first:first + count] for t in row]
        assert tokens.tolist() == flat[offset:offset + length]


def test_whole_word_masking_never_splits_a_word(epochs, austen_vocab):
    # the real packed pairs of the pipeline, masked again with whole_word=True
    masker = MlmMasker(austen_vocab, max_predictions=PREDICTIONS, whole_word=True)
    original = epochs[0]["original_token_ids"][:200 * BATCH]
    continuation = austen_vocab.is_continuation
    selected_pieces = candidates = 0
    for start in range(0, len(original), BATCH):
        ids = original[start:start + BATCH]
        out = masker(ids, tf.constant([start, 1]))
        selected = np.zeros_like(ids, bool)
        rows, slots = np.nonzero(out["masked_weights"].numpy() == 1)
        selected[rows, out["masked_positions"].numpy()[rows, slots]] = True
        special = np.isin(ids, austen_vocab.special_ids)
        starts = ~special & (~continuation[ids] | np.roll(special, 1, axis=1))
        word = np.cumsum(starts, axis=1)
        for r in range(len(ids)):
            for w in np.unique(word[r][selected[r]]):
                members = (word[r] == w) & ~special[r]
                assert selected[r][members].all(), "a word is partly masked"
        selected_pieces += selected.sum()
        candidates += (~special).sum()
    print(f"\nwhole-word: {selected_pieces:,} of {candidates:,} pieces = "
          f"{selected_pieces / candidates:.4%}")
    assert 0.14 < selected_pieces / candidates <= 0.16
