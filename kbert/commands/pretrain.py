"""`kbert pretrain`: pre-train a BERT (MLM + NSP); with no arguments, a small one on Jane Austen.

    kbert pretrain                                  # 5-12 min on 2 CPU cores, runs/pretrain
    kbert pretrain --config my_run.json --steps 20000 --preset mini
    kbert pretrain --corpus books/ --output-dir runs/books --seq-length 128 --max-predictions 20
    kbert pretrain --strategy multiworker ...      # on every host, with its TF_CONFIG set
    kbert pretrain --init-from runs/minilm --corpus my_texts/ --steps 400 --learning-rate 5e-5
                                                    # continued pre-training of a checkpoint

Flags override the JSON config file, which overrides the defaults (`PretrainConfig`).
Re-running the same command after an interruption resumes where the last epoch ended. A new
run refuses an --output-dir holding anything but that run's own files unless --overwrite.
"""

from __future__ import annotations

from kbert.outputs import check_output

# flag -> (PretrainConfig field, type, help)
FLAGS = {
    "--corpus": ("corpus", str, 'text files, directories or globs; "austen" = the embedded corpus'),
    "--output-dir": ("output_dir", str, "where everything is written (default runs/pretrain)"),
    "--vocab": ("vocab", str, "use this vocab.txt instead of training one"),
    "--vocab-size": ("vocab_size", int, "size of a trained vocabulary (default 8000)"),
    "--preset": ("preset", str, "model size: tiny, mini, small, medium, base, large"),
    "--model-config": ("model", str, "BertConfig JSON overriding the preset's fields"),
    "--dropout": ("dropout", float, "hidden and attention dropout (default 0: short runs)"),
    "--seq-length": ("seq_length", int, "tokens per sequence"),
    "--batch-size": ("batch_size", int, "sequences per step"),
    "--max-predictions": ("max_predictions", int, "masked positions per sequence (max)"),
    "--masked-lm-prob": ("masked_lm_prob", float, "share of tokens to predict"),
    "--steps": ("steps", int, "optimizer steps (rounded up to whole epochs)"),
    "--steps-per-epoch": ("steps_per_epoch", int, "steps per epoch (the resume granularity)"),
    "--learning-rate": ("learning_rate", float, "peak learning rate"),
    "--warmup": ("warmup", float, "warmup: fraction of the steps (<1) or a step count"),
    "--weight-decay": ("weight_decay", float, "AdamW decay (not on LayerNorm and biases)"),
    "--seed": ("seed", int, "random seed (data order, masking, initialisation)"),
    "--checkpoint-every": ("checkpoint_every", int, "steps between checkpoints"),
    "--eval-batches": ("eval_batches", int, "held-out batches evaluated at the end, per drawing"),
    "--eval-drawings": ("eval_drawings", int, "held-out pairs and masks drawn this many times "
                        "(default 3)"),
    "--examples": ("examples", int, "fill-in-the-blank examples printed at the end"),
    "--init-from": ("init_from", str, "continue pre-training from this model (any source "
                    "kbert.load reads), with its vocabulary, casing and size"),
    "--strategy": ("strategy", str, "mirrored (all local GPUs), multiworker (TF_CONFIG on each "
                   "host) or tpu; --batch-size is then the global batch (docs/distributed.md)"),
}


