"""`kbert finetune`: fine-tune a text classifier on labelled CSV / TSV / JSONL data.

    kbert finetune --model path/to/all-MiniLM-L6-v2 --train reviews.csv --output-dir runs/clf
    kbert finetune --config finetune.json --epochs 3
    kbert finetune --model runs/pretrain --train data.csv --no-header --text-column 1 \
        --label-column 0 --validation-split 0.2 --test test.csv

`--model`: a kbert pre-training run, a .keras encoder, a transformers or Google BERT checkpoint
directory. Flags override the JSON config file (keys = the flag names with underscores, e.g.
{"train": "data.csv", "text_column": "sentence", "epochs": 3}). Without `--validation`, a
seeded stratified `--validation-split` of the training file is held out; the best epoch on it
is restored. Writes the classifier directory (model.keras, vocab.txt, labels.json, task.json),
metrics.json, for each evaluated set a text report and confusion_<set>.png, and
training_curves.png (loss and validation accuracy per epoch). The PNGs need matplotlib (the
`kbert[plots]` extra); without it they are .txt files, with a one-line note.
"""

from __future__ import annotations

import json
import os

from kbert.config import MaxLengthError, check_known_keys, read_json_file
from kbert.outputs import check_output, fit_verbosity

# flag -> (config key, type, default, help)
OPTIONS = {
    "--model": ("model", str, None, "encoder source (required)"),
    "--train": ("train", str, None, "labelled training file: .csv, .tsv or .jsonl (required)"),
    "--validation": ("validation", str, None, "validation file (default: split from --train)"),
    "--test": ("test", str, None, "test file, evaluated once at the end"),
    "--output-dir": ("output_dir", str, "runs/finetune", "where the classifier is written"),
    "--text-column": ("text_column", str, "text", "text column (an index with --no-header)"),
    "--text-pair-column": ("text_pair_column", str, None, "second text column (pair tasks)"),
    "--label-column": ("label_column", str, "label", "label column (an index with --no-header)"),
    "--format": ("format", str, None, "csv, tsv or jsonl when the extension does not say"),
    "--label-separator": ("label_separator", str, None, "multi-label: split labels on this"),
    "--problem-type": ("problem_type", str, "single_label",
                       "single_label, multi_label or regression"),
    "--pooling": ("pooling", str, "pooled", "pooled ([CLS] + tanh pooler), cls or mean"),
    "--epochs": ("epochs", int, 3, "passes over the training data"),
    "--batch-size": ("batch_size", int, 32, "examples per step"),
    "--learning-rate": ("learning_rate", float, 3e-5, "peak learning rate (BERT: 2e-5..5e-5)"),
    "--warmup": ("warmup", float, 0.1, "warmup: fraction of the steps (<1) or a step count"),
    "--weight-decay": ("weight_decay", float, 0.01, "AdamW decay (not on LayerNorm / biases)"),
    "--layerwise-lr-decay": ("layerwise_lr_decay", float, 1.0,
                             "lr multiplier per layer going down (1 = off; e.g. 0.9)"),
    "--freeze-layers": ("freeze_layers", int, None,
                        "freeze the embeddings and the first N blocks"),
    "--dropout": ("dropout", float, None, "classifier dropout (default: the encoder's)"),
    "--hidden-dropout": ("hidden_dropout", float, None, "override the encoder's hidden dropout"),
    "--max-length": ("max_length", int, None, "tokens per example incl. [CLS]/[SEP] (default "
                     "128, or the model's positions when fewer)"),
    "--validation-split": ("validation_split", float, 0.1, "held-out share when no --validation"),
    "--early-stopping": ("early_stopping", int, None, "stop after N epochs without improvement"),
    "--seed": ("seed", int, 0, "split, shuffling and initialisation seed"),
    "--strategy": ("strategy", str, None, "mirrored (all local GPUs) or multiworker (TF_CONFIG "
                   "on each host); --batch-size is then the global batch (docs/distributed.md)"),
}
REQUIRED = ("model", "train")


def add_arguments(parser) -> None:
    parser.add_argument("--config", metavar="JSON", help="a JSON object of the options below")
    for flag, (key, kind, default, help_text) in OPTIONS.items():
        shown = f" (default {default})" if default is not None else ""
        parser.add_argument(flag, dest=key, type=kind, default=None, help=help_text + shown)
    parser.add_argument("--no-header", dest="header", action="store_false", default=None,
                        help="the CSV/TSV files have no header row; columns are indices")
    parser.add_argument("--quiet", action="store_true", help="no progress output while training")
    parser.add_argument("--overwrite", action="store_true",
                        help="write into an --output-dir that already holds files")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")


