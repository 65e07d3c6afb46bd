"""Contextual embeddings: one vector per token, per word or per text, from any encoder layer.

Every token vector depends on the whole text it sits in ("bank" in "river bank" and in "bank
account" get different vectors). Offsets are CHARACTER offsets into the original Python string:
`text[record.start:record.end]` is the source of a token or word (accents, case and all).

Conventions:
  * `layer`: 0 = the embeddings output, 1..L = the output of block i, -1 = the last block
    (negative indices count from the end, as in Python).
  * token and word records exclude [CLS], [SEP] and [PAD].
  * a word is a first piece plus its "##" continuation pieces (punctuation and each CJK
    character are words of their own: the tokenizer splits them).
  * sentence pooling (`kbert.layers.pooling`): "cls" takes the [CLS] vector; "mean" averages
    every non-padding position, [CLS] and [SEP] included; "max" takes the largest value of each
    dimension over those positions; "mean_sqrt_len" divides their sum by sqrt(count) (the
    sentence-transformers definitions); "cls+mean" etc. concatenate.
  * defaults: a sentence-transformers folder (modules.json, 1_Pooling/config.json,
    2_Normalize, sentence_bert_config.json: `kbert.sentence_transformers`) sets the default
    pooling, normalisation and max_length, so `sentences(texts)` on all-MiniLM-L6-v2 is its
    own sentence embedding (mean, L2-normalised, 256 tokens). Any other model: "cls", not
    normalised, 512. Explicit arguments override each default on its own.
  * an empty string has no tokens and no words; its sequence is `[CLS] [SEP]`, so its sentence
    vector is still defined (the [CLS] vector, or the mean of [CLS] and [SEP]).
  * a text longer than `max_length - 2` pieces is truncated with one `TruncationWarning` per
    call naming the texts and how many pieces were dropped, or raises `TextTooLongError` when
    `truncation="error"`. A word cut by the truncation keeps only its surviving pieces.

Example:
    >>> embedder = ContextualEmbedder.from_pretrained("path/to/all-MiniLM-L6-v2")  # doctest: +SKIP
    >>> [w.word for w in embedder.words(["The river bank."])[0]]                   # doctest: +SKIP
    ['The', 'river', 'bank', '.']
    >>> embedder.sentences(["a", "b"]).shape      # its own mean pooling + L2   # doctest: +SKIP
    (2, 384)
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import warnings
from collections.abc import Sequence

import numpy as np

from kbert.errors import KbertError, TruncationWarning
from kbert.layers.pooling import parse_pooling, pool_sequence
from kbert.loading import ModelSourceError, load
from kbert.sentence_transformers import SentenceFolderError
from kbert.tokenization.offsets import char_of_byte


class TextTooLongError(KbertError, ValueError):
    """A text is longer than max_length and truncation="error" was asked for."""


@dataclasses.dataclass(frozen=True)
class TokenVector:
    """One WordPiece token: `token` (the vocabulary piece, "##" kept), its id, the character
    span `text[start:end]` it came from, and its float32 vector [H]."""

    token: str
    id: int
    start: int
    end: int
    vector: np.ndarray

    def to_dict(self) -> dict:
        return {"token": self.token, "id": self.id, "start": self.start, "end": self.end,
                "vector": self.vector.tolist()}


@dataclasses.dataclass(frozen=True)
class WordVector:
    """One word: `word` = `text[start:end]` (original characters), its pieces, its vector [H]."""

    word: str
    pieces: tuple[str, ...]
    start: int
    end: int
    vector: np.ndarray

    def to_dict(self) -> dict:
        return {"word": self.word, "pieces": list(self.pieces), "start": self.start,
                "end": self.end, "vector": self.vector.tolist()}


@dataclasses.dataclass
class _Encoded:
    """One text after tokenization: piece ids and character spans (post truncation)."""

    ids: np.ndarray
    starts: np.ndarray
    ends: np.ndarray


class ContextualEmbedder:
    """Token, word and sentence vectors from a `BertEncoder` and its `BertTokenizer`.

    Args:
        encoder: a `kbert.models.BertEncoder`.
        tokenizer: the `kbert.tokenization.BertTokenizer` its weights were trained with.
        max_length: longest sequence fed to the encoder, [CLS] and [SEP] included (capped at
            the encoder's max_position_embeddings; default: the sentence-transformers folder's
            max_seq_length, else 512).
        batch_size: texts per encoder call (texts are grouped by length to limit padding).
        truncation: "warn" (drop the tail, warn) or "error" (raise TextTooLongError).
        sentence: a `kbert.sentence_transformers.SentenceSettings` (`Loaded.sentence`): the
            default pooling, normalisation and max_length of `sentences`; None: "cls", none, 512.
    """

    def __init__(self, encoder, tokenizer, max_length: int | None = None, batch_size: int = 32,
                 truncation: str = "warn", sentence=None):
        config = encoder.bert_config
        if len(tokenizer.vocab) != config.vocab_size:
            raise ValueError(f"the tokenizer has {len(tokenizer.vocab)} entries but the encoder's "
                             f"vocab_size is {config.vocab_size}")
        if max_length is None:
            max_length = (sentence.max_length if sentence is not None else None) or 512
        if sentence is not None and sentence.dimension not in (None, config.hidden_size):
            raise SentenceFolderError(f"{sentence.source}: embedding dimension "
                                      f"{sentence.dimension} but the encoder's hidden size is "
                                      f"{config.hidden_size}: they do not belong together")
        if not isinstance(max_length, int) or max_length < 2:
            raise ValueError(f"max_length must be an integer >= 2, got {max_length!r}")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        if truncation not in ("warn", "error"):
            raise ValueError(f"truncation must be 'warn' or 'error', got {truncation!r}")
        self.encoder = encoder
        self.tokenizer = tokenizer
        self.max_length = min(max_length, config.max_position_embeddings)
        self.batch_size = batch_size
        self.truncation = truncation
        self.sentence = sentence
        self._pieces = tokenizer.vocab.tokens
        self._is_continuation = np.asarray(tokenizer.vocab.is_continuation, bool)

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, **kwargs) -> ContextualEmbedder:
        """From any model `kbert.load` reads (a kbert, transformers or Google BERT directory, a
        pre-training run, a fine-tuned model: its encoder)."""
        loaded = load(path)
        encoder, tokenizer = loaded.encoder, loaded.tokenizer
        if tokenizer is None:
            raise ModelSourceError(f"no vocab.txt found with {path}: embeddings need the "
                                   f"model's vocabulary")
        kwargs.setdefault("sentence", loaded.sentence)
        return cls(encoder, tokenizer, **kwargs)

    @property
    def hidden_size(self) -> int:
        return self.encoder.bert_config.hidden_size

    # ------------------------------------------------------------------ public API
    def tokens(self, texts: Sequence[str], layer: int = -1) -> list[list[TokenVector]]:
        """Per text, one TokenVector per WordPiece token (no [CLS]/[SEP]/[PAD])."""
        encoded, states = self._run(texts, layer)
        out = []
        for enc, state in zip(encoded, states, strict=True):
            out.append([TokenVector(self._pieces[i], int(i), int(s), int(e), state[1 + k])
                        for k, (i, s, e) in enumerate(zip(enc.ids, enc.starts, enc.ends,
                                                          strict=True))])
        return out

    def words(self, texts: Sequence[str], pooling: str = "first",
              layer: int = -1) -> list[list[WordVector]]:
        """Per text, one WordVector per word; pooling "first" (first piece) or "mean" (pieces)."""
        if pooling not in ("first", "mean"):
            raise ValueError(f"word pooling must be 'first' or 'mean', got {pooling!r}")
        texts = _check_texts(texts)
        encoded, states = self._run(texts, layer)
        out = []
        for text, enc, state in zip(texts, encoded, states, strict=True):
            words = []
            starts = [k for k in range(len(enc.ids))
                      if k == 0 or not self._is_continuation[enc.ids[k]]]
            for a, b in itertools.pairwise(starts + [len(enc.ids)]):  # none for no pieces
                vectors = state[1 + a:1 + b]
                vector = vectors[0] if pooling == "first" else vectors.mean(axis=0)
                start, end = int(enc.starts[a]), int(enc.ends[b - 1])
                words.append(WordVector(text[start:end],
                                        tuple(self._pieces[i] for i in enc.ids[a:b]),
                                        start, end, vector.astype(np.float32)))
            out.append(words)
        return out

    @property
    def default_pooling(self) -> str:
        """The pooling `sentences` uses when none is given: the folder's own, else "cls"."""
        return self.sentence.default_pooling() if self.sentence is not None else "cls"

    @property
    def default_normalize(self) -> bool:
        return self.sentence.normalize if self.sentence is not None else False

    def sentences(self, texts: Sequence[str], pooling: str | None = None,
                  normalize: bool | None = None, layer: int = -1) -> np.ndarray:
        """float32 [len(texts), k * H] (k = pooling modes, usually 1): pooled over each text's
        real positions (see the module docstring), optionally L2-normalised.

        Args:
            pooling: "cls", "mean", "max", "mean_sqrt_len" or several joined by "+"; None: the
                sentence-transformers folder's own pooling, else "cls".
            normalize: L2-normalise; None: the folder's Normalize module, else False.
            layer: which layer's token vectors are pooled.
        """
        pooling = self.default_pooling if pooling is None else pooling
        modes = parse_pooling(pooling)
        normalize = self.default_normalize if normalize is None else bool(normalize)
        _, states = self._run(texts, layer, pooling=pooling)
        if not states:
            return np.zeros((0, self.hidden_size * len(modes)), np.float32)
        vectors = np.stack(states)
        if normalize:
            norms = np.linalg.norm(vectors, axis=1, keepdims=True)
            vectors = vectors / np.maximum(norms, 1e-12)
        return vectors.astype(np.float32)

    # ------------------------------------------------------------------ internals
    def _layer_index(self, layer: int) -> int:
        num_layers = self.encoder.bert_config.num_layers
        if isinstance(layer, bool) or not isinstance(layer, (int, np.integer)) or not (
                -num_layers - 1 <= layer <= num_layers):
            raise ValueError(f"layer must be an integer in [{-num_layers - 1}, {num_layers}] "
                             f"(0 = embeddings, -1 = last of {num_layers} blocks), got {layer!r}")
        return int(layer) % (num_layers + 1)

    def _encode(self, texts: list[str]) -> list[_Encoded]:
        """Tokenize with character offsets and truncate to max_length - 2 pieces."""
        ids, starts, ends = self.tokenizer.tokenize_with_offsets(texts)
        splits = ids.row_splits.numpy()
        flat = [t.flat_values.numpy() for t in (ids, starts, ends)]
        room = self.max_length - 2
        encoded, too_long = [], []
        for n, text in enumerate(texts):
            a, b = splits[n], splits[n + 1]
            if b - a > room:
                too_long.append((n, int(b - a - room)))
            b = min(b, a + room)
            index = char_of_byte(text)
            encoded.append(_Encoded(flat[0][a:b].astype(np.int64), index[flat[1][a:b]],
                                    index[flat[2][a:b]]))
        if too_long:
            detail = ", ".join(f"text {n}: {d} dropped" for n, d in too_long[:5])
            more = f" and {len(too_long) - 5} more texts" if len(too_long) > 5 else ""
            message = (f"{len(too_long)} text(s) longer than max_length={self.max_length} tokens "
                       f"([CLS]/[SEP] included); {sum(d for _, d in too_long)} tokens dropped "
                       f"({detail}{more})")
            if self.truncation == "error":
                raise TextTooLongError(message)
            warnings.warn(message + "; their vectors describe the truncated text",
                          TruncationWarning, stacklevel=4)
        return encoded

    def _run(self, texts: Sequence[str], layer: int, pooling: str | None = None):
        """-> (encoded texts, per text float32 [len + 2, H] states of `layer`, [CLS] first, or
        with `pooling` its pooled float32 [k * H] vector)."""
        texts = _check_texts(texts)
        index = self._layer_index(layer)
        if not texts:
            return [], []
        encoded = self._encode(texts)
        cls_id, sep_id, pad_id = self.tokenizer.cls_id, self.tokenizer.sep_id, self.tokenizer.pad_id
        states: list[np.ndarray | None] = [None] * len(texts)
        order = sorted(range(len(texts)), key=lambda n: len(encoded[n].ids))
        for first in range(0, len(order), self.batch_size):
            rows = order[first:first + self.batch_size]
            seq = 2 + max(len(encoded[n].ids) for n in rows)
            token_ids = np.full((len(rows), seq), pad_id, np.int32)
            mask = np.zeros((len(rows), seq), np.int32)
            for r, n in enumerate(rows):
                length = len(encoded[n].ids)
                token_ids[r, 0], token_ids[r, 1:length + 1] = cls_id, encoded[n].ids
                token_ids[r, length + 1] = sep_id
                mask[r, :length + 2] = 1
            inputs = {"token_ids": token_ids, "segment_ids": np.zeros_like(token_ids),
                      "padding_mask": mask}
            last = index == self.encoder.bert_config.num_layers
            outputs = self.encoder(inputs, training=False, output_hidden_states=not last)
            hidden = outputs["sequence_output"] if last else outputs["hidden_states"][index]
            if pooling is not None:  # keras.ops on the batch (kbert.layers.pooling)
                pooled = np.asarray(pool_sequence(hidden, mask, pooling), dtype=np.float32)
                for r, n in enumerate(rows):
                    states[n] = pooled[r]
                continue
            hidden = np.asarray(hidden, dtype=np.float32)
            for r, n in enumerate(rows):
                states[n] = hidden[r, :len(encoded[n].ids) + 2]
        return encoded, states


def _check_texts(texts) -> list[str]:
    if isinstance(texts, (str, bytes)):
        raise TypeError("texts must be a list of strings, not a single string (wrap it: [text])")
    texts = list(texts)
    bad = [i for i, t in enumerate(texts) if not isinstance(t, str)]
    if bad:
        raise TypeError(f"texts must be strings; item {bad[0]} is {type(texts[bad[0]]).__name__}")
    return texts
