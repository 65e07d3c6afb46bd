"""What raw text in Keras' `fit` costs: the string path against the ids path, one process,
interleaved epochs, the same model, examples, batches and shapes.

    python bench/bench_text_fit.py [--examples 512] [--batch 32] [--max-length 128] [--reps 3]

"text": the pipeline `model.fit(texts, labels)` builds (`text_to_dataset`: tokenization,
packing and length bucketing in tf.data each epoch, beside the train step). "ids":
`model.fit(dataset)` over the same batches tokenized beforehand and cached in memory (what a
user gets by preparing ids once). Both run the same train function; the figure is the median
milliseconds per step over `--reps` epochs of each,
after one untimed epoch (tracing). Texts: Austen sentences (the embedded corpus), which span
short to long, so bucketing matters as it does on real data. Weights: a random encoder of
all-MiniLM-L6-v2's shape (speed does not depend on the weights).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _sentences(count: int) -> list[str]:
    from kbert.corpora import read_lines

    texts = []
    for line in read_lines("austen"):
        if len(line.split()) >= 3:
            texts.append(line.strip())
            if len(texts) == count:
                break
    return texts


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=512)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args(argv)

    import keras
    import tensorflow as tf

    from kbert.models.encoder import BertEncoder
    from kbert.tasks import BertClassifier
    from kbert.tokenization import BertTokenizer, train_vocabulary

    texts = _sentences(args.examples)
    labels = [i % 2 for i in range(len(texts))]
    vocab = train_vocabulary("austen", vocab_size=4000)
    keras.utils.set_random_seed(0)
    encoder = BertEncoder(vocab_size=vocab.size, hidden_size=384, num_layers=6, num_heads=12,
                          intermediate_size=1536, max_position_embeddings=512)
    model = BertClassifier(encoder, num_classes=2)
    model.set_tokenizer(BertTokenizer(vocab), args.max_length)
    model.compile(learning_rate=3e-5, total_steps=10_000)

    text_ds = model.text_to_dataset(texts, labels, args.batch, shuffle=True, seed=0)
    ids_ds = text_ds.cache()  # the same bucketed batches, tokenized once
    steps = sum(1 for _ in ids_ds)  # fills the cache
    model.fit(text_ds, epochs=1, verbose=0)
    model.fit(ids_ds, epochs=1, verbose=0)

    times = {"text": [], "ids": []}
    for _ in range(args.reps):
        for name in ("text", "ids"):
            start = time.perf_counter()
            model.fit(text_ds if name == "text" else ids_ds, epochs=1, verbose=0)
            times[name].append(1000 * (time.perf_counter() - start) / steps)
    median = {k: statistics.median(v) for k, v in times.items()}
    print(f"fine-tuning step, MiniLM-L6 shape, {len(texts)} Austen sentences, batch "
          f"{args.batch}, max length {args.max_length}, {steps} steps/epoch, medians of "
          f"{args.reps} epochs ({tf.__version__}, keras {keras.__version__})")
    print(f"  text (strings in fit) {median['text']:7.1f} ms/step")
    print(f"  ids  (cached batches) {median['ids']:7.1f} ms/step")
    print(f"  text / ids {median['text'] / median['ids']:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