def resolve_options(args) -> dict:
    """Defaults <- the JSON config file <- flags; checks keys and required values."""
    options = {key: default for key, _, default, _ in OPTIONS.values()}
    options["header"] = True
    if args.config:
        values = read_json_file(args.config, ValueError)  # size-limited, UTF-8, an object
        check_known_keys(values, options, "keys", ValueError, where=f"{args.config}: ")
        options.update(values)
    for key in options:
        value = getattr(args, key, None)
        if value is not None:
            options[key] = value
    missing = [k for k in REQUIRED if not options.get(k)]
    if missing:
        raise ValueError(f"missing {', '.join('--' + k.replace('_', '-') for k in missing)} "
                         f"(a flag or a key of --config)")
    if not options["header"]:
        for key in ("text_column", "text_pair_column", "label_column"):
            if options[key] is not None:
                try:
                    options[key] = int(options[key])
                except ValueError:
                    raise ValueError(f"with --no-header, {key} must be a column index, got "
                                     f"{options[key]!r}") from None
    return options


def _load(path: str, options: dict):
    # deferred: pulls in TensorFlow; a command loads it only when it runs (fast --help)
    from kbert.tasks.data import load_labelled  # noqa: PLC0415

    return load_labelled(path, text_column=options["text_column"],
                         text_pair_column=options["text_pair_column"],
                         label_column=options["label_column"], format=options["format"],
                         header=options["header"], label_separator=options["label_separator"])


def run(args) -> int:
    options = resolve_options(args)

    check_output(options["output_dir"], overwrite=args.overwrite, flag="--output-dir")
    # deferred: pulls in TensorFlow; a command loads it only when it runs (fast --help)
    from kbert.training.distribute import DistributedJob  # noqa: PLC0415

    # First: MultiWorkerMirroredStrategy must be created before any other TensorFlow op.
    job = DistributedJob(options["strategy"], options["output_dir"])
    try:
        return _run(options, args, job)
    except MaxLengthError as e:  # raised by the model for its max_length: name the flag
        raise e.for_flag("--max-length") from None
    finally:
        job.close()


def _run(options: dict, args, job) -> int:
    # deferred: pulls in TensorFlow; a command loads it only when it runs (fast --help)
    import keras  # noqa: PLC0415

    from kbert.tasks import BertClassifier, stratified_split  # noqa: PLC0415
    from kbert.tasks.data import LabelMap  # noqa: PLC0415
    from kbert.tasks.plots import save_plots  # noqa: PLC0415

    keras.utils.set_random_seed(options["seed"])
    train = _load(options["train"], options)
    if options["validation"]:
        validation = _load(options["validation"], options)
    else:
        train, validation = stratified_split(train, options["validation_split"], options["seed"])
    problem_type = options["problem_type"]
    label_map = None
    if problem_type == "regression":
        num_classes = 1
    else:
        label_map = LabelMap.from_labels(train.labels)
        num_classes = label_map.num_classes
    print(f"train {len(train)}, validation {len(validation)} examples; "
          f"{num_classes} {'output' if problem_type == 'regression' else 'class'}(es)"
          + (f": {label_map.labels}" if label_map else ""))

    with job.scope():  # model, optimizer and compile (in fit_texts) under the strategy
        model = BertClassifier.from_pretrained(
            options["model"], num_classes=num_classes, problem_type=problem_type,
            pooling=options["pooling"], dropout=options["dropout"],
            freeze_layers=options["freeze_layers"], max_length=options["max_length"],
            hidden_dropout=options["hidden_dropout"])
        if model.tokenizer is None:
            raise ValueError(f"{options['model']}: no vocab.txt found beside the weights")
        model.set_label_map(label_map)
        os.makedirs(options["output_dir"], exist_ok=True)
        out = job.write_dir  # output_dir on the chief; another worker writes to a temp dir
        history = model.fit_texts(
            train, validation=validation, epochs=options["epochs"],
            batch_size=options["batch_size"], learning_rate=options["learning_rate"],
            warmup=options["warmup"], weight_decay=options["weight_decay"],
            layerwise_lr_decay=options["layerwise_lr_decay"],
            early_stopping_patience=options["early_stopping"], seed=options["seed"],
            verbose=0 if args.quiet else fit_verbosity())
    model.save_pretrained(out)

    metrics = {"options": options, "history": {k: [float(v) for v in vals]
                                               for k, vals in history.history.items()}}
    sets = [("validation", validation)]
    if options["test"]:
        sets.append(("test", _load(options["test"], options)))
    reports = {}
    if problem_type == "single_label":
        for name, data in sets:
            report = reports[name] = model.evaluate_texts(data)
            print(f"\n== {name} ==\n{report.format()}")
            with open(os.path.join(out, f"report_{name}.txt"), "w", encoding="utf-8") as f:
                f.write(report.format() + "\n")
            metrics[name] = report.to_dict()
    _, note = save_plots(out, reports, metrics["history"])
    if note:
        print(f"\n{note}")
    if job.distributed:
        metrics["distribution"] = job.describe()
    with open(os.path.join(out, "metrics.json"), "w", encoding="utf-8") as f:
        json.dump(metrics, f, indent=2, ensure_ascii=False, default=str)
    print(f"\nclassifier written to {out}")
    return 0
