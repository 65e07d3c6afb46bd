"""WordPiece tokenization in the TensorFlow graph, id-for-id with the reference BERT tokenizer.

`BertTokenizer` normalises text the way transformers' `BertTokenizerFast` does, then splits
words and pieces with `tensorflow_text.FastBertTokenizer(lower_case_nfd_strip_accents=False)`.
Everything is TF ops (core TF, NormalizeUTF8 and the FastWordpiece ops), so it runs in
`tf.function`, `tf.data` and a SavedModel that TF Serving can load.

Normalisation, character by character (so offsets map back to the original bytes):
  1. invalid UTF-8 becomes U+FFFD, which is then deleted like the reference deletes it:
     invalid bytes are dropped, never an error;
  2. delete NUL, U+FFFD, control and format characters (Cc, Cf, except tab / newline / CR)
     and private-use characters (Co) - the reference's "clean text";
  3. lower-case vocabularies only: per-character lower-case (no context: "Σ" -> "σ" everywhere),
     NFD, delete non-spacing marks (Mn): "Café" -> "cafe";
  4. the special-token strings typed in the text ("[MASK]", "[SEP]", ...; exact, case-sensitive)
     become the special ids, like transformers' added tokens.
FastBertTokenizer then splits on whitespace and punctuation, puts every CJK ideograph in its
own word, and a word longer than 100 characters becomes one [UNK] (the reference's limit).
Where the reference's Unicode tables (about Unicode 8) disagree with RE2's / ICU's newer ones,
the tables below follow the reference: with the bert-base-uncased vocab.txt, every code point
between two letters, lower-cased or cased (2 x 2,224,128 strings), gives transformers' ids
(`scripts/make_tokenizer_fixture.py --check`), and so do the 1,244 texts and 300 truncated
pairs of `tests/fixtures/tokenizer_parity.jsonl.gz`.

Example:
    >>> tok = BertTokenizer("path/to/vocab.txt")                      # doctest: +SKIP
    >>> tok.pieces(["Embeddings rock!"])                              # doctest: +SKIP
    [['em', '##bed', '##ding', '##s', 'rock', '!']]
    >>> tok(["first sentence"], pairs=["second"], max_length=8)["token_ids"]  # doctest: +SKIP
    <tf.Tensor: shape=(1, 8), dtype=int32, numpy=array([[101, 2034, 6251, 102, 2117, 102, 0, 0]]...>
"""

from __future__ import annotations

import itertools
import os

import numpy as np
import tensorflow as tf
import tensorflow_text as tf_text

from kbert.tokenization.offsets import utf8_bytes
from kbert.tokenization.packing import pack_segments
from kbert.tokenization.vocab import SPECIAL_TOKENS, Vocabulary

MAX_WORD_CHARS = 100  # transformers' WordPiece max_input_chars_per_word

