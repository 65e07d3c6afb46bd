"""Training a WordPiece vocabulary from a corpus (tf-text's learner), with unigram counts.

Kept apart from `vocab.py` (the Vocabulary itself, which needs no tokenizer) because training
needs the tokenizer: vocab <- tokenizer <- vocab_training, no import cycle.

Example:
    >>> vocab = train_vocabulary("austen", vocab_size=8000,  # doctest: +SKIP
    ...                          output_dir="runs/vocab")
    >>> vocab.mask_id, vocab.token_to_id["[SEP]"]  # doctest: +SKIP
    (4, 3)
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable

import numpy as np
import tensorflow as tf
from tensorflow_text.python.ops import bert_tokenizer
from tensorflow_text.tools.wordpiece_vocab import wordpiece_tokenizer_learner_lib as learner

from kbert.corpora import expand_paths, read_lines
from kbert.tokenization.tokenizer import BertTokenizer, normalize
from kbert.tokenization.vocab import SPECIAL_TOKENS, Vocabulary, VocabularyError


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
    tokens = trim_learned(tokens, vocab_size, len(reserved))
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


def trim_learned(tokens: list[str], vocab_size: int, num_reserved: int) -> list[str]:
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
    return [t for t, k in zip(tokens, keep, strict=True) if k]
