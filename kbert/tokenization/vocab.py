"""WordPiece vocabularies: load, validate, save, and train one from a corpus.

A vocabulary is `vocab.txt` (one token per line, id = line number - 1) plus, optionally,
`vocab_counts.txt` (one integer per line, aligned with vocab.txt): how often each entry occurs
when the training corpus is tokenized with this vocabulary. The MLM masker draws its random
replacement tokens from these counts.

Special tokens are found by name, not position: a trained vocabulary has
[PAD]=0, [UNK]=1, [CLS]=2, [SEP]=3, [MASK]=4, then [unused0..N-1]; the standard
bert-base-uncased vocab.txt has [PAD]=0 and the others at 100..103.

Example:
    >>> vocab = train_vocabulary("austen", vocab_size=8000, output_dir="runs/vocab")  # doctest: +SKIP
    >>> vocab = Vocabulary.load("runs/vocab")  # doctest: +SKIP
    >>> vocab.mask_id, vocab.token_to_id["[SEP]"]  # doctest: +SKIP
    (4, 3)
"""

from __future__ import annotations

import os
import re
import time
from typing import Callable, Iterable, Sequence

import numpy as np

from kbert.errors import KbertError

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
VOCAB_FILE = "vocab.txt"
COUNTS_FILE = "vocab_counts.txt"
MAX_ENTRIES = 2_000_000
MAX_LINE_BYTES = 1024
_UNUSED = re.compile(r"\[unused\d+\]")


class VocabularyError(KbertError, ValueError):
    """A vocabulary (or its counts file) that cannot be used as a WordPiece vocabulary."""


class Vocabulary:
    """An immutable WordPiece vocabulary with its special-token ids and optional unigram counts.

    Args:
        tokens: the entries in id order; "##" marks a word-continuation piece.
        counts: optional non-negative occurrence counts, one per token.
        source: where the tokens came from, used in error messages.

    Attributes:
        tokens: tuple[str], `size` entries.
        token_to_id: dict str -> int.
        pad_id, unk_id, cls_id, sep_id, mask_id: ids of the five special tokens.
        special_ids: tuple of those five ids in that order.
        unused_ids: tuple of the ids of `[unusedN]` placeholder entries.
        is_continuation: bool array [size], True where the token starts with "##".
        counts: int64 array [size] or None.
    """

    def __init__(self, tokens: Sequence[str], counts: Sequence[int] | np.ndarray | None = None,
                 source: str = "<tokens>"):
        tokens = tuple(tokens)
        _check_tokens(tokens, source)
        self.tokens = tokens
        self.token_to_id = {t: i for i, t in enumerate(tokens)}
        self.pad_id, self.unk_id, self.cls_id, self.sep_id, self.mask_id = (
            self.token_to_id[t] for t in SPECIAL_TOKENS)
        self.special_ids = (self.pad_id, self.unk_id, self.cls_id, self.sep_id, self.mask_id)
        self.unused_ids = tuple(i for i, t in enumerate(tokens) if _UNUSED.fullmatch(t))
        self.is_continuation = np.fromiter((t.startswith("##") for t in tokens), bool, len(tokens))
        self.counts = None if counts is None else _check_counts(counts, len(tokens), source)

    @property
    def size(self) -> int:
        return len(self.tokens)

    def __len__(self) -> int:
        return len(self.tokens)

    def __repr__(self) -> str:
        return f"Vocabulary(size={self.size}, counts={'yes' if self.counts is not None else 'no'})"

    @property
    def is_cased(self) -> bool:
        """True if an ordinary entry has a character that lower-casing changes ("A", not "ℝ")."""
        specials = set(SPECIAL_TOKENS)
        return any(c.lower() != c for t in self.tokens
                   if t not in specials and not _UNUSED.fullmatch(t) for c in t)

    def with_counts(self, counts: Sequence[int] | np.ndarray) -> "Vocabulary":
        return Vocabulary(self.tokens, counts)

    # ------------------------------------------------------------------ files
    def save(self, directory: str | os.PathLike) -> str:
        """Write vocab.txt (and vocab_counts.txt if counts are known); returns vocab.txt's path."""
        directory = os.fspath(directory)
        os.makedirs(directory, exist_ok=True)
        path = os.path.join(directory, VOCAB_FILE)
        with open(path, "w", encoding="utf-8", newline="\n") as f:
            f.writelines(t + "\n" for t in self.tokens)
        counts_path = os.path.join(directory, COUNTS_FILE)
        if self.counts is not None:
            with open(counts_path, "w", encoding="utf-8", newline="\n") as f:
                f.writelines(f"{int(c)}\n" for c in self.counts)
        elif os.path.exists(counts_path):
            os.remove(counts_path)  # a stale counts file would no longer be aligned
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Vocabulary":
        """Read a vocab.txt (or a directory holding one) and its vocab_counts.txt if present."""
        path = os.fspath(path)
        if os.path.isdir(path):
            path = os.path.join(path, VOCAB_FILE)
        if not os.path.isfile(path):
            raise VocabularyError(f"vocabulary file {path!r} does not exist")
        tokens = _read_lines(path)
        counts_path = os.path.join(os.path.dirname(path), COUNTS_FILE)
        counts = None
        if os.path.isfile(counts_path):
            counts = _parse_counts(_read_lines(counts_path), counts_path)
            if len(counts) != len(tokens):
                raise VocabularyError(
                    f"{counts_path} has {len(counts)} lines but {path} has {len(tokens)}; "
                    f"the counts must be aligned with the vocabulary (retrain or delete it)")
        return cls(tokens, counts, source=path)


