"""Short pre-training trials on the NSP plateau: what moves held-out NSP accuracy?

The default run's setup (embedded corpus, 64 x 64 tokens, AdamW lr 2e-3, no dropout) trained
for --steps with the total loss `mlm_weight * MLM + nsp_weight * NSP` and any BertConfig
overrides, then scored by kind on 3 drawings of the held-out pairs (unmasked; see
`nsp_novel_bound.py --run`). The README "Pre-training" reports these runs:

    python experiments/nsp_trials.py --steps 1600 --output-dir /tmp/base          # reference
    python experiments/nsp_trials.py --steps 1600 --mlm-weight 0 --output-dir /tmp/nsp-only
    python experiments/nsp_trials.py --steps 1600 --nsp-weight 4 --output-dir /tmp/nsp-x4
    python experiments/nsp_trials.py --steps 1600 --model '{"num_heads": 8}' --output-dir /tmp/a8
    python experiments/nsp_trials.py --steps 1600 --seq-length 128 --batch-size 32 \\
        --max-predictions 20 --learning-rate 1e-3 --output-dir /tmp/s128

The weights are an experiment's knob, not a kbert option: BertPretrainer's loss is MLM + NSP.
Pass --vocab to reuse a vocabulary (else one is trained into the output dir, ~25-70 s).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def weighted_pretrainer(mlm_weight: float, nsp_weight: float):
    """A BertPretrainer subclass whose loss is mlm_weight * MLM + nsp_weight * NSP."""
    from keras import ops

    from kbert.models.pretrainer import BertPretrainer

    class WeightedPretrainer(BertPretrainer):
        def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
            total = super().compute_loss(x, y, y_pred, sample_weight, training)  # MLM + NSP
            labels = self._labels(x, y, sample_weight)
            nsp_labels = ops.cast(ops.reshape(labels["next_sentence_labels"], (-1,)), "int32")
            nsp = ops.mean(ops.sparse_categorical_crossentropy(
                nsp_labels, y_pred["nsp_logits"], from_logits=True))
            return mlm_weight * (total - nsp) + nsp_weight * nsp

    return WeightedPretrainer


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", required=True)
    parser.add_argument("--vocab")
    parser.add_argument("--steps", type=int, default=1600)
    parser.add_argument("--seq-length", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--max-predictions", type=int, default=10)
    parser.add_argument("--learning-rate", type=float, default=2e-3)
    parser.add_argument("--mlm-weight", type=float, default=1.0)
    parser.add_argument("--nsp-weight", type=float, default=1.0)
    parser.add_argument("--model", default="{}", help="BertConfig overrides (JSON)")
    args = parser.parse_args(argv)

    import keras
    from nsp_novel_bound import run_breakdown

    from kbert.tokenization.tokenizer import BertTokenizer
    from kbert.training.optimizer import create_optimizer
    from kbert.training.pretrain import (
        PretrainConfig,
        build_datasets,
        model_config,
        prepare_vocabulary,
        save_models,
    )

    config = PretrainConfig(output_dir=args.output_dir, vocab=args.vocab, steps=args.steps,
                            seq_length=args.seq_length, batch_size=args.batch_size,
                            max_predictions=args.max_predictions,
                            learning_rate=args.learning_rate, model=json.loads(args.model))
    os.makedirs(config.output_dir, exist_ok=True)
    keras.utils.set_random_seed(config.seed)
    vocab = prepare_vocabulary(config)
    bert_config = model_config(config, vocab.size)
    train, _ = build_datasets(config, BertTokenizer(vocab, max_length=config.seq_length))
    model = weighted_pretrainer(args.mlm_weight, args.nsp_weight).from_bert_config(bert_config)
    model.compile(optimizer=create_optimizer(config.learning_rate, config.total_steps,
                                             config.warmup, weight_decay=config.weight_decay),
                  jit_compile=True)
    start = time.perf_counter()
    history = model.fit(train, epochs=config.epochs, steps_per_epoch=config.steps_per_epoch,
                        verbose=2)
    fit_seconds = time.perf_counter() - start
    save_models(model, config.output_dir)

    kinds = run_breakdown(config.output_dir, config.seq_length)
    pairs = sum(kinds.values(), [])
    result = {"args": vars(args), "fit_seconds": round(fit_seconds, 1),
              "heldout_nsp_accuracy": sum(pairs) / len(pairs), "heldout_pairs": len(pairs),
              "by_kind": {k: [sum(v) / max(len(v), 1), len(v)] for k, v in kinds.items()},
              "train_mlm_accuracy": [round(v, 3) for v in history.history["mlm_accuracy"]],
              "train_nsp_accuracy": [round(v, 3) for v in history.history["nsp_accuracy"]]}
    with open(os.path.join(config.output_dir, "trial.json"), "w", encoding="utf-8") as f:
        json.dump(result, f, indent=1)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
