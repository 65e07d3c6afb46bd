"""SavedModel export for TensorFlow Serving: raw text in, vectors (or a task head's outputs) out.

`export_saved_model` writes `<base_dir>/<name>/<version>/`, the layout TF Serving watches,
with tokenization and packing inside the graph (core TF ops plus the TF-Text ops every TF
Serving 2.16+ build embeds; checked after writing by `kbert.export.op_check`), warm-up requests
in `assets.extra/`, and one signature per use. See `export_saved_model` for the exact API and
docs/serving.md for serving it.

Example:
    >>> from kbert.export import export_saved_model
    >>> path = export_saved_model(  # doctest: +SKIP
    ...     encoder, tokenizer, "saved_models", name="minilm")
    >>> path  # doctest: +SKIP
    'saved_models/minilm/1'
"""

from __future__ import annotations

import os
import re
import shutil
import uuid

import numpy as np
import tensorflow as tf

from kbert.errors import KbertError
from kbert.export.op_check import check_serving_ops
from kbert.export.warmup import write_warmup_requests
from kbert.layers.pooling import parse_pooling, pool_sequence
from kbert.models.encoder import BertEncoder
from kbert.tasks import BertClassifier, BertMultipleChoice, BertSpanExtractor, BertTokenClassifier
from kbert.tasks.span_extractor import MAX_QUESTION_LENGTH
from kbert.tasks.windows import window_size, windowed_features
from kbert.tokenization.packing import pack_segments, place_segment
from kbert.tokenization.tokenizer import resolve_tokenizer

SIGNATURES = ("serving_default", "embed_pairs", "embed_ids", "sentence_embedding", "tokenize")
# The signatures each kind of model adds to SIGNATURES (see `head_kind`).
HEAD_SIGNATURES = {
    "encoder": (),
    "classifier": ("classify", "classify_pairs"),
    "token_classifier": ("tag",),
    "span_extractor": ("answer_logits",),
    "multiple_choice": ("score_choices",),
}
CLASSIFIER_SIGNATURES = HEAD_SIGNATURES["classifier"]

WARMUP_TEXTS = ("The quick brown fox jumps over the lazy dog.",
                "It is a truth universally acknowledged, that a single man in possession of a "
                "good fortune, must be in want of a wife.")
WARMUP_PAIRS = ("A fox jumped.", "Every rich bachelor wants a wife.")
WARMUP_CHOICES = (("It landed.", "It sang."), ("He married.", "He did not."))


class ExportError(KbertError, ValueError):
    """A model, tokenizer or destination that cannot be exported as asked."""


def _model_kinds():
    """(class, kind) pairs, most specific first (a subclass of a head is that head)."""
    return ((BertClassifier, "classifier"), (BertTokenClassifier, "token_classifier"),
            (BertSpanExtractor, "span_extractor"), (BertMultipleChoice, "multiple_choice"),
            (BertEncoder, "encoder"))


def head_kind(model) -> str:
    """What a model is for export: "encoder" or a task head's kind (the keys of
    `HEAD_SIGNATURES`); ExportError for anything else."""
    for cls, kind in _model_kinds():
        if isinstance(model, cls):
            return kind
    raise ExportError(f"cannot export a {type(model).__name__}: pass a kbert BertEncoder or a "
                      f"kbert.tasks head (" + ", ".join(
                          c.__name__ for c, k in _model_kinds() if k != "encoder") + ")")


def is_classifier(model) -> bool:
    """A `BertClassifier` (class outputs), as opposed to a bare encoder or another head."""
    return head_kind(model) == "classifier"


def split_model(model):
    """-> (encoder, task head or None for a bare encoder)."""
    if head_kind(model) == "encoder":
        return model, None
    return model.encoder, model


def head_labels(head) -> list[str]:
    """The names of a classifying head's output columns (its label map, else "0", "1", ...)."""
    if hasattr(head, "class_labels"):
        return [str(c) for c in head.class_labels]
    label_map = getattr(head, "label_map", None)
    return [str(c) for c in (label_map.labels if label_map else range(head.num_labels))]


