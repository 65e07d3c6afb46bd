"""Does the Austen NSP task pass 0.70 with far more compute than `kbert pretrain`'s 15 CPU minutes?

Two steps, because the lent GPU machine has JAX but no TensorFlow:

    python experiments/nsp_gpu_trial.py prepare --vocab runs/pretrain --output-dir .gpu/data
    KERAS_BACKEND=jax python experiments/nsp_gpu_trial.py train --data .gpu/data --seconds 300

`prepare` (TensorFlow, here) runs kbert's own pipeline: --epochs passes over the training
chapters, each with its own NSP pairs (seed + k), stored unmasked, and 3 drawings of the
held-out pairs, masked as `kbert pretrain` evaluates them. `train` (any Keras backend) trains a
`BertPretrainer` on batches drawn from those pairs, masked afresh for every batch with the same
rule (15% of the non-special tokens, at most --max-predictions, 80/10/10, random tokens by
unigram probability; a numpy copy of `kbert.data.masking`, since tf.data is not there), for
--seconds of wall time, then prints held-out MLM and NSP accuracy as JSON. The pairs repeat
every --epochs passes, so the held-out numbers, not the training ones, are what counts.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

SPECIAL = ("pad", "cls", "sep", "mask")


# ------------------------------------------------------------------ prepare (TensorFlow)
def prepare(args) -> None:
    from kbert.data import BatchOptions, MaskingOptions, PairOptions
    from kbert.data.masking import replacement_distribution
    from kbert.data.pipeline import pair_dataset, pretraining_dataset
    from kbert.tokenization.tokenizer import BertTokenizer
    from kbert.tokenization.vocab import Vocabulary

    vocab = Vocabulary.load(args.vocab)
    tokenizer = BertTokenizer(vocab, max_length=args.seq_length)
    os.makedirs(args.output_dir, exist_ok=True)
    ids, segments, labels = [], [], []
    for k in range(args.epochs):
        for batch in pair_dataset("austen", tokenizer, args.seq_length, seed=args.seed + k,
                                  split="train", dynamic=False).batch(1024):
            ids.append(batch["token_ids"].numpy().astype(np.uint16))
            segments.append(batch["segment_ids"].numpy().astype(np.uint8))
            labels.append(batch["next_sentence_labels"].numpy().astype(np.uint8))
        print(f"epoch {k}: {sum(len(i) for i in ids)} pairs", flush=True)
    heldout = {name: [] for name in ("token_ids", "segment_ids", "padding_mask",
                                     "masked_positions", "masked_ids", "masked_weights",
                                     "next_sentence_labels")}
    for k in range(3):
        for x, y in pretraining_dataset("austen", tokenizer, PairOptions(args.seq_length),
                                        MaskingOptions(args.max_predictions), BatchOptions(256),
                                        seed=args.seed + k, split="heldout"):
            for name, value in {**x, **y}.items():
                heldout[name].append(value.numpy())
    np.savez_compressed(
        os.path.join(args.output_dir, "data.npz"),
        train_token_ids=np.concatenate(ids), train_segment_ids=np.concatenate(segments),
        train_labels=np.concatenate(labels),
        replacement=replacement_distribution(vocab).astype(np.float64),
        special=np.array([getattr(vocab, f"{s}_id") for s in SPECIAL]),
        **{f"heldout_{k}": np.concatenate(v) for k, v in heldout.items()})
    print(f"{sum(len(i) for i in ids)} training pairs, "
          f"{sum(len(v) for v in heldout['next_sentence_labels'])} held-out pairs", flush=True)


# ------------------------------------------------------------------ train (any backend)
def mask_batch(token_ids, rng, replacement, special, max_predictions, rate=0.15):
    """Numpy MLM masking of one batch, kbert's rule: (masked ids, positions, targets, weights)."""
    pad, cls, sep, mask = special
    batch, seq = token_ids.shape
    candidate = (token_ids != pad) & (token_ids != cls) & (token_ids != sep)
    count = np.minimum(max_predictions,
                       np.maximum(1, np.round(candidate.sum(1) * rate).astype(int)))
    keys = np.where(candidate, rng.random((batch, seq)), 2.0)
    order = np.argsort(keys, axis=1)[:, :max_predictions]        # random candidates first
    slot = np.arange(max_predictions)[None, :]
    weights = (slot < count[:, None]).astype(np.float32)
    positions = np.where(weights > 0, order, 0).astype(np.int32)
    rows = np.arange(batch)[:, None]
    targets = np.where(weights > 0, token_ids[rows, positions], 0).astype(np.int32)
    action = rng.random((batch, max_predictions))
    random_ids = rng.choice(len(replacement), size=(batch, max_predictions), p=replacement)
    new = np.where(action < 0.8, mask, np.where(action < 0.9, random_ids, targets))
    masked = token_ids.astype(np.int32).copy()
    chosen = weights > 0
    masked[np.broadcast_to(rows, positions.shape)[chosen], positions[chosen]] = new[chosen]
    return masked, positions, targets, weights


