"""WordPiece vocabularies: load, validate, save (training one: `vocab_training.py`).

A vocabulary is `vocab.txt` (one token per line, id = line number - 1) plus, optionally,
`vocab_counts.txt` (one integer per line, aligned with vocab.txt): how often each entry occurs
when the training corpus is tokenized with this vocabulary. The MLM masker draws its random
replacement tokens from these counts.

Special tokens are found by name, not position: a trained vocabulary has
[PAD]=0, [UNK]=1, [CLS]=2, [SEP]=3, [MASK]=4, then [unused0..N-1]; the standard
bert-base-uncased vocab.txt has [PAD]=0 and the others at 100..103.

Example:
    >>> vocab = Vocabulary.load("runs/vocab")  # doctest: +SKIP
    >>> vocab.mask_id, vocab.token_to_id["[SEP]"]  # doctest: +SKIP
    (4, 3)
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence

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

    def with_counts(self, counts: Sequence[int] | np.ndarray) -> Vocabulary:
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
    def load(cls, path: str | os.PathLike) -> Vocabulary:
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
