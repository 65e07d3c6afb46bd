"""Do an encoder's frozen features carry sentence polarity? A linear probe, pretrained vs random.

The transfer experiment (experiments/transfer_experiment.py) fine-tunes everything; this script
asks the narrower question whether pre-training put polarity information into the features at
all, with no fine-tuning:

    python experiments/polarity_probe.py --pretrained runs/pretrain        # ~1 min on 2 cores

For the encoder of a `kbert pretrain` run and for the same architecture with random weights
(seeded), each Pang & Lee sentence (the seeded 80/20 split of examples/finetune_polarity.py, 64
tokens) becomes one vector: the mean over its real tokens concatenated with the [CLS] vector,
taken from the embedding layer and from the last layer. A ridge classifier (features
standardised on the training side; the penalty picked from 1, 10, 100, 1000 by 5-fold
cross-validation on the training side) is fitted on the 3,200 training sentences and scored on
the 800 test sentences. Prints the test accuracy per encoder and layer.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "examples"))

import numpy as np  # noqa: E402

PENALTIES = (1.0, 10.0, 100.0, 1000.0)


def features(encoder, tokenizer, texts, layer: int, max_length: int = 64) -> np.ndarray:
    """[len(texts), 2H]: mean over real tokens ++ [CLS], from hidden state `layer`."""
    rows = []
    for begin in range(0, len(texts), 128):
        packed = {k: v.numpy() for k, v in
                  tokenizer(texts[begin:begin + 128], max_length=max_length).items()}
        hidden = np.asarray(encoder(packed, output_hidden_states=True)["hidden_states"][layer])
        mask = packed["padding_mask"][..., None].astype(np.float32)
        rows.append(np.concatenate([(hidden * mask).sum(1) / mask.sum(1), hidden[:, 0]], -1))
    return np.concatenate(rows)


def _ridge(x, y, penalty):
    return np.linalg.solve(x.T @ x + penalty * np.eye(x.shape[1]), x.T @ (2.0 * y - 1.0))


def probe(train_x, train_y, test_x, test_y, folds: int = 5) -> float:
    """Test accuracy of a ridge classifier whose penalty 5-fold CV on the training side picks."""
    mean, std = train_x.mean(0), train_x.std(0) + 1e-6
    train_x, test_x = (train_x - mean) / std, (test_x - mean) / std
    fold = np.arange(len(train_x)) % folds

    def cv_accuracy(penalty):
        hits = 0
        for k in range(folds):
            w = _ridge(train_x[fold != k], train_y[fold != k], penalty)
            hits += np.sum((train_x[fold == k] @ w > 0) == train_y[fold == k])
        return hits / len(train_x)

    penalty = max(PENALTIES, key=cv_accuracy)
    w = _ridge(train_x, train_y, penalty)
    return float(np.mean((test_x @ w > 0) == test_y))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pretrained", default="runs/pretrain",
                        help="a kbert pretrain output directory (encoder.keras + vocab.txt)")
    parser.add_argument("--seed", type=int, default=0, help="the random encoder's seed")
    parser.add_argument("--cache-dir", default=None)
    args = parser.parse_args(argv)

    import keras
    from finetune_polarity import load_data

    from kbert.models.encoder import BertEncoder
    from kbert.tasks import load_encoder, stratified_split

    data, source = load_data(False, args.cache_dir)
    train, test = stratified_split(data, 0.2, seed=0)
    positive = str(sorted({str(label) for label in data.labels})[-1])  # "1" of {-1, 1}
    train_y = np.array([str(label) == positive for label in train.labels], np.float64)
    test_y = np.array([str(label) == positive for label in test.labels], np.float64)
    pretrained, tokenizer = load_encoder(args.pretrained)
    keras.utils.set_random_seed(args.seed)
    random_encoder = BertEncoder.from_bert_config(pretrained.bert_config, name="encoder")
    print(f"data: {source}: {len(train)} train / {len(test)} test; encoder: {args.pretrained}")
    for name, encoder in (("pretrained", pretrained), ("random", random_encoder)):
        for layer, label in ((0, "embeddings"), (-1, "last layer")):
            accuracy = probe(features(encoder, tokenizer, train.texts, layer), train_y,
                             features(encoder, tokenizer, test.texts, layer), test_y)
            print(f"{name:>10} {label:>10}: probe test accuracy {accuracy:.4f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
