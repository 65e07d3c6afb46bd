"""Run a kbert `.tflite` file with the LiteRT interpreter (`pip install ai-edge-litert`).

`TFLiteEncoder(path)` reads the sidecar `<path>.json` written by `export_tflite`, opens the
right interpreter (with tf-text's custom op kernels for the text form) and gives numpy results.

Example:
    >>> from kbert.export.litert import TFLiteEncoder
    >>> model = TFLiteEncoder("minilm-text-int8.tflite")                   # doctest: +SKIP
    >>> out = model.embed(["A sentence.", "Another, longer sentence."])     # doctest: +SKIP
    >>> out["sequence_output"].shape, out["sentence_embedding"].shape       # doctest: +SKIP
    ((2, 8, 384), (2, 384))
"""

from __future__ import annotations

import os

import numpy as np
from tensorflow_text import tflite_registrar

from kbert.config import read_json_file
from kbert.errors import KbertError

METADATA_SUFFIX = ".json"


class LiteRTError(KbertError, ValueError):
    """A .tflite file or an input that TFLiteEncoder cannot use."""


# sidecar key -> (accepted types, required)
_METADATA_KEYS = {"signature": (str, True), "inputs": (str, True), "custom_ops": (bool, True),
                  "hidden_size": (int, True), "max_length": (int, True), "pairs": (bool, True),
                  "special_ids": (dict, True), "labels": (list, False),
                  "max_positions": (int, False)}


def read_metadata(path: str) -> dict:
    """The `<file>.json` sidecar, checked: a size-limited JSON object with the keys
    TFLiteEncoder uses, of the right types; LiteRTError naming the problem otherwise."""
    metadata = read_json_file(path, LiteRTError)
    for key, (kind, required) in _METADATA_KEYS.items():
        if key not in metadata:
            if required:
                raise LiteRTError(f"{path}: missing key {key!r}; re-export the model with "
                                  f"kbert.export.export_tflite")
            continue
        value = metadata[key]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise LiteRTError(f"{path}: {key} must be a {kind.__name__}, got {value!r}")
    if metadata["inputs"] not in ("ids", "text"):
        raise LiteRTError(f"{path}: inputs must be 'ids' or 'text', got {metadata['inputs']!r}")
    special = metadata["special_ids"]
    if "pad" not in special or not all(isinstance(v, int) for v in special.values()):
        raise LiteRTError(f"{path}: special_ids must map names (pad included) to integer ids")
    if not all(isinstance(v, str) for v in metadata.get("labels", [])):
        raise LiteRTError(f"{path}: labels must be strings")
    return metadata


def _interpreter(path: str, custom_ops: bool, num_threads: int | None):
    try:
        # deferred: the LiteRT runtime is optional (kbert[tflite])
        from ai_edge_litert import interpreter as litert  # noqa: PLC0415
    except ImportError:
        raise LiteRTError("running .tflite files needs the LiteRT runtime: "
                          "pip install 'kbert[tflite]' (ai-edge-litert)") from None
    if custom_ops:
        # tensorflow_text's kernels are registered into LiteRT's op resolver by address.
        return litert.InterpreterWithCustomOps(
            model_path=path, num_threads=num_threads,
            custom_op_registerers=tflite_registrar.SELECT_TFTEXT_OPS)
    return litert.Interpreter(model_path=path, num_threads=num_threads)