def model_tokenizer(model, tokenizer,
                    needed_for: str = "a text signature needs the tokenizer"):
    """The given tokenizer, else the model's, checked against the encoder's token table
    (`kbert.tokenization.tokenizer.resolve_tokenizer`); ExportError when there is none."""
    encoder, _ = split_model(model)
    return resolve_tokenizer(tokenizer, fallback=getattr(model, "tokenizer", None),
                             vocab_size=encoder.bert_config.vocab_size, needed_for=needed_for,
                             error=ExportError)


def resolve_max_length(model, tokenizer, max_length: int | None) -> int:
    encoder, head = split_model(model)
    limit = encoder.bert_config.max_position_embeddings
    if max_length is None:  # the default never exceeds what the model can take
        max_length = head.max_length if head is not None else tokenizer.max_length
        max_length = min(max_length, limit)
    if (isinstance(max_length, bool) or not isinstance(max_length, int)
            or not 3 <= max_length <= limit):
        raise ExportError(f"max_length must be an integer in [3, {limit}] (the encoder's "
                          f"positions; 3 fits [CLS] A [SEP] B [SEP] minimally), got {max_length!r}")
    return max_length


def next_version(model_dir: str) -> int:
    """1 + the largest integer version directory under `model_dir` (1 when there is none)."""
    if not os.path.isdir(model_dir):
        return 1
    versions = [int(n) for n in os.listdir(model_dir)
                if n.isdigit() and os.path.isdir(os.path.join(model_dir, n))]
    return max(versions, default=0) + 1


