"""`kbert classify`: label texts with a classifier written by `kbert finetune`.

    kbert classify --model runs/clf "a gripping, funny film" "dull and lifeless"
    kbert classify --model runs/clf --input texts.txt --output labels.jsonl
    kbert classify --model runs/nli --pair "A man is eating." "Someone eats."

Prints one JSON object per text: {"text", ("text_pair",) "label", "probabilities": {label: p}}.
"""

from __future__ import annotations

import json
import sys


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
    if args.input and args.texts:
        raise ValueError("give texts as arguments or with --input, not both")
    if args.input:
        from kbert.textfiles import read_lines

        return [line for line in read_lines(args.input) if line.strip()]
    if not args.texts:
        raise ValueError("no texts: pass them as arguments or with --input")
    return list(args.texts)


def run(args) -> int:
    texts = _texts(args)
    pairs = None
    if args.pair:
        if len(texts) % 2:
            raise ValueError(f"--pair needs an even number of texts, got {len(texts)}")
        texts, pairs = texts[0::2], texts[1::2]
    from kbert.tasks import BertClassifier

    model = BertClassifier.from_pretrained(args.model)
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
