"""Token classification (NER-style): one label per word, predicted on word pieces.

Training data is word-level: a list of words and a list of tags per sentence. Words are joined
with spaces, tokenized, and each word's FIRST piece carries its tag; the other pieces, [CLS],
[SEP] and padding get sample weight 0 (they neither count in the loss nor in the metrics).
Predictions come back per word (from its first piece) with the word's character span, for
pre-split words or for raw text (words are then the tokenizer's words: a piece plus its "##"
continuations; punctuation is its own word), and BIO tags are merged into entity spans.

Example:
    >>> ner = BertTokenClassifier.from_pretrained(minilm_dir, num_labels=5)        # doctest: +SKIP
    >>> ner.fit_words([["José", "lives", "in", "Zürich"]],
    ...               [["B-PER", "O", "O", "B-LOC"]], epochs=3)                     # doctest: +SKIP
    >>> ner.predict_text(["José lives in Zürich."])[0]["entities"]                  # doctest: +SKIP
    [{'label': 'PER', 'start': 0, 'end': 4, 'text': 'José'},
     {'label': 'LOC', 'start': 14, 'end': 20, 'text': 'Zürich'}]
"""

from __future__ import annotations

import math
import os
import warnings

import keras
import numpy as np

from kbert.errors import TruncationWarning
from kbert.tasks.alignment import group_words, tokenize_with_char_offsets, word_char_spans
from kbert.tasks.base import TaskModel, as_text_list, head_layers, is_text_list
from kbert.tasks.labels import DataError, LabelMap, check_texts
from kbert.tasks.tuning import freeze_pooler


def _pack(tokenizer, segments, max_length: int) -> dict:
    # deferred: packing is TensorFlow code, not needed on JAX
    from kbert.tokenization.packing import pack_id_lists  # noqa: PLC0415

    return pack_id_lists(segments, max_length, tokenizer.cls_id, tokenizer.sep_id,
                         tokenizer.pad_id)


def bio_entities(tags: list, spans: list[tuple[int, int]], text: str) -> list[dict]:
    """Merge BIO / IOB2 word tags into entities {label, start, end, text} (character spans).

    "B-X" starts an entity, "I-X" continues one of type X (an "I-X" after something else starts
    one, as conlleval does); "O" and None end it. Tags without a "B-"/"I-" prefix are
    entities of their own.
    """
    entities: list[dict] = []
    current = None
    for tag, (start, end) in zip(tags, spans, strict=False):
        tag = "O" if tag is None else str(tag)
        prefix, _, kind = tag.partition("-") if tag[:2] in ("B-", "I-") else ("", "", tag)
        if tag == "O":
            current = None
            continue
        if prefix == "I" and current is not None and current["label"] == kind:
            current["end"] = end
        else:
            current = {"label": kind, "start": start, "end": end}
            entities.append(current)
    for entity in entities:
        entity["text"] = text[entity["start"]:entity["end"]]
    return entities


