"""How much of NSP on the Austen corpus can "which novel is this from?" explain?

On the embedded corpus most NotNext partners come from another novel, so a reader that knew the
novel of each segment would get most pairs right. This script measures how well the novel of a
segment can be told from its words alone, and what NSP accuracy that buys, as a function of the
segment length:

    python experiments/nsp_novel_bound.py            # 2,000 held-out pairs per length, ~30 s

A multinomial naive Bayes over lower-cased words (add-0.1 smoothing) is fitted on the training
chapters (`kbert.data.corpus`, split="train"). Pairs come from the held-out chapters, as in
`kbert pretrain`'s evaluation: A = L consecutive words, B = the next L words (IsNext) or L words
from a random point of another held-out chapter (NotNext), 50/50. Two predictors:
  - argmax rule: IsNext when the most probable novels of A and B agree (no tuning);
  - best threshold on P(same novel) = sum_n p(n|A) p(n|B), chosen on the same pairs (optimistic).
Neither sees sentence continuity, so a model can beat them; they show how much context the
novel cue needs. L = 25 words is about one half of a 64-token sequence, L = 50 of a 128-token one.

Does a pre-trained model use that cue? With `--run DIR` (a `kbert pretrain` output directory)
the script instead scores the run's NSP head on the pipeline's own held-out pairs (the
`kbert pretrain` evaluation, unmasked) by kind: IsNext, NotNext from the same novel, NotNext
from another novel. A model that knew the novels would get the last kind right far more often
than the middle one:

    python experiments/nsp_novel_bound.py --run runs/pretrain --seq-length 64
"""

from __future__ import annotations

import argparse
import collections
import math
import os
import random
import re

import numpy as np

from kbert.data.corpus import iter_documents

_WORD = re.compile(r"[a-z]+")


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def novel_of(doc_id: str) -> str:
    return doc_id.split(":")[0]


class NovelModel:
    """Multinomial naive Bayes over words: p(novel | words)."""

    def __init__(self, documents, smoothing: float = 0.1):
        self.counts = collections.defaultdict(collections.Counter)
        for doc in documents:
            self.counts[novel_of(doc.doc_id)].update(words(" ".join(doc.sentences)))
        self.novels = sorted(self.counts)
        self.vocab = set().union(*self.counts.values())
        self.denominator = {n: sum(c.values()) + smoothing * len(self.vocab)
                            for n, c in self.counts.items()}
        self.smoothing = smoothing

    def posterior(self, segment: list[str]) -> dict[str, float]:
        log_p = {n: sum(math.log((self.counts[n][w] + self.smoothing) / self.denominator[n])
                        for w in segment if w in self.vocab) for n in self.novels}
        top = max(log_p.values())
        z = sum(math.exp(v - top) for v in log_p.values())
        return {n: math.exp(v - top) / z for n, v in log_p.items()}


def heldout_pairs(documents, count: int, length: int, rng: random.Random):
    docs = [(novel_of(d.doc_id), words(" ".join(d.sentences))) for d in documents]
    docs = [d for d in docs if len(d[1]) > 3 * length]
    pairs = []
    for _ in range(count):
        i = rng.randrange(len(docs))
        novel, text = docs[i]
        start = rng.randrange(len(text) - 2 * length)
        a = text[start:start + length]
        if rng.random() < 0.5:
            pairs.append((a, text[start + length:start + 2 * length], 0, novel, novel))
        else:
            j = rng.choice([k for k in range(len(docs)) if k != i])
            other, text_b = docs[j]
            s = rng.randrange(len(text_b) - length)
            pairs.append((a, text_b[s:s + length], 1, novel, other))
    return pairs


