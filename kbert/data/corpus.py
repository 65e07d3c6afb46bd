"""Text files -> documents of sentences, streamed one document at a time.

Two input formats, chosen per file (`format="auto"`) or forced (`"prose"` / `"sentences"`):

- "sentences", the google-research `create_pretraining_data.py` format: one sentence per line,
  blank lines between documents.
- "prose", books and articles: paragraphs of hard-wrapped lines separated by blank lines. If
  the file has chapter headings ("CHAPTER I", "Chapter 12" on a line of their own), each chapter
  is a document (the Austen novels: one document per chapter); all-caps section headings ("A NOTE
  ON THE TEXT") also start one, volume headings and end marks ("VOLUME II", "THE END") are dropped,
  as are the title-page lines before the first chapter. Without chapter headings, a run of two or
  more blank lines separates documents. Paragraph lines are joined and split into sentences by
  `kbert.data.segmentation.split_sentences`.

Auto-detection rule (on the first 2,000 non-blank lines of each file): a chapter heading means
prose; otherwise the file is "sentences" when at least 60% of its lines end a sentence ( . ! ?
possibly followed by a closing quote or bracket) and at most 20% of them hold more than one
sentence; anything else is prose.

Held-out split: a document is held out when the SHA-1 hash of its id ("<file name>:<k>", the
k-th document of that file) falls below `heldout_fraction` of the hash range. It depends only on
the file name and the document's position in that file, not on the other files, the order of
reading or the seed; with the default 0.05 the Austen corpus holds out 12 of its 271 documents
(269 chapters, an advertisement and a note on the text).

Example:
    >>> docs = iter_documents("austen")
    >>> doc = next(docs)
    >>> doc.doc_id, doc.title, doc.sentences[0][:30]
    ('emma.txt.gz:0', 'CHAPTER I', 'Emma Woodhouse, handsome, clev')
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import os
import re
from collections.abc import Iterable, Iterator

import tensorflow as tf

from kbert.corpora import CorpusError, expand_paths, read_lines
from kbert.data import segmentation as seg

FORMATS = ("auto", "prose", "sentences")
SPLITS = ("train", "heldout", "all")
DEFAULT_HELDOUT_FRACTION = 0.05
_SAMPLE_LINES = 2000
_SENTENCE_END = re.compile(r"""[.!?]["'’”)\]]*$""")


@dataclasses.dataclass(frozen=True)
class Document:
    """One document of a corpus.

    Attributes:
        doc_id: stable id "<file name>:<k>", k = its position among the file's documents.
        index: its position in the whole corpus, in reading order, counted over all splits.
        title: the chapter or section heading that opened it ("" if none).
        sentences: its sentences in order, none empty.
    """

    doc_id: str
    index: int
    title: str
    sentences: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class CorpusOptions:
    """How a corpus is read (see `iter_documents`): its format, UTF-8 error handling, and the
    share of documents kept for the held-out split."""

    format: str = "auto"
    errors: str = "strict"
    heldout_fraction: float = DEFAULT_HELDOUT_FRACTION