@keras.saving.register_keras_serializable(package="kbert")
class BertTokenClassifier(TaskModel):
    """A dense layer on every token vector: logits float32 [batch, seq, num_labels].

    Args:
        encoder: a BertEncoder.
        num_labels: number of tags (with "O").
        dropout: dropout before the output layer (default: the encoder's hidden dropout).
        freeze_layers: see `TaskModel`.
    """

    def __init__(self, encoder, num_labels: int = 2, dropout: float | None = None,
                 freeze_layers: int | None = None, labels: list | None = None, **kwargs):
        kwargs.setdefault("name", "bert_token_classifier")
        super().__init__(encoder, freeze_layers=freeze_layers, **kwargs)
        if isinstance(num_labels, bool) or not isinstance(num_labels, int) or num_labels < 2:
            raise ValueError(f"num_labels must be an integer >= 2, got {num_labels!r}")
        self.num_labels = num_labels
        self._dropout_arg = dropout
        freeze_pooler(self.encoder)  # reads token vectors only
        self.__dict__["_label_map"] = None

        # === Layers ===
        self.dropout, self.logits = head_layers(self.encoder, dropout, num_labels,
                                                "classifier_dropout", "logits", sequence=True)
        self.built = True
        if labels is not None:
            self.set_label_map(LabelMap(labels))

    def call(self, inputs, training=False):
        sequence = self.encoder(inputs, training=training)["sequence_output"]
        return self.logits(self.dropout(sequence, training=training))

    # ------------------------------------------------------------------ labels and training
    @property
    def label_map(self) -> LabelMap | None:
        return self.__dict__.get("_label_map")

    def set_label_map(self, label_map: LabelMap) -> None:
        if label_map.num_classes != self.num_labels:
            raise DataError(f"the label map has {label_map.num_classes} tags but the model "
                            f"outputs {self.num_labels}")
        self.__dict__["_label_map"] = label_map

    def default_loss(self):
        return keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    def compile(self, *args, **kwargs):
        # Accuracy over labelled word pieces only: the sample weights mask the rest.
        kwargs.setdefault("weighted_metrics",
                          [keras.metrics.SparseCategoricalAccuracy(name="accuracy")])
        kwargs.setdefault("metrics", None)
        super().compile(*args, **kwargs)

    def encode_words(self, sentences: list[list[str]], tags: list[list] | None = None):
        """Word lists (and tag lists) -> model inputs.

        Returns:
            (features: dict of int32 [N, max_length], targets int32 [N, max_length] or None,
            weights float32 [N, max_length] with 1 on each word's first piece, alignment: per
            sentence, per word, the position of its first piece or -1 when the word has no
            piece or was truncated).
        """
        tokenizer = self._require_tokenizer()
        if tags is not None:
            if len(tags) != len(sentences):
                raise DataError(f"{len(sentences)} sentences but {len(tags)} tag lists")
        texts, spans = [], []
        for i, words in enumerate(sentences):
            if not words:
                raise DataError(f"sentence #{i} has no words")
            check_texts(words, f"sentence #{i}, word")
            if tags is not None and len(tags[i]) != len(words):
                raise DataError(f"sentence #{i}: {len(words)} words but {len(tags[i])} tags")
            text, word_spans = word_char_spans(words)
            texts.append(text)
            spans.append(word_spans)
        if tags is not None and self.label_map is None:
            self.set_label_map(LabelMap.from_labels(tags))
        budget = self.max_length - 2
        rows, targets, weights, alignment = [], [], [], []
        cut_words = cut_sentences = 0
        for i, pieces in enumerate(tokenize_with_char_offsets(tokenizer, texts)):
            first = self._first_pieces(pieces, spans[i])
            kept = [p if 0 <= p < budget else -1 for p in first]
            lost = sum(1 for p in first if p >= budget)
            cut_words += lost
            cut_sentences += bool(lost)
            rows.append([p.id for p in pieces[:budget]])
            alignment.append([p + 1 if p >= 0 else -1 for p in kept])  # +1: the [CLS]
            target = np.zeros(self.max_length, np.int32)
            weight = np.zeros(self.max_length, np.float32)
            if tags is not None:
                ids = self.label_map.encode(tags[i])
                for position, tag_id in zip(alignment[-1], ids, strict=False):
                    if position >= 0:
                        target[position], weight[position] = tag_id, 1.0
            targets.append(target)
            weights.append(weight)
        if cut_words:
            warnings.warn(f"{cut_sentences} of {len(texts)} sentences are longer than "
                          f"max_length={self.max_length}: {cut_words} words get no label",
                          TruncationWarning, stacklevel=2)
        features = _pack(tokenizer, [rows], self.max_length)
        return (features, np.stack(targets) if tags is not None else None, np.stack(weights),
                alignment)

    @staticmethod
    def _first_pieces(pieces, spans) -> list[int]:
        """Index of the first piece inside each word's character span (-1: none)."""
        first, k = [], 0
        for start, end in spans:
            while k < len(pieces) and pieces[k].start < start:
                k += 1
            first.append(k if k < len(pieces) and pieces[k].start < end else -1)
        return first

    def fit_words(self, sentences, tags, validation=None, epochs: int = 3, batch_size: int = 32,
                  learning_rate: float = 5e-5, seed: int = 0, verbose="auto", **compile_kwargs):
        """Fine-tune on word-level tags; `validation` is (sentences, tags). Returns History."""
        # deferred: TensorFlow, not needed on JAX
        import tensorflow as tf  # noqa: PLC0415

        features, targets, weights, _ = self.encode_words(sentences, tags)
        steps = epochs * math.ceil(len(sentences) / batch_size)
        self.compile(learning_rate=learning_rate, total_steps=steps, **compile_kwargs)
        train = tf.data.Dataset.from_tensor_slices((features, targets, weights)).shuffle(
            len(sentences), seed=seed).batch(batch_size)
        val = None
        if validation is not None:
            vf, vt, vw, _ = self.encode_words(*validation)
            val = tf.data.Dataset.from_tensor_slices((vf, vt, vw)).batch(batch_size)
        return self.fit(train, validation_data=val, epochs=epochs, verbose=verbose,
                        shuffle=False)

    # ------------------------------------------------------------------ prediction
    def encode_text_inputs(self, x, y=None):
        """Keras' `fit` / `evaluate` / `predict` on text: `x` word lists (`y` their tag lists:
        loss and accuracy on each word's first piece), or for `predict` raw strings."""
        if isinstance(x, (list, tuple)) and x and all(
                isinstance(words, (list, tuple)) and all(isinstance(w, str) for w in words)
                for words in x):
            features, targets, weights, _ = self.encode_words(list(x), y)
            return features, targets, weights if y is not None else None
        if is_text_list(x):
            if y is not None:
                raise DataError("token labels need word lists: fit([[word, ...], ...], "
                                "[[tag, ...], ...])")
            return self._pack_texts(as_text_list(x))[0], None, None
        return None

    def _pack_texts(self, texts):
        tokenizer = self._require_tokenizer()
        check_texts(texts)
        budget = self.max_length - 2
        all_pieces = tokenize_with_char_offsets(tokenizer, texts)
        rows = [[p.id for p in pieces[:budget]] for pieces in all_pieces]
        truncated = sum(len(p) > budget for p in all_pieces)
        if truncated:
            warnings.warn(f"{truncated} of {len(texts)} texts are longer than max_length="
                          f"{self.max_length}; their words past it are not tagged",
                          TruncationWarning, stacklevel=3)
        return _pack(tokenizer, [rows], self.max_length), all_pieces

    def _tag_ids(self, features, batch_size: int) -> np.ndarray:
        logits = self.predict(features, batch_size=batch_size, verbose=0)
        return np.asarray(logits).argmax(-1)

    def _tags(self, ids) -> list:
        return self.label_map.decode(ids) if self.label_map else [int(i) for i in ids]

    def predict_words(self, sentences: list[list[str]], batch_size: int = 32) -> list[list]:
        """The tag of each word (None for a word truncated away or with no piece)."""
        features, _, _, alignment = self.encode_words(sentences)
        ids = self._tag_ids(features, batch_size)
        return [[self._tags([ids[i, p]])[0] if p >= 0 else None for p in positions]
                for i, positions in enumerate(alignment)]

    def predict_text(self, texts, batch_size: int = 32) -> list[dict]:
        """Tag raw strings. Per text: {"words": [{"text", "start", "end", "label"}],
        "entities": [{"label", "start", "end", "text"}]}, spans in characters of the input."""
        texts = [texts] if isinstance(texts, str) else list(texts)
        budget = self.max_length - 2
        features, all_pieces = self._pack_texts(texts)
        ids = self._tag_ids(features, batch_size)
        results = []
        for i, (text, pieces) in enumerate(zip(texts, all_pieces, strict=True)):
            words = []
            for group in group_words(pieces[:budget]):
                start, end = pieces[group[0]].start, pieces[group[-1]].end
                words.append({"text": text[start:end], "start": start, "end": end,
                              "label": self._tags([ids[i, group[0] + 1]])[0]})
            entities = bio_entities([w["label"] for w in words],
                                    [(w["start"], w["end"]) for w in words], text)
            results.append({"words": words, "entities": entities})
        return results

    # ------------------------------------------------------------------ config and files
    def get_config(self):
        config = super().get_config()
        config.update(num_labels=self.num_labels, dropout=self._dropout_arg,
                      labels=self.label_map.labels if self.label_map else None)
        return config

    def _save_extra(self, directory: str) -> dict:
        if self.label_map is not None:
            self.label_map.save(os.path.join(directory, "labels.json"))
        return {}

    def load_task_extras(self, directory: str, task: dict) -> None:
        path = os.path.join(directory, "labels.json")
        if os.path.isfile(path):
            self.set_label_map(LabelMap.load(path))
