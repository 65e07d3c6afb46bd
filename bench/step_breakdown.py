"""Where a kbert pre-training step's time goes: the step and its parts, timed in one process.

    python bench/step_breakdown.py                       # small model, 32 x 128 (README numbers)
    python bench/step_breakdown.py --model base --batch 8
    python bench/step_breakdown.py --model tiny --seq 16 --batch 2 --steps 1   # smoke run

Rows (median ms per step over --steps timed steps, after 2 untimed ones, for each of --reps
interleaved repetitions; the same random batch as bench/workloads.py):
- the bench step: `train_on_batch` with the reference AdamW + global-norm clipping, dropout 0.1;
- the same with dropout 0 (what dropout costs) and with plain SGD (what AdamW + clipping cost);
- forward + loss only, and forward + backward with no optimizer (a `tf.function` around the
  model and `compute_loss`);
- the matmul floor: only the matmuls of the step with their real shapes
  (`workloads.matmul_floor`), what no implementation on TensorFlow can beat.
Prints one JSON line per row at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.dirname(HERE)]

import workloads  # noqa: E402  (bench/, after the path insert; imports no TensorFlow itself)


def _median_wall(fn, steps: int) -> float:
    return statistics.median(workloads._timed(fn, steps, warmup=2)["wall_s"])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="small", help="small | base | tiny | L,H,A,I[,V]")
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--reps", type=int, default=2)
    args = parser.parse_args(argv)

    import keras
    import tensorflow as tf

    spec = {"kind": "train", "system": "kbert", "model": args.model, "seq": args.seq,
            "batch": args.batch, "of": "train", "steps": args.steps, "warmup": 2}
    workloads._keras_setup(spec)  # BENCH_THREADS, float32 policy, seed: as every bench process
    os.environ.pop("BENCH_THREADS", None)  # set once; the floor's setup must not set it again
    batch = {k: tf.constant(v) for k, v in workloads.random_batch(spec).items()}
    x = {k: batch[k] for k in ("token_ids", "segment_ids", "padding_mask", "masked_positions")}
    y = {k: batch[k] for k in ("masked_ids", "masked_weights", "next_sentence_labels")}

    # The bench's own model and optimizer (workloads._kbert_pretrainer), and two variants of it.
    bench = workloads._kbert_pretrainer(spec, keras)
    no_dropout = workloads._kbert_pretrainer(
        dict(spec, config={"hidden_dropout": 0.0, "attention_dropout": 0.0}), keras)
    sgd = workloads._kbert_pretrainer(spec, keras)
    sgd.compile(optimizer=keras.optimizers.SGD(1e-4))
    models = {"step: AdamW + clipping, dropout 0.1 (the bench step)": bench,
              "step: AdamW + clipping, dropout 0": no_dropout,
              "step: SGD, dropout 0.1": sgd}

    @tf.function
    def forward():
        return bench.compute_loss(x, y, bench(x, training=True))

    @tf.function
    def forward_backward():
        with tf.GradientTape() as tape:
            loss = bench.compute_loss(x, y, bench(x, training=True))
        return tape.gradient(loss, bench.trainable_variables)

    rows: dict[str, list[float]] = {}
    for _ in range(args.reps):
        for name, model in models.items():
            rows.setdefault(name, []).append(
                _median_wall(lambda m=model: m.train_on_batch(x, y), args.steps))
        rows.setdefault("forward + loss", []).append(_median_wall(forward, args.steps))
        rows.setdefault("forward + backward, no optimizer", []).append(
            _median_wall(forward_backward, args.steps))
        floor = workloads.matmul_floor(dict(spec, system="tf"))
        rows.setdefault("matmuls of the step only (floor)", []).append(
            statistics.median(floor["wall_s"]))

    print(f"{args.model} model, batch {args.batch} x seq {args.seq}; median ms per step, "
          f"one value per repetition:")
    for name, values in rows.items():
        print(f"  {name:55s} " + "  ".join(f"{v * 1e3:7.0f}" for v in values))
    for name, values in rows.items():
        print(json.dumps({"row": name, "ms": [round(v * 1e3, 1) for v in values]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
