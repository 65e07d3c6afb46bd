"""`kbert convert`: import transformers or Google BERT weights, export to transformers or keras-hub.

    kbert convert --from-transformers path/to/all-MiniLM-L6-v2 --output runs/minilm
    kbert convert --from-transformers google-bert/bert-base-uncased --output runs/bert-base
    kbert convert --from-google uncased_L-2_H-128_A-2/ --output runs/bert-tiny
    kbert convert --to-transformers runs/minilm --output runs/minilm-hf
    kbert convert --to-keras-hub runs/minilm --output runs/minilm-keras-hub

Imports write a kbert model directory (see `kbert.convert`): encoder.keras, config.json,
vocab.txt, tokenizer_config.json, and pretrainer.keras when the checkpoint is whole (it holds the
masked-LM head: BertForPreTraining / BertForMaskedLM, a Google release with `cls/` variables).
`--to-transformers` reads any supported directory and writes a transformers `BertModel`
directory (config.json, model.safetensors, vocab.txt), or a `BertForPreTraining` one when the
source has its pre-training heads (a `kbert pretrain` run, a whole checkpoint). After writing,
the output is loaded back and its outputs on a probe sentence (MLM and NSP logits too, for a
pretrainer) compared with the source's (`--no-verify` skips this).
`--to-keras-hub` writes a keras-hub preset (config.json, model.weights.h5, tokenizer.json,
assets/tokenizer/...) that `keras_hub.models.BertBackbone.from_preset` loads. A keras-hub preset
always computes the tanh GELU: the comparison is then with the source run with the tanh GELU
too, and the difference that the GELU form makes is printed beside it.
"""

from __future__ import annotations

import argparse
import os
import time
import warnings

import numpy as np

from kbert.hub import resolve
from kbert.outputs import check_output

PROBE = "The quick brown fox jumps over the lazy dog near the river bank."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--from-transformers", metavar="DIR",
                        help="a transformers BERT dir: config.json, model.safetensors or "
                             "pytorch_model.bin (read without torch), vocab.txt; or a Hugging "
                             "Face repo id (org/name, hf://org/name@revision)")
    source.add_argument("--from-google", metavar="DIR_OR_PREFIX",
                        help="a google-research/bert release: bert_config.json, "
                             "bert_model.ckpt.*, vocab.txt")
    source.add_argument("--to-transformers", metavar="DIR",
                        help="a kbert (or transformers / Google) model dir to export")
    source.add_argument("--to-keras-hub", metavar="DIR",
                        help="a kbert (or transformers / Google / keras-hub) model dir to export "
                             "as a keras-hub BertBackbone preset")
    parser.add_argument("--output", required=True, help="directory to write")
    parser.add_argument("--overwrite", action="store_true",
                        help="write into an --output directory that already holds files")
    parser.add_argument("--hidden-act", choices=("gelu", "gelu_tanh", "relu"), default=None,
                        help="--from-google only: override the activation (default gelu_tanh, "
                             "what the original code computes for 'gelu')")
    parser.add_argument("--no-verify", dest="verify", action="store_false",
                        help="do not reload the output to compare outputs with the source")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")


def _probe_outputs(model, tokenizer) -> np.ndarray:
    # deferred: pulls in TensorFlow; a command loads it only when it runs (fast --help)
    from kbert.loading import encoder_of  # noqa: PLC0415

    encoder = encoder_of(model)
    packed = tokenizer([PROBE], max_length=min(32, encoder.bert_config.max_position_embeddings))
    packed = {k: np.asarray(v) for k, v in packed.items()}
    out = encoder(packed)
    parts = [np.asarray(out["sequence_output"]).ravel(), np.asarray(out["pooled_output"]).ravel()]
    if model is not encoder:  # a BertPretrainer: its heads at every position
        positions = np.arange(packed["token_ids"].shape[1], dtype="int32")[None]
        heads = model({**packed, "masked_positions": positions})
        parts += [np.asarray(heads["mlm_logits"]).ravel(), np.asarray(heads["nsp_logits"]).ravel()]
    return np.concatenate(parts)


def _with_activation(encoder, hidden_act: str):
    """The same weights in an encoder computing `hidden_act`."""
    # deferred: pulls in TensorFlow; a command loads it only when it runs (fast --help)
    from kbert.models.encoder import BertEncoder  # noqa: PLC0415

    other = BertEncoder.from_bert_config(encoder.bert_config.replace(hidden_act=hidden_act))
    other.set_weights(encoder.get_weights())
    return other


def run(args: argparse.Namespace) -> int:
    # deferred: pulls in TensorFlow; a command loads it only when it runs (fast --help)
    from kbert import convert  # noqa: PLC0415
    from kbert.loading import ModelSourceError, encoder_of, load  # noqa: PLC0415

    def reload(directory):  # the pretrainer of a whole checkpoint, else the encoder
        loaded = load(directory)
        whole = type(loaded.model).__name__ == "BertPretrainer"
        return (loaded.model if whole else loaded.encoder), loaded.tokenizer

    if args.hidden_act and not args.from_google:
        raise ValueError("--hidden-act applies to --from-google only")
    check_output(args.output, overwrite=args.overwrite, flag="--output")
    start = time.perf_counter()
    if args.from_transformers:
        source = resolve(args.from_transformers, ModelSourceError)  # a repo id: its snapshot
        model, tokenizer = convert.load_transformers_checkpoint(source, pretraining_heads=True)
        convert.save_kbert_model(model, tokenizer, args.output)
    elif args.from_google:
        model, tokenizer = convert.load_google_checkpoint(
            args.from_google, hidden_act=args.hidden_act, pretraining_heads=True)
        convert.save_kbert_model(model, tokenizer, args.output)
    elif args.to_transformers:
        model, tokenizer = reload(args.to_transformers)
        convert.save_transformers_checkpoint(model, args.output, vocab=tokenizer)
    else:  # a keras-hub preset holds the backbone only
        model, tokenizer = reload(args.to_keras_hub)
        model = encoder_of(model)
        with warnings.catch_warnings():  # the GELU form: printed with its measured size below
            warnings.simplefilter("ignore", convert.PresetExportWarning)
            convert.save_keras_hub_preset(model, args.output, vocab=tokenizer)
    c = model.bert_config
    heads = " with MLM + NSP heads" if type(model).__name__ == "BertPretrainer" else ""
    print(f"BERT L={c.num_layers} H={c.hidden_size} A={c.num_heads} I={c.intermediate_size} "
          f"vocab={c.vocab_size} act={c.hidden_act}{heads}: {model.count_params():,} parameters")
    print(f"wrote {args.output}: {', '.join(sorted(os.listdir(args.output)))} "
          f"({time.perf_counter() - start:.1f}s)")
    if args.verify:
        expected = _probe_outputs(model, tokenizer)
        if args.to_keras_hub and c.hidden_act != "gelu_tanh":
            source_outputs = expected
            expected = _probe_outputs(_with_activation(model, "gelu_tanh"), tokenizer)
            gelu = float(np.abs(expected - source_outputs).max())
            print(f"note: keras-hub computes the tanh GELU, this model {c.hidden_act!r}: its "
                  f"outputs differ by at most {gelu:.2e} (the model verified below is the "
                  f"source with the tanh GELU)")
        got = _probe_outputs(*reload(args.output))
        diff = float(np.abs(got - expected).max())
        print(f"verified: reloaded outputs differ from the source by at most {diff:.2e}")
        if diff > 1e-5:
            raise ValueError(f"the written model's outputs differ from the source's by {diff}")
    return 0