def is_heldout(doc_id: str, heldout_fraction: float = DEFAULT_HELDOUT_FRACTION) -> bool:
    """Whether the document with this id belongs to the held-out split (see module doc)."""
    digest = hashlib.sha1(doc_id.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") < heldout_fraction * 2.0 ** 64


def detect_format(path: str, errors: str = "strict") -> str:
    """"prose" or "sentences" for one file, by the rule in the module docstring."""
    head = itertools.islice(read_lines(path, errors=errors), 20 * _SAMPLE_LINES)
    lines = list(itertools.islice((line for line in head if line.strip()), _SAMPLE_LINES))
    if not lines or any(seg.is_chapter_heading(line) for line in lines):
        return "prose"
    ends = sum(bool(_SENTENCE_END.search(line.rstrip())) for line in lines)
    multi = sum(len(seg.split_sentences(line)) > 1 for line in lines)
    if ends >= 0.6 * len(lines) and multi <= 0.2 * len(lines):
        return "sentences"
    return "prose"


def _check_options(format: str, split: str, heldout_fraction: float, errors: str) -> None:
    if format not in FORMATS:
        raise CorpusError(f"format must be one of {FORMATS}, got {format!r}")
    if split not in SPLITS:
        raise CorpusError(f"split must be one of {SPLITS}, got {split!r}")
    if not 0.0 <= heldout_fraction < 1.0:
        raise CorpusError(f"heldout_fraction must be in [0, 1), got {heldout_fraction!r}")
    if errors not in ("strict", "replace"):
        raise CorpusError(f"errors must be 'strict' or 'replace', got {errors!r}")


def iter_documents(corpus: str | os.PathLike | Iterable[str | os.PathLike] = "austen", *,
                   format: str = "auto", errors: str = "strict", split: str = "all",
                   heldout_fraction: float = DEFAULT_HELDOUT_FRACTION) -> Iterator[Document]:
    """Stream the documents of a corpus, one at a time (files are never read whole).

    Args:
        corpus: files, directories, globs, plain or .gz, or "austen" (the embedded corpus).
        format: "auto", "prose" or "sentences" (see module doc).
        errors: "strict" raises CorpusError naming a file that is not UTF-8; "replace"
            substitutes U+FFFD for the bad bytes.
        split: "train", "heldout" or "all".
        heldout_fraction: share of documents (by id hash) in the held-out split.

    Yields:
        Document, in file order (files sorted by path), documents with no sentence skipped.
    """
    _check_options(format, split, heldout_fraction, errors)
    index = 0
    for path in expand_paths(corpus):
        file_format = detect_format(path, errors) if format == "auto" else format
        lines = read_lines(path, errors=errors)
        parts = _sentence_documents(lines) if file_format == "sentences" else _prose_documents(
            lines, _has_chapters(path, errors))
        name = os.path.basename(path)
        for k, (title, sentences) in enumerate(parts):
            doc = Document(f"{name}:{k}", index, title, tuple(sentences))
            index += 1
            if split == "all" or (split == "heldout") == is_heldout(doc.doc_id, heldout_fraction):
                yield doc


def _has_chapters(path: str, errors: str) -> bool:
    sample = itertools.islice(read_lines(path, errors=errors), 20 * _SAMPLE_LINES)
    return any(seg.is_chapter_heading(line) for line in sample)


def _sentence_documents(lines: Iterable[str]) -> Iterator[tuple[str, list[str]]]:
    sentences: list[str] = []
    for line in lines:
        text = line.strip()
        if text:
            sentences.append(text)
        elif sentences:
            yield "", sentences
            sentences = []
    if sentences:
        yield "", sentences


def _prose_documents(lines: Iterable[str], chapters: bool) -> Iterator[tuple[str, list[str]]]:
    """(title, sentences) per chapter (chapters=True) or per blank-line-separated block."""
    title, sentences, paragraph = "", [], []
    blank_run = 0
    front_matter = chapters  # before the first chapter heading of a book

    def flush_paragraph():
        if not paragraph:
            return
        text = seg.join_lines(paragraph)
        title_line = (len(paragraph) == 1 and len(text.split()) <= 6
                      and not _SENTENCE_END.search(text)
                      and not text.endswith(("-", ",", ":", ";")))
        if not (front_matter and title_line):
            sentences.extend(seg.split_sentences(text))
        paragraph.clear()

    for line in lines:
        if not line.strip():
            flush_paragraph()
            blank_run += 1
            if not chapters and blank_run == 2 and sentences:
                yield title, sentences
                sentences = []
            continue
        blank_run = 0
        if chapters and not paragraph and (seg.is_chapter_heading(line)
                                           or seg.is_section_heading(line)):
            if sentences:
                yield title, sentences
            sentences = []
            if seg.is_chapter_heading(line):
                front_matter = False
            title = line.strip()
            continue
        if seg.is_decoration(line):
            flush_paragraph()
            continue
        paragraph.append(line)
    flush_paragraph()
    if sentences:
        yield title, sentences


def document_dataset(corpus="austen", *, format: str = "auto", errors: str = "strict",
                     split: str = "all", heldout_fraction: float = DEFAULT_HELDOUT_FRACTION):
    """The documents as a `tf.data.Dataset`, read by a Python generator one document at a time.

    Elements: dict of doc_index int64 [] (Document.index), doc_id string [], sentences
    string [n]. The files are read again on every iteration (nothing is cached), so a corpus
    larger than memory streams.
    """
    _check_options(format, split, heldout_fraction, errors)
    files = expand_paths(corpus)

    def generate():
        for doc in iter_documents(files, format=format, errors=errors, split=split,
                                  heldout_fraction=heldout_fraction):
            yield {"doc_index": doc.index, "doc_id": doc.doc_id, "sentences": list(doc.sentences)}

    return tf.data.Dataset.from_generator(generate, output_signature={
        "doc_index": tf.TensorSpec([], tf.int64),
        "doc_id": tf.TensorSpec([], tf.string),
        "sentences": tf.TensorSpec([None], tf.string)})
