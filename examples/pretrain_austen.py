"""Pre-train a small BERT on the embedded Jane Austen novels, then fill in some blanks.

    python examples/pretrain_austen.py         # the `kbert pretrain` default run (~10 min, 2 cores)
    python examples/pretrain_austen.py --fast  # a tiny model on a few chapters (< 1 min)

The same job as `kbert pretrain`, through the Python API: a PretrainConfig, `pretrain()`, then
`fill_mask` with the saved model.
"""

from __future__ import annotations

import argparse
import os
import re

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from kbert.commands.pretrain import report
from kbert.data.corpus import is_heldout, iter_documents
from kbert.fill_mask import fill_mask, load_pretrainer
from kbert.tokenization.vocab import SPECIAL_TOKENS, Vocabulary
from kbert.training.pretrain import PretrainConfig, pretrain


def fast_corpus(path: str, sentences: int = 4) -> str:
    """The first sentences of a few dozen chapters, one sentence per line (format "sentences"),
    enough of them for two held-out documents (the split hashes "<file name>:<k>")."""
    held = 0
    with open(path, "w", encoding="utf-8") as f:
        for k, doc in enumerate(iter_documents("austen")):
            f.write("\n".join(doc.sentences[:sentences]) + "\n\n")
            held += is_heldout(f"{os.path.basename(path)}:{k}")
            if held >= 2 and k >= 20:
                break
    return path


def fast_vocab(corpus: str, directory: str) -> str:
    """Whole words of the corpus as a vocabulary (WordPiece learning takes ~1 min; --fast skips
    it)."""
    text = open(corpus, encoding="utf-8").read().lower()
    words = re.findall(r"[a-z]+|[^\sa-z]", text)
    counts: dict[str, int] = {}
    for w in words:
        counts[w] = counts.get(w, 0) + 1
    letters = sorted({c for w in counts for c in w if c.isalpha()})
    tokens = list(dict.fromkeys(list(SPECIAL_TOKENS) + sorted(counts)
                                + [f"##{c}" for c in letters]))
    Vocabulary(tokens, [counts.get(t, 1) for t in tokens]).save(directory)
    return directory


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fast", action="store_true", help="tiny model, a few steps")
    parser.add_argument("--output-dir", default="runs/pretrain_austen")
    args = parser.parse_args()

    if args.fast:
        os.makedirs(args.output_dir, exist_ok=True)
        corpus = fast_corpus(os.path.join(args.output_dir, "corpus.txt"))
        config = PretrainConfig(
            corpus=corpus, output_dir=args.output_dir,
            vocab=fast_vocab(corpus, os.path.join(args.output_dir, "vocab")),
            model={"num_layers": 1, "hidden_size": 32, "num_heads": 2, "intermediate_size": 64},
            seq_length=32, batch_size=8, max_predictions=5, steps=30, steps_per_epoch=15,
            eval_batches=2, examples=1, verbose=2)
    else:
        config = PretrainConfig(output_dir=args.output_dir)  # the `kbert pretrain` defaults

    summary = pretrain(config)
    print(report(summary))

    model, tokenizer = load_pretrainer(args.output_dir)
    text = "It is a truth universally acknowledged, that a single man in possession of a good " \
           "fortune, must be in want of a [MASK]."
    for token, prob in fill_mask(model, tokenizer, [text], top_k=5)[0][0]:
        print(f"  {token:>12s}  {prob:.3f}")


if __name__ == "__main__":
    main()
