"""Files for the continued pre-training experiment on sentence polarity (docs/pretraining-notes.md).

    python experiments/continued_polarity_data.py OUT_DIR [--train-subset 1000]

Reads the Pang & Lee sentences fetched by `scripts/fetch_polarity.py` (cache only, no network
here), splits them as examples/finetune_polarity.py does (stratified 80/20, seed 0), and writes
    OUT_DIR/train.csv    the fine-tuning set: a fixed stratified subset (seed 0) of the training
                         split when --train-subset is given, else all of it
    OUT_DIR/test.csv     the test split (800 sentences)
    OUT_DIR/corpus.txt   every training-split sentence, unlabelled, one document each (a blank
                         line between): the continued pre-training corpus; no test sentence
"""

from __future__ import annotations

import argparse
import csv
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts"))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir")
    parser.add_argument("--train-subset", type=int, default=None)
    args = parser.parse_args(argv)

    from fetch_polarity import cached_path

    from kbert.tasks import load_labelled, stratified_split

    path = cached_path()
    if path is None:
        raise SystemExit("run `python scripts/fetch_polarity.py` first (the data is not cached)")
    data = load_labelled(str(path), header=False, text_column=1, label_column=0,
                         encoding="utf-8-sig")
    train, test = stratified_split(data, validation_fraction=0.2, seed=0)
    finetune = train
    if args.train_subset and args.train_subset < len(train):
        finetune = stratified_split(train, args.train_subset / len(train), seed=0)[1]
    os.makedirs(args.out_dir, exist_ok=True)
    for name, part in (("train.csv", finetune), ("test.csv", test)):
        with open(os.path.join(args.out_dir, name), "w", encoding="utf-8", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["text", "label"])
            writer.writerows((" ".join(text.split()), label)
                             for text, label in zip(part.texts, part.labels, strict=True))
    with open(os.path.join(args.out_dir, "corpus.txt"), "w", encoding="utf-8") as f:
        f.write("\n\n".join(" ".join(t.split()) for t in train.texts) + "\n")
    print(f"train.csv {len(finetune)}, test.csv {len(test)}, corpus.txt {len(train)} sentences")
    return 0


if __name__ == "__main__":
    sys.exit(main())
