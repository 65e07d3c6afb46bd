"""Shared pieces of the property-based fuzz tests (tests/test_fuzz_*.py): settings and hostile
text strategies.

Example counts are small by default, so that each fuzz file runs in well under 90 s on a 2-core
machine. `KBERT_FUZZ_EXAMPLES=N` runs every fuzz test with N examples instead (the longer run
of README.md's reliability section), e.g.

    KBERT_FUZZ_EXAMPLES=20000 python -m pytest tests/test_fuzz_tokenizer.py \
        tests/test_fuzz_masker.py tests/test_fuzz_signatures.py --hypothesis-show-statistics
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

ENV = "KBERT_FUZZ_EXAMPLES"


def fuzz_settings(ci_examples: int, cap: int | None = None, **kwargs) -> settings:
    """hypothesis settings: `ci_examples` examples, or $KBERT_FUZZ_EXAMPLES when it is set
    (at most `cap`: for tests whose examples take seconds, such as the 1 MB strings)."""
    override = os.environ.get(ENV)
    examples = int(override) if override else ci_examples
    if override and cap is not None:
        examples = min(examples, max(cap, ci_examples))
    return settings(max_examples=examples, deadline=None, print_blob=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.large_base_example,
                                           HealthCheck.filter_too_much],
                    **kwargs)


# Characters that have broken tokenizers somewhere: lone surrogates, private use (including the
# code points kbert's tokenizer uses internally as sentinels and stand-ins), combining marks,
# bidi controls and right-to-left scripts, C0 / C1 / format characters, odd whitespace, case
# mappings that change length, CJK and astral characters, emoji sequences, and the text of the
# special tokens (whole, partial, lower-cased).
HOSTILE_PIECES = [
    "\ud800", "\udfff", "\ud83d", "\ude00",
    "\ue000", "\uf8ff", "\U000F0000", "\U000F0001", "\U000F0005", "\U000F00FF", "\U0010FFFD",
    "\u0301", "\u0308", "\u0345", "\u20dd", "\u1dc0", "\u0f71", "\u302a",
    "\u202e", "\u202d", "\u200f", "\u200e", "\u2067", "\u2069", "\u05d0\u05b8", "\u0627\u0644",
    "\u0645\u0631\u062d\u0628\u0627",
    "\x00", "\x07", "\x1b", "\x7f", "\x85", "\u200b", "\u200d", "\ufeff", "\u00ad", "\ufffd",
    "\ufffe", "\uffff", "\u0600", "\U000E0001",
    "\t", "\n", "\r", "\r\n", "\u3000", "\u00a0", "\u2028", "\u2029", "\x0b", "\x0c",
    "\u0130", "\u00df", "\ufb01", "\u03a3", "\u01c5", "\u1e9e", "\u0149", "\u1f80",
    "\u4e2d", "\U00020000", "\U0002B820", "\ud55c", "\u1100\u1161", "\U0001F600",
    "\U0001F44D\U0001F3FB", "\U0001F468\u200d\U0001F469", "\uff21\uff22", "\u2026",
    "[", "]", "#", "##", "[MASK]", "[SEP]", "[CLS]", "[PAD]", "[UNK]", "[MASK", "MASK]",
    "[mask]", "[[MASK]]", "[unused0]",
]
WORDS = ["the", "quick", "brown", "fox", "Café", "naïve", "embeddings", "unaffable", "x",
         "Ωmega", "東京", "don't", "e-mail", "3.14", "@user", "http://a.b/c?d=e"]


def _long_word(pair):
    char, count = pair
    return char * count


hostile_text = st.lists(
    st.one_of(
        st.characters(),                       # any code point but surrogates
        st.characters(categories=["Cs"]),      # lone surrogates
        st.sampled_from(HOSTILE_PIECES),
        st.sampled_from(WORDS),
        st.text(st.characters(codec="ascii"), max_size=6),
        # around the 100-character word limit, with 1- to 4-byte characters
        st.tuples(st.sampled_from(["x", "\u00e9", "\u4e2d", "\U0001F600", "e\u0301"]),
                  st.integers(90, 130)).map(_long_word),
    ),
    max_size=40,
).map("".join)


def _splice(args):
    text, junk, where = args
    raw = text.encode("utf-8", "surrogatepass")
    where = where % (len(raw) + 1)
    return raw[:where] + junk + raw[where:]


# arbitrary bytes, and hostile text with arbitrary bytes spliced in (invalid UTF-8 mostly)
hostile_bytes = st.one_of(
    st.binary(max_size=300),
    st.tuples(hostile_text, st.binary(min_size=1, max_size=8), st.integers(0, 10_000)).map(_splice),
)

hostile_string = st.one_of(hostile_text, hostile_bytes)


def as_bytes(text) -> bytes:
    """What the tokenizer sees of a str or bytes input."""
    return text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
