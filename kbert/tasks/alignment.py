"""WordPiece pieces <-> words <-> character spans of the original text.

The tokenizer reports UTF-8 *byte* offsets into the original strings; Python strings index
*characters*. These helpers convert (`kbert.tokenization.offsets.char_of_byte`) and group pieces
into words for the token-level heads (NER, QA), whose preprocessing runs in Python; the heads
pack the ids with `kbert.tokenization.packing.pack_id_lists`.

Example:
    >>> pieces = tokenize_with_char_offsets(tokenizer, ["Zoë flew"])[0]    # doctest: +SKIP
    >>> [(p.start, p.end) for p in pieces]                                  # doctest: +SKIP
    [(0, 3), (4, 8)]
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from kbert.tokenization.offsets import char_of_byte


@dataclasses.dataclass
class Piece:
    """One WordPiece: its id, whether it continues a word ("##"), its character span."""

    id: int
    continuation: bool
    start: int
    end: int


def tokenize_with_char_offsets(tokenizer, texts: Sequence[str]) -> list[list[Piece]]:
    """Per text, its pieces with character offsets into that text."""
    if not texts:
        return []
    ids, starts, ends = tokenizer.tokenize_with_offsets(list(texts))
    continuation = tokenizer.vocab.is_continuation
    out = []
    for text, row_ids, row_starts, row_ends in zip(texts, ids.to_list(), starts.to_list(),
                                                   ends.to_list(), strict=True):
        index = char_of_byte(text)
        out.append([Piece(int(i), bool(continuation[i]), int(index[s]),
                          int(index[e - 1]) + 1 if e > s else int(index[s]))
                    for i, s, e in zip(row_ids, row_starts, row_ends, strict=True)])
    return out


def group_words(pieces: list[Piece]) -> list[list[int]]:
    """Indices of the pieces of each word: a word is a piece and the "##" pieces after it."""
    words: list[list[int]] = []
    for k, piece in enumerate(pieces):
        if piece.continuation and words:
            words[-1].append(k)
        else:
            words.append([k])
    return words


def word_char_spans(words: Sequence[str], separator: str = " ") -> tuple[str, list[tuple]]:
    """Join pre-split words into one text; returns it and each word's (start, end) characters."""
    spans, position = [], 0
    for word in words:
        spans.append((position, position + len(word)))
        position += len(word) + len(separator)
    return separator.join(words), spans
