"""Multiple choice (SWAG-style): each (prompt, choice) pair is scored on its pooled vector and
the scores of one example's choices are soft-maxed against each other.

Example:
    >>> mc = BertMultipleChoice.from_pretrained(minilm_dir)                       # doctest: +SKIP
    >>> mc.predict_choices(["She opened the umbrella because"],
    ...                    [["it was raining.", "the soup was cold."]])  # doctest: +SKIP
    (array([0]), array([[0.71, 0.29]], dtype=float32))
"""

from __future__ import annotations

import math

import keras
import numpy as np
from keras import ops

from kbert.tasks.base import TaskModel, as_text_list, head_layers, is_text_list
from kbert.tasks.datasets import truncation_report
from kbert.tasks.labels import DataError, check_texts


@keras.saving.register_keras_serializable(package="kbert")
class BertMultipleChoice(TaskModel):
    """Inputs: dict of int32 [batch, num_choices, seq] (each choice packed as
    `[CLS] prompt [SEP] choice [SEP]`). Output: logits float32 [batch, num_choices].

    Args:
        encoder: a BertEncoder.
        dropout: dropout before the scoring layer (default: the encoder's hidden dropout).
        freeze_layers: see `TaskModel`.
    """

    def __init__(self, encoder, dropout: float | None = None, freeze_layers: int | None = None,
                 **kwargs):
        kwargs.setdefault("name", "bert_multiple_choice")
        super().__init__(encoder, freeze_layers=freeze_layers, **kwargs)
        self._dropout_arg = dropout
        self.dropout, self.choice_score = head_layers(self.encoder, dropout, 1,
                                                      "choice_dropout", "choice_score")
        self.built = True

    def call(self, inputs, training=False):
        token_ids = inputs["token_ids"]
        shape = ops.shape(token_ids)  # [batch, choices, seq]
        flat = {k: ops.reshape(v, (-1, shape[-1])) for k, v in inputs.items()}
        pooled, _ = self.encode_cls(flat, training=training)  # [batch * choices, H]
        scores = self.choice_score(self.dropout(pooled, training=training))
        return ops.reshape(scores, (-1, shape[1]))

    def default_loss(self):
        return keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    def default_metrics(self):
        return [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]

    def encode_choices(self, prompts, choices) -> dict[str, np.ndarray]:
        """prompts [N] and choices [N][C] (same C for all) -> int32 [N, C, max_length] inputs."""
        tokenizer = self._require_tokenizer()
        prompts, choices = list(prompts), [list(c) for c in choices]
        if len(prompts) != len(choices):
            raise DataError(f"{len(prompts)} prompts but {len(choices)} choice lists")
        counts = {len(c) for c in choices}
        if len(counts) != 1 or min(counts) < 2:
            raise DataError(f"every example needs the same number (>= 2) of choices, got "
                            f"{sorted(counts)}")
        check_texts(prompts, "prompt")
        flat_choices = [c for row in choices for c in row]
        check_texts(flat_choices, "choice")
        num_choices = counts.pop()
        flat_prompts = [p for p in prompts for _ in range(num_choices)]
        truncation_report(tokenizer, flat_prompts, flat_choices, self.max_length)
        packed = tokenizer(flat_prompts, pairs=flat_choices, max_length=self.max_length)
        return {k: np.asarray(v).reshape(len(prompts), num_choices, -1) for k, v in packed.items()}

    def encode_text_inputs(self, x, y=None):
        """Keras' `fit` / `evaluate` / `predict` on text: `x = (prompts, choices)` with
        choices [N][C] strings, `y` the index of each right choice."""
        if not (isinstance(x, tuple) and len(x) == 2 and is_text_list(x[0])
                and isinstance(x[1], (list, tuple)) and x[1]
                and all(is_text_list(row) and not isinstance(row, str) for row in x[1])):
            return None
        features = self.encode_choices(as_text_list(x[0]), x[1])
        if y is None:
            return features, None, None
        answers = np.asarray(y, np.int32)
        num_choices = features["token_ids"].shape[1]
        if answers.shape != (len(x[0]),) or answers.min() < 0 or answers.max() >= num_choices:
            raise DataError(f"answers must be {len(x[0])} indices in 0..{num_choices - 1}")
        return features, answers, None

    def fit_choices(self, prompts, choices, answers, epochs: int = 3, batch_size: int = 16,
                    learning_rate: float = 3e-5, seed: int = 0, verbose="auto", **compile_kwargs):
        """Fine-tune; `answers[i]` is the index of the right choice of example i."""
        # deferred: TensorFlow, not needed on JAX
        import tensorflow as tf  # noqa: PLC0415

        features = self.encode_choices(prompts, choices)
        answers = np.asarray(answers, np.int32)
        num_choices = features["token_ids"].shape[1]
        if answers.shape != (len(prompts),) or answers.min() < 0 or answers.max() >= num_choices:
            raise DataError(f"answers must be {len(prompts)} indices in 0..{num_choices - 1}")
        self.compile(learning_rate=learning_rate,
                     total_steps=epochs * math.ceil(len(prompts) / batch_size), **compile_kwargs)
        ds = tf.data.Dataset.from_tensor_slices((features, answers)).shuffle(
            len(prompts), seed=seed).batch(batch_size)
        return self.fit(ds, epochs=epochs, verbose=verbose, shuffle=False)

    def predict_choices(self, prompts, choices, batch_size: int = 16):
        """-> (best choice index int64 [N], softmax probabilities float32 [N, C])."""
        logits = np.asarray(self.predict(self.encode_choices(prompts, choices),
                                         batch_size=batch_size, verbose=0))
        shifted = np.exp(logits - logits.max(-1, keepdims=True))
        probs = (shifted / shifted.sum(-1, keepdims=True)).astype(np.float32)
        return probs.argmax(-1), probs

    def get_config(self):
        config = super().get_config()
        config.update(dropout=self._dropout_arg)
        return config
