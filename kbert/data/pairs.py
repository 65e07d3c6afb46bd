"""Next-sentence-prediction pairs from tokenized documents, as a tf.data transformation.

The reference algorithm (google-research/bert `create_instances_from_document`), applied to one
document at a time, with every choice made by stateless random ops on a per-document seed:

1. Target length: `max_num_tokens = seq_length - 3`; with probability `short_seq_prob` (0.1) a
   chunk gets a uniform random target in [2, max_num_tokens] instead (drawn per chunk).
2. A chunk is the shortest run of whole sentences from the current one reaching the target.
3. Label: NotNext (1) with probability 0.5, else IsNext (0). Segment A is the chunk's first
   `randint(1, len(chunk) - 1)` sentences. IsNext: B is the rest of the chunk, the true
   continuation. NotNext: B is a run of sentences from a random point of a different document,
   long enough to fill the target, and the chunk's unused sentences are put back (the next
   chunk starts where A ended).
4. Truncation: while A + B > max_num_tokens, drop a token from the longer side (B on a tie),
   from its front or its back with probability 1/2 each (the reference's `truncate_seq_pair`;
   a sentence longer than the whole sequence is cut this way too).
5. `[CLS] A [SEP] B [SEP]`, padded to seq_length, by `kbert.tokenization.packing.pack_segments`.

Where this differs from the reference, so that labels are exactly 50/50 (the reference makes
every one-sentence chunk NotNext, which for long sentences or short targets skews the labels):
a one-sentence chunk drawn IsNext takes the next sentence of the document as B (or, at the
document's end, the previous sentence as A); a one-sentence *document* can only be NotNext, so
it yields a pair when its coin says NotNext and none otherwise.

Streaming: documents are processed in windows of `window` (16) consecutive documents of the
(shuffled) document stream; a NotNext B comes from a random other document of the same window,
so memory holds one window, never the corpus. A last window with a single document borrows B
from the first window of the pass (kept in memory for that). Unshuffled (the held-out split),
windows are neighbouring documents, e.g. chapters of the same novel.

Example:
    >>> pairs = nsp_pairs(tokenized_docs, tf.data.Dataset.random(seed=1), PairOptions())
    ... # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses

import tensorflow as tf

from kbert.tokenization.packing import pack_segments

DEFAULT_WINDOW = 16
IS_NEXT, NOT_NEXT = 0, 1


@dataclasses.dataclass(frozen=True)
class PairOptions:
    """Options of NSP pair creation.

    Attributes:
        seq_length: packed length, [CLS] and two [SEP] included (>= 5).
        short_seq_prob: probability of a shorter random target length for a chunk.
        not_next_prob: probability of a NotNext pair (0.5 as in the paper).
        cls_id, sep_id, pad_id: special ids for packing.
    """

    seq_length: int = 128
    short_seq_prob: float = 0.1
    not_next_prob: float = 0.5
    cls_id: int = 2
    sep_id: int = 3
    pad_id: int = 0

    def __post_init__(self):
        if not isinstance(self.seq_length, int) or self.seq_length < 5:
            raise ValueError(f"seq_length must be an integer >= 5, got {self.seq_length!r}")
        for name in ("short_seq_prob", "not_next_prob"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value!r}")


def _prefix(lengths: tf.Tensor) -> tf.Tensor:
    return tf.concat([[0], tf.cumsum(lengths)], 0)


def _chunk_end(prefix: tf.Tensor, start: tf.Tensor, target: tf.Tensor, n: tf.Tensor) -> tf.Tensor:
    """Smallest end > start with prefix[end] - prefix[start] >= target, at most n."""
    end = tf.searchsorted(prefix[tf.newaxis, :], [[prefix[start] + target]], side="left")[0, 0]
    return tf.clip_by_value(tf.cast(end, tf.int32), start + 1, n)


def plan_pairs(lengths, partner_lengths, partner_ok, seed, options: PairOptions) -> tf.Tensor:
    """Choose the pairs of one document: sentence ranges and labels, no tokens yet.

    Args:
        lengths: int32 [n], token count of each sentence of the document (all > 0).
        partner_lengths: int32 ragged [k, (m)], sentence lengths of the candidate documents.
        partner_ok: bool [k], which candidates are a different document.
        seed: int64 [2].

    Returns:
        int32 [pairs, 7]: a_start, a_end, b_source (-1 = this document, else candidate index),
        b_start, b_end, label, target length. Sentence ranges are [start, end).
    """
    n = tf.size(lengths)
    prefix = _prefix(lengths)
    max_num = options.seq_length - 3
    ok_index = tf.cast(tf.where(partner_ok)[:, 0], tf.int32)
    num_ok = tf.size(ok_index)
    ok_index = tf.concat([ok_index, [0]], 0)  # a dummy so that a gather is always legal
    rows = tf.cast(partner_lengths.row_splits, tf.int32)  # candidate -> first sentence
    partner_prefix = _prefix(partner_lengths.values)  # over all candidates' sentences
    # Each step consumes >= 1 sentence, so n steps suffice: draw every number up front.
    draws = tf.random.stateless_uniform([n, 6], seed)

    def body(i, step, plans):
        u = draws[step]
        short = u[0] < options.short_seq_prob
        target = tf.where(short, 2 + tf.cast(u[1] * tf.cast(max_num - 1, tf.float32), tf.int32),
                          max_num)
        target = tf.minimum(target, max_num)
        not_next = (u[2] < options.not_next_prob) & (num_ok > 0)
        end = _chunk_end(prefix, i, target, n)
        single = end - i == 1
        # IsNext needs two sentences: take the next one, or at the end the previous one.
        extend = single & ~not_next & (end < n)
        back = single & ~not_next & (end == n) & (i > 0)
        skip = single & ~not_next & (end == n) & (i == 0)
        end = tf.where(extend, end + 1, end)
        start = tf.where(back, i - 1, i)
        size = end - start
        a_end = start + 1 + tf.cast(u[3] * tf.cast(tf.maximum(size - 1, 1), tf.float32), tf.int32)
        a_end = tf.minimum(a_end, tf.maximum(end - 1, start + 1))  # randint(1, size - 1)

        # NotNext: from a random sentence of a random other candidate, enough to fill the target.
        source = ok_index[tf.minimum(tf.cast(u[4] * tf.cast(num_ok, tf.float32), tf.int32),
                                     tf.maximum(num_ok - 1, 0))]
        first, m = rows[source], rows[source + 1] - rows[source]
        b_from = first + tf.minimum(tf.cast(u[5] * tf.cast(m, tf.float32), tf.int32), m - 1)
        b_to = _chunk_end(partner_prefix, b_from, target - (prefix[a_end] - prefix[start]),
                          first + m)
        b = tf.where(not_next, tf.stack([source, b_from - first, b_to - first]),
                     tf.stack([-1, a_end, end]))
        label = tf.where(not_next, NOT_NEXT, IS_NEXT)
        plans = plans.write(step, tf.concat(
            [tf.stack([start, a_end]), b, tf.stack([label, target, tf.cast(skip, tf.int32)])], 0))
        return tf.where(not_next, a_end, end), step + 1, plans

    plans = tf.TensorArray(tf.int32, size=0, dynamic_size=True, element_shape=[8])
    _, _, plans = tf.while_loop(lambda i, step, plans: i < n, body,
                                (tf.constant(0), tf.constant(0), plans))
    plans = tf.reshape(plans.stack(), [-1, 8])
    return tf.boolean_mask(plans[:, :7], plans[:, 7] == 0)


def kept_lengths(a_len, b_len, max_num_tokens):
    """The reference's truncate_seq_pair, closed form: drop one token at a time from the
    longer segment (B on a tie) until a + b <= max_num_tokens. int32 [pairs] each."""
    fits = a_len + b_len <= max_num_tokens
    a_kept = tf.minimum(a_len, tf.maximum((max_num_tokens + 1) // 2, max_num_tokens - b_len))
    return tf.where(fits, a_len, a_kept), tf.where(fits, b_len, max_num_tokens - a_kept)


def _truncate(a_start, a_len, b_start, b_len, seed, seq_length):
    """Longest-first truncation, each removed token from the front or back at random."""
    a_kept, b_kept = kept_lengths(a_len, b_len, seq_length - 3)
    seeds = tf.random.experimental.stateless_split(seed, 2)
    def front(count, one_seed):  # removals from the front ~ Binomial(removed, 1/2)
        return tf.random.stateless_binomial(tf.shape(count), one_seed, tf.cast(count, tf.float32),
                                            0.5, output_dtype=tf.int32)

    a_front, b_front = front(a_len - a_kept, seeds[0]), front(b_len - b_kept, seeds[1])
    return a_start + a_front, a_kept, b_start + b_front, b_kept


def document_pairs(doc_index, sentences, partner_index, partner_sentences, seed,
                   options: PairOptions, with_provenance: bool = False,
                   partner_ok=None) -> dict[str, tf.Tensor]:
    """All NSP pairs of one document, packed.

    Args:
        doc_index: int64 [], the document's corpus index.
        sentences: int32 ragged [n, (pieces)], its tokenized sentences (none empty).
        partner_index: int64 [k], corpus indices of the candidate documents for NotNext B.
        partner_sentences: int32 ragged [k, (m), (pieces)], their tokenized sentences.
        seed: int64 [2].
        options: PairOptions.
        with_provenance: add the debug fields below.
        partner_ok: bool [k], the candidates B may come from; default: those whose index
            differs from doc_index.

    Returns:
        dict of [pairs, ...] tensors: token_ids, segment_ids, padding_mask int32 [pairs, seq];
        next_sentence_labels int32 [pairs]. With provenance also (int32/int64 [pairs]):
        a_doc, b_doc (corpus indices), a_start, a_end, b_start, b_end (sentence ranges of the
        untruncated segments), a_offset, a_length, b_offset, b_length (the kept tokens: offset
        from the first token of the range, count).
    """
    plan_seed, cut_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    lengths = tf.cast(sentences.row_lengths(), tf.int32)
    partner_lengths = tf.cast(partner_sentences.values.row_lengths(), tf.int32)
    partner_lengths = partner_sentences.with_values(partner_lengths)
    if partner_ok is None:
        partner_ok = tf.not_equal(partner_index, doc_index)
    plans = plan_pairs(lengths, partner_lengths, partner_ok, plan_seed, options)
    a_start, a_end, b_source, b_start, b_end, labels, _ = tf.unstack(plans, axis=1)

    # All sentences in one ragged tensor: this document's, then each candidate's.
    everything = tf.concat([sentences, partner_sentences.values], axis=0)
    splits = tf.cast(everything.row_splits, tf.int32)
    partner_first = tf.size(lengths) + tf.cast(partner_sentences.row_splits, tf.int32)[:-1]
    b_base = tf.where(b_source < 0, 0, tf.gather(partner_first, tf.maximum(b_source, 0)))
    a_tok, a_len = tf.gather(splits, a_start), tf.gather(splits, a_end) - tf.gather(splits, a_start)
    b_tok = tf.gather(splits, b_base + b_start)
    b_len = tf.gather(splits, b_base + b_end) - b_tok
    a_from, a_kept, b_from, b_kept = _truncate(a_tok, a_len, b_tok, b_len, cut_seed,
                                               options.seq_length)
    values = everything.flat_values

    def segment(begin, count):
        return tf.RaggedTensor.from_row_lengths(
            tf.gather(values, tf.ragged.range(begin, begin + count).flat_values), count)

    packed = pack_segments([segment(a_from, a_kept), segment(b_from, b_kept)], options.seq_length,
                           options.cls_id, options.sep_id, options.pad_id)
    packed["next_sentence_labels"] = labels
    if with_provenance:
        packed.update(
            a_doc=tf.fill(tf.shape(labels), doc_index),
            b_doc=tf.where(b_source < 0, doc_index,
                           tf.gather(partner_index, tf.maximum(b_source, 0))),
            a_start=a_start, a_end=a_end, b_start=b_start, b_end=b_end,
            a_offset=a_from - a_tok, a_length=a_kept, b_offset=b_from - b_tok, b_length=b_kept)
    return packed


def nsp_pairs(documents, seeds, options: PairOptions, window: int = DEFAULT_WINDOW,
              with_provenance: bool = False, num_parallel_calls=tf.data.AUTOTUNE):
    """The tf.data transformation: tokenized documents -> a dataset of single packed pairs.

    Args:
        documents: finite dataset of dicts with doc_index int64 [] and sentences int32 ragged
            [n, (pieces)] (no empty sentence, n >= 1), each document once.
        seeds: an endless dataset of int64 [] seeds (e.g. `tf.data.Dataset.random`), one per
            window of documents.
        options: PairOptions.
        window: documents per window; NotNext B comes from another document of the window.
        with_provenance: keep the debug fields of `document_pairs`.

    Returns:
        dataset of dicts: token_ids, segment_ids, padding_mask int32 [seq_length],
        next_sentence_labels int32 [] (plus provenance fields).
    """
    if not isinstance(window, int) or window < 2:
        raise ValueError(f"window must be an integer >= 2, got {window!r}")
    windows = documents.batch(window)
    # The first window again (read once per iteration): the B source of a last window that
    # holds a single document.
    reserve = windows.take(1).cache().repeat()

    def spread(win, res, seed):
        count = tf.shape(win["doc_index"], out_type=tf.int64)[0]
        seed = tf.stack([tf.cast(seed, tf.int64), tf.constant(0x5EED, tf.int64)])
        shared = tf.data.Dataset.from_tensors((win, res, seed)).repeat()
        return tf.data.Dataset.zip(tf.data.Dataset.range(count), shared)

    def make(j, shared):
        win, res, seed = shared
        count = tf.shape(win["doc_index"], out_type=tf.int64)[0]
        cand_index = tf.concat([win["doc_index"], res["doc_index"]], 0)
        cand_sentences = tf.concat([win["sentences"], res["sentences"]], 0)
        in_window = tf.range(tf.size(cand_index, out_type=tf.int64)) < count
        doc_index = win["doc_index"][j]
        ok = tf.not_equal(cand_index, doc_index) & (in_window | (count < 2))
        return document_pairs(doc_index, win["sentences"][j], cand_index, cand_sentences,
                              tf.random.experimental.stateless_fold_in(seed, j), options,
                              with_provenance, partner_ok=ok)

    per_document = tf.data.Dataset.zip(windows, reserve, seeds).flat_map(spread)
    return per_document.map(make, num_parallel_calls=num_parallel_calls).unbatch()
