"""Corpus reading: formats, documents, held-out split, streaming, bad bytes."""

import collections
import gzip
import tracemalloc

import pytest

from kbert.corpora import CorpusError, austen_files, read_lines
from kbert.data.corpus import Document, detect_format, document_dataset, is_heldout, iter_documents

# Chapters per novel, from /work/shared/data/README.md (counted from the headings of the source).
AUSTEN_CHAPTERS = {"emma": 55, "mansfieldpark": 48, "northangerabbey": 31, "persuasion": 24,
                   "prideprejudice": 61, "sensesensibility": 50}


@pytest.fixture(scope="module")
def austen_docs() -> list[Document]:
    return list(iter_documents("austen"))


def test_austen_documents_are_its_chapters(austen_docs):
    chapters = collections.Counter(d.doc_id.split(".")[0] for d in austen_docs
                                   if d.title.lower().startswith("chapter"))
    assert dict(chapters) == AUSTEN_CHAPTERS
    others = [d.title for d in austen_docs if not d.title.lower().startswith("chapter")]
    assert others == ["ADVERTISEMENT BY THE AUTHORESS, TO NORTHANGER ABBEY", "A NOTE ON THE TEXT"]
    assert [d.index for d in austen_docs] == list(range(len(austen_docs)))


def test_austen_sentences_have_no_headings_or_wrapped_lines(austen_docs):
    first = austen_docs[0]
    assert (first.doc_id, first.title) == ("emma.txt.gz:0", "CHAPTER I")
    assert first.sentences[0].startswith("Emma Woodhouse, handsome, clever, and rich, with a "
                                         "comfortable home and happy disposition, seemed")
    sentences = [s for d in austen_docs for s in d.sentences]
    assert 25_000 < len(sentences) < 40_000
    assert not any(s.startswith(("CHAPTER", "Chapter ", "VOLUME")) for s in sentences)
    assert not any(s in ("EMMA", "THE END", "FINIS", "By Jane Austen") for s in sentences)
    assert not any("\n" in s or "  " in s for s in sentences)
    # Title-page lines are gone, the advertisement (real prose before chapter 1) is kept.
    northanger = [d for d in austen_docs if d.doc_id.startswith("northanger")]
    assert northanger[0].sentences[0].startswith("THIS little work was finished in the year 1803")


def write(path, text, compress=False):
    data = text.encode("utf-8")
    if compress:
        data = gzip.compress(data)
    with open(path, "wb") as f:
        f.write(data)
    return str(path)


GOOGLE = ("The first sentence of doc one.\nIts second sentence.\n\n"
          "Doc two has one line only, Mr. Smith.\n\n\n"
          "Doc three begins here!\nAnd ends here?\nYes.\n")


def test_google_format_detected_one_sentence_per_line(tmp_path):
    path = write(tmp_path / "wiki.txt.gz", GOOGLE, compress=True)
    assert detect_format(path) == "sentences"
    docs = list(iter_documents(path))
    assert [d.sentences for d in docs] == [
        ("The first sentence of doc one.", "Its second sentence."),
        ("Doc two has one line only, Mr. Smith.",),
        ("Doc three begins here!", "And ends here?", "Yes.")]
    assert [d.doc_id for d in docs] == ["wiki.txt.gz:0", "wiki.txt.gz:1", "wiki.txt.gz:2"]


PROSE = ("A wrapped paragraph that goes on\nover a second line. It has two\nsentences.\n\n"
         "Second paragraph, same document\nbecause one blank line only\nseparates paragraphs.\n"
         "\n\n\nA new document after a run\nof blank lines.\n")


def test_prose_without_chapters_splits_documents_on_blank_line_runs(tmp_path):
    path = write(tmp_path / "essay.txt", PROSE)
    assert detect_format(path) == "prose"
    docs = list(iter_documents(path))
    assert [d.sentences for d in docs] == [
        ("A wrapped paragraph that goes on over a second line.", "It has two sentences.",
         "Second paragraph, same document because one blank line only separates paragraphs."),
        ("A new document after a run of blank lines.",)]
    assert detect_format(write(tmp_path / "one_paragraph_per_line.txt", "First one. Then two.\n"
                               "Another paragraph. With more. Sentences!\n")) == "prose"


