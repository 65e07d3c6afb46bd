"""Extractive question answering: start / end logits over the context tokens.

Inputs are packed `[CLS] question [SEP] context-window [SEP]`. A context longer than fits is cut
into overlapping windows: window k covers context pieces [k * doc_stride, k * doc_stride + n)
(google-research/bert's doc_stride: the step between window starts, 128 by default). The
answer is the best (start <= end, end - start < max_answer_length pieces, both inside the
context) span over all windows by start_logit + end_logit, mapped back to the character span of
the original context.

Training targets are piece positions; an answer not wholly inside a window points at [CLS]
(position 0) in that window, as in the reference SQuAD 1.1 code.

Example:
    >>> qa = BertSpanExtractor.from_pretrained(minilm_dir)                        # doctest: +SKIP
    >>> qa.predict_answers(["Where does José live?"],
    ...                    ["José lives in Zürich with his cat."])                 # doctest: +SKIP
    [{'text': 'Zürich', 'start': 14, 'end': 20, 'score': 9.3}]
"""

from __future__ import annotations

import dataclasses
import math

import keras
import numpy as np
from keras import ops

from kbert.tasks.alignment import tokenize_with_char_offsets
from kbert.tasks.base import TaskModel, as_text_list, head_layers, is_text_list
from kbert.tasks.labels import DataError, check_texts
from kbert.tasks.tuning import freeze_pooler

NEG = -1e4  # logit of padding: exp(NEG) is 0 in float32 and it cannot overflow
MAX_QUESTION_LENGTH = 64  # question pieces kept (the reference's max_query_length)


@dataclasses.dataclass
class Window:
    """One packed window: which example, and per position its context character span."""

    example: int
    char_starts: np.ndarray  # int64 [max_length], -1 outside the context
    char_ends: np.ndarray


