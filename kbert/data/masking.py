"""Masked-LM masking of packed batches: one TensorFlow implementation, stateless and seeded.

Which tokens: only non-special tokens are candidates ([PAD], [UNK], [CLS], [SEP], [MASK] never
are). A sequence with n candidates gets
    num_to_predict = min(max_predictions, max(1, round(n * masked_lm_prob)), n)
of them (round half to even, like Python's and the reference's `round`), chosen uniformly at
random. With `whole_word=True` the unit is a word (a piece plus the "##" pieces after it):
words are taken in random order, all their pieces together, skipping a word that would take
the count over num_to_predict (the reference's rule), so num_to_predict counts pieces.

What happens to each chosen token: with `mask_token_rate` (0.8) it becomes [MASK], with
`random_token_rate` (0.1) a random token, otherwise (0.1) it stays. The random token is drawn
by unigram probability, i.e. proportional to the vocabulary's counts (`vocab_counts.txt`), or
uniformly (`replacement="uniform"`); special and `[unusedN]` entries are never drawn.

Randomness: `tf.random.stateless_*` ops on the `seed` argument ([2] integers): the same seed and
input give the same output; the pipeline feeds a fresh seed per batch and epoch.

Example:
    >>> masker = MlmMasker(vocab, max_predictions=20)                    # doctest: +SKIP
    >>> out = masker(batch["token_ids"], seed=tf.constant([1, 2]))       # doctest: +SKIP
    >>> out["token_ids"].shape, out["masked_positions"].shape            # doctest: +SKIP
    (TensorShape([32, 128]), TensorShape([32, 20]))
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf

from kbert.errors import KbertError

MASK, RANDOM, KEEP, EMPTY = 0, 1, 2, -1  # the `masked_actions` codes (debug output)
REPLACEMENTS = ("unigram", "uniform")


class MaskingError(KbertError, ValueError):
    """Masking options or a vocabulary that cannot produce MLM examples."""


@dataclasses.dataclass(frozen=True)
class MaskingOptions:
    """The options of `MlmMasker` without the vocabulary (see its docstring), so that a caller
    can choose the masking before the vocabulary is loaded: `options.masker(vocab)`."""

    max_predictions: int = 20
    masked_lm_prob: float = 0.15
    mask_token_rate: float = 0.8
    random_token_rate: float = 0.1
    replacement: str = "unigram"
    whole_word: bool = False

    def masker(self, vocab) -> MlmMasker:
        return MlmMasker(vocab, **dataclasses.asdict(self))


def replacement_distribution(vocab, replacement: str = "unigram") -> np.ndarray:
    """float64 [vocab_size]: the probability of each id as a random replacement token.

    "unigram": proportional to `vocab.counts`; "uniform": equal. Zero for special and
    [unusedN] ids (and, for "unigram", for ids never seen in the corpus).
    """
    if replacement not in REPLACEMENTS:
        raise MaskingError(f"replacement must be one of {REPLACEMENTS}, got {replacement!r}")
    size = len(vocab.tokens)
    eligible = np.ones(size, bool)
    eligible[list(vocab.special_ids)] = False
    eligible[list(vocab.unused_ids)] = False
    if replacement == "uniform":
        weights = eligible.astype(np.float64)
    else:
        if vocab.counts is None:
            raise MaskingError(
                "the vocabulary has no unigram counts (vocab_counts.txt next to vocab.txt), which "
                "replacement='unigram' needs: train it with kbert.tokenization.train_vocabulary, "
                "or pass replacement='uniform'")
        weights = np.where(eligible, vocab.counts, 0).astype(np.float64)
    if weights.sum() <= 0:
        raise MaskingError(f"no token can be drawn as a {replacement} replacement "
                           f"(all eligible counts are zero)")
    return weights / weights.sum()


class MlmMasker:
    """Applies MLM masking to packed token ids.

    Args:
        vocab: a `kbert.tokenization.Vocabulary` (tokens, special_ids, unused_ids, mask_id,
            is_continuation, counts).
        max_predictions: P, slots per sequence for masked positions.
        masked_lm_prob: share of candidate tokens to select (0.15).
        mask_token_rate, random_token_rate: shares of the selected tokens replaced by [MASK] and
            by a random token; the rest stay unchanged.
        replacement: "unigram" (by corpus counts) or "uniform" (over non-special tokens).
        whole_word: select whole words (a piece and its "##" continuations) together.

    Call: `masker(token_ids, seed)` with token_ids int32 [batch, seq] (or [seq]) and seed an
    integer tensor [2]; returns a dict (with the batch dimension as given):
        token_ids int32 [batch, seq]: the masked input;
        masked_positions int32 [batch, P]: selected positions, ascending, 0 on empty slots;
        masked_ids int32 [batch, P]: the original ids there, 0 on empty slots;
        masked_weights float32 [batch, P]: 1.0 on real slots, 0.0 on empty ones;
        masked_actions int32 [batch, P] (only with `with_actions=True`): MASK=0, RANDOM=1,
            KEEP=2, EMPTY=-1 -- what was done at each slot, for statistics and demos.
    """

    def __init__(self, vocab, max_predictions: int = 20, masked_lm_prob: float = 0.15,
                 mask_token_rate: float = 0.8, random_token_rate: float = 0.1,
                 replacement: str = "unigram", whole_word: bool = False):
        if not isinstance(max_predictions, int) or max_predictions < 1:
            raise MaskingError(f"max_predictions must be an integer >= 1, got {max_predictions!r}")
        if not 0.0 < masked_lm_prob <= 1.0:
            raise MaskingError(f"masked_lm_prob must be in (0, 1], got {masked_lm_prob!r}")
        if not (0.0 <= mask_token_rate and 0.0 <= random_token_rate
                and mask_token_rate + random_token_rate <= 1.0 + 1e-9):
            raise MaskingError(
                f"mask_token_rate ({mask_token_rate!r}) and random_token_rate "
                f"({random_token_rate!r}) must be >= 0 with a sum <= 1")
        self.vocab_size = len(vocab.tokens)
        self.mask_id = int(vocab.mask_id)
        self.max_predictions = max_predictions
        self.masked_lm_prob = float(masked_lm_prob)
        self.mask_token_rate = float(mask_token_rate)
        self.random_token_rate = float(random_token_rate)
        self.replacement = replacement
        self.whole_word = bool(whole_word)
        self.probabilities = replacement_distribution(vocab, replacement)
        is_special = np.zeros(self.vocab_size, bool)
        is_special[list(vocab.special_ids)] = True
        self._is_special = tf.constant(is_special)
        self._is_continuation = tf.constant(np.asarray(vocab.is_continuation, bool))
        cdf = np.cumsum(self.probabilities)
        cdf[int(np.flatnonzero(self.probabilities)[-1]):] = 1.0  # no draw past the last token
        self._cdf = tf.constant(cdf[np.newaxis, :], tf.float64)

    # ------------------------------------------------------------------ public
    def __call__(self, token_ids, seed, with_actions: bool = False) -> dict[str, tf.Tensor]:
        token_ids = tf.convert_to_tensor(token_ids)
        if token_ids.shape.rank == 1:
            out = self(token_ids[tf.newaxis, :], seed, with_actions)
            return {k: v[0] for k, v in out.items()}
        if token_ids.shape.rank != 2:
            raise MaskingError(f"token_ids must be [batch, seq] or [seq], got {token_ids.shape}")
        token_ids = tf.cast(token_ids, tf.int32)
        seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), 3)
        candidate = ~tf.gather(self._is_special, token_ids)
        selected = self._select(token_ids, candidate, seeds[0])
        return self._apply(token_ids, selected, seeds[1], seeds[2], with_actions)

    def draw_replacements(self, shape, seed) -> tf.Tensor:
        """int32 tensor of `shape`: ids drawn from the replacement distribution."""
        u = tf.random.stateless_uniform(shape, seed, dtype=tf.float64)
        flat = tf.reshape(u, [1, -1])
        ids = tf.searchsorted(self._cdf, flat, side="right", out_type=tf.int32)
        return tf.reshape(tf.minimum(ids, self.vocab_size - 1), shape)

    def num_to_predict(self, num_candidates: tf.Tensor) -> tf.Tensor:
        """int32 [batch]: the count rule of the module docstring."""
        n = tf.cast(num_candidates, tf.float64)
        wanted = tf.cast(tf.round(n * self.masked_lm_prob), tf.int32)
        wanted = tf.minimum(self.max_predictions, tf.maximum(1, wanted))
        return tf.minimum(wanted, tf.cast(num_candidates, tf.int32))

    # ------------------------------------------------------------------ selection
    def _select(self, token_ids, candidate, key_seed) -> tf.Tensor:
        """bool [batch, seq]: the selected positions."""
        budget = self.num_to_predict(tf.reduce_sum(tf.cast(candidate, tf.int32), axis=1))
        keys = tf.random.stateless_uniform(tf.shape(token_ids), key_seed)
        if not self.whole_word:
            keys = tf.where(candidate, keys, 2.0)
            rank = tf.argsort(tf.argsort(keys, axis=1, stable=True), axis=1, stable=True)
            return candidate & (rank < budget[:, tf.newaxis])
        return self._select_words(token_ids, candidate, keys, budget)

    def _select_words(self, token_ids, candidate, keys, budget) -> tf.Tensor:
        seq = tf.shape(token_ids)[1]
        continuation = tf.gather(self._is_continuation, token_ids)
        prev_candidate = tf.pad(candidate[:, :-1], [[0, 0], [1, 0]])
        # a "##" piece right after a special token (front truncation) starts its own word
        starts = candidate & (~continuation | ~prev_candidate)
        word_of = tf.cumsum(tf.cast(starts, tf.int32), axis=1) - 1  # [batch, seq]
        word_of = tf.where(candidate, word_of, seq)  # non-candidates: a dummy word
        sizes = _per_word(tf.math.unsorted_segment_sum, tf.ones_like(word_of), word_of, seq)
        word_keys = tf.where(starts, keys, 2.0)
        start_order = tf.argsort(word_keys, axis=1, stable=True)  # start positions, random order
        word_index = tf.gather(word_of, start_order, batch_dims=1)
        ordered_sizes = tf.where(tf.gather(starts, start_order, batch_dims=1),
                                 tf.gather(sizes, tf.minimum(word_index, seq - 1), batch_dims=1), 0)

        def step(used, size):  # size: [batch], one word per row
            take = (size > 0) & (used + size <= budget)
            return used + tf.where(take, size, 0), take

        _, takes = tf.scan(lambda carry, size: step(carry[0], size),
                           tf.transpose(ordered_sizes),
                           initializer=(tf.zeros_like(budget), tf.zeros_like(budget, tf.bool)))
        takes = tf.transpose(takes)  # [batch, seq], in start_order
        word_taken = _per_word(tf.math.unsorted_segment_max, tf.cast(takes, tf.int32),
                               tf.where(takes, word_index, seq), seq) > 0
        return candidate & tf.gather(word_taken, tf.minimum(word_of, seq - 1), batch_dims=1)

    # ------------------------------------------------------------------ replacement
    def _apply(self, token_ids, selected, action_seed, replace_seed, with_actions):
        shape = tf.shape(token_ids)
        u = tf.random.stateless_uniform(shape, action_seed)
        action = tf.where(u < self.mask_token_rate, MASK,
                          tf.where(u < self.mask_token_rate + self.random_token_rate, RANDOM, KEEP))
        random_ids = self.draw_replacements(shape, replace_seed)
        masked = tf.where(selected & (action == MASK), self.mask_id, token_ids)
        masked = tf.where(selected & (action == RANDOM), random_ids, masked)

        seq = shape[1]
        positions = tf.broadcast_to(tf.range(seq)[tf.newaxis, :], shape)
        order_key = tf.where(selected, positions, seq + positions)
        order_key = tf.pad(order_key, [[0, 0], [0, self.max_predictions]],
                           constant_values=2 * seq + self.max_predictions)
        picked = tf.argsort(order_key, axis=1, stable=True)[:, :self.max_predictions]
        count = tf.reduce_sum(tf.cast(selected, tf.int32), axis=1)
        valid = tf.range(self.max_predictions)[tf.newaxis, :] < count[:, tf.newaxis]
        picked = tf.where(valid, picked, 0)
        out = {
            "token_ids": masked,
            "masked_positions": picked,
            "masked_ids": tf.where(valid, tf.gather(token_ids, picked, batch_dims=1), 0),
            "masked_weights": tf.cast(valid, tf.float32),
        }
        if with_actions:
            out["masked_actions"] = tf.where(valid, tf.gather(action, picked, batch_dims=1), EMPTY)
        return out


def _per_word(reduce, values, word_of, seq):
    """[batch, seq] reduction of `values` [batch, seq] into word slots 0..seq-1 of each row
    (word id `seq` is a dummy that is dropped; empty slots get 0)."""
    batch = tf.shape(values)[0]
    segment = word_of + (seq + 1) * tf.range(batch)[:, tf.newaxis]
    out = reduce(tf.reshape(values, [-1]), tf.reshape(segment, [-1]), batch * (seq + 1))
    out = tf.maximum(out, 0) if reduce is tf.math.unsorted_segment_max else out
    return tf.reshape(out, [batch, seq + 1])[:, :-1]