class ServingFunctions:
    """The graph functions behind the signatures (also used by `kbert.export.tflite`).

    Args:
        model: a BertEncoder or a kbert.tasks head (see `head_kind`).
        tokenizer: the kbert BertTokenizer of the model's vocabulary.
        max_length: packed length (longer texts are truncated longest-first).
        pad_to_max_length: text signatures return [batch, max_length] instead of trimming to the
            longest packed row of the batch.
        sentence_pooling, sentence_normalize: the `sentence_embedding` output of the
            `sentence_embedding` signature (`kbert.layers.pooling`; L2 normalisation).
    """

    def __init__(self, model, tokenizer, max_length: int, pad_to_max_length: bool = False,
                 sentence_pooling: str = "cls", sentence_normalize: bool = False):
        try:
            parse_pooling(sentence_pooling)
        except ValueError as e:
            raise ExportError(str(e)) from None
        self.sentence_pooling = sentence_pooling
        self.sentence_normalize = bool(sentence_normalize)

        self.kind = head_kind(model)
        self.encoder, self.head = split_model(model)
        self.classifier = self.head if self.kind == "classifier" else None
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.pad_to_max_length = pad_to_max_length
        config = self.encoder.bert_config
        self.vocab_size = config.vocab_size
        self.type_vocab_size = config.type_vocab_size
        self.max_positions = config.max_position_embeddings
        if self.kind in ("classifier", "token_classifier"):
            self.label_names = tf.constant(head_labels(self.head))

    def trackable_root(self, concrete_functions):
        """The SavedModel's object graph: the variables the traced signatures read.

        Not `keras.export.ExportArchive`: it also saves every endpoint as a restorable
        function, which retraces the (large) tokenizer graph and doubles export time; TF
        Serving only reads the signatures. The tf.Variables themselves (not the Keras
        variables wrapping them) must be in the object graph, or TFLite's converter cannot
        freeze them. The tokenizer holds no lookup table, only constants the graphs capture.
        """
        root = tf.__internal__.tracking.AutoTrackable()
        seen, variables = set(), []
        for function in concrete_functions:
            for variable in function.variables:
                if id(variable) not in seen:
                    seen.add(id(variable))
                    variables.append(variable)
        root.model_variables = variables
        return root

    # ------------------------------------------------------------------ pieces
    def sanitize_ids(self, token_ids, segment_ids, padding_mask):
        """Out-of-range ids -> [UNK], segment ids clipped to [0, type_vocab), mask -> 0/1."""
        bad = (token_ids < 0) | (token_ids >= self.vocab_size)
        token_ids = tf.where(bad, tf.constant(self.tokenizer.unk_id, tf.int32), token_ids)
        segment_ids = tf.clip_by_value(segment_ids, 0, self.type_vocab_size - 1)
        padding_mask = tf.cast(tf.not_equal(padding_mask, 0), tf.int32)
        return token_ids, segment_ids, padding_mask

    def pack(self, text, text_pair=None):
        return self.trim(self.tokenizer(text, text_pair, max_length=self.max_length))

    def trim(self, packed):
        """Cut [batch, max_length] tensors to the longest packed row (unless pad_to_max_length)."""
        if self.pad_to_max_length:
            return packed
        lengths = tf.reduce_sum(packed["padding_mask"], axis=1)
        # the longest packed row; 2 ([CLS] [SEP]) also gives an empty batch a defined width
        width = tf.reduce_max(tf.concat([lengths, [2]], 0))
        return {k: v[:, :width] for k, v in packed.items()}

    def pack_ids(self, segments, kept=None):
        """Ragged piece ids (1 or 2 segments) -> packed [batch, max_length] (not trimmed)."""
        tok = self.tokenizer
        return pack_segments(segments, self.max_length, tok.cls_id, tok.sep_id, tok.pad_id,
                             kept=kept)

    def encode(self, packed):
        outputs = self.encoder(packed, training=False)
        return {
            "sequence_output": tf.cast(outputs["sequence_output"], tf.float32),
            "pooled_output": tf.cast(outputs["pooled_output"], tf.float32),
            "padding_mask": packed["padding_mask"],
            "token_ids": packed["token_ids"],
            "segment_ids": packed["segment_ids"],
        }

    def classify_packed(self, packed, text_index=None, num_texts=None):
        """The classify outputs of packed rows; with `text_index` (windows of long texts,
        kbert.tasks.windows) the mean of each text's window logits, one row per text."""
        logits = tf.cast(self.classifier(packed, training=False), tf.float32)
        if text_index is not None:
            logits = tf.math.unsorted_segment_mean(logits, text_index, num_texts)
        batch = tf.shape(logits)[0]
        outputs = {"logits": logits}
        kind = self.classifier.problem_type
        if kind == "regression":
            return outputs
        names = tf.tile(self.label_names[tf.newaxis, :], [batch, 1])
        outputs["label_names"] = names
        if kind == "multi_label":
            outputs["probabilities"] = tf.sigmoid(logits)
            outputs["predicted"] = tf.cast(outputs["probabilities"] >= 0.5, tf.int32)
            return outputs
        outputs["probabilities"] = tf.nn.softmax(logits, axis=-1)
        label_id = tf.argmax(logits, axis=-1, output_type=tf.int32)
        outputs["label_id"] = label_id
        outputs["label"] = tf.gather(self.label_names, label_id)
        return outputs

    def tag_texts(self, text, tokenize):
        """BertTokenClassifier: per-token tags of each text, with the tokens' byte offsets."""
        ids, starts, ends = tokenize(text)
        packed = self.pack_ids([ids])
        kept = tf.reduce_sum(packed["padding_mask"], axis=1) - 2  # pieces between [CLS], [SEP]
        first = tf.ones_like(kept)
        offsets = {"start_offsets": place_segment(starts, first, kept, self.max_length, -1),
                   "end_offsets": place_segment(ends, first, kept, self.max_length, -1)}
        packed = self.trim(packed)
        width = tf.shape(packed["token_ids"])[1]
        logits = tf.cast(self.head(packed, training=False), tf.float32)
        label_id = tf.argmax(logits, axis=-1, output_type=tf.int32)
        continuation = tf.gather(self.is_continuation, packed["token_ids"])
        outputs = {"logits": logits, "probabilities": tf.nn.softmax(logits, axis=-1),
                   "label_id": label_id, "label": tf.gather(self.label_names, label_id),
                   "token_ids": packed["token_ids"], "padding_mask": packed["padding_mask"],
                   "continuation": tf.cast(continuation, tf.int32) * packed["padding_mask"]}
        outputs.update({k: v[:, :width] for k, v in offsets.items()})
        return outputs

    def answer_window(self, question, context, tokenize):
        """BertSpanExtractor: start / end logits of the first window `[CLS] question [SEP]
        context [SEP]`, packed as `BertSpanExtractor.encode_examples` packs it."""
        q_ids, _, _ = tokenize(question)
        c_ids, c_starts, c_ends = tokenize(context)
        checks = [tf.debugging.assert_equal(tf.shape(q_ids.row_splits), tf.shape(
            c_ids.row_splits), message="answer_logits: question and context need the same "
                                       "number of rows")]
        with tf.control_dependencies(checks):
            q_len = tf.cast(q_ids.row_lengths(), tf.int32)
        c_len = tf.cast(c_ids.row_lengths(), tf.int32)
        # the question's first pieces, then as much context as fits ([CLS] q [SEP] c [SEP])
        q_kept = tf.minimum(q_len, max(0, min(MAX_QUESTION_LENGTH, self.max_length - 4)))
        c_kept = tf.minimum(c_len, self.max_length - 3 - q_kept)
        packed = self.pack_ids([q_ids, c_ids], kept=[q_kept, c_kept])
        first = q_kept + 2
        offsets = {
            "context_start_offsets": place_segment(c_starts, first, c_kept, self.max_length, -1),
            "context_end_offsets": place_segment(c_ends, first, c_kept, self.max_length, -1)}
        packed = self.trim(packed)
        width = tf.shape(packed["token_ids"])[1]
        logits = self.head(packed, training=False)
        outputs = {"start_logits": tf.cast(logits["start_logits"], tf.float32),
                   "end_logits": tf.cast(logits["end_logits"], tf.float32),
                   "context_truncated": c_len - c_kept}
        outputs.update(packed)
        outputs.update({k: v[:, :width] for k, v in offsets.items()})
        return outputs

    def score_choice_rows(self, prompt, choices, pack_pair):
        """BertMultipleChoice: one score per (prompt, choice), soft-maxed over each row."""
        shape = tf.shape(choices)  # [B, C]
        checks = [
            tf.debugging.assert_equal(tf.shape(prompt)[0], shape[0], message=(
                "score_choices: prompt [B] and choices [B, C] need the same number of rows")),
            tf.debugging.assert_greater(shape[1], 0, message=(
                "score_choices: every row needs at least one choice")),
        ]
        with tf.control_dependencies(checks):
            flat_prompts = tf.reshape(tf.tile(prompt[:, tf.newaxis], [1, shape[1]]), [-1])
        packed = pack_pair(flat_prompts, tf.reshape(choices, [-1]))
        width = tf.shape(packed["token_ids"])[1]
        packed = {k: tf.reshape(v, tf.stack([shape[0], shape[1], width]))
                  for k, v in packed.items()}
        scores = tf.cast(self.head(packed, training=False), tf.float32)
        return {"scores": scores, "probabilities": tf.nn.softmax(scores, axis=-1),
                "best_choice": tf.argmax(scores, axis=-1, output_type=tf.int32)}

    # ------------------------------------------------------------------ signatures
    def functions(self) -> dict:
        """Signature name -> tf.function with its input signature."""
        text = tf.TensorSpec([None], tf.string, name="text")
        text_pair = tf.TensorSpec([None], tf.string, name="text_pair")
        if self.kind == "token_classifier":
            self.is_continuation = tf.constant(np.asarray(self.tokenizer.vocab.is_continuation,
                                                          bool))
        ids = [tf.TensorSpec([None, None], tf.int32, name=n)
               for n in ("token_ids", "segment_ids", "padding_mask")]

        # Traced once and called by every text signature: the tokenizer's graph is large
        # (thousands of nodes), so sharing it roughly halves export time and saved_model.pb.
        pack_text = tf.function(self.pack, autograph=False, input_signature=[text])
        pack_pair = tf.function(self.pack, autograph=False, input_signature=[text, text_pair])
        tokenize_offsets = tf.function(self.tokenizer.tokenize_with_offsets, autograph=False,
                                       input_signature=[text])

        @tf.function(autograph=False, input_signature=[text])
        def serving_default(text):
            return self.encode(pack_text(text))

        @tf.function(autograph=False, input_signature=[text, text_pair])
        def embed_pairs(text, text_pair):
            return self.encode(pack_pair(text, text_pair))

        @tf.function(autograph=False, input_signature=ids)
        def embed_ids(token_ids, segment_ids, padding_mask):
            shape = tf.shape(token_ids)
            checks = [
                tf.debugging.assert_equal(shape, tf.shape(segment_ids), message=(
                    "embed_ids: token_ids and segment_ids must have the same shape")),
                tf.debugging.assert_equal(shape, tf.shape(padding_mask), message=(
                    "embed_ids: token_ids and padding_mask must have the same shape")),
                tf.debugging.assert_less_equal(shape[1], self.max_positions, message=(
                    f"embed_ids: sequence longer than the model's "
                    f"{self.max_positions} positions")),
                # S = 0 would fail inside the pooler ("slice index 0 of dimension 1 out of
                # bounds"; found by tests/test_fuzz_signatures.py): say what is wrong instead
                tf.debugging.assert_greater(shape[1], 0, message=(
                    "embed_ids: sequences must hold at least one token ([CLS])")),
            ]
            with tf.control_dependencies(checks):
                token_ids, segment_ids, padding_mask = self.sanitize_ids(
                    token_ids, segment_ids, padding_mask)
            return self.encode({"token_ids": token_ids, "segment_ids": segment_ids,
                                "padding_mask": padding_mask})

        @tf.function(autograph=False, input_signature=[text])
        def sentence_embedding(text):
            out = self.encode(pack_text(text))
            mask = tf.cast(out["padding_mask"], tf.float32)[:, :, tf.newaxis]
            total = tf.reduce_sum(out["sequence_output"] * mask, axis=1)
            count = tf.maximum(tf.reduce_sum(mask, axis=1), 1.0)
            vector = pool_sequence(out["sequence_output"], out["padding_mask"],
                                   self.sentence_pooling)
            if self.sentence_normalize:
                vector = vector / tf.maximum(tf.norm(vector, axis=1, keepdims=True), 1e-12)
            return {"pooled_output": out["pooled_output"], "mean_embedding": total / count,
                    "sentence_embedding": vector}

        @tf.function(autograph=False, input_signature=[text])
        def tokenize(text):
            ids, starts, ends = tokenize_offsets(text)
            return {
                "token_ids": ids.to_tensor(0),
                "pieces": self.tokenizer.id_to_piece(ids).to_tensor(""),
                "start_offsets": starts.to_tensor(0),
                "end_offsets": ends.to_tensor(0),
                "num_tokens": tf.cast(ids.row_lengths(), tf.int32),
            }

        functions = dict(serving_default=serving_default, embed_pairs=embed_pairs,
                         embed_ids=embed_ids, sentence_embedding=sentence_embedding,
                         tokenize=tokenize)
        if self.classifier is not None:
            stride = self.classifier.window_stride

            @tf.function(autograph=False, input_signature=[text])
            def classify(text):
                if not stride:
                    return self.classify_packed(pack_text(text))
                # long texts as windows, as the model was trained (kbert.tasks.windows)
                packed, text_index = windowed_features(
                    self.tokenizer, text, self.max_length,
                    min(stride, window_size(self.max_length)))
                return self.classify_packed(self.trim(packed), text_index, tf.shape(text)[0])

            @tf.function(autograph=False, input_signature=[text, text_pair])
            def classify_pairs(text, text_pair):
                return self.classify_packed(pack_pair(text, text_pair))

            functions.update(classify=classify, classify_pairs=classify_pairs)
        elif self.kind == "token_classifier":
            @tf.function(autograph=False, input_signature=[text])
            def tag(text):
                return self.tag_texts(text, tokenize_offsets)

            functions.update(tag=tag)
        elif self.kind == "span_extractor":
            @tf.function(autograph=False, input_signature=[
                tf.TensorSpec([None], tf.string, name="question"),
                tf.TensorSpec([None], tf.string, name="context")])
            def answer_logits(question, context):
                return self.answer_window(question, context, tokenize_offsets)

            functions.update(answer_logits=answer_logits)
        elif self.kind == "multiple_choice":
            @tf.function(autograph=False, input_signature=[
                tf.TensorSpec([None], tf.string, name="prompt"),
                tf.TensorSpec([None, None], tf.string, name="choices")])
            def score_choices(prompt, choices):
                return self.score_choice_rows(prompt, choices, pack_pair)

            functions.update(score_choices=score_choices)
        assert set(functions) == set(SIGNATURES + HEAD_SIGNATURES[self.kind])
        return functions

    def warmup_requests(self) -> list[tuple[str, dict]]:
        """One real request per signature (2 texts each), for TF Serving's warm-up file."""
        texts = np.array([t.encode() for t in WARMUP_TEXTS], dtype=object)
        pairs = np.array([t.encode() for t in WARMUP_PAIRS], dtype=object)
        packed = {k: v.numpy() for k, v in self.tokenizer(
            list(WARMUP_TEXTS), max_length=self.max_length).items()}
        requests = [("serving_default", {"text": texts}),
                    ("embed_pairs", {"text": texts, "text_pair": pairs}),
                    ("embed_ids", packed),
                    ("sentence_embedding", {"text": texts}),
                    ("tokenize", {"text": texts})]
        choices = np.array([[c.encode() for c in row] for row in WARMUP_CHOICES], dtype=object)
        requests += {
            "encoder": [],
            "classifier": [("classify", {"text": texts}),
                           ("classify_pairs", {"text": texts, "text_pair": pairs})],
            "token_classifier": [("tag", {"text": texts})],
            "span_extractor": [("answer_logits", {"question": pairs, "context": texts})],
            "multiple_choice": [("score_choices", {"prompt": texts, "choices": choices})],
        }[self.kind]
        return requests