# The reference's character classes, from its own tables (about Unicode 8), where they differ
# from RE2's and FastBertTokenizer's newer ones. Hex code point ranges, printed by
# `python scripts/make_tokenizer_fixture.py --tables` from the reference itself.
# Deleted ("clean text"): NUL, Cc except tab / newline / CR, Cf, Co, U+FFFD.
_DELETED_RANGES = """
0-8 B-C E-1F 7F-9F AD 600-605 61C 6DD 70F 180E 200B-200F 202A-202E 2060-2064 2066-206F
E000-F8FF FEFF FFF9-FFFB FFFD 110BD 1BCA0-1BCA3 1D173-1D17A E0001 E0020-E007F F0000-FFFFD
100000-10FFFD
"""
# Non-spacing marks deleted after NFD when lower-casing ("strip accents").
_ACCENT_RANGES = """
300-33F 342 345-36F 483-487 591-5BD 5BF 5C1-5C2 5C4-5C5 5C7 610-61A 64B-65F 670 6D6-6DC
6DF-6E4 6E7-6E8 6EA-6ED 711 730-74A 7A6-7B0 7EB-7F3 816-819 81B-823 825-827 829-82D
859-85B 8E3-902 93A 93C 941-948 94D 951-957 962-963 981 9BC 9C1-9C4 9CD 9E2-9E3 A01-A02
A3C A41-A42 A47-A48 A4B-A4D A51 A70-A71 A75 A81-A82 ABC AC1-AC5 AC7-AC8 ACD AE2-AE3 B01
B3C B3F B41-B44 B4D B56 B62-B63 B82 BC0 BCD C00 C3E-C40 C46-C47 C4A-C4D C55-C56 C62-C63
C81 CBC CBF CC6 CCC-CCD CE2-CE3 D01 D41-D44 D4D D62-D63 DCA DD2-DD4 DD6 E31 E34-E3A
E47-E4E EB1 EB4-EB9 EBB-EBC EC8-ECD F18-F19 F35 F37 F39 F71-F72 F74 F77 F79-F7E F80
F82-F84 F86-F87 F8D-F92 F94-F97 F99-F9C F9E-FA1 FA3-FA6 FA8-FAB FAD-FB8 FBA-FBC FC6
102D-1030 1032-1037 1039-103A 103D-103E 1058-1059 105E-1060 1071-1074 1082 1085-1086 108D
109D 135D-135F 1712-1714 1732-1734 1752-1753 1772-1773 17B4-17B5 17B7-17BD 17C6 17C9-17D3
17DD 180B-180D 18A9 1920-1922 1927-1928 1932 1939-193B 1A17-1A18 1A1B 1A56 1A58-1A5E 1A60
1A62 1A65-1A6C 1A73-1A7C 1A7F 1AB0-1ABD 1B00-1B03 1B34 1B36-1B3A 1B3C 1B42 1B6B-1B73
1B80-1B81 1BA2-1BA5 1BA8-1BA9 1BAB-1BAD 1BE6 1BE8-1BE9 1BED 1BEF-1BF1 1C2C-1C33 1C36-1C37
1CD0-1CD2 1CD4-1CE0 1CE2-1CE8 1CED 1CF4 1CF8-1CF9 1DC0-1DF5 1DFC-1DFF 20D0-20DC 20E1
20E5-20F0 2CEF-2CF1 2D7F 2DE0-2DFF 302A-302D 3099-309A A66F A674-A67D A69E-A69F A6F0-A6F1
A802 A806 A80B A825-A826 A8C4 A8E0-A8F1 A926-A92D A947-A951 A980-A982 A9B3 A9B6-A9B9 A9BC
A9E5 AA29-AA2E AA31-AA32 AA35-AA36 AA43 AA4C AA7C AAB0 AAB2-AAB4 AAB7-AAB8 AABE-AABF AAC1
AAEC-AAED AAF6 ABE5 ABE8 ABED FB1E FE00-FE0F FE20-FE2F 101FD 102E0 10376-1037A 10A01-10A03
10A05-10A06 10A0C-10A0F 10A38-10A3A 10A3F 10AE5-10AE6 11001 11038-11046 1107F-11081
110B3-110B6 110B9-110BA 11100-11102 11127-1112B 1112D 11130-11134 11173 11180-11181
111B6-111BE 111CA-111CC 1122F-11231 11234 11236-11237 112DF 112E3-112EA 11300-11301 1133C
11340 11366-1136C 11370-11374 114B3-114B8 114BA 114BF-114C0 114C2-114C3 115B2-115B5
115BC-115BD 115BF-115C0 115DC-115DD 11633-1163A 1163D 1163F-11640 116AB 116AD 116B0-116B5
116B7 1171D-1171F 11722-11725 11727-1172B 16AF0-16AF4 16B30-16B36 16F8F-16F92 1BC9D-1BC9E
1D167-1D169 1D17B-1D182 1D185-1D18B 1D1AA-1D1AD 1D242-1D244 1DA00-1DA36 1DA3B-1DA6C 1DA75
1DA84 1DA9B-1DA9F 1DAA1-1DAAF 1E8D0-1E8D6 E0100-E01EF
"""
# Letters for the reference that FastBertTokenizer splits off or drops (punctuation and format
# characters added since, the CJK range the reference's table misses): none is in a BERT
# vocabulary, so each becomes a private-use stand-in that keeps its word whole (-> [UNK]).
_STAND_IN_RANGES = """
61D 890-891 8E2 9FD A76 C77 C84 1B4E-1B4F 1B7D-1B7F 2E43-2E4F 2E52-2E5D 10D6E 10EAD
10F55-10F59 10F86-10F89 110CD 113D4-113D5 113D7-113D8 1144B-1144F 1145A-1145B 1145D
11660-1166C 116B9 1183B 11944-11946 119E2 11A3F-11A46 11A9A-11A9C 11A9E-11AA2 11B00-11B09
11BE1 11C41-11C45 11C70-11C71 11EF7-11EF8 11F43-11F4F 11FFF 12FF1-12FF2 13430-1343F
16D6D-16D6F 16E97-16E9A 16FE2 1E5FF 1E95E-1E95F 2B820-2B91F
"""
# Punctuation for the reference, letters for FastBertTokenizer: made a word of their own.
_PADDED_RANGES = """
166D 111C9
"""
_STAND_IN = "\U000F00FF"