def run_breakdown(run_dir: str, seq_length: int, repeats: int = 3) -> dict[str, list[bool]]:
    """Correct / wrong NSP predictions of a run's pre-trainer per pair kind, on `repeats`
    seeded drawings of the held-out pairs."""
    import kbert.models.pretrainer  # noqa: F401  (registers BertPretrainer for loading)
    from kbert.convert.keras_files import load_keras_file
    from kbert.data.pipeline import pair_dataset
    from kbert.tokenization.tokenizer import BertTokenizer

    novel = {d.index: novel_of(d.doc_id) for d in iter_documents("austen", split="heldout")}
    tokenizer = BertTokenizer(os.path.join(run_dir, "vocab.txt"), max_length=seq_length)
    model = load_keras_file(os.path.join(run_dir, "pretrainer.keras"))
    kinds: dict[str, list[bool]] = {"IsNext": [], "NotNext, same novel": [],
                                    "NotNext, other novel": []}
    for repeat in range(repeats):
        pairs = pair_dataset("austen", tokenizer, seq_length, seed=100 + repeat,
                             split="heldout", with_provenance=True).batch(256)
        for batch in pairs:
            x = {k: batch[k] for k in ("token_ids", "segment_ids", "padding_mask")}
            x["masked_positions"] = np.zeros((batch["token_ids"].shape[0], 1), "int32")
            predicted = np.argmax(np.asarray(model(x)["nsp_logits"]), -1)
            for label, guess, a, b in zip(batch["next_sentence_labels"].numpy(), predicted,
                                          batch["a_doc"].numpy(), batch["b_doc"].numpy(),
                                          strict=True):
                kind = ("IsNext" if label == 0 else "NotNext, same novel"
                        if novel[int(a)] == novel[int(b)] else "NotNext, other novel")
                kinds[kind].append(bool(guess == label))
    return kinds


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=2000)
    parser.add_argument("--lengths", type=int, nargs="+", default=[12, 25, 50, 100])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--run", help="score this kbert pretrain run's NSP head by pair kind")
    parser.add_argument("--seq-length", type=int, default=64, help="with --run")
    parser.add_argument("--repeats", type=int, default=3, help="with --run: pair drawings")
    args = parser.parse_args(argv)

    if args.run:
        kinds = run_breakdown(args.run, args.seq_length, args.repeats)
        print(f"NSP accuracy of {args.run} on held-out pairs of {args.seq_length} tokens:")
        for kind, hits in [*kinds.items(), ("all", sum(kinds.values(), []))]:
            rate = sum(hits) / len(hits) if hits else float("nan")
            print(f"  {kind:<22} {rate:.3f}  ({len(hits)} pairs)")
        return 0

    model = NovelModel(iter_documents("austen", split="train"))
    heldout = list(iter_documents("austen", split="heldout"))
    rng = random.Random(args.seed)
    print(f"{len(heldout)} held-out chapters; novels: {', '.join(model.novels)}")
    print("words/segment  cross-novel NotNext  novel-ID accuracy  NSP argmax rule  "
          "NSP best threshold")
    for length in args.lengths:
        pairs = heldout_pairs(heldout, args.pairs, length, rng)
        scored, novel_hits, argmax_hits = [], 0, 0
        for a, b, label, novel_a, _ in pairs:
            pa, pb = model.posterior(a), model.posterior(b)
            top_a, top_b = max(pa, key=pa.get), max(pb, key=pb.get)
            novel_hits += top_a == novel_a
            argmax_hits += (top_a == top_b) == (label == 0)
            scored.append((sum(pa[n] * pb[n] for n in model.novels), label))
        best = max(sum((s >= t) == (y == 0) for s, y in scored)
                   for t in [k / 100 for k in range(1, 100)]) / len(scored)
        negatives = [p for p in pairs if p[2] == 1]
        cross = sum(p[3] != p[4] for p in negatives) / len(negatives)
        n = len(pairs)
        print(f"{length:>13}  {cross:>19.2f}  {novel_hits / n:>17.3f}  "
              f"{argmax_hits / n:>15.3f}  {best:>18.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
