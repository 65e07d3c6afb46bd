"""TFLite / LiteRT export: an encoder or classifier as one `.tflite` file for devices.

Two input forms:
  * "ids": token_ids / segment_ids / padding_mask in (tokenize on the host, e.g. with
    `kbert.tokenization.BertTokenizer`); TFLite built-in ops only.
  * "text": raw UTF-8 strings in; the model holds tf-text's `FastBertTokenizer` (custom ops
    FastBertNormalize + FastWordpieceTokenizeWithOffsets, which tensorflow-text ships TFLite
    kernels for) and packs `[CLS] A [SEP] (B [SEP])` with dense ops on row_splits
    (`kbert.tokenization.packing`; no RaggedRange, no Flex). Run it with
    `ai_edge_litert.interpreter.InterpreterWithCustomOps(
        custom_op_registerers=tensorflow_text.tflite_registrar.SELECT_TFTEXT_OPS)`
    or simply `kbert.export.litert.TFLiteEncoder`.

The text form normalises with FastBertTokenizer's own fast normaliser (lower-case + NFD +
strip accents as one TFLite kernel), because the Python tokenizer's normalisation needs
StringLower / RegexReplace / NormalizeUTF8, which are not TFLite built-ins (Flex does not run in
the Python LiteRT runtime). Where it deviates from `BertTokenizer` (measured in
docs/serving.md): control characters separate words instead of being deleted, compatibility
characters are folded ("ﬁ" -> "fi", fullwidth letters, "…" -> "..."), "ß" -> "ss", typed
special tokens ("[MASK]") are plain text, invalid UTF-8 bytes become [UNK] instead of being
dropped, and the 100-per-word limit counts bytes instead of characters.

Quantization ("quantization="):
  * "float32": weights and activations float32.
  * "float16": weights stored float16, dequantized to float32 at load.
  * "dynamic_int8": weights int8, activations float (quantized on the fly per op).
  * "int8": weights and activations int8 where TFLite has int8 kernels, calibrated on a
    representative dataset (default: sentences of the embedded Austen corpus); inputs and
    outputs stay int32 / float32 so callers do not change.

Every `.tflite` gets a sidecar `<file>.json` (form, signature, max_length, labels...) that
`TFLiteEncoder` reads.

Example:
    >>> from kbert.export import export_tflite
    >>> export_tflite(encoder, "minilm-int8.tflite", tokenizer=tokenizer, inputs="text",
    ...               quantization="int8")                               # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import warnings

import numpy as np
import tensorflow as tf
import tensorflow_text as tf_text
from tensorflow_text import tflite_registrar

from kbert.corpora import austen_files, read_lines
from kbert.errors import KbertWarning
from kbert.export.litert import TFLiteEncoder
from kbert.export.saved_model import (
    ExportError,
    ServingFunctions,
    head_kind,
    model_tokenizer,
    resolve_max_length,
    split_model,
)
from kbert.tokenization.packing import pack_segments

QUANTIZATIONS = ("float32", "float16", "dynamic_int8", "int8")
FORMS = ("ids", "text")
METADATA_SUFFIX = ".json"
MAX_BYTES_PER_WORD = 100  # the reference's 100-character word limit, in bytes here


def default_calibration_texts(count: int = 200, min_words: int = 4) -> list[str]:
    """`count` sentences-ish lines from the embedded Austen corpus (deterministic)."""
    texts = []
    for line in read_lines(austen_files()):
        line = line.strip()
        if len(line.split()) >= min_words:
            texts.append(line)
            if len(texts) == count:
                break
    return texts


def signature_name(model, inputs: str, pairs: bool = False) -> str:
    _, classifier = split_model(model)
    name = ("classify" if classifier is not None else "embed") + "_" + inputs
    return name + "_pairs" if pairs else name


class _TFLiteFunctions(ServingFunctions):
    """The one function each TFLite file exports, reusing the SavedModel's building blocks."""

    def __init__(self, model, tokenizer, max_length: int, pad_to_max_length: bool):
        super().__init__(model, tokenizer, max_length, pad_to_max_length)
        self.fast = None

    def outputs(self, packed, echo_ids: bool):
        if self.classifier is None:
            out = self.encode(packed)
            if not echo_ids:
                out.pop("token_ids")
                out.pop("segment_ids")
            else:
                out.pop("segment_ids")
            return out
        logits = tf.cast(self.classifier(packed, training=False), tf.float32)
        out = {"logits": logits}
        if self.classifier.problem_type == "single_label":
            out["probabilities"] = tf.nn.softmax(logits, axis=-1)
        elif self.classifier.problem_type == "multi_label":
            out["probabilities"] = tf.sigmoid(logits)
        if echo_ids:
            out["token_ids"] = packed["token_ids"]
        return out

    def ids_function(self):
        specs = [tf.TensorSpec([None, None], tf.int32, name=n)
                 for n in ("token_ids", "segment_ids", "padding_mask")]

        @tf.function(autograph=False, input_signature=specs)
        def run(token_ids, segment_ids, padding_mask):
            token_ids, segment_ids, padding_mask = self.sanitize_ids(
                token_ids, segment_ids, padding_mask)
            return self.outputs({"token_ids": token_ids, "segment_ids": segment_ids,
                                 "padding_mask": padding_mask}, echo_ids=False)

        return run

    def text_function(self, pairs: bool):
        vocab = self.tokenizer.vocab
        self.fast = tf_text.FastBertTokenizer(
            vocab=list(vocab.tokens), suffix_indicator="##", token_out_type=tf.int32,
            unknown_token=vocab.tokens[vocab.unk_id], max_bytes_per_word=MAX_BYTES_PER_WORD,
            lower_case_nfd_strip_accents=bool(self.tokenizer.lower_case))

        def pack(*texts):
            segments = [self.fast.tokenize(t) for t in texts]
            packed = pack_segments(segments, self.max_length, vocab.cls_id, vocab.sep_id,
                                   vocab.pad_id)
            if self.pad_to_max_length:
                return packed
            lengths = tf.reduce_sum(packed["padding_mask"], axis=1)
            width = tf.reduce_max(tf.concat([lengths, [2]], 0))
            return {k: v[:, :width] for k, v in packed.items()}

        text = tf.TensorSpec([None], tf.string, name="text")
        if pairs:
            text_pair = tf.TensorSpec([None], tf.string, name="text_pair")

            @tf.function(autograph=False, input_signature=[text, text_pair])
            def run_pairs(text, text_pair):
                return self.outputs(pack(text, text_pair), echo_ids=True)

            return run_pairs

        @tf.function(autograph=False, input_signature=[text])
        def run(text):
            return self.outputs(pack(text), echo_ids=True)

        return run