def test_format_flag_overrides_detection(tmp_path):
    path = write(tmp_path / "wiki.txt", GOOGLE)
    as_prose = list(iter_documents(path, format="prose"))
    # as prose, the lines of a block are one paragraph and the double blank is a boundary
    assert [len(d.sentences) for d in as_prose] == [3, 3]
    with pytest.raises(CorpusError, match="format must be one of"):
        list(iter_documents(path, format="markdown"))


def test_directories_globs_and_gz_are_read_in_sorted_order(tmp_path):
    (tmp_path / "sub").mkdir()
    write(tmp_path / "sub" / "b.txt.gz", GOOGLE, compress=True)
    write(tmp_path / "a.txt", PROSE)
    from_dir = [d.doc_id for d in iter_documents(str(tmp_path))]
    assert from_dir == ["a.txt:0", "a.txt:1", "b.txt.gz:0", "b.txt.gz:1", "b.txt.gz:2"]
    from_glob = [d.doc_id for d in iter_documents(str(tmp_path / "**" / "*.gz"))]
    assert from_glob == ["b.txt.gz:0", "b.txt.gz:1", "b.txt.gz:2"]


def test_non_utf8_file_error_names_the_file_or_replaces(tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes("Caf\u00e9 au lait. Tr\u00e8s bien.\n".encode("latin-1"))
    with pytest.raises(CorpusError, match="latin1.txt.*not valid UTF-8"):
        list(iter_documents(str(path)))
    docs = list(iter_documents(str(path), errors="replace"))
    assert docs[0].sentences == ("Caf\ufffd au lait.", "Tr\ufffds bien.")


@pytest.mark.parametrize("compress", [False, True])
def test_non_utf8_corpus_error_names_the_line_and_column(tmp_path, compress):
    path = tmp_path / ("corpus.txt.gz" if compress else "corpus.txt")
    text = "First line.\nSecond line.\n\nThe na\u00efve caf\u00e9.\n"
    raw = text.encode("utf-8").replace("caf\u00e9".encode("utf-8"), "caf\u00e9".encode("latin-1"))
    path.write_bytes(gzip.compress(raw) if compress else raw)
    expected = (f"{path}, line 4: not valid UTF-8 (byte 0xe9 at column 14); re-save it as UTF-8")
    with pytest.raises(CorpusError) as info:
        list(read_lines(str(path)))
    assert str(info.value) == expected
    with pytest.raises(CorpusError) as info:
        list(iter_documents(str(path)))
    assert str(info.value) == expected


def test_heldout_split_is_deterministic_disjoint_and_sized(austen_docs):
    train = [d.doc_id for d in iter_documents("austen", split="train")]
    heldout = [d.doc_id for d in iter_documents("austen", split="heldout")]
    assert sorted(train + heldout) == sorted(d.doc_id for d in austen_docs)
    assert not set(train) & set(heldout)
    assert 5 <= len(heldout) <= 25  # ~5% of 271
    assert all(is_heldout(i) for i in heldout)
    # depends on the id only: a 2,000-document corpus holds out 5% +- 1.5 points
    share = sum(is_heldout(f"shard-{k // 100}.txt:{k % 100}") for k in range(2000)) / 2000
    assert 0.035 < share < 0.065
    assert not any(is_heldout(f"x:{k}", 0.0) for k in range(100))


def test_documents_stream_without_holding_the_corpus(tmp_path):
    sentence = "This is sentence number {} of a generated document, long enough to weigh.\n"
    path = tmp_path / "big.txt.gz"
    with gzip.open(path, "wt", encoding="utf-8") as f:
        for k in range(60_000):
            f.write(sentence.format(k))
            if k % 20 == 19:
                f.write("\n")
    size = 60_000 * len(sentence)  # ~4.6 MB of text, ~3,000 documents
    tracemalloc.start()
    count = sum(1 for _ in iter_documents(str(path)))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert count == 3000
    assert peak < size / 5, f"peak {peak} bytes for a {size}-byte corpus"


def test_document_dataset_matches_iter_documents(tmp_path):
    path = write(tmp_path / "wiki.txt", GOOGLE)
    ds = document_dataset(path, split="all")
    got = [(int(e["doc_index"]), e["doc_id"].decode(), [s.decode() for s in e["sentences"]])
           for e in ds.as_numpy_iterator()]
    want = [(d.index, d.doc_id, list(d.sentences)) for d in iter_documents(path)]
    assert got == want
    assert len(austen_files()) == 6
