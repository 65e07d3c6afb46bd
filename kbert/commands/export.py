"""`kbert export`: write a TensorFlow Serving model version (SavedModel, text in).

    kbert export runs/polarity --name polarity --base-dir saved_models
    kbert export path/to/all-MiniLM-L6-v2 --name minilm --max-length 256

MODEL: a fine-tuned classifier directory (`save_pretrained`: adds the `classify` signatures),
a kbert model / pre-training run directory, a `.keras` encoder, a transformers BERT directory or
a Google BERT checkpoint. Writes `<base-dir>/<name>/<version>/` (version: next integer), checks
its ops against what stock TF Serving 2.16+ registers, writes warm-up requests, and prints the
signatures. Serve it as docs/serving.md shows.
"""

from __future__ import annotations

import argparse
import os

from kbert.config import check_max_length


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="model directory or .keras file (see `kbert export -h`)")
    parser.add_argument("--name", help="model name (default: the model directory's name)")
    parser.add_argument("--base-dir", default="saved_models",
                        help="TF Serving model base path (default: saved_models)")
    parser.add_argument("--version", type=int, help="version number (default: next integer)")
    parser.add_argument("--max-length", type=int,
                        help="packed length incl. [CLS]/[SEP] (default: the model's, 128)")
    parser.add_argument("--vocab", help="vocab.txt, when it is not beside the model")
    parser.add_argument("--pad-to-max-length", action="store_true",
                        help="always output max-length columns (default: trim to the batch's "
                             "longest text)")
    parser.add_argument("--sentence-pooling",
                        help="the sentence_embedding signature's sentence_embedding output: cls, "
                             "mean, max, mean_sqrt_len (default: a sentence-transformers folder's "
                             "own pooling, else cls)")
    parser.add_argument("--normalize", action=argparse.BooleanOptionalAction, default=None,
                        help="L2-normalise that output (default: as the sentence-transformers "
                             "folder's modules.json says, else no)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing version")
    parser.add_argument("--no-warmup", action="store_true",
                        help="do not write assets.extra/tf_serving_warmup_requests")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")


def load_model(source: str, vocab: str | None = None, with_settings: bool = False):
    """-> (the model to export, its BertTokenizer) for any source `kbert.load` reads: a
    fine-tuned head as it is, a pre-training run as its encoder; `with_settings`: and the
    sentence-transformers settings (`Loaded.sentence`, None for other sources)."""
    # deferred: pulls in TensorFlow; a command loads it only when it runs (fast --help)
    from kbert.export.saved_model import ExportError  # noqa: PLC0415
    from kbert.loading import load  # noqa: PLC0415
    from kbert.tokenization.tokenizer import BertTokenizer  # noqa: PLC0415

    loaded = load(source)
    model = loaded.model if loaded.is_task else loaded.encoder
    tokenizer = BertTokenizer(vocab) if vocab else loaded.tokenizer
    if tokenizer is None:
        raise ExportError(f"no vocab.txt found with {source}; pass --vocab PATH")
    return (model, tokenizer, loaded.sentence) if with_settings else (model, tokenizer)


def run(args: argparse.Namespace) -> int:
    # deferred: pulls in TensorFlow; a command loads it only when it runs (fast --help)
    from kbert.export.saved_model import export_saved_model  # noqa: PLC0415
    from kbert.loading import encoder_of  # noqa: PLC0415

    model, tokenizer, sentence = load_model(args.model, args.vocab, with_settings=True)
    if args.max_length is not None:
        check_max_length(args.max_length, encoder_of(model).bert_config.max_position_embeddings)
    name = args.name or os.path.basename(os.path.normpath(args.model)).removesuffix(".keras")
    path = export_saved_model(
        model, tokenizer, args.base_dir, name=name, version=args.version,
        max_length=args.max_length, pad_to_max_length=args.pad_to_max_length,
        warmup=not args.no_warmup, overwrite=args.overwrite, sentence=sentence,
        sentence_pooling=args.sentence_pooling, sentence_normalize=args.normalize)
    print(path)
    if sentence is not None and (args.sentence_pooling is None or args.normalize is None):
        print(f"sentence_embedding: {sentence.describe()}")
    # deferred: pulls in TensorFlow; a command loads it only when it runs (fast --help)
    from kbert.export.op_check import check_serving_ops  # noqa: PLC0415

    report = check_serving_ops(path)
    print(f"ops: {len(report.core)} core TensorFlow, TF-Text: {', '.join(report.tftext)}")
    _print_signatures(path)
    return 0


def _print_signatures(path: str) -> None:
    # deferred: pulls in TensorFlow; a command loads it only when it runs (fast --help)
    from tensorflow.core.protobuf import saved_model_pb2  # noqa: PLC0415

    saved = saved_model_pb2.SavedModel()
    with open(os.path.join(path, "saved_model.pb"), "rb") as f:
        saved.ParseFromString(f.read())
    for name, sig in sorted(saved.meta_graphs[0].signature_def.items()):
        if name.startswith("__"):
            continue
        inputs = ", ".join(sorted(sig.inputs))
        outputs = ", ".join(sorted(sig.outputs))
        print(f"  {name}({inputs}) -> {outputs}")
