"""Train a WordPiece vocabulary on the embedded Jane Austen corpus and tokenize with it.

    python examples/train_vocab.py            # all six novels, 8,000 entries
    python examples/train_vocab.py --fast     # one novel, 2,000 entries (CI)
"""

import argparse
import os
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from kbert.corpora import austen_files  # noqa: E402
from kbert.tokenization import BertTokenizer, Vocabulary, train_vocabulary  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--fast", action="store_true", help="one novel, small vocabulary")
    parser.add_argument("--output", default=None,
                        help="where to write vocab.txt (default: a temporary directory)")
    args = parser.parse_args()

    corpus = [p for p in austen_files() if "persuasion" in p] if args.fast else "austen"
    vocab_size = 2000 if args.fast else 8000
    output = args.output or tempfile.mkdtemp(prefix="kbert-vocab-")

    start = time.perf_counter()
    vocab = train_vocabulary(corpus, vocab_size=vocab_size, output_dir=output)
    print(f"trained {vocab.size} entries in {time.perf_counter() - start:.1f}s -> {output}")
    top = vocab.counts.argsort()[::-1][:8]
    print("most frequent pieces:", ", ".join(f"{vocab.tokens[i]}={vocab.counts[i]}" for i in top))

    tokenizer = BertTokenizer(Vocabulary.load(output))  # lower-casing inferred from the vocab
    sentence = "Embeddings of Miss Woodhouse's unpersuadable acquaintance [MASK] Kellynch."
    ids, starts, ends = tokenizer.tokenize_with_offsets([sentence])
    pieces = tokenizer.pieces([sentence])[0]
    print(f"\n{sentence}")
    raw = sentence.encode("utf-8")
    for piece, i, s, e in zip(pieces, ids[0].numpy(), starts[0].numpy(), ends[0].numpy(),
                              strict=True):
        print(f"  {piece:<14} id {i:<5} bytes {s:>3}-{e:<3} {raw[s:e].decode()!r}")
    # a rare word is split into frequent pieces; "##" marks a piece that continues a word
    print("\n'embeddings' ->", tokenizer.pieces(["embeddings"])[0])
    packed = tokenizer([sentence], pairs=["Anne Elliot."], max_length=16)
    print("\npacked to 16:", tokenizer.decode(packed["token_ids"].numpy().tolist())[0])
    print("segment ids:  ", packed["segment_ids"][0].numpy().tolist())


if __name__ == "__main__":
    main()
