"""The pre-training input pipeline: corpus -> documents -> sentences -> NSP pairs -> MLM batches.

    documents (Python generator, one document in memory) -> shuffle documents -> tokenize
      -> NSP pairs (pairs.py; NotNext B from another document of a window of 16)
      -> shuffle examples -> batch -> MLM masking (masking.py, one stateless seed per batch)

`pretraining_dataset(corpus, tokenizer, PairOptions, MaskingOptions, BatchOptions)` is the one
entry point of the trainer; `pair_dataset` stops before masking
(what `kbert prepare` writes to TFRecords); `masked_batches` masks batches of pairs from either.

Randomness and epochs: every random choice comes from `seed` and TensorFlow's global seed (tf.data's
seeded ops combine the two; `kbert pretrain` sets the global one to its seed with
`keras.utils.set_random_seed`). Re-running the same call under the same global seed gives the
same batches. With `dynamic=True` each iteration over the dataset (each Keras epoch) gets new
document order, new pairs and new masks (tf.data's seeded `Dataset.random(...,
rerandomize_each_iteration=True)` and reshuffling); with `dynamic=False` every iteration yields
exactly the same batches.
"""

from __future__ import annotations

import dataclasses
import itertools

import tensorflow as tf

from kbert.corpora import CorpusError
from kbert.data import corpus as corpus_lib
from kbert.data import tfrecords
from kbert.data.corpus import CorpusOptions
from kbert.data.masking import MaskingOptions, MlmMasker
from kbert.data.pairs import PairOptions, nsp_pairs
from kbert.tokenization.tokenizer import resolve_tokenizer  # also imported from here (bench)

FEATURE_NAMES = ("token_ids", "segment_ids", "padding_mask", "masked_positions")
LABEL_NAMES = ("masked_ids", "masked_weights", "next_sentence_labels")
PAIR_NAMES = ("token_ids", "segment_ids", "padding_mask", "next_sentence_labels")
_SEED_OFFSETS = {"documents": 0, "pairs": 2, "examples": 3, "masks": 4}


def _sub_seed(seed: int, name: str) -> int:
    return (int(seed) * 7919 + _SEED_OFFSETS[name]) % (2 ** 31 - 1)


def check_documents(corpus, split: str, **reader_options) -> None:
    """Raise CorpusError unless the split has >= 2 documents (NotNext needs another one)."""
    found = list(itertools.islice(corpus_lib.iter_documents(corpus, split=split,
                                                            **reader_options), 2))
    where = f"the {split!r} split of corpus {corpus!r}" if split != "all" else f"corpus {corpus!r}"
    if not found:
        raise CorpusError(f"{where} has no document with text")
    if len(found) == 1:
        raise CorpusError(
            f"{where} has only one document ({found[0].doc_id}); next-sentence prediction needs "
            f"at least two, since a NotNext B must come from another document. Split the text "
            f"into documents (blank lines, chapter headings) or lower heldout_fraction")


# Documents shuffled before pairing. NotNext partners are drawn within a window of documents
# (pairs.py), so a small buffer keeps a corpus's book order: with 64, about half of the Austen
# NotNext partners came from the same novel; 20% with 1024, 17% for uniform draws as in the
# reference BERT. Documents, not tokens, are buffered.
DOC_SHUFFLE_BUFFER = 1024


