"""`kbert vocab`: train a WordPiece vocabulary (vocab.txt + vocab_counts.txt) from a corpus.

    kbert vocab --corpus austen --vocab-size 8000 --output runs/vocab
"""

from __future__ import annotations

import argparse
import time

from kbert.outputs import check_output


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--corpus", nargs="+", default=["austen"],
                        help="text files, directories, .gz files or globs; 'austen' (default) is "
                             "the embedded Jane Austen corpus")
    parser.add_argument("--vocab-size", type=int, default=8000,
                        help="target (maximum) number of entries, specials included (default 8000)")
    parser.add_argument("--cased", action="store_true",
                        help="keep case and accents (default: lower-case and strip accents)")
    parser.add_argument("--num-unused", type=int, default=0,
                        help="[unusedN] placeholder entries after the special tokens (default 0)")
    parser.add_argument("--output", required=True,
                        help="directory to write vocab.txt and vocab_counts.txt into")
    parser.add_argument("--overwrite", action="store_true",
                        help="write into an --output directory that already holds files")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")


def run(args: argparse.Namespace) -> int:
    # deferred: pulls in TensorFlow; a command loads it only when it runs (fast --help)
    from kbert.tokenization.vocab_training import train_vocabulary  # noqa: PLC0415

    check_output(args.output, overwrite=args.overwrite, flag="--output")
    start = time.perf_counter()
    vocab = train_vocabulary(args.corpus, vocab_size=args.vocab_size, lower_case=not args.cased,
                             num_unused=args.num_unused, output_dir=args.output,
                             log=lambda line: print(line, flush=True))
    seconds = time.perf_counter() - start
    counts = vocab.counts
    total = int(counts.sum())
    top = sorted(range(vocab.size), key=lambda i: -counts[i])[:10]
    print(f"wrote {args.output}/vocab.txt ({vocab.size} entries, target {args.vocab_size}) and "
          f"vocab_counts.txt in {seconds:.1f}s")
    print(f"corpus: {total:,} pieces, [UNK] {int(counts[vocab.unk_id]):,} "
          f"({100 * counts[vocab.unk_id] / max(total, 1):.3f}%), "
          f"{int(vocab.is_continuation.sum())} continuation pieces")
    print("most frequent:", ", ".join(f"{vocab.tokens[i]} {int(counts[i]):,}" for i in top))
    return 0