def add_arguments(parser) -> None:
    parser.add_argument("--config", metavar="JSON", help="a JSON object of PretrainConfig fields")
    for flag, (field, kind, help_text) in FLAGS.items():
        nargs = "+" if field == "corpus" else None
        parser.add_argument(flag, dest=field, type=kind, nargs=nargs, default=None,
                            help=help_text)
    parser.add_argument("--whole-word-masking", dest="whole_word_masking", action="store_true",
                        default=None, help="mask all pieces of a word together")
    parser.add_argument("--mixed-precision", dest="mixed_precision", nargs="?",
                        const="mixed_bfloat16", default=None,
                        help="compute in bfloat16 (or the policy named, e.g. mixed_float16)")
    parser.add_argument("--xla", dest="jit_compile", action="store_true", default=None,
                        help="compile the train step with XLA (the default)")
    parser.add_argument("--no-xla", dest="jit_compile", action="store_false",
                        help="run the train step without XLA")
    parser.add_argument("--quiet", action="store_true",
                        help="no progress bar: one line per epoch (also when the output is piped)")
    parser.add_argument("--overwrite", action="store_true",
                        help="start a new run in an --output-dir that holds other files (by "
                             "default only the same run's own files are accepted: it resumes)")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")


def config_from_args(args):
    # deferred: pulls in TensorFlow; a command loads it only when it runs (fast --help)
    from kbert.training.pretrain import PretrainConfig  # noqa: PLC0415

    values = {}
    if args.config:
        values.update(PretrainConfig.from_json(args.config).__dict__)
    fields = [f for f, _, _ in FLAGS.values()] + ["whole_word_masking", "mixed_precision",
                                                    "jit_compile"]
    for field in fields:
        value = getattr(args, field, None)
        if value is not None:
            values[field] = value
    if args.warmup is not None and args.warmup >= 1:
        values["warmup"] = int(args.warmup)
    if args.quiet:
        values["verbose"] = 2
    if values.get("init_from") is not None:
        # deferred: pulls in TensorFlow; a command loads it only when it runs (fast --help)
        from kbert.training.pretrain import INIT_CONFLICTS  # noqa: PLC0415

        given = [flag for name, flag in INIT_CONFLICTS.items() if getattr(args, name) is not None]
        if given:
            raise ValueError(f"{given[0]} conflicts with --init-from: a continued run takes its "
                             f"vocabulary and model configuration (dropout too) from the "
                             f"checkpoint; drop {given[0]}")
    return PretrainConfig.from_dict(values)


def _drawings(held: dict) -> str:
    count = held.get("drawings", 1)
    return f", {count} drawings" if count > 1 else ""


def report(summary: dict) -> str:
    held = summary["heldout"]
    ratio = held["mlm_accuracy"] / max(held["baseline_accuracy"], 1e-9)
    lines = [
        f"\nheld-out evaluation ({held['masked_tokens']} masked tokens, {held['pairs']} pairs"
        f"{_drawings(held)}):",
        f"  MLM accuracy  {held['mlm_accuracy']:.3f}   (always predicting the most frequent "
        f"token {held['baseline_token']!r}: {held['baseline_accuracy']:.3f}; {ratio:.1f}x)",
        f"  NSP accuracy  {held['nsp_accuracy']:.3f}   (chance: 0.5)",
    ]
    if summary["examples"]:
        lines.append("fill-in-the-blank on held-out text (answer -> top predictions):")
        for ex in summary["examples"]:
            guesses = ", ".join(f"{t} {p:.2f}" for t, p in ex["predictions"])
            lines.append(f"  {ex['text']}\n      {ex['answer']} -> {guesses}")
    seconds = summary["seconds"]
    lines.append(f"{summary['steps']} steps; time: {seconds['total']:.0f}s "
                 f"(fit {seconds['fit']:.0f}s); encoder: {summary['files']['encoder']}; summary: "
                 f"{summary['config']['output_dir']}/summary.json")
    return "\n".join(lines)


def run(args) -> int:
    # deferred: pulls in TensorFlow; a command loads it only when it runs (fast --help)
    from kbert.training.pretrain import is_same_run, pretrain  # noqa: PLC0415

    config = config_from_args(args)
    # A new run must not write over other work; the same run (its backup/, its vocabulary, a
    # finished run of the same configuration) goes on there as before.
    check_output(config.output_dir, overwrite=args.overwrite, flag="--output-dir",
                 own=lambda path: is_same_run(config, path))
    summary = pretrain(config)
    print(report(summary), flush=True)
    return 0