def batches(data, batch_size, max_predictions, seed):
    import keras

    ids, segments, labels = (data["train_token_ids"], data["train_segment_ids"],
                             data["train_labels"])
    replacement, special = data["replacement"], data["special"]

    class Batches(keras.utils.PyDataset):
        def __init__(self):
            super().__init__(workers=8, use_multiprocessing=False)
            self.epoch = 0

        def __len__(self):
            return len(ids) // batch_size

        def __getitem__(self, index):
            rng = np.random.default_rng([seed, self.epoch, index])
            pick = rng.integers(0, len(ids), batch_size)
            token_ids = ids[pick].astype(np.int32)
            masked, positions, targets, weights = mask_batch(token_ids, rng, replacement,
                                                             special, max_predictions)
            x = {"token_ids": masked, "segment_ids": segments[pick].astype(np.int32),
                 "padding_mask": (token_ids != special[0]).astype(np.int32),
                 "masked_positions": positions}
            y = {"masked_ids": targets, "masked_weights": weights,
                 "next_sentence_labels": labels[pick].astype(np.int32)}
            return x, y

        def on_epoch_end(self):
            self.epoch += 1

    return Batches()


def fit_pretrainer(args, data, config, per_epoch: int | None = None):
    """Pre-train a BertPretrainer on `batches(data, ...)` until `args.steps` or `args.seconds`,
    whichever comes first. Returns (model, history, fit seconds, optimizer steps taken).
    `per_epoch` defaults to min(batches per pass, 500)."""
    import keras

    from kbert.models.pretrainer import BertPretrainer
    from kbert.training.optimizer import create_optimizer

    keras.utils.set_random_seed(args.seed)
    model = BertPretrainer.from_bert_config(config)
    model.compile(optimizer=create_optimizer(args.learning_rate, args.steps, 0.05,
                                             weight_decay=0.01))
    dataset = batches(data, args.batch_size, args.max_predictions, args.seed)
    deadline = time.time() + args.seconds

    class Deadline(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if time.time() > deadline:
                self.model.stop_training = True

    per_epoch = per_epoch or min(len(dataset), 500)
    start = time.time()
    history = model.fit(dataset, epochs=max(1, args.steps // per_epoch),
                        steps_per_epoch=per_epoch, callbacks=[Deadline()], verbose=2)
    fit_seconds = time.time() - start
    steps = int(keras.ops.convert_to_numpy(model.optimizer.iterations))
    return model, history, fit_seconds, steps


def train(args) -> dict:
    import keras

    from kbert.config import BertConfig

    data = dict(np.load(os.path.join(args.data, "data.npz")))
    vocab_size = len(data["replacement"])
    config = BertConfig.preset(args.preset, vocab_size=vocab_size,
                               max_position_embeddings=512, **json.loads(args.model))
    model, history, fit_seconds, steps = fit_pretrainer(args, data, config)

    held = {k[len("heldout_"):]: v for k, v in data.items() if k.startswith("heldout_")}
    names = ("token_ids", "segment_ids", "padding_mask", "masked_positions")
    mlm_hits = mlm_total = nsp_hits = 0.0
    for i in range(0, len(held["token_ids"]), 512):
        out = model({n: held[n][i:i + 512] for n in names})
        w = held["masked_weights"][i:i + 512]
        pred = np.argmax(np.asarray(out["mlm_logits"]), -1)
        mlm_hits += float((w * (pred == held["masked_ids"][i:i + 512])).sum())
        mlm_total += float(w.sum())
        nsp_pred = np.argmax(np.asarray(out["nsp_logits"]), -1)
        nsp_hits += float((nsp_pred == held["next_sentence_labels"][i:i + 512]).sum())
    result = {"config": config.to_dict(), "backend": keras.backend.backend(), "steps": steps,
              "batch_size": args.batch_size, "fit_seconds": round(fit_seconds, 1),
              "training_pairs": int(len(data["train_token_ids"])),
              "heldout_pairs": int(len(held["token_ids"])),
              "heldout_mlm_accuracy": mlm_hits / mlm_total,
              "heldout_nsp_accuracy": nsp_hits / len(held["token_ids"]),
              "train_nsp_accuracy": [round(v, 3) for v in history.history["nsp_accuracy"]],
              "train_mlm_accuracy": [round(v, 3) for v in history.history["mlm_accuracy"]]}
    print(json.dumps(result), flush=True)
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("prepare")
    p.add_argument("--vocab", required=True)
    p.add_argument("--output-dir", required=True)
    p.add_argument("--epochs", type=int, default=12)
    t = sub.add_parser("train")
    t.add_argument("--data", required=True)
    t.add_argument("--seconds", type=float, default=300)
    t.add_argument("--steps", type=int, default=20000, help="schedule length (and the cap)")
    t.add_argument("--batch-size", type=int, default=256)
    t.add_argument("--learning-rate", type=float, default=5e-4)
    t.add_argument("--preset", default="mini")
    t.add_argument("--model", default="{}", help="BertConfig overrides (JSON)")
    p.add_argument("--max-predictions", type=int, default=20)
    t.add_argument("--max-predictions", type=int, default=20)
    return run_steps(parser, p, t, prepare, train, argv)


def run_steps(parser, prepare_parser, train_parser, prepare_fn, train_fn, argv) -> int:
    """The shared end of the GPU trials' command lines: common options, then run the step
    asked for; `train --output FILE` also writes the JSON result there."""
    train_parser.add_argument("--output", help="also write the JSON result here")
    for sub in (prepare_parser, train_parser):
        sub.add_argument("--seq-length", type=int, default=128)
        sub.add_argument("--seed", type=int, default=12345)
    args = parser.parse_args(argv)
    if args.command == "prepare":
        prepare_fn(args)
        return 0
    result = train_fn(args)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
