"""`kbert tflite`: convert an encoder or classifier to TFLite files for devices.

    kbert tflite runs/minilm --output minilm.tflite                        # ids in, float32
    kbert tflite runs/minilm --inputs text --quantization int8 --output minilm-text-int8.tflite
    kbert tflite runs/polarity --inputs all --quantization all --output tflite/  # 8 files

MODEL: as `kbert export` (classifier directory, kbert / transformers / Google encoder).
`--inputs`: ids (token ids in), text (strings in, tokenizer inside), or all.
`--quantization`: float32, float16, dynamic_int8, int8 (calibrated on --calibration texts), or
all. With several variants `--output` is a directory receiving `<inputs>-<quantization>.tflite`.
Each file gets a `<file>.json` sidecar; run it with `kbert.export.litert.TFLiteEncoder`.
"""

from __future__ import annotations

import argparse
import os

from kbert.commands.export import load_model
from kbert.config import check_max_length
from kbert.corpora import CorpusError, expand_paths
from kbert.outputs import check_output
from kbert.textfiles import iter_lines


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="model directory or .keras file")
    parser.add_argument("--output", required=True,
                        help="file.tflite (one variant) or a directory (several)")
    parser.add_argument("--inputs", choices=("ids", "text", "all"), default="ids")
    parser.add_argument("--quantization", nargs="+", default=["float32"],
                        help="float32 | float16 | dynamic_int8 | int8 | all (several allowed)")
    parser.add_argument("--pairs", action="store_true",
                        help="text form: take sentence pairs (text, text_pair)")
    parser.add_argument("--max-length", type=int, help="packed length of the text form")
    parser.add_argument("--calibration", default="austen",
                        help="int8 representative texts: a text file / directory / glob, one "
                             "text per line (default: the embedded Austen corpus)")
    parser.add_argument("--num-calibration", type=int, default=200,
                        help="how many calibration texts (default 200)")
    parser.add_argument("--vocab", help="vocab.txt, when it is not beside the model")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace .tflite files (and their .json sidecars) that exist")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")


def _calibration_texts(source: str, count: int) -> list[str]:
    texts = []
    for path in expand_paths(source):
        for line in iter_lines(path, CorpusError):
            if len(line.split()) >= 4:
                texts.append(line.strip())
                if len(texts) == count:
                    return texts
    if not texts:
        raise ValueError(f"no calibration texts (lines of 4+ words) in {source!r}")
    return texts


def run(args: argparse.Namespace) -> int:
    # deferred: pulls in TensorFlow; a command loads it only when it runs (fast --help)
    from kbert.export.tflite import FORMS, METADATA_SUFFIX, QUANTIZATIONS, export_tflite  # noqa: PLC0415
    from kbert.loading import encoder_of  # noqa: PLC0415

    quantizations = list(QUANTIZATIONS) if "all" in args.quantization else args.quantization
    for q in quantizations:
        if q not in QUANTIZATIONS:
            raise ValueError(f"--quantization {q!r}: choose from {QUANTIZATIONS} or all")
    forms = list(FORMS) if args.inputs == "all" else [args.inputs]
    if args.pairs and "ids" in forms:
        raise ValueError("--pairs applies to --inputs text")
    if args.num_calibration < 1:
        raise ValueError("--num-calibration must be >= 1")
    variants = [(f, q) for f in forms for q in quantizations]
    single = len(variants) == 1 and not os.path.isdir(args.output)
    if single and not args.output.endswith(".tflite"):
        raise ValueError(f"--output must end in .tflite for one variant, got {args.output!r}")
    paths = [args.output if single else os.path.join(args.output, f"{form}-{quantization}.tflite")
             for form, quantization in variants]
    check_output([p + suffix for p in paths for suffix in ("", METADATA_SUFFIX)],
                 overwrite=args.overwrite, flag="--output")
    model, tokenizer = load_model(args.model, args.vocab)
    if args.max_length is not None:
        check_max_length(args.max_length, encoder_of(model).bert_config.max_position_embeddings)
    texts = (_calibration_texts(args.calibration, args.num_calibration)
             if "int8" in quantizations else None)
    print(f"{'file':<48} {'size':>10}")
    for (form, quantization), path in zip(variants, paths, strict=True):
        export_tflite(model, path, tokenizer=tokenizer, inputs=form, quantization=quantization,
                      pairs=args.pairs, max_length=args.max_length, representative_texts=texts)
        print(f"{path:<48} {os.path.getsize(path) / 1e6:>8.2f} MB")
    return 0
