"""`kbert classify`: label texts with a classifier written by `kbert finetune`.

    kbert classify --model runs/clf "a gripping, funny film" "dull and lifeless"
    kbert classify --model runs/clf --input texts.txt --output labels.jsonl
    kbert classify --model runs/nli --pair "A man is eating." "Someone eats."

Prints one JSON object per text: {"text", ("text_pair",) "label", "probabilities": {label: p}}.
"""

from __future__ import annotations

import json
import sys

from kbert.textfiles import command_texts


def add_arguments(parser) -> None:
    parser.add_argument("--model", required=True, help="a directory written by kbert finetune")
    parser.add_argument("texts", nargs="*", help="texts to classify")
    parser.add_argument("--input", help="file with one text per line ('-' = standard input)")
    parser.add_argument("--pair", action="store_true",
                        help="sentence-pair model: texts alternate first, second, first, ...")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--output", help="write JSONL here instead of standard output")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")


def _texts(args) -> list[str]:
    return command_texts(args.texts, args.input, skip_blank=True)


def load_classifier(source: str):
    """The fine-tuned BertClassifier of `source`, or one line saying why there is none."""
    # deferred: pulls in TensorFlow; a command loads it only when it runs (fast --help)
    from kbert.loading import load  # noqa: PLC0415

    loaded = load(source)
    model = loaded.model
    if type(model).__name__ != "BertClassifier":
        what = (f"a fine-tuned {type(model).__name__}" if loaded.is_task
                else f"a {loaded.kind.replace('_', ' ')} with no classifier head")
        raise ValueError(f"{source} is {what}: classify needs a classifier; train one with "
                         f"`kbert finetune --model {source} --train DATA.csv --output-dir DIR` "
                         f"and pass --model DIR")
    if not model.trained:
        raise ValueError(f"{source}: its classifier head was never trained (saved before any "
                         f"fit), so its labels would be noise; fine-tune it with kbert finetune")
    return model


def run(args) -> int:
    texts = _texts(args)
    pairs = None
    if args.pair:
        if len(texts) % 2:
            raise ValueError(f"--pair needs an even number of texts, got {len(texts)}")
        texts, pairs = texts[0::2], texts[1::2]
    model = load_classifier(args.model)
    predictions = model.predict_texts(texts, pairs, batch_size=args.batch_size)
    out = open(args.output, "w", encoding="utf-8") if args.output else sys.stdout
    try:
        for i, record in enumerate(predictions.to_records()):
            row = {"text": texts[i]}
            if pairs is not None:
                row["text_pair"] = pairs[i]
            row.update(record)
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
    finally:
        if out is not sys.stdout:
            out.close()
    return 0
