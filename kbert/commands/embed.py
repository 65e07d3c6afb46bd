"""`kbert embed`: contextual token / word / sentence vectors as JSONL, .npy or .npz.

    kbert embed --model runs/minilm --level sentence --pooling mean --normalize \
        --output vectors.npy "A first text." "Another one."
    kbert embed --model path/to/all-MiniLM-L6-v2 --level word --input texts.txt --output words.jsonl

Sentence level defaults: a sentence-transformers folder's own pooling, normalisation and
max_seq_length (modules.json, 1_Pooling/config.json, 2_Normalize, sentence_bert_config.json),
announced on standard error; any other model: [CLS], not normalised. Flags override.

`--model`: a kbert model directory, a transformers BERT directory or a Google release, or a name
(`kbert models`: a Hugging Face repo id, a keras-hub preset).
Texts: the positional arguments, or `--input FILE` (one text per line; "-" = standard input).

Output by extension (standard output, JSONL, when `--output` is omitted):
  .jsonl  one object per text: sentence level {"text", "vector"}; token level {"text",
          "tokens": [{"token", "id", "start", "end", "vector"}]}; word level {"text",
          "words": [{"word", "pieces", "start", "end", "vector"}]}. start/end are character
          offsets into the text; vectors are rounded to 7 decimals.
  .npy    sentence level only: float32 [texts, H].
  .npz    every level: `vectors` float32 [rows, H], `text_index` int64 [rows] and, for tokens
          and words, `start`, `end` and `label` (piece or word) per row.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

from kbert.config import check_max_length
from kbert.textfiles import command_texts

POOLING = {"token": (None,), "word": ("first", "mean"),
           "sentence": ("cls", "mean", "max", "mean_sqrt_len")}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="model directory (kbert, transformers or "
                                                       "Google BERT) or name (`kbert models`)")
    parser.add_argument("texts", nargs="*", help="texts to embed")
    parser.add_argument("--input", help="file with one text per line ('-' = standard input)")
    parser.add_argument("--level", choices=tuple(POOLING), default="sentence")
    parser.add_argument("--pooling", default=None,
                        help="word: first (default) | mean; sentence: cls | mean | max | "
                             "mean_sqrt_len, or several joined by '+' (over real tokens incl. "
                             "[CLS]/[SEP], the sentence-transformers definitions; default: the "
                             "sentence-transformers folder's own pooling, else cls)")
    parser.add_argument("--normalize", action=argparse.BooleanOptionalAction, default=None,
                        help="sentence level: L2-normalise the vectors (default: as the "
                             "sentence-transformers folder's modules.json says, else no)")
    parser.add_argument("--layer", type=int, default=-1,
                        help="0 = embeddings output, i = block i, -1 = last (default)")
    parser.add_argument("--max-length", type=int, default=None,
                        help="longest sequence incl. [CLS]/[SEP], 2 to the model's "
                             "max_position_embeddings (default: that, at most 512); longer "
                             "texts are truncated")
    parser.add_argument("--truncation", choices=("warn", "error"), default="warn",
                        help="what a text longer than --max-length does (default: warn)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--output", help="file.jsonl, file.npy (sentence level) or file.npz")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")


def _read_texts(args) -> list[str]:
    return command_texts(args.texts, args.input)


def _check(args) -> str | None:
    """The pooling asked for (None: the model's default, decided once it is loaded)."""
    if args.level == "sentence":
        if args.pooling is not None:
            # deferred: pulls in TensorFlow; a command loads it only when it runs (fast --help)
            from kbert.layers.pooling import parse_pooling  # noqa: PLC0415

            try:
                parse_pooling(args.pooling)
            except ValueError as e:
                raise ValueError(f"--pooling: {e}") from None
        pooling = args.pooling
    else:
        pooling = args.pooling or POOLING[args.level][0]
    if args.level != "sentence" and pooling not in POOLING[args.level]:
        allowed = "none" if args.level == "token" else " or ".join(POOLING[args.level])
        raise ValueError(f"--pooling {args.pooling!r} does not apply to --level {args.level} "
                         f"(allowed: {allowed})")
    if args.normalize is not None and args.level != "sentence":
        raise ValueError("--normalize applies to --level sentence only")
    if args.output:
        ext = os.path.splitext(args.output)[1].lower()
        if ext not in (".jsonl", ".npy", ".npz"):
            raise ValueError(f"--output must end in .jsonl, .npy or .npz, got {args.output!r}")
        if ext == ".npy" and args.level != "sentence":
            raise ValueError(".npy holds one [texts, H] array: use it with --level sentence; "
                             "use .jsonl or .npz for token and word vectors")
    return pooling


def _rounded(vector: np.ndarray) -> list[float]:
    return np.round(vector.astype(np.float64), 7).tolist()


def _records(texts, level, result, width: int):
    """-> (json lines, npz arrays)."""
    lines, vectors, index, starts, ends, labels = [], [], [], [], [], []
    if level == "sentence":
        for text, vector in zip(texts, result, strict=True):
            lines.append({"text": text, "vector": _rounded(vector)})
        arrays = {"vectors": np.asarray(result, np.float32),
                  "text_index": np.arange(len(texts), dtype=np.int64)}
        return lines, arrays
    key = "tokens" if level == "token" else "words"
    for n, (text, records) in enumerate(zip(texts, result, strict=True)):
        items = []
        for r in records:
            item = r.to_dict()
            item["vector"] = _rounded(r.vector)
            items.append(item)
            vectors.append(r.vector)
            index.append(n)
            starts.append(r.start)
            ends.append(r.end)
            labels.append(r.token if level == "token" else r.word)
        lines.append({"text": text, key: items})
    arrays = {"vectors": np.asarray(vectors, np.float32).reshape(-1, width),
              "text_index": np.asarray(index, np.int64), "start": np.asarray(starts, np.int64),
              "end": np.asarray(ends, np.int64), "label": np.asarray(labels, dtype=str)}
    return lines, arrays


def run(args: argparse.Namespace) -> int:
    # deferred: pulls in TensorFlow; a command loads it only when it runs (fast --help)
    from kbert.embeddings import ContextualEmbedder  # noqa: PLC0415

    pooling = _check(args)
    texts = _read_texts(args)
    requested = args.max_length  # checked against the model's positions once it is loaded
    if requested is not None and requested < 2:
        args.max_length = 512  # the embedder caps it at the model's positions
    # max_length None: the sentence-transformers folder's max_seq_length, else 512
    embedder = ContextualEmbedder.from_pretrained(
        args.model, max_length=args.max_length, batch_size=args.batch_size,
        truncation=args.truncation)
    if requested is not None:
        check_max_length(requested, embedder.encoder.bert_config.max_position_embeddings)
    if args.level == "token":
        result = embedder.tokens(texts, layer=args.layer)
    elif args.level == "word":
        result = embedder.words(texts, pooling=pooling, layer=args.layer)
    else:
        if embedder.sentence is not None and (pooling is None or args.normalize is None):
            chosen = pooling or embedder.default_pooling
            normalize = embedder.default_normalize if args.normalize is None else args.normalize
            norm = " + L2 normalisation" if normalize else ""
            print(f"sentence vectors: {chosen} pooling{norm}, max_length {embedder.max_length} "
                  f"(defaults from {embedder.sentence.source} and modules.json)",
                  file=sys.stderr)
        result = embedder.sentences(texts, pooling=pooling, normalize=args.normalize,
                                    layer=args.layer)
    width = result.shape[1] if args.level == "sentence" else embedder.hidden_size
    lines, arrays = _records(texts, args.level, result, width)
    if not args.output:
        for line in lines:
            print(json.dumps(line, ensure_ascii=False))
        return 0
    ext = os.path.splitext(args.output)[1].lower()
    if ext == ".jsonl":
        with open(args.output, "w", encoding="utf-8") as f:
            for line in lines:
                f.write(json.dumps(line, ensure_ascii=False) + "\n")
    elif ext == ".npy":
        np.save(args.output, arrays["vectors"])
    else:
        np.savez(args.output, **arrays)
    rows = arrays["vectors"].shape[0]
    print(f"wrote {args.output}: {rows} {args.level} vectors of width {width} "
          f"from {len(texts)} texts (layer {args.layer})", file=sys.stderr)
    return 0