def pair_dataset(corpus, tokenizer_or_vocab, seq_length: int = 128, *, seed: int = 12345,
                 split: str = "train", dynamic: bool = True, shuffle: bool = True,
                 short_seq_prob: float = 0.1, heldout_fraction: float = 0.05,
                 format: str = "auto", errors: str = "strict",
                 doc_shuffle_buffer: int = DOC_SHUFFLE_BUFFER,
                 window: int = 16, with_provenance: bool = False,
                 num_parallel_calls=tf.data.AUTOTUNE) -> tf.data.Dataset:
    """Packed NSP pairs, one per element, before masking.

    Args: as `pretraining_dataset`; `shuffle` shuffles the documents (examples are shuffled
        later, in `pretraining_dataset`) with a buffer of `doc_shuffle_buffer` documents;
        `window`: documents per window, among which NotNext B sentences are drawn (pairs.py).

    Returns:
        dataset of dicts: token_ids, segment_ids, padding_mask int32 [seq_length],
        next_sentence_labels int32 []; with `with_provenance` also the fields of
        `kbert.data.pairs.document_pairs` (a_doc, b_doc, a_start, ... ).
    """
    tokenizer = resolve_tokenizer(tokenizer_or_vocab)
    reader = dict(format=format, errors=errors, heldout_fraction=heldout_fraction)
    check_documents(corpus, split, **reader)
    options = PairOptions(seq_length=seq_length, short_seq_prob=short_seq_prob,
                          cls_id=tokenizer.cls_id, sep_id=tokenizer.sep_id,
                          pad_id=tokenizer.pad_id)

    docs = corpus_lib.document_dataset(corpus, split=split, **reader)
    if shuffle:
        docs = docs.shuffle(doc_shuffle_buffer, seed=_sub_seed(seed, "documents"),
                            reshuffle_each_iteration=dynamic)

    def tokenize(doc):
        # "[MASK]" typed in a book is text, not a special token: "[ MASK]" tokenizes alike
        # ("[", "mask", "]") but is not matched as one.
        text = tf.strings.regex_replace(doc["sentences"], r"\[(PAD|UNK|CLS|SEP|MASK)\]", r"[ \1]")
        pieces = tokenizer.tokenize(text)
        pieces = tf.ragged.boolean_mask(pieces, pieces.row_lengths() > 0)
        return {"doc_index": doc["doc_index"], "sentences": pieces}

    docs = docs.map(tokenize, num_parallel_calls=num_parallel_calls)
    docs = docs.filter(lambda doc: doc["sentences"].nrows() > 0)
    seeds = tf.data.Dataset.random(seed=_sub_seed(seed, "pairs"),
                                   rerandomize_each_iteration=dynamic)
    return nsp_pairs(docs, seeds, options, window=window, with_provenance=with_provenance,
                     num_parallel_calls=num_parallel_calls)


def masked_batches(pairs: tf.data.Dataset, masker: MlmMasker, batch_size: int, *,
                   seed: int = 12345, dynamic: bool = True, drop_remainder: bool = True,
                   debug: bool = False, num_parallel_calls=tf.data.AUTOTUNE) -> tf.data.Dataset:
    """Batch pairs and mask them: dicts with the pair fields plus the masker's outputs.

    token_ids is the masked input; with `debug` the unmasked ids are kept as
    original_token_ids and the masker's masked_actions are added.
    """
    seeds = tf.data.Dataset.random(seed=_sub_seed(seed, "masks"),
                                   rerandomize_each_iteration=dynamic)

    def mask(batch, one_seed):
        one_seed = tf.stack([tf.cast(one_seed, tf.int64), tf.constant(0x3A5C, tf.int64)])
        out = dict(batch)
        out.update(masker(batch["token_ids"], one_seed, with_actions=debug))
        if debug:
            out["original_token_ids"] = batch["token_ids"]
        return out

    batches = pairs.batch(batch_size, drop_remainder=drop_remainder)
    return tf.data.Dataset.zip(batches, seeds).map(mask, num_parallel_calls=num_parallel_calls)


@dataclasses.dataclass(frozen=True)
class BatchOptions:
    """How pairs become batches: size, randomness over epochs, order, repetition.

    Attributes:
        batch_size: sequences per batch.
        dynamic: new pairs and masks at every iteration (epoch); None: True for training,
            False for "heldout" (a fixed evaluation set).
        shuffle: shuffle documents and examples; None: True except for "heldout".
        example_shuffle_buffer: examples in the shuffle buffer after pairing.
        drop_remainder: drop a last partial batch (static shapes); None: True except for
            "heldout", whose every example counts.
        repeat: repeat forever (then pass steps_per_epoch to fit).
    """

    batch_size: int = 32
    dynamic: bool | None = None
    shuffle: bool | None = None
    example_shuffle_buffer: int = 2048
    drop_remainder: bool | None = None
    repeat: bool = False

    def __post_init__(self):
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int) \
                or self.batch_size < 1:
            raise ValueError(f"batch_size must be an integer >= 1, got {self.batch_size!r}")

    def resolved(self, split: str) -> BatchOptions:
        """The None defaults made concrete for `split`."""
        heldout = split == "heldout"
        pick = lambda value: not heldout if value is None else bool(value)  # noqa: E731
        return dataclasses.replace(self, dynamic=pick(self.dynamic), shuffle=pick(self.shuffle),
                                   drop_remainder=pick(self.drop_remainder))


