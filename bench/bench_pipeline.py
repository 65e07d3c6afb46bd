"""Throughput of the pre-training input pipeline on the embedded Austen corpus.

    python bench/bench_pipeline.py                     # full pipeline, 2 epochs, seq 128
    python bench/bench_pipeline.py --vocab runs/vocab  # reuse a trained vocabulary
    python bench/bench_pipeline.py --stages            # also time each stage alone

Measures examples/s of `pretraining_dataset` (read -> segment -> tokenize -> NSP pairs -> pack
-> shuffle -> batch -> MLM mask) as a training loop sees it: wall-clock time to pull every batch
of an epoch, after a first epoch that pays the tracing. Also printed: the process CPU time per
example (on a shared machine the wall time depends on the other load; CPU time much less).
The goal: never the bottleneck of BERT-small training on this CPU (~4,000 tokens/s, about 30
examples/s at seq 128), i.e. >= 300 examples/s.

Without --vocab it trains a WordPiece vocabulary on the corpus once and keeps it in
~/.cache/kbert/bench-austen-vocab-<size>.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

TARGET = 300.0  # examples/s: 10x a BERT-small training step on this CPU


def vocabulary(path: str | None, size: int):
    from kbert.tokenization.vocab import Vocabulary
    from kbert.tokenization.vocab_training import train_vocabulary

    if path:
        return Vocabulary.load(path)
    cache = os.path.join(os.path.expanduser("~"), ".cache", "kbert", f"bench-austen-vocab-{size}")
    if not os.path.isfile(os.path.join(cache, "vocab_counts.txt")):
        print(f"training a {size}-entry vocabulary on the Austen corpus (once) ...", flush=True)
        train_vocabulary("austen", vocab_size=size, output_dir=cache)
    return Vocabulary.load(cache)


def timed_epoch(dataset) -> tuple[int, int, float, float]:
    """(examples, real tokens, wall seconds, process CPU seconds) of one pass."""
    examples = tokens = 0
    wall, cpu = time.perf_counter(), time.process_time()
    for features, _ in dataset:
        examples += int(features["token_ids"].shape[0])
        tokens += int(features["padding_mask"].numpy().sum())
    return examples, tokens, time.perf_counter() - wall, time.process_time() - cpu


def stage_times(vocab, seq: int) -> None:
    import tensorflow as tf

    from kbert.data.corpus import document_dataset
    from kbert.data.masking import MlmMasker
    from kbert.data.pipeline import pair_dataset, resolve_tokenizer

    tokenizer = resolve_tokenizer(vocab)

    def clock(name, ds, per="elements"):
        wall, cpu, n = time.perf_counter(), time.process_time(), 0
        for _ in ds:
            n += 1
        print(f"  {name:<38} {n:>6} {per} {time.perf_counter() - wall:6.1f}s wall "
              f"{time.process_time() - cpu:6.1f}s cpu", flush=True)

    docs = document_dataset("austen")
    clock("read + segment documents", docs, "docs")
    clock("... + tokenize", docs.map(lambda d: tokenizer.tokenize(d["sentences"]),
                                     num_parallel_calls=tf.data.AUTOTUNE), "docs")
    pairs = pair_dataset("austen", tokenizer, seq, split="all")
    clock("... + NSP pairs + pack", pairs, "pairs")
    masker = MlmMasker(vocab)
    batch = next(iter(pairs.batch(32)))["token_ids"]
    mask = tf.function(lambda ids, seed: masker(ids, seed))
    mask(batch, tf.constant([0, 0]))
    wall = time.perf_counter()
    for i in range(200):
        mask(batch, tf.constant([0, i]))
    print(f"  {'MLM masking of a batch of 32':<38} {(time.perf_counter() - wall) / 200 * 1e3:6.2f}"
          f" ms/batch", flush=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vocab", help="vocabulary directory (default: train one, cached)")
    parser.add_argument("--vocab-size", type=int, default=8000)
    parser.add_argument("--seq-length", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=2, help="timed epochs after the first")
    parser.add_argument("--whole-word", action="store_true")
    parser.add_argument("--stages", action="store_true", help="also time each stage alone")
    args = parser.parse_args(argv)

    from kbert.data.pipeline import pretraining_dataset

    vocab = vocabulary(args.vocab, args.vocab_size)
    print(f"vocabulary: {vocab.size} entries; cores: {os.cpu_count()}; "
          f"load average: {os.getloadavg()[0]:.1f}", flush=True)
    ds = pretraining_dataset("austen", vocab, seq_length=args.seq_length,
                             batch_size=args.batch_size, whole_word=args.whole_word, seed=1)
    wall = time.perf_counter()
    next(iter(ds))
    print(f"first batch after {time.perf_counter() - wall:.1f}s (tracing, shuffle buffers)")
    n, tokens, seconds, cpu = timed_epoch(ds)
    print(f"epoch 1 (warm-up): {n} examples in {seconds:.1f}s")
    rates = []
    for epoch in range(args.epochs):
        n, tokens, seconds, cpu = timed_epoch(ds)
        rates.append(n / seconds)
        print(f"epoch {epoch + 2}: {n} examples, {tokens:,} tokens in {seconds:.1f}s wall, "
              f"{cpu:.1f}s CPU: {n / seconds:,.0f} examples/s, {tokens / seconds:,.0f} tokens/s, "
              f"{cpu / n * 1e3:.2f} ms CPU per example", flush=True)
    best = max(rates)
    print(f"\npipeline throughput: {best:,.0f} examples/s at seq {args.seq_length} "
          f"(target >= {TARGET:.0f}: {'OK' if best >= TARGET else 'BELOW'}); "
          f"{best / 30:.0f}x a BERT-small step's ~30 examples/s")
    if args.stages:
        print("stages (cumulative, one pass):")
        stage_times(vocab, args.seq_length)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
