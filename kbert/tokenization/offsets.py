"""The tokenizer's bytes of a Python str, and its byte offsets -> character offsets.

`BertTokenizer` reports offsets into the UTF-8 bytes of each text as `utf8_bytes` encodes it;
Python strings index characters. `char_of_byte` converts, for every caller (token-level task
heads, contextual embeddings), lone surrogates included. numpy only: no TensorFlow.

Example:
    >>> char_of_byte("aé\\ud83db").tolist()   # a: 1 byte, é: 2, a lone surrogate: 3, b: 1
    [0, 1, 1, 2, 2, 2, 3, 4]
"""

from __future__ import annotations

import numpy as np


def utf8_bytes(text):
    """A Python str -> its UTF-8 bytes, lone surrogates included (anything else unchanged).

    A str may hold lone surrogates (U+D800-U+DFFF: "\\ud83d" from a bad JSON escape or a
    split emoji), which have no UTF-8 form: TensorFlow refuses such a str ("Error converting
    unicode string", found by tests/test_fuzz_tokenizer.py). Encoded with "surrogatepass"
    they become 3 invalid bytes each, which the tokenizer drops like any invalid UTF-8;
    offsets stay byte offsets into `text.encode("utf-8", "surrogatepass")`, the ordinary UTF-8
    bytes whenever there is no surrogate.
    """
    return text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text


def char_of_byte(text: str) -> np.ndarray:
    """int64 [len(utf8_bytes(text)) + 1]: the index of the character at (or containing) each
    byte offset of `utf8_bytes(text)`; the last entry, the end of the text, is len(text).

    A start offset s maps to `index[s]`, an end offset e (exclusive) to `index[e]` (or
    `index[e - 1] + 1`: the same at character boundaries, where the tokenizer's offsets lie).
    """
    data = np.frombuffer(utf8_bytes(text), np.uint8)
    starts_char = (data & 0xC0) != 0x80  # every byte but a continuation byte starts a character
    return np.append(np.cumsum(starts_char) - 1, len(text)).astype(np.int64)
