"""`kbert prepare`: write the NSP pairs of a corpus as sharded TFRecord files.

The pairs are stored before masking: `pretraining_dataset(<output dir>, vocab)` reads them and
masks them anew every epoch. Use it for corpora too large to pair on the fly at training speed;
training can also read text directly.

Example:
    kbert prepare austen --vocab runs/vocab --output runs/pairs --dupe-factor 5 --shards 4
"""

from __future__ import annotations

import argparse
import time

from kbert.corpora import expand_paths


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("corpus", nargs="*", default=["austen"],
                        help="text files, directories, globs (plain or .gz) or 'austen' "
                             "(the embedded corpus, the default)")
    parser.add_argument("--vocab", required=True, help="vocabulary directory or vocab.txt")
    parser.add_argument("--output", required=True, help="directory for the shards and pairs.json")
    parser.add_argument("--seq-length", type=int, default=128)
    parser.add_argument("--dupe-factor", type=int, default=1,
                        help="passes over the training documents, each with new pairs (default 1)")
    parser.add_argument("--shards", type=int, default=4, help="files for the train split")
    parser.add_argument("--short-seq-prob", type=float, default=0.1)
    parser.add_argument("--heldout-fraction", type=float, default=0.05,
                        help="share of documents held out for evaluation (by document-id hash)")
    parser.add_argument("--format", choices=("auto", "prose", "sentences"), default="auto",
                        help="input format; auto decides per file (see kbert.data.corpus)")
    parser.add_argument("--errors", choices=("strict", "replace"), default="strict",
                        help="non-UTF-8 bytes: stop with an error naming the file, or replace them")
    parser.add_argument("--seed", type=int, default=12345)
    parser.add_argument("--debug", action="store_true", help="show tracebacks")


def run(args: argparse.Namespace) -> int:
    # deferred: pulls in TensorFlow; a command loads it only when it runs (fast --help)
    from kbert.data import tfrecords  # noqa: PLC0415
    from kbert.data.pipeline import pair_dataset  # noqa: PLC0415
    from kbert.tokenization.tokenizer import resolve_tokenizer  # noqa: PLC0415

    if args.dupe_factor < 1:
        raise ValueError(f"--dupe-factor must be >= 1, got {args.dupe_factor}")
    tokenizer = resolve_tokenizer(args.vocab)
    files = expand_paths(args.corpus)
    common = dict(seed=args.seed, short_seq_prob=args.short_seq_prob,
                  heldout_fraction=args.heldout_fraction, format=args.format, errors=args.errors)
    start = time.perf_counter()
    splits = {}
    train = pair_dataset(files, tokenizer, args.seq_length, split="train", dynamic=True,
                         shuffle=True, **common)
    splits["train"] = tfrecords.write_pair_files(train.repeat(args.dupe_factor), args.output,
                                                 "train", args.shards)
    if args.heldout_fraction > 0:
        heldout = pair_dataset(files, tokenizer, args.seq_length, split="heldout", dynamic=False,
                               shuffle=False, **common)
        splits["heldout"] = tfrecords.write_pair_files(heldout, args.output, "heldout", 1)
    vocab = tokenizer.vocab
    path = tfrecords.write_metadata(args.output, {
        "seq_length": args.seq_length, "vocab_size": vocab.size, "pad_id": vocab.pad_id,
        "vocab_fingerprint": tfrecords.vocabulary_fingerprint(vocab.tokens),
        "corpus": files, "dupe_factor": args.dupe_factor, "seed": args.seed,
        "short_seq_prob": args.short_seq_prob, "heldout_fraction": args.heldout_fraction,
        "input_format": args.format, "splits": splits})
    for name, info in splits.items():
        share = info["not_next"] / max(info["examples"], 1)
        print(f"{name}: {info['examples']} pairs ({share:.1%} NotNext) in "
              f"{len(info['files'])} file(s)")
    print(f"wrote {path} in {time.perf_counter() - start:.1f}s")
    return 0
