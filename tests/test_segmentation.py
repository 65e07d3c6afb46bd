"""Sentence and heading rules, checked on real Austen paragraphs (boundaries read by a person)."""

import os

import pytest

from kbert.corpora import austen_files, read_lines
from kbert.data.segmentation import (
    is_chapter_heading,
    is_decoration,
    is_section_heading,
    join_lines,
    split_sentences,
)


def austen_paragraph(novel: str, starts_with: str) -> str:
    """The hard-wrapped paragraph of the real corpus file that starts with `starts_with`."""
    path = next(p for p in austen_files() if os.path.basename(p).startswith(novel))
    current = []
    for line in list(read_lines(path)) + [""]:
        if line.strip():
            current.append(line)
            continue
        if current and current[0].startswith(starts_with):
            return join_lines(current)
        current = []
    raise AssertionError(f"no paragraph starting with {starts_with!r} in {novel}")


def test_real_dialogue_with_mr_and_question_inside_quotes_is_one_sentence():
    text = austen_paragraph("prideprejudice", '"My dear Mr. Bennet,"')
    assert split_sentences(text) == [
        '"My dear Mr. Bennet," said his lady to him one day, "have you heard that Netherfield '
        'Park is let at last?"']


def test_real_question_followed_by_lowercase_speech_tag_does_not_break():
    text = austen_paragraph("prideprejudice", '"Do you not want to know')
    assert split_sentences(text) == [text]


def test_real_paragraph_breaks_at_exclamation_and_keeps_mr_across_a_line_wrap():
    text = austen_paragraph("emma", '"Only one more, papa; only for Mr. Elton.')
    sentences = split_sentences(text)
    assert sentences[:3] == ['"Only one more, papa; only for Mr. Elton.', "Poor Mr. Elton!",
                             "You like Mr. Elton, papa,--I must look about for a wife for him."]
    assert sentences[-1] == "I think very well of Mr. Elton, and this is the only way I have of " \
                            'doing him a service."'
    assert len(sentences) == 5
    assert not any(s.endswith(("Mr.", "Mrs.")) for s in sentences)


def test_real_hard_wrapped_opening_of_emma_is_joined_into_one_sentence():
    text = austen_paragraph("emma", "Emma Woodhouse, handsome")
    assert split_sentences(text) == [
        "Emma Woodhouse, handsome, clever, and rich, with a comfortable home and happy "
        "disposition, seemed to unite some of the best blessings of existence; and had lived "
        "nearly twenty-one years in the world with very little to distress or vex her."]


def test_real_paragraph_with_mrs_and_miss_splits_only_at_sentence_ends():
    text = austen_paragraph("emma", "How was she to bear the change?")
    sentences = split_sentences(text)
    assert len(sentences) == 3
    assert sentences[0].startswith("How was she to bear the change?--It was true")
    assert "a Mrs. Weston, only half a mile from them" in sentences[0]
    assert sentences[1] == "She dearly loved her father, but he was no companion for her."


@pytest.mark.parametrize("text, expected", [
    ("Dr. Perry came. St. James's was near.", ["Dr. Perry came.", "St. James's was near."]),
    ("Mr. F. C. Churchill wrote. Mrs. Weston read it.",
     ["Mr. F. C. Churchill wrote.", "Mrs. Weston read it."]),
    ("She waited... Then nothing. So did I. It ended.",
     ["She waited... Then nothing.", "So did I.", "It ended."]),
    ('"Is it so?" said he. "It is!" She smiled.',
     ['"Is it so?" said he.', '"It is!"', "She smiled."]),
    ('"Oh! Mr. Knightley, stop!" cried Emma.', ['"Oh! Mr. Knightley, stop!" cried Emma.']),
    ("See No. 97 of the Rambler. It is good.", ["See No. 97 of the Rambler.", "It is good."]),
    ("It was e.g. Tuesday. Yes.", ["It was e.g. Tuesday.", "Yes."]),
    ("no terminal punctuation", ["no terminal punctuation"]),
    ("", []),
])
def test_abbreviations_initials_ellipses_and_quotes(text, expected):
    assert split_sentences(text) == expected


def test_join_lines_single_spaces_and_glues_dashes():
    assert join_lines(["It was  true", "  that she--", "went away."]) == \
        "It was true that she--went away."


def test_headings_and_decorations():
    assert is_chapter_heading("CHAPTER XLIV") and is_chapter_heading("Chapter 12")
    assert is_chapter_heading("  CHAPTER I.  ")
    assert not is_chapter_heading("Chapter the next began, she said.")
    assert is_section_heading("VOLUME II") and is_section_heading("A NOTE ON THE TEXT")
    assert is_section_heading("THE END") and is_section_heading("Finis")
    assert not is_section_heading('"MY DEAREST LIZZY,--')
    assert not is_section_heading("I WILL NOT GO.")
    assert is_decoration("   * * * * *") and not is_decoration("Yes *")
