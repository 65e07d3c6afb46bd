"""Does pre-training transfer to sentence polarity once it gets far more compute than 2 CPU cores?

The transfer experiment of `experiments/transfer_experiment.py` (pre-trained encoder vs the same
architecture from random initialisation, same fine-tuning recipe, several seeds) with the
pre-training done on a GPU. Two steps, because the lent GPU machine has JAX but no TensorFlow:

    python experiments/transfer_gpu_trial.py prepare --output-dir .gpu/transfer
    KERAS_BACKEND=jax python experiments/transfer_gpu_trial.py train --data .gpu/transfer

`prepare` (TensorFlow, here) trains an 8,000-entry vocabulary on the 1,500 unlabelled movie
reviews (`scripts/fetch_polarity.py --reviews`, none of the labelled sentences), makes --epochs
passes of NSP pairs from them with kbert's pipeline, and tokenizes the Pang & Lee sentences
with the fixed seeded 80/20 split of the examples. `train` pre-trains a `BertPretrainer` for
--seconds on those pairs (masked afresh per batch, `nsp_gpu_trial.mask_batch`), then fine-tunes
`BertClassifier(pooling="mean")` from its encoder and from a random one, for every seed and
learning rate, and prints each test accuracy as a JSON line and the summary last.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "examples"))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts"))


def prepare(args) -> None:
    from fetch_polarity import fetch_reviews
    from finetune_polarity import load_data

    from kbert.data.masking import replacement_distribution
    from kbert.data.pipeline import pair_dataset
    from kbert.tasks.data import stratified_split
    from kbert.tokenization.tokenizer import BertTokenizer
    from kbert.tokenization.vocab_training import train_vocabulary

    os.makedirs(args.output_dir, exist_ok=True)
    reviews = str(fetch_reviews(None))
    vocab = train_vocabulary(reviews, vocab_size=8000, output_dir=args.output_dir)
    tokenizer = BertTokenizer(vocab, max_length=args.seq_length)
    ids, segments, labels = [], [], []
    for k in range(args.epochs):
        for batch in pair_dataset(reviews, tokenizer, args.seq_length, seed=args.seed + k,
                                  split="all", dynamic=False).batch(1024):
            ids.append(batch["token_ids"].numpy().astype(np.uint16))
            segments.append(batch["segment_ids"].numpy().astype(np.uint8))
            labels.append(batch["next_sentence_labels"].numpy().astype(np.uint8))
    data, _ = load_data(False, None)
    train, test = stratified_split(data, 0.2, seed=0)  # experiments/transfer_experiment.py's split
    classes = sorted(set(data.labels))
    arrays = {}
    for name, part in (("train", train), ("test", test)):
        packed = tokenizer(part.texts, max_length=args.max_length)
        for key, value in packed.items():
            arrays[f"{name}_{key}"] = value.numpy()
        arrays[f"{name}_labels"] = np.array([classes.index(y) for y in part.labels], np.int32)
    np.savez_compressed(
        os.path.join(args.output_dir, "data.npz"),
        train_token_ids=np.concatenate(ids), train_segment_ids=np.concatenate(segments),
        train_labels=np.concatenate(labels),
        replacement=replacement_distribution(vocab).astype(np.float64),
        special=np.array([vocab.pad_id, vocab.cls_id, vocab.sep_id, vocab.mask_id]),
        **{f"polarity_{k}": v for k, v in arrays.items()})
    print(f"{sum(len(i) for i in ids)} pre-training pairs; polarity {len(train.texts)} train / "
          f"{len(test.texts)} test sentences", flush=True)


def pretrain(args, data, config):
    from nsp_gpu_trial import fit_pretrainer

    model, history, _, steps = fit_pretrainer(args, data, config, per_epoch=500)
    return model.encoder, {"steps": steps,
                           "train_mlm_accuracy": history.history["mlm_accuracy"][-1],
                           "train_nsp_accuracy": history.history["nsp_accuracy"][-1]}


def fine_tune(encoder_weights, config, data, arm: str, seed: int, lr: float, args) -> float:
    import keras

    from kbert.models.encoder import BertEncoder
    from kbert.tasks import BertClassifier

    keras.utils.set_random_seed(seed)
    encoder = BertEncoder.from_bert_config(config, name="encoder")
    if arm == "pretrained":
        encoder.set_weights(encoder_weights)
    model = BertClassifier(encoder, num_classes=2, pooling="mean")
    names = ("token_ids", "segment_ids", "padding_mask")
    x = {n: data[f"polarity_train_{n}"] for n in names}
    y = data["polarity_train_labels"]
    steps = args.finetune_epochs * (len(y) // args.finetune_batch)
    model.compile(learning_rate=lr, total_steps=steps)
    model.fit(x, y, epochs=args.finetune_epochs, batch_size=args.finetune_batch, verbose=0)
    logits = model.predict({n: data[f"polarity_test_{n}"] for n in names}, batch_size=256,
                           verbose=0)
    return float((np.argmax(logits, -1) == data["polarity_test_labels"]).mean())


def train(args) -> dict:
    from kbert.config import BertConfig

    data = dict(np.load(os.path.join(args.data, "data.npz")))
    config = BertConfig.preset(args.preset, vocab_size=len(data["replacement"]),
                               max_position_embeddings=512)
    start = time.time()
    encoder, pretraining = pretrain(args, data, config)
    pretraining["seconds"] = round(time.time() - start, 1)
    print(json.dumps({"pretraining": pretraining}), flush=True)
    weights = encoder.get_weights()
    runs = []
    for lr in args.learning_rates:
        for seed in args.seeds:
            for arm in ("pretrained", "random"):
                accuracy = fine_tune(weights, config, data, arm, seed, lr, args)
                runs.append({"arm": arm, "seed": seed, "learning_rate": lr,
                             "test_accuracy": accuracy})
                print(json.dumps(runs[-1]), flush=True)
    summary = {}
    for lr in args.learning_rates:
        for arm in ("pretrained", "random"):
            acc = [r["test_accuracy"] for r in runs if r["arm"] == arm and r["learning_rate"] == lr]
            summary[f"{arm} lr {lr:g}"] = {"mean": statistics.mean(acc), "min": min(acc),
                                           "max": max(acc)}
    result = {"config": config.to_dict(), "pretraining": pretraining, "runs": runs,
              "summary": summary}
    print(json.dumps({"summary": summary}), flush=True)
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("prepare")
    p.add_argument("--output-dir", required=True)
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--max-length", type=int, default=64, help="polarity sentences")
    t = sub.add_parser("train")
    t.add_argument("--data", required=True)
    t.add_argument("--seconds", type=float, default=120)
    t.add_argument("--steps", type=int, default=8000)
    t.add_argument("--batch-size", type=int, default=256)
    t.add_argument("--learning-rate", type=float, default=1e-3)
    t.add_argument("--preset", default="mini")
    t.add_argument("--max-predictions", type=int, default=20)
    t.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    t.add_argument("--learning-rates", type=float, nargs="+", default=[1e-4, 5e-4])
    t.add_argument("--finetune-epochs", type=int, default=3)
    t.add_argument("--finetune-batch", type=int, default=32)
    from nsp_gpu_trial import run_steps

    return run_steps(parser, p, t, prepare, train, argv)


if __name__ == "__main__":
    sys.exit(main())
