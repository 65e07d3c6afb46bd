"""`kbert finetune`: fine-tune a text classifier on labelled CSV / TSV / JSONL data.

    kbert finetune --model path/to/all-MiniLM-L6-v2 --train reviews.csv --output-dir runs/clf
    kbert finetune --config finetune.json --epochs 3
    kbert finetune --model runs/pretrain --train data.csv --no-header --text-column 1 \
        --label-column 0 --validation-split 0.2 --test test.csv

`--model`: a kbert pre-training run, a .keras encoder, a transformers or Google BERT checkpoint
directory. Flags override the JSON config file (keys = the flag names with underscores, e.g.
{"train": "data.csv", "text_column": "sentence", "epochs": 3}). Without `--validation`, a
seeded stratified `--validation-split` of the training file is held out; the best epoch on it
is restored. Epochs, learning rate and early stopping follow the set's size and the encoder's
width (kbert/tasks/recipe.py); texts longer than --max-length are read as overlapping windows
when truncation would drop over 10% of the training text (kbert/tasks/windows.py). Each choice
is printed once; each flag overrides it. Writes the classifier directory (model.keras,
vocab.txt, labels.json, task.json), metrics.json, for each evaluated set a text report and
confusion_<set>.png, and
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
    "--pooling": ("pooling", str, None, "pooled ([CLS] + tanh pooler), cls, mean, max or "
                  "mean_sqrt_len (default: a sentence-transformers folder's own pooling from "
                  "its 1_Pooling/config.json, else pooled)"),
    "--epochs": ("epochs", int, None, "passes over the training data (default: at least "
                 "450 steps, 3..30 epochs)"),
    "--batch-size": ("batch_size", int, 32, "examples per step"),
    "--learning-rate": ("learning_rate", float, None, "peak learning rate (default by the "
                        "encoder's width: 1e-4 for hidden 384, 3e-5 for BERT-base)"),
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
    "--window-stride": ("window_stride", int, None, "read texts longer than --max-length as "
                        "windows this many pieces apart (0 = truncate; default: windows of "
                        "stride half a window when truncation would drop over 10%% of the "
                        "training pieces)"),
    "--validation-split": ("validation_split", float, 0.1, "held-out share when no --validation"),
    "--early-stopping": ("early_stopping", int, None, "stop after N epochs without a better "
                         "validation accuracy (default 2, 3 beyond 10 epochs; 0 = off)"),
    "--seed": ("seed", int, 0, "split, shuffling and initialisation seed"),
    "--seeds": ("seeds", int, 1, "fine-tune N times (seeds seed..seed+N-1), report the mean and "
                "spread, keep the best on validation"),
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
    parser.add_argument("--search", action="store_true", default=None,
                        help="try learning rates x0.5 / x1 / x2 and epoch budgets x1 / x2 around "
                             "the defaults on the validation split, keep the best")
    parser.add_argument("--quiet", action="store_true", help="no progress output while training")
    parser.add_argument("--overwrite", action="store_true",
                        help="write into an --output-dir that already holds files")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")


def resolve_options(args) -> dict:
    """Defaults <- the JSON config file <- flags; checks keys and required values."""
    options = {key: default for key, _, default, _ in OPTIONS.values()}
    options["header"] = True
    options["search"] = False
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
    from kbert.tasks import load_labelled  # noqa: PLC0415

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


def _choose_windows(model, train, stride: int | None) -> int | None:
    """--window-stride, or windows when truncation would drop much of the training text;
    prints the choice. Returns the stride, or None to truncate."""
    from kbert.tasks.windows import check_stride, choose_windows, piece_counts  # noqa: PLC0415

    if stride == 0:
        return None
    if stride is not None:
        if train.pairs is not None:
            raise ValueError("--window-stride applies to single texts; text pairs are truncated")
        stride = check_stride(stride, model.max_length)
        print(f"windows of {model.max_length - 2} pieces, stride {stride} (--window-stride)")
        return stride
    lengths = piece_counts(model.tokenizer, train.texts)
    pair_lengths = None if train.pairs is None else piece_counts(model.tokenizer, train.pairs)
    stride, reason = choose_windows(lengths, model.max_length, pair_lengths=pair_lengths)
    print(reason)
    return stride


def _fit_with_search(fit, recipe, options: dict, test, problem_type: str):
    """One fit with the recipe; or --search's grid on the validation split, and --seeds runs of
    the chosen settings. Returns (the kept model, its Trial, what metrics.json records)."""
    # deferred: pulls in TensorFlow; a command loads it only when it runs (fast --help)
    from kbert.tasks.search import format_trials, is_better, run_trials, search_grid, spread  # noqa: PLC0415

    seed, monitor, seeds, record = options["seed"], recipe.monitor, options["seeds"], {}
    if seeds < 1:
        raise ValueError(f"--seeds must be at least 1, got {seeds}")
    learning_rate, epochs, kept = recipe.learning_rate, recipe.epochs, None
    score_test = None
    if test is not None and problem_type == "single_label" and seeds > 1:
        score_test = lambda model: model.evaluate_texts(test).accuracy  # noqa: E731
    if options["search"]:
        grid = [(lr, n, seed) for lr, n in search_grid(recipe.learning_rate, recipe.epochs)]
        model, best, trials = run_trials(fit, grid, monitor, keep_last=not recipe.restore_best)
        print(f"\n== search on the validation split ==\n{format_trials(trials, monitor, best)}")
        record["search"] = [t.row() for t in trials]
        learning_rate, epochs, kept = best.learning_rate, best.epochs, (model, best)
        if score_test:
            best.test_score = score_test(model)
        if seeds == 1:
            return model, best, record
    # the search already ran the chosen settings with `seed`
    runs = [(learning_rate, epochs, seed + k) for k in range(1 if kept else 0, seeds)]
    model, best, trials = run_trials(fit, runs, monitor, score_test,
                                     log=print if seeds > 1 else (lambda line: None),
                                     keep_last=not recipe.restore_best)
    if kept:
        trials = [kept[1]] + trials
        if not is_better(best, kept[1], monitor):
            model, best = kept
    if seeds > 1:
        print(f"\n== {seeds} seeds ==\n{format_trials(trials, monitor, best)}")
        print(f"best {monitor}: {spread([t.score for t in trials])}")
        if score_test:
            print(f"test accuracy: {spread([t.test_score for t in trials])}")
        record["seeds"] = [t.row() for t in trials]
    return model, best, record


def _run(options: dict, args, job) -> int:
    # deferred: pulls in TensorFlow; a command loads it only when it runs (fast --help)
    import keras  # noqa: PLC0415

    # deferred: pulls in TensorFlow; a command loads it only when it runs (fast --help)
    from kbert.tasks import BertClassifier, LabelMap, stratified_split  # noqa: PLC0415
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

    test = _load(options["test"], options) if options["test"] else None
    verbose = 0 if args.quiet else fit_verbosity()

    def make_model():
        model = BertClassifier.from_pretrained(
            options["model"], num_classes=num_classes, problem_type=problem_type,
            pooling=options["pooling"], dropout=options["dropout"],
            freeze_layers=options["freeze_layers"], max_length=options["max_length"],
            hidden_dropout=options["hidden_dropout"])
        if model.tokenizer is None:
            raise ValueError(f"{options['model']}: no vocab.txt found beside the weights")
        model.set_label_map(label_map)
        return model

    with job.scope():  # model, optimizer and compile (in fit_texts) under the strategy
        fresh = [make_model()]  # the first model also tells the recipe the encoder's width
        print(f"pooling: {fresh[0].defaults_origin}")
        options["pooling"] = fresh[0].pooling  # metrics.json records the pooling used
        stride = _choose_windows(fresh[0], train, options["window_stride"])
        recipe = fresh[0].finetuning_recipe(
            fresh[0].training_rows(train), options["batch_size"], epochs=options["epochs"],
            learning_rate=options["learning_rate"], early_stopping=options["early_stopping"],
            validation_examples=len(validation))
        print(recipe.describe())
        os.makedirs(options["output_dir"], exist_ok=True)
        out = job.write_dir  # output_dir on the chief; another worker writes to a temp dir

        def fit(learning_rate, epochs, seed):
            keras.utils.set_random_seed(seed)
            model = fresh.pop() if fresh else make_model()
            model.set_windows(stride)
            history = model.fit_texts(
                train, validation=validation, epochs=epochs, batch_size=options["batch_size"],
                learning_rate=learning_rate, warmup=options["warmup"],
                weight_decay=options["weight_decay"],
                layerwise_lr_decay=options["layerwise_lr_decay"],
                early_stopping_patience=options["early_stopping"], seed=seed, verbose=verbose)
            return model, history

        model, trial, search = _fit_with_search(fit, recipe, options, test, problem_type)
    options.update(window_stride=stride or 0, epochs=trial.epochs,
                   learning_rate=trial.learning_rate,
                   early_stopping=recipe.early_stopping, seed=trial.seed)
    model.save_pretrained(out)

    metrics = {"options": options, "history": trial.history, **search}
    sets = [("validation", validation)] + ([("test", test)] if test is not None else [])
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
