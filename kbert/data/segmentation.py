"""Prose -> paragraphs -> sentences, and the heading lines that split a book into chapters.

Pure Python (no TensorFlow): the corpus reader calls it one paragraph at a time.

Sentence rule: a sentence ends at ".", "!" or "?" (plus any closing quotes or brackets) followed
by whitespace and then an upper-case letter, a digit or an opening quote / bracket / "_". So
dialogue such as `"Is it?" said he.` stays one sentence, so does an interjection ("Oh! Mr. Elton"),
and none of these breaks a sentence:
a known abbreviation ("Mr.", "Mrs.", "Dr.", "St.", "Col.", "No. 5", ...), a single-letter initial
("F. C. Churchill"; "I." is the pronoun, so it does end a sentence), or an ellipsis ("...").
Hard-wrapped lines of a paragraph are joined with one space ("--" at a line end joins without one).

Example:
    >>> split_sentences('"Is it so?" said Mr. Knightley. "It is." Emma smiled...  and left.')
    ['"Is it so?" said Mr. Knightley.', '"It is."', 'Emma smiled...  and left.']
"""

from __future__ import annotations

import re

# Words that end with "." without ending a sentence (compared without the dot).
ABBREVIATIONS = frozenset("""
    Mr Mrs Ms Messrs Mme Mlle Dr St Jr Sr Capt Col Gen Lt Maj Sgt Adm Rev Revd Prof Hon Esq
    Gov Pres Mt Ft Bros Co Corp Inc Ltd vs viz cf al e.g i.e Vol vol Nos pp Fig fig Ch ch
    Jan Feb Mar Apr Jun Jul Aug Sep Sept Oct Nov Dec
""".split())
# "No." / "p." end a sentence unless a number follows ("No. 97", "p. 12").
NUMBER_ABBREVIATIONS = frozenset({"No", "no", "p", "Art", "art"})
# "Oh! Mr. Knightley" is one exclamation, not two sentences (unless a quote closes after "!").
INTERJECTIONS = frozenset(
    "Oh oh Ah ah O Alas Nay Pooh Ha Aye Ay Hush Hark Lo Eh Hey Bah Fie Heyday".split())

_BOUNDARY = re.compile(r"""([.!?]+)(["'’”)\]]*)(\s+)(?=["'‘“(\[_]*[A-Z0-9À-Ý])""")
_WORD_BEFORE = re.compile(r"""([\w.&'’-]+)$""")

# "CHAPTER I", "Chapter 12", "CHAPTER XLIV." on a line of their own.
CHAPTER_HEADING = re.compile(r"^\s*(CHAPTER|Chapter)\s+([IVXLCDM]+|\d+)\.?\s*$")
# End marks and volume/part headings: boundaries that are not text.
_END_MARK = re.compile(r"^\s*(THE END|FINIS|Finis)\s*$")
_VOLUME = re.compile(r"^\s*(VOLUME|Volume|BOOK|Book|PART|Part)\s+([IVXLCDM]+|\d+|[A-Z]+)\.?\s*$")


def is_chapter_heading(line: str) -> bool:
    return bool(CHAPTER_HEADING.match(line))


def is_section_heading(line: str) -> bool:
    """A one-line, all upper-case title ("VOLUME I", "A NOTE ON THE TEXT", "THE END")."""
    text = line.strip()
    if _END_MARK.match(text) or _VOLUME.match(text):
        return True
    letters = [c for c in text if c.isalpha()]
    return (len(letters) >= 2 and all(c.isupper() for c in letters)
            and not text.endswith((".", "!", "?", '"', ",", ";", ":", "-"))
            and len(text.split()) <= 12)


def is_decoration(line: str) -> bool:
    """Scene-break lines such as "* * * * *" or "***": no letters or digits at all."""
    text = line.strip()
    return bool(text) and not any(c.isalnum() for c in text)


def join_lines(lines: list[str]) -> str:
    """Join the hard-wrapped lines of one paragraph into one line of single-spaced text."""
    out = ""
    for raw in lines:
        line = raw.strip()
        if not line:
            continue
        if not out:
            out = line
        elif out.endswith("--") or out.endswith("—"):
            out += line
        else:
            out += " " + line
    return re.sub(r"\s+", " ", out)


def _period_ends_sentence(text: str, dot: int, after: str) -> bool:
    """Whether the single "." at index `dot` closes a sentence; `after` is the next word."""
    match = _WORD_BEFORE.search(text, 0, dot)
    word = (match.group(1) if match else "").lstrip("'‘’-")
    if not word:
        return True
    if word in ABBREVIATIONS:
        return False
    if word in NUMBER_ABBREVIATIONS and after[:1].isdigit():
        return False
    if len(word) == 1 and word.isupper() and word != "I":
        return False  # an initial
    if "." in word and all(len(p) <= 2 for p in word.split(".")):
        return False  # "e.g", "U.S", "A.D"
    return True


def split_sentences(paragraph: str) -> list[str]:
    """Split one paragraph (already joined into one line) into sentences.

    Args:
        paragraph: text of one paragraph.
    Returns:
        The sentences, stripped, in order, none empty; joined with single spaces they give back
        the paragraph's text (up to the whitespace at the boundaries).
    """
    text = paragraph.strip()
    sentences = []
    begin = 0
    for m in _BOUNDARY.finditer(text):
        terminator = m.group(1)
        if terminator.endswith("."):
            if len(terminator) > 1:
                continue  # an ellipsis does not end a sentence
            after = text[m.end():m.end() + 8].lstrip("\"'‘“(_[")
            if not _period_ends_sentence(text, m.start(1), after):
                continue
        elif not m.group(2):
            match = _WORD_BEFORE.search(text, 0, m.start(1))
            if match and match.group(1) in INTERJECTIONS:
                continue
        sentences.append(text[begin:m.end(2)].strip())
        begin = m.end()
    tail = text[begin:].strip()
    if tail:
        sentences.append(tail)
    return [s for s in sentences if s]