def _read_lines(path: str) -> list[str]:
    lines = []
    with open(path, "rb") as f:
        for number, raw in enumerate(iter(lambda: f.readline(MAX_LINE_BYTES + 2), b""), 1):
            if len(raw.rstrip(b"\r\n")) > MAX_LINE_BYTES:
                raise VocabularyError(
                    f"{path}: line {number} is longer than {MAX_LINE_BYTES} bytes")
            if number > MAX_ENTRIES:
                raise VocabularyError(f"{path}: more than {MAX_ENTRIES:,} lines")
            try:
                lines.append(raw.decode("utf-8").rstrip("\r\n"))
            except UnicodeDecodeError as e:
                raise VocabularyError(
                    f"{path}: line {number} is not valid UTF-8 ({e.reason})") from None
    return lines


def _check_tokens(tokens: tuple, source: str) -> None:
    if not tokens:
        raise VocabularyError(f"{source}: the vocabulary is empty")
    if len(tokens) > MAX_ENTRIES:
        raise VocabularyError(f"{source}: {len(tokens):,} entries, more than {MAX_ENTRIES:,}")
    first_line: dict[str, int] = {}
    for number, token in enumerate(tokens, 1):
        if not isinstance(token, str):
            raise VocabularyError(f"{source}: entry {number} is {type(token).__name__}, not str")
        if not token.strip():
            raise VocabularyError(f"{source}: line {number} is empty or only whitespace")
        if "\n" in token or "\r" in token:
            raise VocabularyError(f"{source}: line {number} contains a line break")
        if len(token.encode("utf-8")) > MAX_LINE_BYTES:
            raise VocabularyError(f"{source}: line {number} is longer than {MAX_LINE_BYTES} bytes")
        if token in first_line:
            raise VocabularyError(
                f"{source}: duplicate token {token!r} on lines {first_line[token]} and {number}")
        first_line[token] = number
    missing = [t for t in SPECIAL_TOKENS if t not in first_line]
    if missing:
        raise VocabularyError(
            f"{source}: missing special token(s) {', '.join(missing)}; a BERT vocabulary needs "
            f"all of {', '.join(SPECIAL_TOKENS)}")


