"""The `kbert` command: one sub-command per job, each in `kbert/commands/<name>.py`.

A command module defines `add_arguments(parser)` and `run(args) -> int`. Modules are imported
only when their command runs, so `kbert --help` starts fast and needs no TensorFlow.

Before a command runs, TensorFlow is imported with its native log lines hidden
(`quiet_tensorflow`) unless `--verbose` is given (before or after the command) or
TF_CPP_MIN_LOG_LEVEL is set in the environment.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import re
import sys
import tempfile

from kbert import __version__

# name -> (module under kbert.commands, one-line help). The order is the order `--help` shows.
COMMANDS: dict[str, tuple[str, str]] = {
    "pretrain": ("pretrain",
                 "pre-train a BERT (MLM + NSP) on a corpus; default: the embedded Austen corpus"),
    "vocab": ("vocab", "train a WordPiece vocabulary (vocab.txt + unigram counts) from a corpus"),
    "tokenize": ("tokenize", "show the WordPiece pieces, ids and offsets of texts"),
    "fill-mask": ("fill_mask", "predict the [MASK] tokens of a sentence with a pre-trained model"),
    "embed": ("embed", "contextual token / word / sentence vectors as JSONL or .npy"),
    "prepare": ("prepare", "write sharded TFRecords of sentence pairs for a large corpus"),
    "finetune": ("finetune", "fine-tune a classifier on labelled CSV / TSV / JSONL data"),
    "classify": ("classify", "label texts (or pairs) with a fine-tuned classifier"),
    "convert": ("convert", "import transformers or Google BERT weights, or export to transformers"),
    "export": ("export",
               "export a SavedModel for TensorFlow Serving (saved_models/<name>/<version>/)"),
    "tflite": ("tflite", "convert an encoder or classifier to TFLite (float32, float16, int8)"),
    "models": ("models", "list the models kbert loads by name (keras-hub, Hugging Face) and "
                         "which are cached"),
}


VERBOSE_HELP = "show TensorFlow's own log lines (hidden by default)"

# A line of absl / glog native logging: "I0000 00:00:1796292999.164198    5234 port.cc:153] ..."
_NATIVE_LOG = re.compile(r"^[IWEF]\d{4} \d\d:\d\d:\d\d\.\d+\s+\d+ \S+:\d+\]")
_ABSL_PREAMBLE = "WARNING: All log messages before absl::InitializeLog() is called"
# A line that starts something of Python's own (kept even right after a native line).
_PYTHON_LINE = re.compile(r"^(Traceback |\S+:\d+: \w*(Warning|Error)\b|\w+(Warning|Error): )")


def _parser(command: str | None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kbert",
        description="BERT end to end: vocabulary, pre-training, fine-tuning, embeddings, export.")
    parser.add_argument("--version", action="version", version=f"kbert {__version__}")
    parser.add_argument("--verbose", action="store_true", help=VERBOSE_HELP)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    for name, (module_name, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == command:
            module = importlib.import_module(f"kbert.commands.{module_name}")
            module.add_arguments(p)
            # also after the command: `kbert finetune --verbose ...`
            p.add_argument("--verbose", action="store_true", default=argparse.SUPPRESS,
                           help=VERBOSE_HELP)
            p.set_defaults(_run=module.run)
    return parser


def native_log_filter(text: str) -> str:
    """`text` (captured standard error) without absl / TensorFlow native log records: lines
    with the glog prefix, the continuation lines that follow one, and absl's "All log messages
    before absl::InitializeLog()" notice. Every other line is kept, in order."""
    kept, in_record = [], False
    for line in text.splitlines(keepends=True):
        if _NATIVE_LOG.match(line) or line.startswith(_ABSL_PREAMBLE):
            in_record = True
            continue
        if in_record and line.strip() and not _PYTHON_LINE.match(line):
            continue  # e.g. cpu_feature_guard's second line "To enable the following ..."
        in_record = False
        kept.append(line)
    return "".join(kept)


def quiet_tensorflow() -> None:
    """Import TensorFlow and initialise its devices with the native log lines hidden.

    Sets TF_CPP_MIN_LOG_LEVEL=3 (later C++ logging), quiets the `absl` and `tensorflow` Python
    loggers, and runs `import tensorflow` + `tf.config.list_physical_devices()` - where absl
    writes, before its logging is initialised and regardless of TF_CPP_MIN_LOG_LEVEL, lines
    such as "port.cc:153] oneDNN custom operations are on" or "cuda_platform.cc:52] failed call
    to cuInit" - with file descriptor 2 sent to a temporary file; what was captured is then
    written to the real standard error minus those lines (`native_log_filter`).
    """
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    sys.stderr.flush()
    saved = os.dup(2)
    captured = tempfile.TemporaryFile()
    try:
        os.dup2(captured.fileno(), 2)
        try:
            # deferred: imported with file descriptor 2 captured, the point of this function
            import tensorflow as tf  # noqa: PLC0415

            tf.config.list_physical_devices()
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
    finally:
        os.close(saved)
        captured.seek(0)
        rest = native_log_filter(captured.read().decode("utf-8", "replace"))
        captured.close()
        if rest:
            sys.stderr.write(rest)
            sys.stderr.flush()
    for name in ("absl", "tensorflow"):
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        # deferred: absl comes with TensorFlow, imported just above
        from absl import logging as absl_logging  # noqa: PLC0415

        absl_logging.set_verbosity(absl_logging.ERROR)
    except ImportError:
        pass


class _LineTracker:
    """Standard output, remembering whether its last character ended a line (so that a
    message after Ctrl-C does not start in the middle of a progress bar)."""

    def __init__(self, stream):
        self._stream = stream
        self.at_line_start = True

    def write(self, text):
        if text:
            self.at_line_start = text.endswith("\n")
        return self._stream.write(text)

    def __getattr__(self, name):
        return getattr(self._stream, name)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    parser = _parser(command if command in COMMANDS else None)
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    stdout = sys.stdout
    tracker = sys.stdout = _LineTracker(stdout)
    try:
        if not args.verbose and "TF_CPP_MIN_LOG_LEVEL" not in os.environ:
            quiet_tensorflow()  # every command runs TensorFlow (Keras' backend, tf.data, tf-text)
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        if not tracker.at_line_start:  # e.g. a progress bar: end its line first
            print(flush=True)
        print("kbert: interrupted", file=sys.stderr)
        return 130
    except (ValueError, OSError) as e:  # the library's own errors are ValueError subclasses
        if getattr(args, "debug", False):
            raise
        print(f"kbert {args.command}: error: {e}", file=sys.stderr)
        return 1
    finally:
        if sys.stdout is tracker:
            sys.stdout = stdout


if __name__ == "__main__":
    sys.exit(main())
