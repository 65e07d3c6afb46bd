"""Does pre-training transfer? Fine-tune the same architecture on sentence polarity twice per
seed: from a `kbert pretrain` encoder, and from random initialisation.

    kbert pretrain --output-dir runs/pretrain                 # the encoder (Austen, MLM + NSP)
    python experiments/transfer_experiment.py --pretrained runs/pretrain --seeds 0 1 2
    python experiments/transfer_experiment.py --fast             # smoke run: tiny pretrain, 1 seed

Both arms share everything but the encoder's starting weights: the vocabulary of the run dir,
the BertConfig, the Pang & Lee data and its fixed seeded 80/20 split (the one of
examples/finetune_polarity.py), the fine-tuning recipe (AdamW, warmup + linear decay), epochs,
batch size and max length. A seed sets the classifier initialisation, dropout and data order,
and for the random arm the encoder initialisation too. Reported: test accuracy per run, mean,
standard deviation and range per arm, and whether the gap of the means is larger than the
seed-to-seed spread (the larger of the two arms' max - min).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import pathlib
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "examples"))

from finetune_polarity import load_data  # noqa: E402  (same data, same split)


def tiny_pretrain(output_dir: str) -> str:
    """A few pre-training steps on one novel: only for --fast (checks the plumbing)."""
    from kbert.corpora import austen_files
    from kbert.training.pretrain import PretrainConfig, pretrain

    files = [f for f in austen_files() if "persuasion" in str(f)]
    pretrain(PretrainConfig(corpus=files, output_dir=output_dir, vocab_size=2000,
                            model={"hidden_size": 64, "num_layers": 2, "num_heads": 2,
                                   "intermediate_size": 128},
                            seq_length=64, batch_size=16, max_predictions=10, steps=10,
                            steps_per_epoch=10, checkpoint_every=10, eval_batches=1,
                            examples=0, verbose=0), log=lambda *a, **k: None)
    return output_dir


def fine_tune(arm: str, run_dir: str, train, test, seed: int, args) -> dict:
    import keras

    from kbert.models.encoder import BertEncoder
    from kbert.tasks import BertClassifier, load_encoder

    keras.utils.set_random_seed(seed)
    pretrained, tokenizer = load_encoder(run_dir, hidden_dropout=args.dropout,
                                         attention_dropout=args.dropout)
    if arm == "random":
        encoder = BertEncoder.from_bert_config(pretrained.bert_config, name="encoder")
    else:
        encoder = pretrained
    clf = BertClassifier(encoder, num_classes=2, pooling=args.pooling,
                         freeze_layers=args.freeze_layers)
    clf.set_tokenizer(tokenizer, args.max_length)
    start = time.time()
    clf.fit_texts(train, epochs=args.epochs, batch_size=args.batch_size,
                  learning_rate=args.learning_rate, layerwise_lr_decay=args.layerwise_lr_decay,
                  seed=seed, verbose=0)
    accuracy = clf.evaluate_texts(test, batch_size=64).accuracy
    trainable = sum(math.prod(w.shape) for w in clf.trainable_weights)
    return {"arm": arm, "seed": seed, "test_accuracy": accuracy,
            "trainable_parameters": int(trainable), "parameters": int(clf.count_params()),
            "seconds": round(time.time() - start, 1)}


def summarize(runs: list[dict]) -> dict:
    out = {}
    for arm in ("pretrained", "random"):
        acc = [r["test_accuracy"] for r in runs if r["arm"] == arm]
        out[arm] = {"accuracies": acc, "mean": statistics.mean(acc),
                    "std": statistics.stdev(acc) if len(acc) > 1 else 0.0,
                    "min": min(acc), "max": max(acc)}
    spread = max(out[a]["max"] - out[a]["min"] for a in ("pretrained", "random"))
    gap = out["pretrained"]["mean"] - out["random"]["mean"]
    out.update(gap=gap, spread=spread, transfer_beats_spread=gap > spread,
               worst_pretrained_beats_best_random=out["pretrained"]["min"] > out["random"]["max"])
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pretrained", default="runs/pretrain",
                        help="a kbert pretrain output directory (encoder.keras + vocab.txt)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=5e-4,
                        help="peak lr (tiny models and random init need more than BERT-base)")
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--dropout", type=float, default=None,
                        help="hidden and attention dropout while fine-tuning (default: the "
                             "pre-training run's, 0.0 for `kbert pretrain`'s default)")
    parser.add_argument("--pooling", default="pooled", choices=["pooled", "cls", "mean"],
                        help="the text vector of the classifier (see BertClassifier)")
    parser.add_argument("--freeze-layers", type=int, default=None,
                        help="both arms: keep the embeddings and blocks 0..N-1 fixed (0: the "
                             "embeddings only; the number of layers: the whole encoder, i.e. "
                             "a head on fixed features)")
    parser.add_argument("--layerwise-lr-decay", type=float, default=1.0,
                        help="both arms: each layer below the top learns this factor slower "
                             "(embeddings slowest); 1.0 = one rate for all")
    parser.add_argument("--train-size", type=int, default=None,
                        help="fine-tune on a stratified subset of this many training sentences "
                             "(the same subset for both arms; the test side is unchanged)")
    parser.add_argument("--cache-dir", default=None)
    parser.add_argument("--output", default="runs/transfer.json")
    parser.add_argument("--fast", action="store_true", help="tiny pretrain, 1 seed, tiny data")
    args = parser.parse_args(argv)

    from kbert.tasks import stratified_split

    started, load_before = time.time(), os.getloadavg()
    data, source = load_data(args.fast, args.cache_dir)
    train, test = stratified_split(data, 0.2, seed=0)
    if args.fast:
        args.seeds, args.epochs = args.seeds[:1], 1
        train = stratified_split(train, min(0.5, 32 / len(train)), seed=0)[1]
        test = stratified_split(test, min(0.5, 16 / len(test)), seed=0)[1]
    if args.train_size is not None:  # after --fast's own subset, so the smoke run covers it
        if not 2 <= args.train_size < len(train):
            sys.exit(f"--train-size must be in 2..{len(train) - 1}, got {args.train_size}")
        train = stratified_split(train, args.train_size / len(train), seed=0)[1]
        if len(train) != args.train_size:  # per-class rounding: say what was used
            print(f"--train-size {args.train_size}: the stratified subset has {len(train)}")
    run_dir = args.pretrained
    scratch = None
    if args.fast:
        scratch = tempfile.TemporaryDirectory(prefix="kbert-transfer-")
        run_dir = tiny_pretrain(scratch.name)
    elif not os.path.isfile(os.path.join(run_dir, "encoder.keras")):
        sys.exit(f"{run_dir} holds no encoder.keras: run `kbert pretrain --output-dir {run_dir}` "
                 f"first (or pass --pretrained DIR)")
    print(f"data: {source}: {len(train)} train / {len(test)} test; encoder: {run_dir}")

    runs = []
    for seed in args.seeds:
        for arm in ("pretrained", "random"):
            result = fine_tune(arm, run_dir, train, test, seed, args)
            runs.append(result)
            print(f"seed {seed} {arm:>10}: test accuracy {result['test_accuracy']:.4f} "
                  f"({result['seconds']:.0f} s)", flush=True)
    summary = summarize(runs)
    for arm in ("pretrained", "random"):
        s = summary[arm]
        print(f"{arm:>10}: mean {s['mean']:.4f}  std {s['std']:.4f}  "
              f"range {s['min']:.4f}..{s['max']:.4f}")
    print(f"gap of the means {summary['gap']:+.4f}; seed-to-seed spread {summary['spread']:.4f};"
          f" gap > spread: {summary['transfer_beats_spread']}")
    summary.update(runs=runs, settings=vars(args), data=source, run_dir=run_dir,
                   train_examples=len(train), test_examples=len(test),
                   wall_seconds=round(time.time() - started, 1), cpu_count=os.cpu_count(),
                   loadavg_before=load_before, loadavg_after=os.getloadavg())
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    with open(args.output, "w") as f:
        json.dump(summary, f, indent=2)
    print(f"wall {summary['wall_seconds']:.0f} s; written to {args.output}")
    if scratch is not None:
        scratch.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