def _representative_dataset(functions: _TFLiteFunctions, inputs: str, texts: list[str],
                            pairs: bool):
    """One example per step, as the converter's calibrator wants (signature inputs by name)."""
    texts = list(texts)
    if not texts:
        raise ExportError("int8 quantization needs at least one representative text")

    def filler(start: int) -> str:
        """Calibration texts joined until they hold more words than max_length tokens."""
        words = []
        for k in range(len(texts)):
            words += texts[(start + k) % len(texts)].split()
            if len(words) > functions.max_length:
                break
        return " ".join(words)

    def rows():
        for i, text in enumerate(texts):
            if inputs == "text":
                # Each step pairs the text with one long enough to fill max_length: every step
                # then has the same [2, max_length] shape and includes padding. TFLite's
                # calibrator mis-records ranges when shapes change between steps (ids form:
                # "shapes not broadcastable"; text form: token cosine 0.98 instead of 0.999).
                batch = [text, filler(i)]
                row = {"text": np.array([t.encode("utf-8") for t in batch], dtype=object)}
                if pairs:
                    second = [texts[(i + 1) % len(texts)], filler(i + 1)]
                    row["text_pair"] = np.array([t.encode("utf-8") for t in second],
                                                dtype=object)
                yield row
            else:
                second = [texts[(i + 1) % len(texts)]] if pairs else None
                # Full max_length rows: TFLite's calibrator mis-sizes intermediate tensors when
                # the input shape changes between examples ("shapes not broadcastable").
                packed = functions.tokenizer([text], second, max_length=functions.max_length)
                yield {k: v.numpy() for k, v in packed.items()}

    return rows