def _char_class(ranges: str) -> str:
    parts = []
    for item in ranges.split():
        first, _, last = item.partition("-")
        parts.append(f"\\x{{{first}}}" + (f"-\\x{{{last}}}" if last else ""))
    return "[" + "".join(parts) + "]"


_DELETE = _char_class(_DELETED_RANGES)
_ACCENTS = _char_class(_ACCENT_RANGES)
_STAND_INS = _char_class(_STAND_IN_RANGES)
_PADDED = _char_class(_PADDED_RANGES)

# Placeholders for typed special tokens: private-use characters, which step 2 deletes from the
# user's text, so nothing else can produce them. "[MASK]" -> " \U000F0000" + "\U000F0005 ".
_SENTINEL_OPEN = "\U000F0000"


def _sentinel_close(k: int) -> str:
    return chr(0xF0001 + k)


def _sentinel(k: int) -> str:
    return _SENTINEL_OPEN + _sentinel_close(k)


def _as_strings(texts) -> tuple[tf.Tensor, bool]:
    """-> (rank-1 string tensor, was_scalar)."""
    if isinstance(texts, str):
        texts = utf8_bytes(texts)
    elif isinstance(texts, (list, tuple)):
        texts = [utf8_bytes(t) for t in texts]
    texts = tf.convert_to_tensor(texts, dtype=tf.string)
    if texts.shape.rank == 0:
        return tf.reshape(texts, [1]), True
    if texts.shape.rank not in (1, None):
        raise ValueError(
            f"texts must be a string or a 1-D batch of strings, got shape {texts.shape}")
    return tf.reshape(texts, [-1]), False


def _normalize_chars(chars: tf.Tensor, lower_case: bool) -> tf.Tensor:
    """Normalise each element (one character) of a flat string tensor independently."""
    chars = tf.strings.regex_replace(chars, _DELETE, "")
    if lower_case:
        chars = tf.strings.lower(chars, encoding="utf-8")
        chars = tf_text.normalize_utf8(chars, "NFD")
        chars = tf.strings.regex_replace(chars, _ACCENTS, "")
    chars = tf.strings.regex_replace(chars, _STAND_INS, _STAND_IN)
    return tf.strings.regex_replace(chars, _PADDED, r" \0 ")


def normalize(texts, lower_case: bool = True) -> tf.Tensor:
    """The text FastBertTokenizer sees, without the special-token handling (steps 1-3).

    Used to train vocabularies, so that every learned piece is reachable. Characters of the
    stand-in table come out as U+F00FF, those of the padded table with spaces around them.

    Args:
        texts: string tensor [batch] (or a Python str / list of str).
        lower_case: also lower-case and strip accents (uncased vocabularies).

    Returns:
        string tensor [batch].
    """
    texts, _ = _as_strings(texts)
    chars = tf.strings.unicode_split(texts, "UTF-8", errors="replace", replacement_char=0xFFFD)
    return tf.strings.reduce_join(chars.with_flat_values(
        _normalize_chars(chars.flat_values, lower_case)), axis=-1)


