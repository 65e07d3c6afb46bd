"""`kbert convert`: import transformers or Google BERT weights, or export to transformers.

    kbert convert --from-transformers path/to/all-MiniLM-L6-v2 --output runs/minilm
    kbert convert --from-google uncased_L-2_H-128_A-2/ --output runs/bert-tiny
    kbert convert --to-transformers runs/minilm --output runs/minilm-hf

Imports write a kbert model directory (see `kbert.convert`): encoder.keras, config.json,
vocab.txt, tokenizer_config.json; `--to-transformers` reads any supported directory and writes a
transformers `BertModel` directory (config.json, model.safetensors, vocab.txt). After writing, the
output is loaded back and its outputs on a probe sentence compared with the source's
(`--no-verify` skips this).
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from kbert.outputs import check_output

PROBE = "The quick brown fox jumps over the lazy dog near the river bank."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--from-transformers", metavar="DIR",
                        help="a transformers BERT dir: config.json, model.safetensors or "
                             "pytorch_model.bin (read without torch), vocab.txt")
    source.add_argument("--from-google", metavar="DIR_OR_PREFIX",
                        help="a google-research/bert release: bert_config.json, "
                             "bert_model.ckpt.*, vocab.txt")
    source.add_argument("--to-transformers", metavar="DIR",
                        help="a kbert (or transformers / Google) model dir to export")
    parser.add_argument("--output", required=True, help="directory to write")
    parser.add_argument("--overwrite", action="store_true",
                        help="write into an --output directory that already holds files")
    parser.add_argument("--hidden-act", choices=("gelu", "gelu_tanh", "relu"), default=None,
                        help="--from-google only: override the activation (default gelu_tanh, "
                             "what the original code computes for 'gelu')")
    parser.add_argument("--no-verify", dest="verify", action="store_false",
                        help="do not reload the output to compare outputs with the source")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")


def _probe_outputs(encoder, tokenizer) -> np.ndarray:
    packed = tokenizer([PROBE], max_length=min(32, encoder.bert_config.max_position_embeddings))
    out = encoder({k: np.asarray(v) for k, v in packed.items()})
    return np.concatenate([np.asarray(out["sequence_output"]).ravel(),
                           np.asarray(out["pooled_output"]).ravel()])


def run(args: argparse.Namespace) -> int:
    # deferred: pulls in TensorFlow; a command loads it only when it runs (fast --help)
    from kbert import convert  # noqa: PLC0415
    from kbert.loading import load  # noqa: PLC0415

    def reload(directory):
        loaded = load(directory)
        return loaded.encoder, loaded.tokenizer

    if args.hidden_act and not args.from_google:
        raise ValueError("--hidden-act applies to --from-google only")
    check_output(args.output, overwrite=args.overwrite, flag="--output")
    start = time.perf_counter()
    if args.from_transformers:
        encoder, tokenizer = convert.load_transformers_checkpoint(args.from_transformers)
        convert.save_kbert_model(encoder, tokenizer, args.output)
    elif args.from_google:
        encoder, tokenizer = convert.load_google_checkpoint(args.from_google,
                                                            hidden_act=args.hidden_act)
        convert.save_kbert_model(encoder, tokenizer, args.output)
    else:
        encoder, tokenizer = reload(args.to_transformers)
        convert.save_transformers_checkpoint(encoder, args.output, vocab=tokenizer)
    c = encoder.bert_config
    print(f"BERT L={c.num_layers} H={c.hidden_size} A={c.num_heads} I={c.intermediate_size} "
          f"vocab={c.vocab_size} act={c.hidden_act}: {encoder.count_params():,} parameters")
    print(f"wrote {args.output}: {', '.join(sorted(os.listdir(args.output)))} "
          f"({time.perf_counter() - start:.1f}s)")
    if args.verify:
        expected = _probe_outputs(encoder, tokenizer)
        got = _probe_outputs(*reload(args.output))
        diff = float(np.abs(got - expected).max())
        print(f"verified: reloaded outputs differ from the source by at most {diff:.2e}")
        if diff > 1e-5:
            raise ValueError(f"the written model's outputs differ from the source's by {diff}")
    return 0