def export_tflite(model, path: str | os.PathLike, *, tokenizer=None, inputs: str = "ids",
                  quantization: str = "float32", pairs: bool = False,
                  max_length: int | None = None, pad_to_max_length: bool = False,
                  representative_texts: list[str] | None = None,
                  num_calibration: int = 200, validate: bool = True) -> str:
    """Convert an encoder or classifier to a `.tflite` file; returns `path`.

    Args:
        model: a `BertEncoder` or a fine-tuned `BertClassifier`.
        path: output file; `<path>.json` gets the metadata `TFLiteEncoder` reads.
        tokenizer: the model's `BertTokenizer` (default: the classifier's); required: the
            sidecar records its special ids and casing (the ids form too), the text form
            embeds its vocabulary, and int8 calibration tokenizes with it.
        inputs: "ids" or "text" (see the module docstring).
        quantization: "float32", "float16", "dynamic_int8" or "int8".
        pairs: text form only: take sentence pairs (`text`, `text_pair`).
        max_length: packed length of the text form (default: the classifier's / tokenizer's).
        pad_to_max_length: text form outputs [batch, max_length] instead of trimming to the
            longest packed row.
        representative_texts: int8 calibration texts (default: `num_calibration` Austen lines).
        validate: run the file with LiteRT on 16 calibration texts and record its agreement
            with the Keras model in the sidecar ("validation"); a token cosine below 0.99
            raises a `QuantizationWarning` (static int8 activations ruin real BERTs: measured
            on all-MiniLM-L6-v2, docs/serving.md).

    The file has one signature (B = batch, S = sequence length, H = hidden, C = classes):
        `embed_ids` (encoder, ids form):
            inputs  token_ids, segment_ids, padding_mask  int32 [B, S]
            outputs sequence_output float32 [B, S, H], pooled_output float32 [B, H],
                    padding_mask int32 [B, S]
            Ids outside [0, vocab) become [UNK], segment ids are clipped, mask != 0 -> 1.
        `embed_text` / `embed_text_pairs` (encoder, text form):
            inputs  text (, text_pair)  string [B]
            outputs as embed_ids plus token_ids int32 [B, S] (S = longest packed row).
        `classify_ids`, `classify_text`, `classify_text_pairs` (classifier):
            inputs  as above
            outputs logits float32 [B, C], probabilities float32 [B, C] (softmax; sigmoid for
                    multi-label; absent for regression), token_ids (text form).
    A batch of 0 rows cannot be run by the TFLite runtime ("Invalid tensor size");
    `TFLiteEncoder` answers it without invoking the interpreter. The runtime has no checks of
    its own on the ids form's shapes (different shapes, S = 0 or S > max positions fail deep
    inside, "XNNPack delegate failed to reshape"): `TFLiteEncoder.run` refuses them first.
    """
    _check_arguments(model, inputs, quantization, pairs)
    tokenizer = model_tokenizer(
        model, tokenizer, "export_tflite needs the model's tokenizer: the file records its "
        "special ids and casing, for the ids form too")
    max_length = resolve_max_length(model, tokenizer, max_length)
    functions = _TFLiteFunctions(model, tokenizer, max_length, pad_to_max_length)
    name = signature_name(model, inputs, pairs)

    def calibration():
        return representative_texts or default_calibration_texts(num_calibration)

    flatbuffer = _convert(functions, name, inputs, pairs, quantization, calibration)

    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "wb") as f:
        f.write(flatbuffer)
    metadata = _metadata(model, tokenizer, name, inputs, pairs, quantization, max_length)
    _write_metadata(path, metadata)
    if validate:
        texts = (representative_texts or default_calibration_texts(16))[:16]
        _validate_and_warn(path, metadata, model, tokenizer, texts, pairs)
    return path


def _check_arguments(model, inputs: str, quantization: str, pairs: bool) -> None:
    if inputs not in FORMS:
        raise ExportError(f"inputs must be one of {FORMS}, got {inputs!r}")
    if quantization not in QUANTIZATIONS:
        raise ExportError(f"quantization must be one of {QUANTIZATIONS}, got {quantization!r}")
    if head_kind(model) not in ("encoder", "classifier"):
        raise ExportError(f"TFLite export takes a BertEncoder or a BertClassifier, not a "
                          f"{type(model).__name__} (export_saved_model serves every head)")
    if pairs and inputs != "text":
        raise ExportError("pairs=True is for the text form; the ids form takes packed pairs")


def _convert(functions: _TFLiteFunctions, name: str, inputs: str, pairs: bool,
             quantization: str, calibration) -> bytes:
    """Trace the signature, save it as a temporary SavedModel, convert it to a flatbuffer."""
    function = functions.ids_function() if inputs == "ids" else functions.text_function(pairs)
    concrete = function.get_concrete_function()
    root = functions.trackable_root([concrete])
    if functions.fast is not None:
        root.fast_tokenizer = functions.fast
    workdir = tempfile.mkdtemp(prefix="kbert-tflite-")
    try:
        tf.saved_model.save(root, workdir, signatures={name: concrete})
        converter = tf.lite.TFLiteConverter.from_saved_model(workdir, signature_keys=[name])
        _configure_converter(converter, functions, inputs, pairs, quantization, calibration)
        try:
            return converter.convert()
        except Exception as e:  # the converter raises ConverterError with MLIR dumps
            message = str(e)
            ops = sorted(set(line.strip() for line in message.splitlines()
                             if "TF Select ops:" in line or "neither a custom op" in line))
            raise ExportError(f"TFLite conversion of {name} ({quantization}) failed: "
                              f"{'; '.join(ops[:5]) or message[-1500:]}") from None
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _configure_converter(converter, functions: _TFLiteFunctions, inputs: str, pairs: bool,
                         quantization: str, calibration) -> None:
    """Builtin ops (+ tf-text custom ops for the text form) and the quantization settings."""
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if inputs == "text":
        converter.allow_custom_ops = True
    if quantization == "float32":
        return
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantization == "float16":
        converter.target_spec.supported_types = [tf.float16]
    elif quantization == "int8":
        converter.representative_dataset = _representative_dataset(
            functions, inputs, calibration(), pairs)
        if inputs == "text":
            # The calibrator runs the float model, tf-text custom ops included.
            converter.target_spec._experimental_custom_op_registerers = list(
                tflite_registrar.SELECT_TFTEXT_OPS)


