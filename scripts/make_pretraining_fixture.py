"""Regenerate tests/fixtures/pretraining/: whole transformers BERT checkpoints (encoder AND
pre-training heads) with transformers' own MLM and NSP logits, for tests/test_whole_checkpoints.py.

Needs torch and transformers (kbert does not); the committed files came from torch 2.13.0+cpu and
transformers 5.24.0. From the repository root:

    /tmp/torchenv/bin/python scripts/make_pretraining_fixture.py

Check that transformers loads kbert's export of it (`kbert convert --to-transformers
tests/fixtures/pretraining/for_pretraining --output DIR`) with no missing or unexpected key and
gives the reference logits:

    /tmp/torchenv/bin/python scripts/make_pretraining_fixture.py --check-export DIR

Files written (a 2-layer, hidden-16 BERT with a 40-piece vocabulary; ~70 KB in all):
  for_pretraining/   a `BertForPreTraining` (gelu_new, seed 0; transformers' own random init, then
                     every weight perturbed by N(0, 0.2) so no LayerNorm or bias sits at 1 or 0) as
                     `save_pretrained` wrote it: config.json, model.safetensors; plus vocab.txt
                     and tokenizer_config.json (do_lower_case).
  for_masked_lm/     a `BertForMaskedLM` holding the same weights (so no pooler and no NSP head:
                     transformers' MLM-only layout), same files.
  reference.npz      the inputs (token_ids, segment_ids, padding_mask: four padded sentence pairs)
                     and transformers' outputs on them: prediction_logits [4, 12, 40] and
                     seq_relationship_logits [4, 2] of the BertForPreTraining, mlm_only_logits
                     [4, 12, 40] of the BertForMaskedLM.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUTPUT = os.path.join(ROOT, "tests", "fixtures", "pretraining")

TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "a", "cat", "dog", "sat", "ran",
          "on", "in", "mat", "park", "house", "was", "is", "she", "he", "it", "happy", "sad",
          "to", "hear", "of", "and", "river", "bank", ".", ",", "!", "##s", "##ed", "##ing",
          "walk", "fish", "by", "water", "money"]

# four [CLS] A [SEP] B [SEP] pairs, right-padded to 12 (the first fills all 12)
PAIRS = [("the cat sat on the mat", "she was happy"),
         ("the dog ran", "it was sad !"),
         ("he sat by the river", "the bank"),
         ("a fish", "water")]
SEQ = 12


def encode(text: str) -> list[int]:
    return [TOKENS.index(w) for w in text.split()]


def inputs() -> dict[str, np.ndarray]:
    ids = np.zeros((len(PAIRS), SEQ), np.int64)
    segments = np.zeros_like(ids)
    mask = np.zeros_like(ids)
    for row, (a, b) in enumerate(PAIRS):
        first, second = [2] + encode(a) + [3], encode(b) + [3]
        pieces = (first + second)[:SEQ]
        ids[row, :len(pieces)] = pieces
        segments[row, len(first):len(pieces)] = 1
        mask[row, :len(pieces)] = 1
    ids[0, 3] = 4  # a [MASK] in the first pair, as fill-mask would see it
    return {"token_ids": ids, "segment_ids": segments, "padding_mask": mask}


def write_side_files(directory: str) -> None:
    with open(os.path.join(directory, "vocab.txt"), "w", encoding="utf-8", newline="\n") as f:
        f.writelines(t + "\n" for t in TOKENS)
    with open(os.path.join(directory, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump({"do_lower_case": True, "tokenizer_class": "BertTokenizer"}, f, indent=2)
        f.write("\n")


def feed_of(x: dict[str, np.ndarray]):
    # deferred: torch / transformers / sentence-transformers are optional dependencies
    import torch  # noqa: PLC0415

    return dict(input_ids=torch.tensor(x["token_ids"], dtype=torch.long),
                token_type_ids=torch.tensor(x["segment_ids"], dtype=torch.long),
                attention_mask=torch.tensor(x["padding_mask"], dtype=torch.long))


def check_export(directory: str, reference: str) -> None:
    """transformers loads `directory` as a BertForPreTraining cleanly, with the reference logits."""
    # deferred: torch / transformers / sentence-transformers are optional dependencies
    import torch  # noqa: PLC0415
    import transformers  # noqa: PLC0415

    with open(os.path.join(directory, "config.json"), encoding="utf-8") as f:
        architectures = json.load(f).get("architectures")
    if architectures != ["BertForPreTraining"]:
        raise SystemExit(f"{directory}: architectures {architectures}, not BertForPreTraining")
    model, info = transformers.BertForPreTraining.from_pretrained(
        directory, output_loading_info=True)
    problems = {k: v for k, v in info.items() if v}
    if problems:
        raise SystemExit(f"transformers did not load {directory} cleanly: {problems}")
    ref = np.load(reference)
    with torch.no_grad():
        out = model.eval()(**feed_of(ref))
    mask = ref["padding_mask"].astype(bool)
    mlm = np.abs(out.prediction_logits.numpy()[mask] - ref["prediction_logits"][mask]).max()
    nsp = np.abs(out.seq_relationship_logits.numpy() - ref["seq_relationship_logits"]).max()
    print(f"transformers loaded {directory}: no missing / unexpected keys; max |logit diff| "
          f"MLM {mlm:.2e}, NSP {nsp:.2e}")
    if max(mlm, nsp) > 1e-4:
        raise SystemExit("the export's logits differ from the reference")


def main(argv=None) -> int:
    # deferred: torch / transformers / sentence-transformers are optional dependencies
    import torch  # noqa: PLC0415
    import transformers  # noqa: PLC0415

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", default=OUTPUT)
    parser.add_argument("--check-export", metavar="DIR",
                        help="check kbert's --to-transformers export of for_pretraining/ instead")
    args = parser.parse_args(argv)
    if args.check_export:
        check_export(args.check_export, os.path.join(args.output, "reference.npz"))
        return 0

    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=len(TOKENS), hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=24, max_position_embeddings=24, hidden_act="gelu_new")
    model = transformers.BertForPreTraining(config).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.2)
    masked_lm = transformers.BertForMaskedLM(config).eval()
    info = masked_lm.load_state_dict(model.state_dict(), strict=False)
    if info.missing_keys:
        raise SystemExit(f"BertForMaskedLM did not take {info.missing_keys}")

    x = inputs()
    feed = feed_of(x)
    with torch.no_grad():
        out = model(**feed)
        mlm_only = masked_lm(**feed)

    os.makedirs(args.output, exist_ok=True)
    for name, m in (("for_pretraining", model), ("for_masked_lm", masked_lm)):
        directory = os.path.join(args.output, name)
        shutil.rmtree(directory, ignore_errors=True)
        m.save_pretrained(directory)
        write_side_files(directory)
    np.savez_compressed(
        os.path.join(args.output, "reference.npz"),
        **{k: v.astype(np.int32) for k, v in x.items()},
        prediction_logits=out.prediction_logits.numpy(),
        seq_relationship_logits=out.seq_relationship_logits.numpy(),
        mlm_only_logits=mlm_only.logits.numpy(),
        versions=np.array(json.dumps({"torch": torch.__version__,
                                      "transformers": transformers.__version__})))
    for base, _, files in sorted(os.walk(args.output)):
        for name in sorted(files):
            path = os.path.join(base, name)
            print(f"{os.path.getsize(path):>8,}  {os.path.relpath(path, ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