class BertTokenizer(tf.Module):
    """Text -> WordPiece ids (and back), in the TensorFlow graph.

    Args:
        vocab: a `Vocabulary`, or the path of a vocab.txt or of a directory holding one.
        lower_case: lower-case and strip accents; None infers it: True if no vocabulary entry
            has a character that lower-casing changes.
        max_length: default sequence length of `__call__`.

    Shapes: a batch of strings [batch] in; ragged int32 ids [batch, (pieces)] out. A scalar
    string in gives [(pieces)] out.
    """

    def __init__(self, vocab: Vocabulary | str | os.PathLike, lower_case: bool | None = None,
                 max_length: int = 128, name: str | None = None):
        super().__init__(name=name)
        if not isinstance(vocab, Vocabulary):
            vocab = Vocabulary.load(vocab)
        self.vocab = vocab
        self.lower_case = (not vocab.is_cased) if lower_case is None else bool(lower_case)
        if not isinstance(max_length, int) or max_length < 2:
            raise ValueError(f"max_length must be an integer >= 2, got {max_length!r}")
        self.max_length = max_length
        self._special_ids = {t: vocab.token_to_id[t] for t in SPECIAL_TOKENS}
        wordpiece_vocab = list(vocab.tokens)
        for k, token in enumerate(SPECIAL_TOKENS):
            if _sentinel(k) in vocab.token_to_id:
                raise ValueError(f"vocabulary entry {_sentinel(k)!r} is reserved by the tokenizer")
            wordpiece_vocab[self._special_ids[token]] = _sentinel(k)
        self._fast = tf_text.FastBertTokenizer(
            vocab=wordpiece_vocab, suffix_indicator="##",
            # bytes; 4 per character so that the 100-character limit below decides
            max_bytes_per_word=4 * MAX_WORD_CHARS,
            token_out_type=tf.int32, unknown_token=_sentinel(SPECIAL_TOKENS.index("[UNK]")),
            lower_case_nfd_strip_accents=False)
        self._pieces = tf.constant(np.array(vocab.tokens, dtype=object), tf.string)
        self._is_continuation = tf.constant(vocab.is_continuation)

    # ------------------------------------------------------------------ properties
    @property
    def vocab_size(self) -> int:
        return self.vocab.size

    @property
    def pad_id(self) -> int:
        return self.vocab.pad_id

    @property
    def cls_id(self) -> int:
        return self.vocab.cls_id

    @property
    def sep_id(self) -> int:
        return self.vocab.sep_id

    @property
    def mask_id(self) -> int:
        return self.vocab.mask_id

    @property
    def unk_id(self) -> int:
        return self.vocab.unk_id

    # ------------------------------------------------------------------ TF level
    def tokenize(self, texts) -> tf.RaggedTensor:
        """string [batch] -> int32 ragged [batch, (pieces)]."""
        texts, scalar = _as_strings(texts)
        ids, _, _ = self._tokenize(texts, with_offsets=False)
        return ids[0] if scalar else ids

    def tokenize_with_offsets(self, texts):
        """string [batch] -> (ids int32, starts int64, ends int64), each ragged [batch, (pieces)].

        Offsets are UTF-8 byte offsets into the original strings: `text[start:end]` is the
        source of the piece (normalising it gives the piece without "##"). A typed special
        token spans its whole "[MASK]"; pieces of one character (Korean jamo after NFD)
        share that character's span.
        """
        texts, scalar = _as_strings(texts)
        ids, starts, ends = self._tokenize(texts, with_offsets=True)
        if scalar:
            return ids[0], starts[0], ends[0]
        return ids, starts, ends

    def id_to_piece(self, ids) -> tf.Tensor:
        """int ids (any shape, or ragged) -> the vocabulary strings, same shape."""
        if isinstance(ids, tf.RaggedTensor):
            return ids.with_flat_values(self.id_to_piece(ids.flat_values))
        return tf.gather(self._pieces, tf.cast(ids, tf.int32))

    def detokenize(self, ids) -> tf.Tensor:
        """int ids [batch, (pieces)] (ragged or dense) -> string [batch].

        Pieces are joined with spaces, "##" pieces glued to the previous one; [PAD] ids are
        dropped, other special tokens are kept as "[CLS]" etc. Lower-casing and accent
        stripping cannot be undone.
        """
        if not isinstance(ids, tf.RaggedTensor):
            ids = tf.RaggedTensor.from_tensor(tf.convert_to_tensor(ids))
        ids = tf.ragged.boolean_mask(ids, tf.not_equal(ids, self.pad_id))
        flat = tf.cast(ids.flat_values, tf.int32)
        pieces = tf.gather(self._pieces, flat)
        glued = tf.gather(self._is_continuation, flat)
        pieces = tf.where(glued, tf.strings.regex_replace(pieces, "^##", ""),
                          tf.strings.join([" ", pieces]))
        joined = tf.strings.reduce_join(ids.with_flat_values(pieces), axis=-1)
        return tf.strings.regex_replace(joined, "^ ", "")

    def __call__(self, texts, pairs=None, max_length: int | None = None) -> dict[str, tf.Tensor]:
        """Tokenize and pack `[CLS] A [SEP] (B [SEP])`.

        Returns dict of token_ids, segment_ids, padding_mask: int32 [batch, max_length]
        (longest-first truncation like transformers; see `pack_segments`).
        """
        texts, scalar = _as_strings(texts)
        segments = [self._tokenize(texts, with_offsets=False)[0]]
        if pairs is not None:
            pairs, _ = _as_strings(pairs)
            segments.append(self._tokenize(pairs, with_offsets=False)[0])
        packed = pack_segments(segments, max_length or self.max_length, self.cls_id,
                               self.sep_id, self.pad_id)
        return {k: v[0] for k, v in packed.items()} if scalar else packed

    # ------------------------------------------------------------------ Python level
    def encode(self, texts) -> list[list[int]]:
        """A str or list of str -> one list of ids per text (no [CLS]/[SEP])."""
        return [row.tolist() for row in _ragged_rows(self.tokenize(_as_strings(texts)[0]))]

    def pieces(self, texts) -> list[list[str]]:
        """A str or list of str -> one list of WordPiece strings per text."""
        pieces = self.id_to_piece(self.tokenize(_as_strings(texts)[0]))
        return [[p.decode("utf-8") for p in row] for row in _ragged_rows(pieces)]

    def decode(self, ids: list[list[int]]) -> list[str]:
        """One list of ids per text -> detokenized strings."""
        ragged = tf.ragged.constant(ids, dtype=tf.int32, ragged_rank=1) if ids else (
            tf.RaggedTensor.from_row_lengths(tf.zeros([0], tf.int32), tf.zeros([0], tf.int64)))
        return [s.decode("utf-8") for s in self.detokenize(ragged).numpy()]

    # ------------------------------------------------------------------ the pipeline
    @tf.autograph.experimental.do_not_convert  # plain TF ops; skipping autograph halves tracing
    def _tokenize(self, texts: tf.Tensor, with_offsets: bool):
        codepoints, char_starts = tf.strings.unicode_decode_with_offsets(
            texts, "UTF-8", errors="replace", replacement_char=0xFFFD)
        chars = tf.strings.unicode_encode(codepoints.flat_values[:, tf.newaxis], "UTF-8")
        normalized = self._mark_special_tokens(
            codepoints, _normalize_chars(chars, self.lower_case))
        joined = tf.strings.reduce_join(codepoints.with_flat_values(normalized), axis=-1)
        ids, starts, ends = self._fast.tokenize_with_offsets(joined)
        ids, starts, ends = _unknown_long_words(ids, starts, ends, joined,
                                                self._is_continuation, self.unk_id)
        if not with_offsets:
            return ids, None, None
        # Byte offsets in `joined` -> byte offsets in `texts`, through the per-character
        # normalised lengths, in one coordinate system for the whole batch.
        norm_ends = tf.cumsum(tf.cast(tf.strings.length(normalized), tf.int64))
        row_base = tf.gather(tf.concat([[0], norm_ends], 0), codepoints.row_splits[:-1])
        src_starts = char_starts.flat_values
        next_start = tf.concat([src_starts[1:], [0]], 0)
        row_of_char = codepoints.value_rowids()
        is_last = tf.equal(tf.range(tf.size(src_starts, out_type=tf.int64)),
                           tf.gather(codepoints.row_splits[1:], row_of_char) - 1)
        text_bytes = tf.cast(tf.strings.length(texts), tf.int64)
        src_ends = tf.where(is_last, tf.gather(text_bytes, row_of_char), next_start)
        piece_base = tf.gather(row_base, starts.value_rowids())
        sorted_ends = norm_ends[tf.newaxis, :]
        # the character holding a piece's first byte, and the one holding its last byte
        first = tf.searchsorted(sorted_ends, (starts.flat_values + piece_base)[tf.newaxis, :],
                                side="right")[0]
        last = tf.searchsorted(sorted_ends, (ends.flat_values + piece_base)[tf.newaxis, :],
                               side="left")[0]
        starts = starts.with_flat_values(tf.gather(src_starts, first))
        ends = ends.with_flat_values(tf.gather(src_ends, last))
        return ids, starts, ends

    def _mark_special_tokens(self, codepoints: tf.RaggedTensor, normalized: tf.Tensor):
        """Replace the characters of each typed "[MASK]" etc. by its sentinel word.

        The first character becomes " <open>", the last "<close k> ", the others "": the
        sentinel is a word of its own whose offsets span the whole typed token. Matches
        cannot overlap: every special token is "[" + letters + "]".
        """
        flat = codepoints.flat_values
        last_index = tf.cast(tf.size(flat), tf.int64) - 1
        row_end = tf.gather(codepoints.row_splits[1:], codepoints.value_rowids())
        opens = tf.where(tf.equal(flat, ord("[")))[:, 0]
        for k, token in enumerate(SPECIAL_TOKENS):
            length = len(token)
            span = opens[:, tf.newaxis] + tf.range(length, dtype=tf.int64)  # [candidates, L]
            inside_row = span < tf.gather(row_end, opens)[:, tf.newaxis]
            got = tf.gather(flat, tf.minimum(span, last_index))
            match = tf.reduce_all(inside_row & tf.equal(got, [ord(c) for c in token]), axis=1)
            first = tf.boolean_mask(opens, match)
            inner = tf.reshape(first[:, None] + tf.range(1, length - 1, dtype=tf.int64), [-1, 1])
            count = tf.size(first)
            normalized = tf.tensor_scatter_nd_update(
                normalized, first[:, None], tf.fill([count], " " + _SENTINEL_OPEN))
            normalized = tf.tensor_scatter_nd_update(
                normalized, inner, tf.fill([tf.size(inner)], ""))
            normalized = tf.tensor_scatter_nd_update(
                normalized, first[:, None] + length - 1,
                tf.fill([count], _sentinel_close(k) + " "))
        return normalized


