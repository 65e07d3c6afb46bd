"""`kbert fill-mask`: predict the [MASK] tokens of sentences with a pre-trained model.

    kbert fill-mask "It is a truth universally [MASK] that a single man ..." --model runs/pretrain

Prints, for every [MASK] of every sentence, the top-k tokens with their probabilities. Whole
transformers and Google checkpoints work too (`kbert.load` imports their masked-LM heads).
"""

from __future__ import annotations


def add_arguments(parser) -> None:
    parser.add_argument("texts", nargs="+", metavar="TEXT", help='sentences containing "[MASK]"')
    parser.add_argument("--model", default="runs/pretrain",
                        help="a model with a masked-LM head: a `kbert pretrain` output directory, "
                             "a transformers BertForPreTraining / BertForMaskedLM directory or a "
                             "Google BERT checkpoint (default: runs/pretrain)")
    parser.add_argument("--top-k", type=int, default=5, help="predictions per mask (default 5)")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")


def run(args) -> int:
    # deferred: pulls in TensorFlow; a command loads it only when it runs (fast --help)
    from kbert.fill_mask import fill_mask, load_pretrainer  # noqa: PLC0415

    model, tokenizer = load_pretrainer(args.model)
    predictions = fill_mask(model, tokenizer, args.texts, args.top_k)
    for text, masks in zip(args.texts, predictions, strict=True):
        print(text)
        for n, predictions in enumerate(masks, 1):
            label = f"  [MASK] {n}:" if len(masks) > 1 else "  [MASK]:"
            print(label, "  ".join(f"{token} {prob:.3f}" for token, prob in predictions))
    return 0