@keras.saving.register_keras_serializable(package="kbert")
class BertSpanExtractor(TaskModel):
    """Start / end logits per token: {"start_logits", "end_logits"} float32 [batch, seq];
    padding positions get -1e4.

    Args:
        encoder: a BertEncoder.
        dropout: dropout before the output layer (default 0.0: the reference QA head has none).
        freeze_layers: see `TaskModel`.
    """

    def __init__(self, encoder, dropout: float | None = 0.0, freeze_layers: int | None = None,
                 **kwargs):
        kwargs.setdefault("name", "bert_span_extractor")
        super().__init__(encoder, freeze_layers=freeze_layers, **kwargs)
        self._dropout_arg = dropout
        freeze_pooler(self.encoder)  # reads token vectors only
        self.dropout, self.span_logits = head_layers(self.encoder, dropout, 2, "span_dropout",
                                                     "span_logits", sequence=True)
        self.built = True

    def call(self, inputs, training=False):
        sequence = self.encoder(inputs, training=training)["sequence_output"]
        logits = self.span_logits(self.dropout(sequence, training=training))  # [B, S, 2]
        mask = inputs.get("padding_mask") if isinstance(inputs, dict) else None
        if mask is not None:
            logits = ops.where(ops.expand_dims(ops.cast(mask, "bool"), -1), logits, NEG)
        return {"start_logits": logits[..., 0], "end_logits": logits[..., 1]}

    def default_loss(self):
        return {"start_logits": keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                "end_logits": keras.losses.SparseCategoricalCrossentropy(from_logits=True)}

    # ------------------------------------------------------------------ features
    def encode_examples(self, questions, contexts, answers=None, doc_stride: int = 128,
                        max_question_length: int = MAX_QUESTION_LENGTH):
        """Questions and contexts -> windows.

        Args:
            answers: optional, per example (answer_start_char, answer_text): the answer must be
                `context[start:start + len(text)]`.

        Returns:
            (features dict of int32 [W, max_length], targets {"start_logits", "end_logits"}
            int32 [W] or None, windows: list of W `Window`).
        """
        tokenizer = self._require_tokenizer()
        questions, contexts = list(questions), list(contexts)
        if len(questions) != len(contexts):
            raise DataError(f"{len(questions)} questions but {len(contexts)} contexts")
        check_texts(questions, "question")
        check_texts(contexts, "context")
        if answers is not None and len(answers) != len(contexts):
            raise DataError(f"{len(contexts)} contexts but {len(answers)} answers")
        if doc_stride < 1:
            raise ValueError(f"doc_stride must be >= 1, got {doc_stride}")
        q_pieces = tokenize_with_char_offsets(tokenizer, questions)
        c_pieces = tokenize_with_char_offsets(tokenizer, contexts)
        question_rows, window_rows, starts, ends, windows = [], [], [], [], []
        for i, (qp, cp) in enumerate(zip(q_pieces, c_pieces, strict=True)):
            q_ids = [p.id for p in qp[:max_question_length]]
            room = self.max_length - len(q_ids) - 3
            if room < 1:
                raise DataError(f"max_length={self.max_length} leaves no room for the context "
                                f"after a {len(q_ids)}-piece question")
            answer_span = None
            if answers is not None:
                a_start, a_text = answers[i]
                a_end = a_start + len(a_text)
                if contexts[i][a_start:a_end] != a_text:
                    raise DataError(f"example #{i}: the answer {a_text!r} is not at character "
                                    f"{a_start} of its context")
                answer_span = (a_start, a_end)
            offset = 0
            while True:
                window = cp[offset:offset + room]
                question_rows.append(q_ids)
                window_rows.append([p.id for p in window])
                first = len(q_ids) + 2  # [CLS] question [SEP]
                char_starts = np.full(self.max_length, -1, np.int64)
                char_ends = np.full(self.max_length, -1, np.int64)
                char_starts[first:first + len(window)] = [p.start for p in window]
                char_ends[first:first + len(window)] = [p.end for p in window]
                windows.append(Window(i, char_starts, char_ends))
                s = e = 0
                if answer_span is not None:
                    inside = np.flatnonzero(char_starts >= 0)
                    hit = inside[(char_ends[inside] > answer_span[0])
                                 & (char_starts[inside] < answer_span[1])]
                    covered = hit.size and char_starts[hit[0]] <= answer_span[0] and (
                        char_ends[hit[-1]] >= answer_span[1])
                    if covered:
                        s, e = int(hit[0]), int(hit[-1])
                starts.append(s)
                ends.append(e)
                if offset + room >= len(cp):
                    break
                offset += doc_stride
        targets = None
        if answers is not None:
            targets = {"start_logits": np.array(starts, np.int32),
                       "end_logits": np.array(ends, np.int32)}
        # deferred: packing is TensorFlow code, not needed on JAX
        from kbert.tokenization.packing import pack_id_lists  # noqa: PLC0415

        features = pack_id_lists([question_rows, window_rows], self.max_length,
                                 tokenizer.cls_id, tokenizer.sep_id, tokenizer.pad_id)
        return features, targets, windows

    def encode_text_inputs(self, x, y=None):
        """Keras' `fit` / `evaluate` / `predict` on text: `x = (questions, contexts)`, `y` the
        answers as (answer_start_char, answer_text). One row per window of 128-piece stride
        (`predict` gives window logits; `predict_answers` turns them into answers)."""
        if not (isinstance(x, tuple) and len(x) == 2 and all(
                is_text_list(part) and not isinstance(part, str) for part in x)):
            return None
        features, targets, _ = self.encode_examples(as_text_list(x[0]), as_text_list(x[1]), y)
        return features, targets, None

    def fit_examples(self, questions, contexts, answers, epochs: int = 2, batch_size: int = 16,
                     learning_rate: float = 5e-5, doc_stride: int = 128, seed: int = 0,
                     verbose="auto", **compile_kwargs):
        """Fine-tune on (question, context, (answer_start_char, answer_text)) examples."""
        # deferred: TensorFlow, not needed on JAX
        import tensorflow as tf  # noqa: PLC0415

        features, targets, _ = self.encode_examples(questions, contexts, answers, doc_stride)
        n = len(targets["start_logits"])
        self.compile(learning_rate=learning_rate, total_steps=epochs * math.ceil(n / batch_size),
                     **compile_kwargs)
        ds = tf.data.Dataset.from_tensor_slices((features, targets)).shuffle(
            n, seed=seed).batch(batch_size)
        return self.fit(ds, epochs=epochs, verbose=verbose, shuffle=False)

    # ------------------------------------------------------------------ answers
    @staticmethod
    def best_span(start_logits, end_logits, valid: np.ndarray, max_answer_length: int):
        """(score, start, end) of the best span with start <= end < start + max_answer_length,
        both at `valid` positions; None if no position is valid."""
        positions = np.flatnonzero(valid)
        if positions.size == 0:
            return None
        s = np.asarray(start_logits, np.float64)[positions][:, None]
        e = np.asarray(end_logits, np.float64)[positions][None, :]
        gap = positions[None, :] - positions[:, None]
        scores = np.where((gap >= 0) & (gap < max_answer_length), s + e, -np.inf)
        i, j = np.unravel_index(np.argmax(scores), scores.shape)
        return float(scores[i, j]), int(positions[i]), int(positions[j])

    def predict_answers(self, questions, contexts, max_answer_length: int = 30,
                        doc_stride: int = 128, batch_size: int = 16) -> list[dict]:
        """Per example {"text", "start", "end", "score"}: `context[start:end] == text`."""
        if max_answer_length < 1:
            raise ValueError(f"max_answer_length must be >= 1, got {max_answer_length}")
        features, _, windows = self.encode_examples(questions, contexts, doc_stride=doc_stride)
        outputs = self.predict(features, batch_size=batch_size, verbose=0)
        best: dict[int, tuple] = {}
        for w, window in enumerate(windows):
            found = self.best_span(outputs["start_logits"][w], outputs["end_logits"][w],
                                   window.char_starts >= 0, max_answer_length)
            if found and (window.example not in best or found[0] > best[window.example][0]):
                best[window.example] = (found[0], int(window.char_starts[found[1]]),
                                        int(window.char_ends[found[2]]))
        results = []
        for i, context in enumerate(contexts):
            score, start, end = best.get(i, (float("-inf"), 0, 0))
            results.append({"text": context[start:end], "start": start, "end": end,
                            "score": score})
        return results

    def get_config(self):
        config = super().get_config()
        config.update(dropout=self._dropout_arg)
        return config