def _unknown_long_words(ids, starts, ends, joined, is_continuation, unk_id):
    """Make every word longer than MAX_WORD_CHARS characters a single [UNK], as the reference."""
    flat_ids = ids.flat_values
    piece_rows = ids.value_rowids()
    first_in_row = tf.equal(tf.range(tf.size(flat_ids, out_type=tf.int64)),
                            tf.gather(ids.row_splits, piece_rows))
    word_start = first_in_row | ~tf.gather(is_continuation, flat_ids)
    word_index = tf.cumsum(tf.cast(word_start, tf.int64)) - 1
    num_words = tf.reduce_sum(tf.cast(word_start, tf.int64))
    word_rows = tf.boolean_mask(piece_rows, word_start)
    word_begin = tf.boolean_mask(starts.flat_values, word_start)
    word_end = tf.math.unsorted_segment_max(ends.flat_values, word_index, num_words)

    def count_chars():
        # characters in [begin, end) of each word, from the character starts of `joined`
        _, char_starts = tf.strings.unicode_decode_with_offsets(joined, "UTF-8")
        row_base = tf.concat([[0], tf.cumsum(tf.cast(tf.strings.length(joined), tf.int64))], 0)
        global_starts = char_starts.flat_values + tf.gather(row_base, char_starts.value_rowids())
        base = tf.gather(row_base, word_rows)
        bounds = tf.stack([word_begin + base, word_end + base])
        found = tf.searchsorted(global_starts[tf.newaxis, :], tf.reshape(bounds, [1, -1]),
                               out_type=tf.int64)
        found = tf.reshape(found, [2, -1])
        return found[1] - found[0]

    # a character is at least one byte: only words over MAX_WORD_CHARS bytes need counting
    word_chars = tf.cond(tf.reduce_any(word_end - word_begin > MAX_WORD_CHARS), count_chars,
                         lambda: word_end - word_begin)
    piece_too_long = tf.gather(word_chars > MAX_WORD_CHARS, word_index)
    keep = word_start | ~piece_too_long
    new_ids = tf.where(piece_too_long, tf.cast(unk_id, flat_ids.dtype), flat_ids)
    new_ends = tf.where(piece_too_long, tf.gather(word_end, word_index), ends.flat_values)
    row_lengths = tf.math.unsorted_segment_sum(tf.cast(keep, tf.int64), piece_rows,
                                               ids.nrows())

    def rebuild(values):
        return tf.RaggedTensor.from_row_lengths(tf.boolean_mask(values, keep), row_lengths,
                                                validate=False)

    return rebuild(new_ids), rebuild(starts.flat_values), rebuild(new_ends)