class TFLiteEncoder:
    """A kbert TFLite encoder or classifier.

    Args:
        path: the `.tflite` file (its `<path>.json` sidecar must be beside it).
        tokenizer: a kbert `BertTokenizer`, needed only to pass raw texts to an ids-form file.
        num_threads: interpreter threads (None: LiteRT's default).

    Attributes:
        metadata: the sidecar dict (signature, inputs form, quantization, labels, ...).
    """

    def __init__(self, path: str | os.PathLike, tokenizer=None, num_threads: int | None = None):
        self.path = os.fspath(path)
        meta_path = self.path + METADATA_SUFFIX
        if not os.path.isfile(self.path):
            raise LiteRTError(f"{self.path}: no such file")
        if not os.path.isfile(meta_path):
            raise LiteRTError(f"{meta_path} is missing: export with kbert.export.export_tflite")
        self.metadata = read_metadata(meta_path)
        self.tokenizer = tokenizer
        self.interpreter = _interpreter(self.path, self.metadata["custom_ops"], num_threads)
        self.runner = self.interpreter.get_signature_runner(self.metadata["signature"])
        self._output_names = sorted(self.runner.get_output_details())

    @property
    def form(self) -> str:
        return self.metadata["inputs"]

    @property
    def labels(self) -> list[str] | None:
        return self.metadata.get("labels")

    # ------------------------------------------------------------------ running
    def run(self, **inputs: np.ndarray) -> dict[str, np.ndarray]:
        """Call the signature with numpy inputs by name (a batch of 0 rows is answered here).

        Inputs are checked first, because the TFLite runtime does not check them itself:
        text inputs must be 1-D with one batch size, id inputs int32-valued [B, S] arrays of one
        shape with 1 <= S <= the model's positions. Anything else raises LiteRTError.
        """
        inputs = self._checked(inputs)
        if next(iter(inputs.values())).shape[0] == 0:
            return self._empty(inputs)
        return self.runner(**inputs)

    def _checked(self, inputs: dict) -> dict[str, np.ndarray]:
        """Inputs the interpreter can run, or LiteRTError naming the problem.

        Found by tests/test_fuzz_signatures.py: the interpreter answered ids of different
        shapes, S = 0 or S > max positions with "XNNPack delegate failed to reshape" or
        "NumElements(input) > 0 was not true", and a scalar made this method's batch-size
        check raise an IndexError.
        """
        expected = sorted(self.runner.get_input_details())
        if sorted(inputs) != expected:
            raise LiteRTError(f"{self.path} takes the inputs {expected}, got {sorted(inputs)}")
        shapes = {k: np.shape(v) for k, v in inputs.items()}
        if self.form == "text":
            if any(len(s) != 1 for s in shapes.values()) or len(set(shapes.values())) != 1:
                raise LiteRTError(f"text inputs must be 1-D string arrays of one batch size, got "
                                  f"shapes {shapes}")
            return {k: np.asarray([x.encode("utf-8", "surrogatepass") if isinstance(x, str)
                                   else x for x in np.asarray(v, dtype=object).tolist()] + [b""],
                                  dtype=object)[:-1] for k, v in inputs.items()}
        if len(set(shapes.values())) != 1 or len(next(iter(shapes.values()))) != 2:
            raise LiteRTError(f"token_ids, segment_ids and padding_mask must have the same shape "
                              f"[batch, seq], got {shapes}")
        out = {}
        for name, value in inputs.items():
            value = np.asarray(value)
            if value.dtype != np.int32:
                if value.dtype.kind not in "iub" or (value.size and (
                        value.min() < -2**31 or value.max() >= 2**31)):
                    raise LiteRTError(f"{name} must hold int32 values, got {value.dtype}")
                value = value.astype(np.int32)
            out[name] = value
        batch, seq = next(iter(shapes.values()))
        limit = self.metadata.get("max_positions")  # absent from sidecars before it was added
        if batch and seq < 1:
            raise LiteRTError("the sequences must hold at least one token ([CLS]), got "
                              f"shape {(batch, seq)}")
        if batch and limit is not None and seq > limit:
            raise LiteRTError(f"sequence length {seq} exceeds the model's {limit} positions")
        return out

    def _empty(self, inputs) -> dict[str, np.ndarray]:
        """Outputs for zero rows (the TFLite runtime refuses zero-sized inputs)."""
        width = 0 if self.form == "text" else np.shape(next(iter(inputs.values())))[1]
        hidden = self.metadata["hidden_size"]
        classes = len(self.labels or []) or 1
        shapes = {"sequence_output": ((0, width, hidden), np.float32),
                  "pooled_output": ((0, hidden), np.float32),
                  "padding_mask": ((0, width), np.int32), "token_ids": ((0, width), np.int32),
                  "logits": ((0, classes), np.float32),
                  "probabilities": ((0, classes), np.float32)}
        return {k: np.zeros(*shapes[k]) for k in self._output_names}

    def _as_inputs(self, texts_or_ids, pairs=None) -> dict[str, np.ndarray]:
        if isinstance(texts_or_ids, str):
            texts_or_ids = [texts_or_ids]
        if isinstance(texts_or_ids, dict):
            if self.form != "ids":
                raise LiteRTError(f"{self.path} takes text, not ids")
            ids = {k: np.asarray(v, np.int32) for k, v in texts_or_ids.items()}
            token_ids = ids["token_ids"]
            ids.setdefault("segment_ids", np.zeros_like(token_ids))
            ids.setdefault("padding_mask", (token_ids != self.metadata["special_ids"]["pad"])
                           .astype(np.int32))
            return ids
        items = list(texts_or_ids)
        if items and not isinstance(items[0], (str, bytes)):
            return self._as_inputs({"token_ids": np.asarray(items, np.int32)})
        if pairs is not None:
            pairs = [pairs] if isinstance(pairs, str) else list(pairs)
            if len(pairs) != len(items):
                raise LiteRTError(f"{len(items)} texts but {len(pairs)} pairs")
        if self.form == "text":
            if (pairs is not None) != self.metadata["pairs"]:
                raise LiteRTError(f"{self.path} was exported with pairs={self.metadata['pairs']}")
            # "surrogatepass": a str with lone surrogates becomes invalid UTF-8 (as in
            # BertTokenizer) instead of a UnicodeEncodeError
            encode = lambda xs: np.array(  # noqa: E731
                [x.encode("utf-8", "surrogatepass") if isinstance(x, str) else x for x in xs],
                dtype=object)
            out = {"text": encode(items)}
            if pairs is not None:
                out["text_pair"] = encode(pairs)
            return out
        if self.tokenizer is None:
            raise LiteRTError(f"{self.path} takes ids: pass tokenizer=BertTokenizer(...) to "
                              f"embed texts, or pass token ids")
        packed = self.tokenizer(items, pairs, max_length=self.metadata["max_length"])
        packed = {k: v.numpy() for k, v in packed.items()}
        width = max(int(packed["padding_mask"].sum(axis=1).max(initial=2)), 2)
        return {k: v[:, :width] for k, v in packed.items()}

    def embed(self, texts_or_ids, pairs=None) -> dict[str, np.ndarray]:
        """Texts (str / list of str, + optional pairs) or ids -> the signature's outputs, plus
        `sentence_embedding` float32 [B, H]: the mean of sequence_output over real tokens.

        Ids: a dict of token_ids (+ segment_ids, padding_mask), or an int array [B, S]
        (segment ids 0, mask = token_ids != [PAD]).
        """
        inputs = self._as_inputs(texts_or_ids, pairs)
        out = dict(self.run(**inputs))
        if "sequence_output" in out:
            mask = out.get("padding_mask", inputs.get("padding_mask"))
            mask = np.asarray(mask, np.float32)[:, :, None]
            count = np.maximum(mask.sum(axis=1), 1.0)
            out["sentence_embedding"] = (out["sequence_output"] * mask).sum(axis=1) / count
        return out

    def classify(self, texts_or_ids, pairs=None) -> dict:
        """Classifier files: probabilities [B, C] and the label of each row (argmax)."""
        if self.labels is None:
            raise LiteRTError(f"{self.path} is not a classifier")
        out = self.run(**self._as_inputs(texts_or_ids, pairs))
        scores = out.get("probabilities", out["logits"])
        out["labels"] = [self.labels[i] for i in np.argmax(scores, axis=-1)] if len(scores) else []
        return out
