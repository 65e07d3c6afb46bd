"""The `kbert` command: one sub-command per job, each in `kbert/commands/<name>.py`.

A command module defines `add_arguments(parser)` and `run(args) -> int`. Modules are imported
only when their command runs, so `kbert --help` starts fast and needs no TensorFlow.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# name -> (module under kbert.commands, one-line help). The order is the order `--help` shows.
COMMANDS: dict[str, tuple[str, str]] = {
    "pretrain": ("pretrain", "pre-train a BERT (MLM + NSP) on a corpus; default: the embedded Austen corpus"),
    "vocab": ("vocab", "train a WordPiece vocabulary (vocab.txt + unigram counts) from a corpus"),
    "tokenize": ("tokenize", "show the WordPiece pieces, ids and offsets of texts"),
    "fill-mask": ("fill_mask", "predict the [MASK] tokens of a sentence with a pre-trained model"),
    "embed": ("embed", "contextual token / word / sentence vectors as JSONL or .npy"),
    "prepare": ("prepare", "write sharded TFRecords of sentence pairs for a large corpus"),
    "finetune": ("finetune", "fine-tune a classifier on labelled CSV / TSV / JSONL data"),
    "classify": ("classify", "label texts (or pairs) with a fine-tuned classifier"),
    "convert": ("convert", "import transformers or Google BERT weights, or export to transformers"),
    "export": ("export", "export a SavedModel for TensorFlow Serving (saved_models/<name>/<version>/)"),
    "tflite": ("tflite", "convert an encoder or classifier to TFLite (float32, float16, int8)"),
}


def _parser(command: str | None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kbert",
        description="BERT end to end: vocabulary, pre-training, fine-tuning, embeddings, export.")
    from kbert import __version__
    parser.add_argument("--version", action="version", version=f"kbert {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    for name, (module_name, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == command:
            module = importlib.import_module(f"kbert.commands.{module_name}")
            module.add_arguments(p)
            p.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    parser = _parser(command if command in COMMANDS else None)
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        print("kbert: interrupted", file=sys.stderr)
        return 130
    except (ValueError, OSError) as e:  # the library's own errors are ValueError subclasses
        if getattr(args, "debug", False):
            raise
        print(f"kbert {args.command}: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
