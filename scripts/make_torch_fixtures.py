"""Regenerate tests/fixtures/torch/: what torch and transformers make of kbert's files, and files
they wrote, so tests/test_convert.py and tests/test_safe_pickle.py check against both libraries
on a machine that has neither (the test command installs neither).

kbert itself never needs torch or transformers; this script does (the committed fixtures came
from torch 2.13.0+cpu and transformers 5.24.0). It runs in two halves: the kbert half (this
interpreter: kbert, TensorFlow, the tests' own helpers) and the torch half (--torch-python, an
interpreter with torch, transformers and numpy; by default this one). From the repository root:

    python scripts/make_torch_fixtures.py --torch-python /tmp/torchenv/bin/python
    python scripts/make_torch_fixtures.py          # one environment that has everything

Files written (all tiny: the model is the tests' 2-layer, hidden-16 BERT with a 30-word vocab):
  kbert_export.npz        kbert's `save_transformers_checkpoint` of test_convert.random_encoder():
                          every tensor of the model.safetensors transformers loaded ("tensor/NAME"),
                          its config.json, test_convert.sample_inputs(), and transformers'
                          BertModel outputs on them (last_hidden_state, pooler_output). The torch
                          half checks that transformers reported no missing, unexpected or
                          mis-shaped key.
  transformers_bert/      a BertForPreTraining (gelu_new, every weight ~ N(0, 0.3), seed 0) as
                          transformers saved it: config.json, model.safetensors, and
                          pytorch_model.bin (torch.save of its state dict, tied weights), with
                          outputs.npz (the inputs and model.bert's outputs on them).
  torch_save_views.bin    torch.save of views (transposed, row and column slices, an offset
                          arange), float16, bfloat16 and a Parameter; torch_save_views.npz holds
                          the values torch gives for each (bfloat16 as float32).
  kbert_pytorch_bin.bin   kbert's `save_pytorch_bin` of test_safe_pickle._state(), a file that
                          `torch.load(weights_only=True)` loaded here with every value equal.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
from safetensors.numpy import load_file  # in both environments (transformers needs it)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, "tests", "fixtures", "torch")
INPUT_KEYS = ("token_ids", "segment_ids", "padding_mask")


# ------------------------------------------------------------------ torch half (no kbert, no TF)
def torch_half(work: str) -> None:
    # deferred: the torch half; kbert's environment has no torch
    import torch  # noqa: PLC0415
    import transformers  # noqa: PLC0415

    inputs = dict(np.load(os.path.join(work, "inputs.npz")))
    meta = json.load(open(os.path.join(work, "meta.json"), encoding="utf-8"))
    feed = dict(input_ids=torch.tensor(inputs["token_ids"], dtype=torch.long),
                token_type_ids=torch.tensor(inputs["segment_ids"], dtype=torch.long),
                attention_mask=torch.tensor(inputs["padding_mask"], dtype=torch.long))
    out_dir = os.path.join(work, "torch_out")
    os.makedirs(out_dir, exist_ok=True)

    # 1. transformers loads kbert's export
    model, info = transformers.BertModel.from_pretrained(
        os.path.join(work, "kbert_export"), attn_implementation="eager", output_loading_info=True)
    problems = {k: v for k, v in info.items() if v}
    if problems:
        raise SystemExit(f"transformers did not load kbert's export cleanly: {problems}")
    with torch.no_grad():
        out = model.eval()(**feed)
    np.savez(os.path.join(out_dir, "kbert_export_outputs.npz"),
             last_hidden_state=out.last_hidden_state.numpy(),
             pooler_output=out.pooler_output.numpy())

    # 2. torch loads kbert's pytorch_model.bin with weights_only=True, every value equal
    expected = dict(np.load(os.path.join(work, "kbert_bin_state.npz")))
    back = torch.load(os.path.join(work, "kbert_bin", "m.bin"), weights_only=True)
    if sorted(back) != sorted(expected):
        raise SystemExit(f"torch read other names: {sorted(back)} vs {sorted(expected)}")
    for name, value in expected.items():
        np.testing.assert_array_equal(back[name].numpy(), value, err_msg=name)
        if back[name].numpy().dtype != value.dtype:
            raise SystemExit(f"{name}: torch dtype {back[name].dtype} vs {value.dtype}")

    # 3. a checkpoint transformers wrote, in both formats
    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=meta["vocab_size"], hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=24, max_position_embeddings=20, hidden_act="gelu_new")
    pretraining = transformers.BertForPreTraining(config).eval()
    with torch.no_grad():
        for p in pretraining.parameters():
            p.normal_(0, 0.3)
    bert_dir = os.path.join(out_dir, "transformers_bert")
    pretraining.save_pretrained(bert_dir)  # transformers 5 writes safetensors only
    torch.save(pretraining.state_dict(), os.path.join(bert_dir, "pytorch_model.bin"))
    with torch.no_grad():
        out = pretraining.bert(**feed)
    np.savez(os.path.join(bert_dir, "outputs.npz"), **inputs,
             last_hidden_state=out.last_hidden_state.numpy(),
             pooler_output=out.pooler_output.numpy())

    # 4. torch.save of views, half and bfloat16 tensors, a Parameter
    torch.manual_seed(0)
    big = torch.randn(6, 6)
    state = {
        "plain": torch.randn(3, 4),
        "transposed": torch.randn(5, 6).t(),
        "row_slice": big[1:3],
        "column": big[:, 2],
        "ints": torch.arange(10)[2:7],
        "half": torch.randn(2, 2).half(),
        "bf16": torch.randn(4).to(torch.bfloat16),
        "param": torch.nn.Parameter(torch.ones(2)),
    }
    torch.save(state, os.path.join(out_dir, "torch_save_views.bin"))
    np.savez(os.path.join(out_dir, "torch_save_views.npz"),
             **{k: (v.detach().float() if v.dtype == torch.bfloat16 else v.detach()).numpy()
                for k, v in state.items()})
    versions = {"torch": torch.__version__, "transformers": transformers.__version__}
    json.dump(versions, open(os.path.join(out_dir, "versions.json"), "w", encoding="utf-8"))


# ------------------------------------------------------------------ kbert half
def kbert_half(work: str) -> None:
    sys.path.insert(0, os.path.join(ROOT, "tests"))
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # deferred: the kbert half; the torch half runs without kbert or TensorFlow
    from pytorch_bin import save_pytorch_bin  # noqa: PLC0415
    from test_convert import TOKENS, random_encoder, sample_inputs  # noqa: PLC0415
    from test_safe_pickle import _state  # noqa: PLC0415

    from kbert.convert import save_transformers_checkpoint  # noqa: PLC0415

    inputs = sample_inputs()
    np.savez(os.path.join(work, "inputs.npz"), **inputs)
    json.dump({"vocab_size": len(TOKENS)}, open(os.path.join(work, "meta.json"), "w"))
    save_transformers_checkpoint(random_encoder(), os.path.join(work, "kbert_export"), vocab=TOKENS)
    state = _state()
    np.savez(os.path.join(work, "kbert_bin_state.npz"), **state)
    os.makedirs(os.path.join(work, "kbert_bin"))
    save_pytorch_bin(state, os.path.join(work, "kbert_bin", "m.bin"))


def collect(work: str, output: str) -> None:
    out = os.path.join(work, "torch_out")
    os.makedirs(output, exist_ok=True)
    export = os.path.join(work, "kbert_export")
    tensors = load_file(os.path.join(export, "model.safetensors"))
    with open(os.path.join(export, "config.json"), encoding="utf-8") as f:
        config = f.read()
    np.savez(os.path.join(output, "kbert_export.npz"), config_json=np.array(config),
             **dict(np.load(os.path.join(work, "inputs.npz"))),
             **dict(np.load(os.path.join(out, "kbert_export_outputs.npz"))),
             **{f"tensor/{k}": v for k, v in tensors.items()})
    bert = os.path.join(output, "transformers_bert")
    shutil.rmtree(bert, ignore_errors=True)
    os.makedirs(bert)
    for name in ("config.json", "model.safetensors", "pytorch_model.bin", "outputs.npz"):
        shutil.copy(os.path.join(out, "transformers_bert", name), bert)
    for name in ("torch_save_views.bin", "torch_save_views.npz", "versions.json"):
        shutil.copy(os.path.join(out, name), output)
    shutil.copy(os.path.join(work, "kbert_bin", "m.bin"),
                os.path.join(output, "kbert_pytorch_bin.bin"))
    for base, _, files in sorted(os.walk(output)):
        for name in sorted(files):
            path = os.path.join(base, name)
            print(f"{os.path.getsize(path):>8,}  {os.path.relpath(path, ROOT)}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--torch-python", default=sys.executable,
                        help="an interpreter with torch and transformers (default: this one)")
    parser.add_argument("--output", default=FIXTURES)
    parser.add_argument("--torch-half", metavar="WORKDIR", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.torch_half:
        torch_half(args.torch_half)
        return 0
    with tempfile.TemporaryDirectory(prefix="kbert-torch-fixtures-") as work:
        kbert_half(work)
        subprocess.run([args.torch_python, os.path.abspath(__file__), "--torch-half", work],
                       check=True)
        collect(work, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