def _metadata(model, tokenizer, name: str, inputs: str, pairs: bool, quantization: str,
              max_length: int) -> dict:
    """The sidecar `<path>.json` that `TFLiteEncoder` reads."""
    encoder, classifier = split_model(model)
    metadata = {
        "format": "kbert-tflite/1",
        "signature": name,
        "inputs": inputs,
        "pairs": pairs,
        "quantization": quantization,
        "max_length": max_length,
        "lower_case": bool(tokenizer.lower_case),
        "hidden_size": encoder.bert_config.hidden_size,
        "max_positions": encoder.bert_config.max_position_embeddings,
        "vocab_size": encoder.bert_config.vocab_size,
        "special_ids": {"pad": tokenizer.pad_id, "unk": tokenizer.unk_id,
                        "cls": tokenizer.cls_id, "sep": tokenizer.sep_id},
        "custom_ops": inputs == "text",
    }
    if classifier is not None:
        metadata["problem_type"] = classifier.problem_type
        metadata["labels"] = [str(c) for c in classifier.class_labels]
    return metadata


def _validate_and_warn(path: str, metadata: dict, model, tokenizer, texts: list[str],
                       pairs: bool) -> None:
    """Record the file's agreement with the Keras model in the sidecar; warn when poor."""
    metadata["validation"] = _validate(path, model, tokenizer, metadata["max_length"], texts,
                                       pairs)
    _write_metadata(path, metadata)
    worst = metadata["validation"].get("token_cosine_min")
    if worst is not None and worst < 0.99:
        warnings.warn(
            f"{path}: token cosine to the Keras model is only {worst:.3f} on "
            f"{len(texts)} calibration texts ({metadata['quantization']}); static int8 "
            f"activations lose too much for this model: use quantization='dynamic_int8'",
            QuantizationWarning, stacklevel=3)


class QuantizationWarning(KbertWarning):
    """A quantized file whose outputs drift far from the Keras model's."""


def _write_metadata(path: str, metadata: dict) -> None:
    with open(path + METADATA_SUFFIX, "w", encoding="utf-8") as f:
        json.dump(metadata, f, indent=2, ensure_ascii=False)
        f.write("\n")


def _validate(path: str, model, tokenizer, max_length: int, texts: list[str], pairs: bool):
    """Run the file with LiteRT on `texts`; compare with the Keras model.

    Returns {"texts": n, "token_cosine_min"/"token_cosine_mean"} for encoders or
    {"texts": n, "label_agreement", "probability_max_diff"} for classifiers; {} when the LiteRT
    runtime is not installed.
    """
    try:
        runner = TFLiteEncoder(path, tokenizer=tokenizer)
    except ValueError:  # LiteRTError: no LiteRT runtime, or a file it cannot read
        return {}
    second = texts[1:] + texts[:1] if pairs else None
    out = runner.embed(texts, second)
    packed = {k: v.numpy() for k, v in tokenizer(texts, second, max_length=max_length).items()}
    width = (out.get("token_ids") if "token_ids" in out else out.get("padding_mask"))
    if width is not None:
        packed = {k: v[:, :width.shape[1]] for k, v in packed.items()}
    encoder, classifier = split_model(model)
    if classifier is not None:
        logits = np.asarray(classifier(packed, training=False), np.float32)
        got = out.get("probabilities", out["logits"])
        if classifier.problem_type == "single_label":
            ref = np.exp(logits - logits.max(-1, keepdims=True))
            ref /= ref.sum(-1, keepdims=True)
        elif classifier.problem_type == "multi_label":
            ref = 1.0 / (1.0 + np.exp(-logits))
        else:
            ref = logits
        return {"texts": len(texts),
                "label_agreement": float(np.mean(got.argmax(-1) == ref.argmax(-1))),
                "probability_max_diff": float(np.abs(got - ref).max())}
    ref = np.asarray(encoder(packed, training=False)["sequence_output"], np.float32)
    got = out["sequence_output"]
    cos = (got * ref).sum(-1) / (np.linalg.norm(got, axis=-1) * np.linalg.norm(ref, axis=-1)
                                 + 1e-12)
    cos = cos[packed["padding_mask"] > 0]
    return {"texts": len(texts), "token_cosine_min": float(cos.min()),
            "token_cosine_mean": float(cos.mean())}