def _ragged_rows(ragged: tf.RaggedTensor) -> list[np.ndarray]:
    values = ragged.flat_values.numpy()
    splits = ragged.row_splits.numpy()
    return [values[a:b] for a, b in itertools.pairwise(splits)]


def resolve_tokenizer(tokenizer_or_vocab, *, fallback=None, vocab_size: int | None = None,
                      needed_for: str = "a tokenizer is needed",
                      error: type[Exception] = ValueError) -> BertTokenizer:
    """The one way kbert turns what a caller gave into a BertTokenizer.

    Args:
        tokenizer_or_vocab: a BertTokenizer, a Vocabulary, a vocab.txt path / directory, or None
            (then `fallback` is used: e.g. the tokenizer a model carries).
        fallback: the tokenizer to use when `tokenizer_or_vocab` is None.
        vocab_size: when given, the size of the token table the tokenizer must fit.
        needed_for: what the tokenizer is for, said when there is none.
        error: the exception class to raise.

    Raises:
        error: no tokenizer at all, an object of another type, or a vocabulary whose size
            differs from `vocab_size`.
    """
    source = fallback if tokenizer_or_vocab is None else tokenizer_or_vocab
    if source is None:
        raise error(f"{needed_for}: pass tokenizer=BertTokenizer(...)")
    if isinstance(source, (Vocabulary, str, os.PathLike)):
        source = BertTokenizer(source)
    elif not isinstance(source, BertTokenizer):
        raise error("tokenizer_or_vocab must be a BertTokenizer, a Vocabulary or the path of a "
                    f"vocabulary, got {type(source).__name__}")
    if vocab_size is not None and source.vocab_size != vocab_size:
        raise error(f"the tokenizer has {source.vocab_size} entries but the encoder's token table "
                    f"has {vocab_size}: they do not belong together")
    return source