def _parse_counts(lines: list[str], source: str) -> np.ndarray:
    values = []
    for number, line in enumerate(lines, 1):
        text = line.strip()
        if not re.fullmatch(r"\d+", text):
            raise VocabularyError(
                f"{source}: line {number} is {line[:40]!r}, not a non-negative integer")
        values.append(int(text))
    return _check_counts(values, len(lines), source)


def _check_counts(counts, size: int, source: str) -> np.ndarray:
    array = np.asarray(counts)
    if array.shape != (size,):
        raise VocabularyError(
            f"{source}: {array.size} counts for {size} vocabulary entries; they must align")
    if array.size and not np.issubdtype(array.dtype, np.integer):
        raise VocabularyError(f"{source}: counts must be integers, got dtype {array.dtype}")
    if array.size and array.min() < 0:
        raise VocabularyError(f"{source}: counts must be >= 0 (entry {int(array.argmin())})")
    return array.astype(np.int64)


# ---------------------------------------------------------------------- training
def train_vocabulary(corpus: str | os.PathLike | Iterable[str | os.PathLike],
                     vocab_size: int = 8000, lower_case: bool = True, num_unused: int = 0,
                     output_dir: str | os.PathLike | None = None, *,
                     min_count: int = 2, verbose: bool = False,
                     log: Callable[[str], None] | None = None) -> Vocabulary:
    """Learn a WordPiece vocabulary from text files and measure its unigram counts.

    Args:
        corpus: files, directories, .gz files, globs, or "austen" (the embedded corpus).
        vocab_size: the target size, a maximum; the learner stops within 5% below it, or
            below that when the corpus has too few pieces occurring >= min_count times.
        lower_case: lower-case and strip accents first (the BERT "uncased" normalisation).
        num_unused: `[unusedN]` placeholder entries after the five special tokens.
        output_dir: if given, write vocab.txt and vocab_counts.txt there.
        min_count: the lowest piece frequency the learner's threshold search may use
            (tf-text's `lower_thresh`, 10 there; 2 here so that a small corpus can still
            approach the target size).
        verbose: the same as `log=print`.
        log: called with one plain line per step as the work goes ("reading 6 files (4.3 MB)",
            "counted 15,234 distinct words (795,030 in all) in 12.1s", "training WordPiece
            to 8000 entries ...", ...); None (default): silent.

    Returns:
        A Vocabulary with [PAD]=0, [UNK]=1, [CLS]=2, [SEP]=3, [MASK]=4, [unused0..] next,
        and `counts` = occurrences of every entry when the corpus is tokenized with it.

    Raises:
        VocabularyError: bad sizes, an empty corpus; CorpusError (kbert.corpora): a file that
        cannot be read or is not UTF-8 (naming its line).

    Uses tensorflow_text's WordPiece learner (`bert_vocab_from_dataset`'s steps: BasicTokenizer
    word split, `count_words`, `learn`) on text normalised exactly as `BertTokenizer`
    normalises it, so every learned piece is reachable.
    """
    import tensorflow as tf
    from tensorflow_text.python.ops import bert_tokenizer
    from tensorflow_text.tools.wordpiece_vocab import wordpiece_tokenizer_learner_lib as learner

    from kbert.corpora import expand_paths, read_lines
    from kbert.tokenization.tokenizer import BertTokenizer, normalize

    if log is None:
        log = print if verbose else (lambda message: None)
    if not isinstance(num_unused, int) or num_unused < 0:
        raise VocabularyError(f"num_unused must be an integer >= 0, got {num_unused!r}")
    if not isinstance(min_count, int) or min_count < 1:
        raise VocabularyError(f"min_count must be an integer >= 1, got {min_count!r}")
    if not isinstance(vocab_size, int) or vocab_size < len(SPECIAL_TOKENS) + num_unused + 1:
        raise VocabularyError(
            f"vocab_size={vocab_size!r} leaves no room for pieces after the "
            f"{len(SPECIAL_TOKENS)} special and {num_unused} unused tokens")
    files = expand_paths(corpus)
    reserved = list(SPECIAL_TOKENS) + [f"[unused{i}]" for i in range(num_unused)]
    size = sum(os.path.getsize(f) for f in files)
    log(f"reading {len(files)} file{'s' if len(files) != 1 else ''} "
        f"({size / 1e6:.1f} MB{', gzip' if any(f.endswith('.gz') for f in files) else ''}) ...")

    # A reading error inside tf.data's generator would reach us wrapped in a TensorFlow error
    # with a traceback in its text: keep it, end the stream, and raise it as it was.
    failure: list[Exception] = []

    def lines():
        try:
            yield from (line for line in read_lines(files) if line.strip())
        except ValueError as e:
            failure.append(e)

    def lines_dataset():
        return tf.data.Dataset.from_generator(
            lines, output_signature=tf.TensorSpec([], tf.string)).batch(1024)

    def check_reading():
        if failure:
            raise failure[0]

    start = time.perf_counter()
    first = next(iter(lines_dataset().unbatch().take(1)), None)
    check_reading()
    if first is None:
        raise VocabularyError(f"the corpus {files} has no non-blank line")
    normalized = lines_dataset().map(lambda b: normalize(b, lower_case),
                                     num_parallel_calls=tf.data.AUTOTUNE)
    # The text is already normalised; the learner's BasicTokenizer only splits words.
    splitter = bert_tokenizer.BasicTokenizer(lower_case=False)
    try:
        word_counts = learner.count_words(normalized.map(splitter.tokenize))
    except StopIteration:  # no word at all (its first-word peek)
        word_counts = {}
    check_reading()
    if not word_counts:
        raise VocabularyError(f"the corpus {files} has no words")
    counted = time.perf_counter()
    log(f"counted {len(word_counts):,} distinct words ({sum(word_counts.values()):,} in all) "
        f"in {counted - start:.1f}s")
    log(f"training WordPiece to {vocab_size} entries (pieces seen >= {min_count} times) ...")
    tokens = learner.learn(word_counts, vocab_size, reserved, lower_thresh=min_count)
    learned = time.perf_counter()
    tokens = _trim(tokens, vocab_size, len(reserved))
    log(f"learned {len(tokens)} entries in {learned - counted:.1f}s; counting their "
        f"occurrences ...")
    vocab = Vocabulary(tokens, source="trained vocabulary")
    tokenizer = BertTokenizer(vocab, lower_case=lower_case)
    counts = np.zeros(vocab.size, np.int64)
    for batch in lines_dataset().map(tokenizer.tokenize, num_parallel_calls=tf.data.AUTOTUNE):
        counts += np.bincount(batch.flat_values.numpy(), minlength=vocab.size)
    check_reading()
    vocab = vocab.with_counts(counts)
    log(f"counted {int(counts.sum()):,} pieces in {time.perf_counter() - learned:.1f}s; "
        f"vocabulary done ({time.perf_counter() - start:.1f}s in all)")
    if output_dir is not None:
        vocab.save(output_dir)
    return vocab


def _trim(tokens: list[str], vocab_size: int, num_reserved: int) -> list[str]:
    """Cut the learner's output to vocab_size: its threshold search can end above the target.

    The learner orders reserved tokens, single characters, then pieces by falling count, so
    the least frequent pieces go first; single characters and their "##" forms always stay
    (without them some words could only be [UNK]).
    """
    excess = len(tokens) - vocab_size
    if excess <= 0:
        return tokens
    keep = [True] * len(tokens)
    for i in range(len(tokens) - 1, num_reserved - 1, -1):
        if excess == 0:
            break
        bare = tokens[i][2:] if tokens[i].startswith("##") else tokens[i]
        if len(bare) > 1:
            keep[i] = False
            excess -= 1
    if excess:
        raise VocabularyError(
            f"this corpus needs {vocab_size + excess} entries for its characters alone (the "
            f"learner keeps every character seen, up to 1,000, and its '##' form); use "
            f"vocab_size >= {vocab_size + excess}")
    return [t for t, k in zip(tokens, keep) if k]
