"""WordPiece pieces <-> words <-> character spans of the original text.

The tokenizer reports UTF-8 *byte* offsets into the original strings; Python strings index
*characters*. These helpers convert, group pieces into words, and pack id lists into model
inputs, for the token-level heads (NER, QA), whose preprocessing runs in Python.

Example:
    >>> pieces = tokenize_with_char_offsets(tokenizer, ["Zoë flew"])[0]    # doctest: +SKIP
    >>> [(p.start, p.end) for p in pieces]                                  # doctest: +SKIP
    [(0, 3), (4, 8)]
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

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
                                                   ends.to_list()):
        index = char_of_byte(text)
        out.append([Piece(int(i), bool(continuation[i]), int(index[s]),
                          int(index[e - 1]) + 1 if e > s else int(index[s]))
                    for i, s, e in zip(row_ids, row_starts, row_ends)])
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


def pack_ids(segments: Sequence[Sequence[int]], max_length: int, cls_id: int, sep_id: int,
             pad_id: int) -> dict[str, np.ndarray]:
    """`[CLS] A [SEP] (B [SEP])` padded to max_length; the segments must already fit."""
    token_ids = [cls_id] + list(segments[0]) + [sep_id]
    segment_ids = [0] * len(token_ids)
    if len(segments) > 1:
        token_ids += list(segments[1]) + [sep_id]
        segment_ids += [1] * (len(segments[1]) + 1)
    if len(token_ids) > max_length:
        raise ValueError(f"{len(token_ids)} tokens do not fit max_length={max_length}")
    pad = max_length - len(token_ids)
    return {"token_ids": np.array(token_ids + [pad_id] * pad, np.int32),
            "segment_ids": np.array(segment_ids + [0] * pad, np.int32),
            "padding_mask": np.array([1] * len(token_ids) + [0] * pad, np.int32)}


def stack_features(rows: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {k: np.stack([r[k] for r in rows]) for k in ("token_ids", "segment_ids", "padding_mask")}