def export_saved_model(model, tokenizer=None, base_dir: str | os.PathLike = "saved_models",
                       name: str = "kbert", version: int | None = None, *,
                       max_length: int | None = None, pad_to_max_length: bool = False,
                       check_ops: bool = True, warmup: bool = True,
                       overwrite: bool = False, sentence=None,
                       sentence_pooling: str | None = None,
                       sentence_normalize: bool | None = None) -> str:
    """Write a TF Serving model version `<base_dir>/<name>/<version>/`; returns its path.

    The version is written under a temporary name and renamed into place only after the op
    check passed, so a server watching `<base_dir>/<name>` never loads a half-written version.

    Args:
        model: a `BertEncoder`, or a kbert.tasks head: `BertClassifier` (adds `classify`,
            `classify_pairs`), `BertTokenClassifier` (`tag`), `BertSpanExtractor`
            (`answer_logits`) or `BertMultipleChoice` (`score_choices`); a head keeps the
            encoder's signatures.
        tokenizer: the `BertTokenizer` of the model's vocabulary (default: the head's).
        base_dir: the server's model base path.
        name: model name (the `/v1/models/<name>` of the REST API).
        version: integer version; None = 1 + the largest existing one. An existing version is
            an error unless `overwrite`.
        max_length: packed sequence length (default: the head's or tokenizer's, 128,
            at most the model's positions);
            longer texts are truncated longest-first like transformers.
        pad_to_max_length: text signatures output [batch, max_length] instead of trimming the
            padding columns to the longest packed row of the request (`seq` below).
        check_ops: refuse ops stock TF Serving 2.16+ lacks (`kbert.export.op_check`).
        warmup: write `assets.extra/tf_serving_warmup_requests` (one request per signature).
        overwrite: replace an existing version directory.
        sentence: a sentence-transformers folder's settings (`Loaded.sentence`): the defaults of
            the `sentence_embedding` output below.
        sentence_pooling: that output's pooling ("cls", "mean", "max", "mean_sqrt_len" or
            several joined by "+"); None: the folder's own, else "cls".
        sentence_normalize: L2-normalise it; None: as the folder's modules.json says, else no.

    Signatures (B = batch, any size including 0; seq = longest packed row of the request,
    at most max_length, at least 2; H = hidden size; N = most WordPieces of a row; C = classes):

    `serving_default` - one text per row.
        inputs:  text            string  [B]  UTF-8 (invalid bytes are dropped, see BertTokenizer)
        outputs: sequence_output float32 [B, seq, H]  last-layer vector of each token
                 pooled_output   float32 [B, H]       tanh(dense([CLS]))
                 padding_mask    int32   [B, seq]     1 on real tokens ([CLS] ... [SEP])
                 token_ids       int32   [B, seq]     `[CLS] A [SEP] [PAD]...`
                 segment_ids     int32   [B, seq]     all 0
    `embed_pairs` - sentence pairs `[CLS] A [SEP] B [SEP]` (a separate signature, so that
        single-text REST calls need no second input).
        inputs:  text, text_pair string [B] each
        outputs: as serving_default; segment_ids 1 on `B [SEP]`.
    `embed_ids` - already tokenized input.
        inputs:  token_ids, segment_ids, padding_mask  int32 [B, S], S <= max positions
        outputs: as serving_default with seq = S. Ids outside [0, vocab) are replaced by [UNK]
                 (the token_ids output echoes the ids used), segment ids are clipped to
                 [0, type_vocab), any non-zero mask value counts as 1. Different shapes,
                 S = 0 or S > max positions: INVALID_ARGUMENT error naming the problem.
    `sentence_embedding` - one vector per text.
        inputs:  text           string  [B]
        outputs: pooled_output  float32 [B, H]  the [CLS] pooler
                 mean_embedding float32 [B, H]  mean of sequence_output over real tokens
                                                ([CLS] and [SEP] included, not L2-normalised)
                 sentence_embedding float32 [B, k * H]  `sentence_pooling` (k modes), L2-
                                                normalised if `sentence_normalize`: for a
                                                sentence-transformers folder by default its own
                                                vector (all-MiniLM-L6-v2: mean + L2), else [CLS]
    `tokenize` - WordPieces of each text, no [CLS]/[SEP], not truncated.
        inputs:  text          string [B]
        outputs: token_ids     int32  [B, N]  (0 after num_tokens)
                 pieces        string [B, N]  vocabulary strings ("" after num_tokens)
                 start_offsets int64  [B, N]  UTF-8 byte offsets into the input text
                 end_offsets   int64  [B, N]
                 num_tokens    int32  [B]
    `classify` / `classify_pairs` (BertClassifier only) - inputs as serving_default /
        embed_pairs.
        outputs: logits        float32 [B, C]
                 probabilities float32 [B, C]  softmax (multi_label: sigmoid; absent for
                                               regression)
                 label_id      int32   [B]     argmax (single_label)
                 label         string  [B]     its name (single_label)
                 predicted     int32   [B, C]  1 where probability >= 0.5 (multi_label)
                 label_names   string  [B, C]  the class names, repeated per row (REST's row
                                               format needs a batch dimension on every output)
    `tag` (BertTokenClassifier) - one label per WordPiece of each text (L = labels).
        inputs:  text          string  [B]
        outputs: logits        float32 [B, seq, L]  the Keras model's logits
                 probabilities float32 [B, seq, L]  softmax
                 label_id      int32   [B, seq]     argmax
                 label         string  [B, seq]     its name
                 token_ids, padding_mask int32 [B, seq]  `[CLS] pieces [SEP] [PAD]...`
                 start_offsets, end_offsets int64 [B, seq]  UTF-8 BYTE offsets of each piece
                                               in the text; -1 on [CLS], [SEP] and padding
                 continuation  int32   [B, seq]     1 on "##" pieces: a word is a piece and the
                                               continuations after it (predict_text labels a
                                               word by its first piece)
    `answer_logits` (BertSpanExtractor) - one window `[CLS] question [SEP] context [SEP]`,
        packed like `encode_examples`' first window: the question's first
        min(64, max_length - 4) pieces, then as much context as fits; the rest of a longer
        context is cut (no doc_stride windows: split long contexts client-side).
        inputs:  question, context string [B]
        outputs: start_logits, end_logits float32 [B, seq]  -1e4 on padding
                 context_start_offsets, context_end_offsets int64 [B, seq]  UTF-8 byte offsets
                                               of the context pieces; -1 elsewhere
                 context_truncated int32 [B]   context pieces cut off
                 token_ids, segment_ids, padding_mask int32 [B, seq]
    `score_choices` (BertMultipleChoice) - each (prompt, choice) packed as a pair.
        inputs:  prompt  string [B], choices string [B, K] (K >= 1)
        outputs: scores        float32 [B, K]  the Keras model's logits
                 probabilities float32 [B, K]  softmax over each row's choices
                 best_choice   int32   [B]     argmax

    Raises:
        ExportError: unusable model / tokenizer / max_length, or an existing version.
        OpCheckError: the graph needs an op TF Serving 2.16+ does not register.
    """
    tokenizer = model_tokenizer(model, tokenizer)
    max_length = resolve_max_length(model, tokenizer, max_length)
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name):
        raise ExportError(f"model name must be letters, digits, '.', '_' or '-', got {name!r}")
    model_dir = os.path.join(os.fspath(base_dir), name)
    if version is None:
        version = next_version(model_dir)
    if isinstance(version, bool) or not isinstance(version, int) or version < 0:
        raise ExportError(f"version must be a non-negative integer, got {version!r}")
    final = os.path.join(model_dir, str(version))
    if os.path.exists(final) and not overwrite:
        raise ExportError(f"{final} exists; pick another version or pass overwrite=True")

    if sentence_pooling is None:
        try:
            sentence_pooling = sentence.default_pooling() if sentence is not None else "cls"
        except ValueError as e:
            raise ExportError(f"sentence_embedding: {e}") from None
    if sentence_normalize is None:
        sentence_normalize = sentence.normalize if sentence is not None else False
    serving = ServingFunctions(model, tokenizer, max_length, pad_to_max_length,
                               sentence_pooling, sentence_normalize)
    signatures = {k: f.get_concrete_function() for k, f in serving.functions().items()}
    root = serving.trackable_root(signatures.values())

    os.makedirs(model_dir, exist_ok=True)
    staging = os.path.join(model_dir, f".tmp-{version}-{uuid.uuid4().hex[:8]}")
    try:
        tf.saved_model.save(root, staging, signatures=signatures)
        if check_ops:
            check_serving_ops(staging)
        if warmup:
            write_warmup_requests(staging, name, serving.warmup_requests())
        if os.path.exists(final):
            shutil.rmtree(final)
        os.rename(staging, final)
    finally:
        if os.path.exists(staging):
            shutil.rmtree(staging, ignore_errors=True)
    return final