def pretraining_dataset(corpus="austen", tokenizer_or_vocab=None,
                        pairs: PairOptions | None = None,
                        masking: MaskingOptions | MlmMasker | None = None,
                        batching: BatchOptions | None = None, *,
                        reading: CorpusOptions | None = None, split: str = "train",
                        seed: int = 12345, debug: bool = False) -> tf.data.Dataset:
    """The MLM + NSP training (or held-out evaluation) data, ready for `model.fit`.

    Args:
        corpus: text files, directories, globs or "austen" (see `kbert.data.corpus`), or a
            directory written by `kbert prepare` (TFRecord pairs; then pairs are fixed and only
            the masking is dynamic).
        tokenizer_or_vocab: a BertTokenizer, a Vocabulary, or a vocabulary path; "unigram"
            replacement needs its vocab_counts.txt.
        pairs: `PairOptions` (seq_length S, short_seq_prob; the special ids are the
            tokenizer's); default PairOptions().
        masking: `MaskingOptions` (max_predictions P, masked_lm_prob, rates, replacement,
            whole_word; see `kbert.data.masking`) or a ready `MlmMasker`.
        batching: `BatchOptions` (batch_size, dynamic, shuffle, drop_remainder, repeat).
        reading: `kbert.data.corpus.CorpusOptions` (format, errors, heldout_fraction).
        split: "train", "heldout" (documents chosen by `kbert.data.corpus.is_heldout` with
            `heldout_fraction`) or "all".
        seed: every random choice derives from it; the same call gives the same data.
        debug: yield one flat dict per batch instead of (features, labels), with provenance
            (a_doc, b_doc, sentence ranges), original_token_ids and masked_actions.

    Returns:
        A dataset of `(features, labels)`, the layout `BertPretrainer.fit` takes:
        features: token_ids (masked), segment_ids, padding_mask int32 [B, S],
                  masked_positions int32 [B, P];
        labels:   masked_ids int32 [B, P], masked_weights float32 [B, P] (1.0 real slot, 0.0
                  empty), next_sentence_labels int32 [B] (0 IsNext, 1 NotNext).
        The labels keep the names of docs/architecture.md; masked_weights travels in the
        labels (not as Keras sample_weight) because the MLM loss is a per-slot weighted mean.

    Example:
        >>> ds = pretraining_dataset("austen", "runs/vocab", batching=BatchOptions(32))
        ... # doctest: +SKIP
        >>> model.fit(ds, epochs=3, validation_data=pretraining_dataset(
        ...     "austen", "runs/vocab", split="heldout"))                     # doctest: +SKIP
    """
    if tokenizer_or_vocab is None:
        raise ValueError("pretraining_dataset needs tokenizer_or_vocab (a BertTokenizer, a "
                         "Vocabulary or a vocabulary directory)")
    pairs = pairs or PairOptions()
    batching = (batching or BatchOptions()).resolved(split)
    reading = reading or CorpusOptions()
    tokenizer = resolve_tokenizer(tokenizer_or_vocab)
    masker = masking if isinstance(masking, MlmMasker) else \
        (masking or MaskingOptions()).masker(tokenizer.vocab)
    seq_length = pairs.seq_length
    if not 1 <= masker.max_predictions <= seq_length:
        raise ValueError(f"max_predictions must be an integer in [1, seq_length={seq_length}], "
                         f"got {masker.max_predictions!r}")

    if tfrecords.is_pair_directory(corpus):
        examples = tfrecords.read_pairs(
            corpus, split, seq_length=seq_length, vocab_size=tokenizer.vocab_size,
            vocab_tokens=tokenizer.vocab.tokens, dynamic=batching.dynamic,
            shuffle_seed=_sub_seed(seed, "documents") if batching.shuffle else None)
    else:
        examples = pair_dataset(corpus, tokenizer, seq_length, seed=seed, split=split,
                                dynamic=batching.dynamic, shuffle=batching.shuffle,
                                short_seq_prob=pairs.short_seq_prob,
                                heldout_fraction=reading.heldout_fraction,
                                format=reading.format, errors=reading.errors,
                                with_provenance=debug)
    if batching.shuffle:
        examples = examples.shuffle(batching.example_shuffle_buffer,
                                    seed=_sub_seed(seed, "examples"),
                                    reshuffle_each_iteration=batching.dynamic)
    data = masked_batches(examples, masker, batching.batch_size, seed=seed,
                          dynamic=batching.dynamic, drop_remainder=batching.drop_remainder,
                          debug=debug)
    if not debug:
        data = data.map(lambda b: ({k: b[k] for k in FEATURE_NAMES},
                                   {k: b[k] for k in LABEL_NAMES}))
    if batching.repeat:  # after masking: each repetition is a new iteration of the pipeline
        data = data.repeat()
    return data.prefetch(tf.data.AUTOTUNE)
