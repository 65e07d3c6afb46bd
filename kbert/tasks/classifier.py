"""Sequence classification and regression on the pooled [CLS] vector (or a mean / max pooling).

Example (a fresh head on all-MiniLM-L6-v2, then fine-tuning on raw texts):
    >>> clf = BertClassifier.from_pretrained(minilm_dir, num_classes=2)      # doctest: +SKIP
    >>> train, val = stratified_split(load_labelled("reviews.csv"), 0.2)      # doctest: +SKIP
    >>> clf.fit_texts(train, validation=val, epochs=2)                         # doctest: +SKIP
    >>> clf.predict_texts(["a gripping, funny film"]).labels                   # doctest: +SKIP
    ['positive']
    >>> clf.save_pretrained("runs/polarity")                                   # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import math
import os

import keras
import numpy as np
from keras import ops

from kbert.layers.pooling import POOLING_MODES, parse_pooling, pool_sequence, pooled_width
from kbert.tasks.base import (
    TaskModel,
    as_text_list,
    head_dropout_rate,
    head_layers,
    is_string_dataset,
    is_text_list,
)
from kbert.tasks.datasets import text_dataset, trim_padding, truncation_report
from kbert.tasks.labels import DataError, LabelledData, LabelMap, check_texts
from kbert.tasks.metrics import classification_report
from kbert.tasks.recipe import Recipe, finetuning_recipe
from kbert.tasks.tuning import freeze_pooler
from kbert.tasks.windows import (
    check_stride,
    piece_counts,
    pool_windows,
    window_dataset,
    windowed_arrays,
    windows_per_text,
)

PROBLEM_TYPES = ("single_label", "multi_label", "regression")
POOLINGS = ("pooled",) + POOLING_MODES  # or several modes joined by "+" ("cls+mean")
LABELS_FILE = "labels.json"


@dataclasses.dataclass
class ClassifierPredictions:
    """What `predict_texts` returns.

    Attributes:
        labels: one label per text (multi-label: a list of the labels above `threshold`;
            regression: the predicted value(s)).
        probabilities: float32 [N, C] softmax (single-label) or sigmoid (multi-label) scores;
            for regression, the raw outputs [N, num_outputs].
        class_labels: the label of each column of `probabilities`.
    """

    labels: list
    probabilities: np.ndarray
    class_labels: list

    def to_records(self) -> list[dict]:
        return [{"label": label,
                 "probabilities": {str(c): float(p)
                                   for c, p in zip(self.class_labels, row, strict=True)}}
                for label, row in zip(self.labels, self.probabilities, strict=True)]


@keras.saving.register_keras_serializable(package="kbert")
class BertClassifier(TaskModel):
    """A dense layer on the encoder's pooled output, for single texts or sentence pairs.

    Inputs: dict of int32 [batch, seq] token_ids, segment_ids, padding_mask (pairs are packed
    `[CLS] A [SEP] B [SEP]` with segment ids 0 / 1). Output: float32 logits [batch, num_classes]
    (softmax / sigmoid are applied by the loss and by `predict_texts`; Keras `predict` returns
    the logits), or [batch, num_classes] values for regression.

    Args:
        encoder: a BertEncoder.
        num_classes: classes (single_label, multi_label) or outputs (regression).
        problem_type: "single_label" (softmax + cross entropy), "multi_label" (independent
            sigmoids + binary cross entropy) or "regression" (mean squared error).
        dropout: dropout before the output layer (default: the encoder's hidden dropout).
        freeze_layers: see `TaskModel`.
        pooling: the text vector: "pooled" (BERT's tanh pooler on [CLS], the default), "cls"
            (the raw final [CLS] vector), "mean", "max" or "mean_sqrt_len" over the real tokens'
            final vectors (`kbert.layers.pooling`; what sentence-embedding models such as
            all-MiniLM-L6-v2 were trained to produce), or several modes joined by "+".
            `from_pretrained` on a sentence-transformers folder defaults to the folder's own
            pooling (1_Pooling/config.json). Any pooling but "pooled" leaves the encoder's
            pooler unused: its variables are made non-trainable (no "Gradients do not exist").
    """

    def __init__(self, encoder, num_classes: int = 2, problem_type: str = "single_label",
                 dropout: float | None = None, freeze_layers: int | None = None,
                 pooling: str = "pooled", labels: list | None = None, **kwargs):
        kwargs.setdefault("name", "bert_classifier")
        super().__init__(encoder, freeze_layers=freeze_layers, **kwargs)
        if problem_type not in PROBLEM_TYPES:
            raise ValueError(f"problem_type must be one of {PROBLEM_TYPES}, got {problem_type!r}")
        minimum = 1 if problem_type == "regression" else 2
        if (isinstance(num_classes, bool) or not isinstance(num_classes, int)
                or num_classes < minimum):
            raise ValueError(f"num_classes must be an integer >= {minimum} for {problem_type}, "
                             f"got {num_classes!r}")
        if pooling != "pooled":
            try:
                parse_pooling(pooling)
            except ValueError:
                raise ValueError(f"pooling must be one of {POOLINGS} (or modes joined by '+'), "
                                 f"got {pooling!r}") from None
            freeze_pooler(self.encoder)  # unused: no gradient would reach it
        self.num_classes = num_classes
        self.problem_type = problem_type
        self.pooling = pooling
        self.dropout_rate = head_dropout_rate(self.encoder, dropout)
        self._dropout_arg = dropout
        self.__dict__["_label_map"] = None

        # === Layers ===
        width = (self.encoder.bert_config.hidden_size if pooling == "pooled" else
                 pooled_width(pooling, self.encoder.bert_config.hidden_size))
        self.dropout, self.logits = head_layers(self.encoder, dropout, num_classes,
                                                "classifier_dropout", "logits", width=width)
        self.built = True
        if labels is not None:
            self.set_label_map(LabelMap(labels))

    def call(self, inputs, training=False):
        if self.pooling in ("pooled", "cls"):  # [CLS] only: the last block computes that row
            pooled, cls = self.encode_cls(inputs, training=training)
            vector = pooled if self.pooling == "pooled" else cls
        else:
            sequence = self.encoder(inputs, training=training)["sequence_output"]
            mask = inputs.get("padding_mask") if isinstance(inputs, dict) else None
            if mask is None:
                mask = ops.ones(ops.shape(sequence)[:2], "int32")
            vector = pool_sequence(sequence, mask, self.pooling)
        return self.logits(self.dropout(vector, training=training))

    @classmethod
    def head_defaults(cls, source, head_kwargs: dict) -> tuple[dict, str | None]:
        """pooling left out (or None): a sentence-transformers folder's own pooling (its
        1_Pooling/config.json), else "pooled" ([CLS] + the tanh pooler)."""
        if head_kwargs.get("pooling") is not None:
            return head_kwargs, f"{head_kwargs['pooling']} (asked for)"
        sentence = getattr(source, "sentence", None)
        if sentence is not None and sentence.pooling is not None:
            return ({**head_kwargs, "pooling": sentence.pooling},
                    f"{sentence.pooling}, the model's own (from {sentence.source})")
        return ({**head_kwargs, "pooling": "pooled"},
                "pooled ([CLS] + tanh pooler: the default; the model names no pooling of its own)")

    # ------------------------------------------------------------------ labels
    @property
    def label_map(self) -> LabelMap | None:
        return self.__dict__.get("_label_map")

    def set_label_map(self, label_map: LabelMap | None) -> None:
        if label_map is not None and self.problem_type != "regression" and (
                label_map.num_classes != self.num_classes):
            raise DataError(f"the label map has {label_map.num_classes} classes but the model "
                            f"outputs {self.num_classes}")
        self.__dict__["_label_map"] = label_map

    @property
    def class_labels(self) -> list:
        return self.label_map.labels if self.label_map else list(range(self.num_classes))

    def encode_targets(self, labels) -> np.ndarray:
        """Labels -> the targets the loss takes (class ids, multi-hot rows or float values)."""
        if self.problem_type == "regression":
            try:
                values = np.asarray(labels, np.float32)
            except (TypeError, ValueError):
                raise DataError("regression labels must be numbers") from None
            return values.reshape(len(values), -1)
        label_map = self.label_map or LabelMap(list(range(self.num_classes)))
        if self.problem_type == "multi_label":
            return label_map.encode_multi_hot(labels)
        return label_map.encode(labels)

    # ------------------------------------------------------------------ training
    def default_loss(self):
        if self.problem_type == "single_label":
            return keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        if self.problem_type == "multi_label":
            return keras.losses.BinaryCrossentropy(from_logits=True)
        return keras.losses.MeanSquaredError()

    def default_metrics(self):
        if self.problem_type == "single_label":
            return [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]
        if self.problem_type == "multi_label":
            return [keras.metrics.BinaryAccuracy(name="accuracy", threshold=0.0)]
        return [keras.metrics.MeanAbsoluteError(name="mae")]

    def set_windows(self, stride: int | None) -> None:
        """Read single texts longer than max_length as overlapping windows `stride` pieces
        apart (trained on every window, scored by the mean of a text's window logits), or
        truncate them (None). Saved with the model."""
        if stride is not None:
            stride = check_stride(stride, self.max_length)
        self.__dict__["_window_stride"] = stride

    def _windowed(self, data: LabelledData) -> bool:
        return bool(self.window_stride) and data.pairs is None

    def training_rows(self, data: LabelledData) -> int:
        """Rows one epoch over `data` trains on: its examples, or their windows."""
        if not self._windowed(data):
            return len(data)
        lengths = piece_counts(self._require_tokenizer(), data.texts)
        return int(sum(windows_per_text(lengths, self.max_length, self.window_stride)))

    def text_dataset(self, data: LabelledData, batch_size: int = 32, shuffle: bool = False,
                     seed: int = 0, with_targets: bool = True, report_truncation: bool = True):
        """A tf.data pipeline of (packed features, targets) that tokenizes in the graph; with
        windows (`set_windows`), one element per window, labelled with its text's label."""
        tokenizer = self._require_tokenizer()
        targets = self.encode_targets(data.labels) if with_targets else None
        if self._windowed(data):
            features, index = windowed_arrays(tokenizer, data.texts, self.max_length,
                                              self.window_stride)
            return window_dataset(features, None if targets is None else targets[index],
                                  batch_size, shuffle, seed)
        if report_truncation:
            truncation_report(tokenizer, data.texts, data.pairs, self.max_length)
        return text_dataset(tokenizer, data.texts, data.pairs, targets, self.max_length,
                            batch_size, shuffle, seed)

    def text_to_dataset(self, x, y=None, batch_size: int | None = None, shuffle: bool = False,
                        seed: int = 0):
        """Raw text for Keras' `fit` / `evaluate` / `predict` -> a tf.data pipeline (see
        `TaskModel.fit`), or None when `x` is not text.

        `x`: texts (a str, list / tuple / numpy array of str), `(texts, text_pairs)`, or a
        tf.data.Dataset whose elements are `x` or `(x, y)` with `x` a string or a
        `(string, string)` pair (Keras' convention: a 2-tuple element is (x, y)); batched or
        not. `y`: the labels as in the data (mapped through the label map, built from `y` on
        first use); in a dataset, string labels are mapped and numbers taken as class ids
        (regression: values).
        """
        batch_size = batch_size or 32
        if is_string_dataset(x):
            return self._string_dataset(x, batch_size)
        if isinstance(x, tuple) and len(x) == 2 and all(
                is_text_list(part) and not isinstance(part, str) for part in x) and not all(
                isinstance(part, str) for part in x):
            texts, pairs = as_text_list(x[0]), as_text_list(x[1])
            if len(pairs) != len(texts):
                raise DataError(f"{len(texts)} texts but {len(pairs)} text pairs")
        elif is_text_list(x):
            texts, pairs = as_text_list(x), None
        else:
            return None
        labels = None if y is None else (y.tolist() if isinstance(y, np.ndarray) else list(y))
        data = LabelledData(texts, labels, pairs)
        if y is not None and self.problem_type != "regression" and self.label_map is None:
            self.set_label_map(LabelMap.from_labels(data.labels))
        return self.text_dataset(data, batch_size, shuffle=shuffle, seed=seed,
                                 with_targets=y is not None)

    def _string_dataset(self, ds, batch_size: int):
        """A tf.data of strings (see `text_to_dataset`) -> packed, padding-trimmed batches."""
        # deferred: TensorFlow, not needed on JAX
        import tensorflow as tf  # noqa: PLC0415

        tokenizer = self._require_tokenizer()
        spec = ds.element_spec
        labelled = isinstance(spec, tuple) and len(spec) >= 2  # Keras' (x, y[, sample_weight])
        x_spec = spec[0] if isinstance(spec, tuple) else spec
        first = x_spec[0] if isinstance(x_spec, tuple) else x_spec
        if first.shape.rank == 0:
            ds = ds.batch(batch_size)
        table = None
        if labelled and spec[1].dtype == tf.string:
            if self.label_map is None:
                self.set_label_map(LabelMap.from_labels(
                    [e[1].decode("utf-8") for e in ds.unbatch().as_numpy_iterator()]))
            keys = [str(label) for label in self.label_map.labels]
            table = tf.lookup.StaticHashTable(
                tf.lookup.KeyValueTensorInitializer(keys, tf.range(len(keys), dtype=tf.int64)), -1)
        max_length = self.max_length

        def encode(*element):
            x = element[0]
            texts, pairs = (x[0], x[1]) if isinstance(x, tuple) else (x, None)
            features = trim_padding(tokenizer(texts, pairs=pairs, max_length=max_length), 16)
            if not labelled:
                return features
            label = element[1]
            if table is not None:
                label = table.lookup(label)
            return (features, label) + tuple(element[2:])

        return ds.map(encode, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)

    def finetuning_recipe(self, num_examples: int, batch_size: int = 32, *,
                          epochs: int | None = None, learning_rate: float | None = None,
                          early_stopping: int | None = None,
                          validation_examples: int | None = None) -> Recipe:
        """The epochs, learning rate and early stopping `fit_texts` uses for this model on a set
        of `num_examples` (kbert.tasks.recipe): what is given wins, the rest follows the set's
        size and the encoder's width."""
        return finetuning_recipe(num_examples, self.encoder.bert_config.hidden_size, batch_size,
                                 epochs=epochs, learning_rate=learning_rate,
                                 early_stopping=early_stopping,
                                 validation_examples=validation_examples,
                                 problem_type=self.problem_type)

    def fit_texts(self, train: LabelledData, validation: LabelledData | None = None,
                  epochs: int | None = None, batch_size: int = 32,
                  learning_rate: float | None = None,
                  layerwise_lr_decay: float = 1.0, warmup: float | int = 0.1,
                  weight_decay: float = 0.01, early_stopping_patience: int | None = None,
                  monitor: str | None = None, checkpoint_path: str | None = None,
                  seed: int = 0, verbose="auto", callbacks=None, compile: bool = True):
        """Fine-tune on labelled texts with `model.fit`; returns the Keras History.

        `epochs`, `learning_rate` and `early_stopping_patience` left as None follow the set's
        size and the encoder's width (`finetuning_recipe`, printed unless verbose=0);
        `early_stopping_patience=0` turns early stopping off. Builds the label map from `train`
        when the model has none, compiles with the BERT recipe sized to
        `epochs * ceil(len(train) / batch_size)` steps (`compile=False` keeps your own compile),
        and with validation data restores the weights of the best epoch by `monitor` (validation
        accuracy, or loss for regression) at the end (also saved to `checkpoint_path`, a
        `.weights.h5` file, if given); with fewer than `recipe.MIN_VALIDATION` validation examples
        and no patience given, every epoch runs and the last is kept.
        """
        if train.labels is None:
            raise DataError("fit_texts needs labelled training data")
        if self.problem_type != "regression" and self.label_map is None:
            label_map = LabelMap.from_labels(train.labels)
            self.set_label_map(label_map)
        rows = self.training_rows(train)
        recipe = self.finetuning_recipe(
            rows, batch_size, epochs=epochs, learning_rate=learning_rate,
            early_stopping=early_stopping_patience,
            validation_examples=0 if validation is None else len(validation))
        if verbose != 0 and recipe.reasons:
            print(recipe.describe())
        epochs, monitor = recipe.epochs, monitor or recipe.monitor
        steps = epochs * math.ceil(rows / batch_size)
        if compile:
            self.compile(learning_rate=recipe.learning_rate, total_steps=steps, warmup=warmup,
                         weight_decay=weight_decay, layerwise_lr_decay=layerwise_lr_decay)
        train_ds = self.text_dataset(train, batch_size, shuffle=True, seed=seed)
        val_ds = None
        callbacks = list(callbacks or [])
        if validation is not None:
            val_ds = self.text_dataset(validation, batch_size)
        best = validation is not None and recipe.restore_best
        if best:
            callbacks.append(keras.callbacks.EarlyStopping(
                monitor=monitor, patience=recipe.early_stopping or epochs,
                restore_best_weights=True, mode="auto"))
        if checkpoint_path and validation is not None:  # the weights fit_texts leaves
            callbacks.append(keras.callbacks.ModelCheckpoint(
                checkpoint_path, monitor=monitor, save_best_only=best, save_weights_only=True))
        # shuffle=False: the pipeline already reshuffles every epoch (seeded)
        return self.fit(train_ds, validation_data=val_ds, epochs=epochs, callbacks=callbacks,
                        verbose=verbose, shuffle=False)

    # ------------------------------------------------------------------ raw text
    def _scores(self, texts, pairs=None, batch_size: int = 32) -> np.ndarray:
        tokenizer = self._require_tokenizer()
        texts = [texts] if isinstance(texts, str) else list(texts)
        check_texts(texts)
        if pairs is not None:
            pairs = [pairs] if isinstance(pairs, str) else list(pairs)
            if len(pairs) != len(texts):
                raise DataError(f"{len(texts)} texts but {len(pairs)} text pairs")
            check_texts(pairs, "text_pair")
        if self.window_stride and pairs is None:
            features, index = windowed_arrays(tokenizer, texts, self.max_length,
                                              self.window_stride)
            return pool_windows(self._batched_logits(features, batch_size), index, len(texts))
        truncation_report(tokenizer, texts, pairs, self.max_length)
        # Eager tokenization of the whole list: tracing the tokenizer into a tf.data map costs
        # seconds, more than tokenizing a few thousand texts.
        packed = {k: np.asarray(v) for k, v in
                  tokenizer(texts, pairs=pairs, max_length=self.max_length).items()}
        return self._batched_logits(packed, batch_size)

    def _batched_logits(self, packed: dict, batch_size: int) -> np.ndarray:
        """Logits of packed rows, batch by batch, each batch cut after its longest row."""
        lengths = packed["padding_mask"].sum(axis=1)
        logits = []
        for begin in range(0, len(lengths), batch_size):
            rows = slice(begin, begin + batch_size)
            width = min(self.max_length, -(-int(lengths[rows].max()) // 16) * 16)
            batch = {k: v[rows, :width] for k, v in packed.items()}
            logits.append(np.asarray(self(batch, training=False)))
        logits = np.concatenate(logits) if logits else np.zeros((0, self.num_classes))
        return logits.astype(np.float32)

    def predict(self, x, batch_size=None, **kwargs):
        """Keras `predict`, also on raw text (see `TaskModel.predict`); with windows, a list of
        single texts gives one row per text (the mean of its window logits)."""
        if self.window_stride and is_text_list(x):
            return self._scores(as_text_list(x), batch_size=batch_size or 32)
        return super().predict(x, batch_size=batch_size, **kwargs)

    def predict_texts(self, texts, pairs=None, batch_size: int = 32,
                      threshold: float = 0.5) -> ClassifierPredictions:
        """Classify raw strings (and second strings for pair tasks).

        Texts longer than `max_length` are truncated with a TruncationWarning giving counts;
        an empty text is a DataError.
        """
        logits = self._scores(texts, pairs, batch_size)
        labels = self.class_labels
        if self.problem_type == "regression":
            values = [row.tolist() if row.size > 1 else float(row[0]) for row in logits]
            return ClassifierPredictions(values, logits, labels)
        if self.problem_type == "multi_label":
            probs = 1.0 / (1.0 + np.exp(-logits))
            chosen = [[labels[j] for j in np.flatnonzero(row >= threshold)] for row in probs]
            return ClassifierPredictions(chosen, probs, labels)
        shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
        probs = shifted / shifted.sum(axis=-1, keepdims=True)
        return ClassifierPredictions([labels[i] for i in probs.argmax(-1)], probs, labels)

    def evaluate_texts(self, data: LabelledData, batch_size: int = 32):
        """Score a labelled set: a `kbert.tasks.metrics.ClassificationReport` (single-label).

        A label that is not in the model's label map raises UnknownLabelError before any
        prediction runs.
        """
        if self.problem_type != "single_label":
            raise ValueError("evaluate_texts reports single-label classification; use "
                             "model.evaluate(text_dataset(...)) for other problem types")
        if data.labels is None:
            raise DataError("evaluate_texts needs labelled data")
        true_ids = self.encode_targets(data.labels)
        logits = self._scores(data.texts, data.pairs, batch_size)
        return classification_report(true_ids, logits.argmax(-1), self.class_labels)

    # ------------------------------------------------------------------ config and files
    def get_config(self):
        config = super().get_config()
        config.update(num_classes=self.num_classes, problem_type=self.problem_type,
                      dropout=self._dropout_arg, pooling=self.pooling,
                      labels=self.label_map.labels if self.label_map else None)
        return config

    def _save_extra(self, directory: str) -> dict:
        if self.label_map is not None:
            self.label_map.save(os.path.join(directory, LABELS_FILE))
        return {"problem_type": self.problem_type}

    def load_task_extras(self, directory: str, task: dict) -> None:
        path = os.path.join(directory, LABELS_FILE)
        if os.path.isfile(path):
            self.set_label_map(LabelMap.load(path))
