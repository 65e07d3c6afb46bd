"""The pre-training job behind `kbert pretrain`: vocabulary, data, model, fit, evaluation, saving.

Continued pre-training (`init_from`, `kbert pretrain --init-from SOURCE`, or
`continue_pretraining`) starts from a checkpoint's encoder (and its MLM / NSP heads when it has
them) with its vocabulary and casing instead of a new model and vocabulary.

Example:
    >>> from kbert.training.pretrain import PretrainConfig, pretrain
    >>> result = pretrain(PretrainConfig(output_dir="runs/pretrain"))  # doctest: +SKIP
    >>> held = result["heldout"]  # doctest: +SKIP
    >>> held["mlm_accuracy"] > 3 * held["baseline_accuracy"]  # doctest: +SKIP
    True

Files written in `output_dir`:
    vocab.txt, vocab_counts.txt   the vocabulary (trained here unless one is given or present;
                                  with init_from the checkpoint's, without counts)
    tokenizer_config.json         do_lower_case of a run initialised from a checkpoint
    model_config.json             the BertConfig
    encoder.keras                 the encoder alone, for fine-tuning (with vocab.txt)
    pretrainer.keras              encoder + MLM/NSP heads, without optimizer state
    checkpoints/                  ckpt-{step}.weights.h5 (weights + optimizer), checkpoint.json
    backup/                       keras BackupAndRestore state while a run is unfinished
    logs/                         TensorBoard (when the tensorboard package is installed)
    history.csv                   metrics of every epoch
    summary.json                  configuration, timings, final and held-out metrics
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import math
import os
import random
import time
from typing import Any

import keras
import numpy as np

from kbert.config import BertConfig, check_known_keys, read_json_file
from kbert.data.corpus import iter_documents
from kbert.data.masking import MaskingOptions
from kbert.data.pairs import PairOptions
from kbert.data.pipeline import BatchOptions, pretraining_dataset
from kbert.fill_mask import fill_mask
from kbert.loading import encoder_of, load
from kbert.models.pretrainer import BertPretrainer
from kbert.outputs import fit_verbosity
from kbert.tokenization.tokenizer import BertTokenizer
from kbert.tokenization.vocab import VOCAB_FILE, Vocabulary
from kbert.tokenization.vocab_training import train_vocabulary
from kbert.training.callbacks import (
    AtomicCheckpoint,
    StopOnDivergence,
    TrainingDiverged,
    remove_quietly,
    write_json_atomic,
)
from kbert.training.distribute import DistributedJob
from kbert.training.optimizer import create_optimizer, set_precision
from kbert.training.preflight import check_output_dir

SUMMARY_FILE = "summary.json"


@dataclasses.dataclass
class PretrainConfig:
    """Everything `pretrain` needs; the defaults are the `kbert pretrain` default run.

    What these defaults measure (time, held-out MLM and NSP accuracy) is recorded in
    docs/pretraining-notes.md, not here.
    """

    corpus: Any = "austen"
    output_dir: str = "runs/pretrain"
    vocab: str | None = None            # an existing vocab.txt (or its directory)
    vocab_size: int = 8000              # when a vocabulary is trained
    preset: str = "tiny"
    model: dict | str | None = None     # BertConfig overrides, or a BertConfig JSON file
    dropout: float | None = 0.0         # hidden + attention dropout unless `model` sets them;
                                        # None keeps BertConfig's 0.1 (short runs underfit)
    # 64 x 64 tokens: measured on Austen, seq 64 leaves the MLM plateau (accuracy ~0.15, the
    # frequent-word guess) after ~1000 steps; seq 128 (same tokens per step) stayed on it for
    # 3,600 steps. Longer runs can move to 128 (`--seq-length 128 --max-predictions 20`).
    seq_length: int = 64
    batch_size: int = 64
    max_predictions: int = 10
    masked_lm_prob: float = 0.15
    whole_word_masking: bool = False
    steps: int = 3200
    steps_per_epoch: int = 200
    learning_rate: float = 2e-3
    warmup: float = 0.1
    weight_decay: float = 0.01
    seed: int = 12345
    mixed_precision: bool | str = False
    jit_compile: bool = True            # XLA: 145 vs 200 ms/step for the default run (2 cores)
    checkpoint_every: int = 500
    keep_checkpoints: int = 2
    eval_batches: int = 40              # per drawing of the held-out set
    eval_drawings: int = 3              # the held-out pairs and masks drawn this many times
                                        # (seeds seed, seed + 1, ...): ~1,700 NSP pairs for the
                                        # default run instead of ~580, i.e. +-0.011 not +-0.019
    examples: int = 5
    verbose: int | str = "auto"         # Keras fit: "auto" = the progress bar on a terminal,
                                        # one plain line per epoch when piped (2); 0 = silent
    strategy: str | None = None         # None, "mirrored", "multiworker", "tpu": see
                                        # kbert/training/distribute.py; batch_size is global
    init_from: str | None = None        # continued pre-training: any source `kbert.load` reads;
                                        # its vocabulary, casing and BertConfig (dropout too)
                                        # are used, so vocab / vocab_size / preset / model must
                                        # stay unset (INIT_CONFLICTS); its MLM / NSP heads when
                                        # it has them, else fresh ones

    @classmethod
    def from_dict(cls, values: dict) -> PretrainConfig:
        check_known_keys(values, {f.name for f in dataclasses.fields(cls)},
                         "pretrain config keys", ValueError)
        return cls(**values)

    @classmethod
    def from_json(cls, path: str) -> PretrainConfig:
        # Size-bounded, UTF-8, an object, no RecursionError on deeply nested input.
        return cls.from_dict(read_json_file(path, error=ValueError))

    def validate(self) -> None:
        for name in ("seq_length", "batch_size", "max_predictions", "steps", "steps_per_epoch",
                     "checkpoint_every", "keep_checkpoints", "eval_batches", "eval_drawings",
                     "vocab_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.seq_length < 8:
            raise ValueError(f"seq_length must be >= 8, got {self.seq_length}")
        if not 0 < self.masked_lm_prob < 1:
            raise ValueError(f"masked_lm_prob must be in (0, 1), got {self.masked_lm_prob!r}")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate!r}")
        if self.init_from is not None:
            defaults = PretrainConfig()
            for name, flag in INIT_CONFLICTS.items():
                if getattr(self, name) != getattr(defaults, name):
                    raise ValueError(
                        f"{flag} {getattr(self, name)!r} conflicts with init_from "
                        f"{self.init_from!r}: a continued run takes its vocabulary and model "
                        f"configuration from the checkpoint; drop {flag}")

    @property
    def epochs(self) -> int:
        return math.ceil(self.steps / self.steps_per_epoch)

    @property
    def total_steps(self) -> int:
        """`steps` rounded up to whole epochs (Keras counts progress in epochs)."""
        return self.epochs * self.steps_per_epoch


# PretrainConfig fields that a run initialised from a checkpoint takes from it (-> the flag).
INIT_CONFLICTS = {"vocab": "--vocab", "vocab_size": "--vocab-size", "preset": "--preset",
                  "model": "--model-config", "dropout": "--dropout"}


# Everything a run writes in output_dir (see the module docstring), and the keys of its summary
# config that do not change what the run computes.
RUN_FILES = frozenset({"vocab.txt", "vocab_counts.txt", "tokenizer_config.json",
                       "model_config.json", "encoder.keras",
                       "pretrainer.keras", "tmp-encoder.keras", "tmp-pretrainer.keras",
                       "checkpoints", "backup", "logs", "history.csv", SUMMARY_FILE})
_PRESENTATION_KEYS = ("output_dir", "verbose")


def is_same_run(config: PretrainConfig, directory: str | None = None) -> bool:
    """Whether `directory` (default config.output_dir) holds this run's own files only, so that
    `pretrain(config)` continues or repeats it there rather than replacing another's work:
    every entry is a file the run writes (a vocabulary put there to be reused included), and a
    finished run's summary.json has the same configuration (output_dir and verbosity aside).
    An unfinished run (backup/) is resumed; `model_config` refuses one of a different model."""
    directory = config.output_dir if directory is None else directory
    try:
        names = os.listdir(directory)
    except OSError:
        return False
    if any(n not in RUN_FILES and not n.startswith(".kbert-write-test-") for n in names):
        return False
    if SUMMARY_FILE in names and "backup" not in names:
        try:
            with open(os.path.join(directory, SUMMARY_FILE), encoding="utf-8") as f:
                previous = json.load(f)["config"]
        except (OSError, ValueError, KeyError, TypeError):
            return False
        if not isinstance(previous, dict):
            return False
        current = json.loads(json.dumps(dataclasses.asdict(config)))
        for values in (previous, current):
            for key in _PRESENTATION_KEYS:
                values.pop(key, None)
        return previous == current
    return True


# ---------------------------------------------------------------------------------- parts
def prepare_vocabulary(config: PretrainConfig, log=print):
    """The given vocabulary, else the one in output_dir (a re-run reuses it), else a new one."""
    if config.vocab is not None:
        vocab = Vocabulary.load(config.vocab)
        vocab.save(config.output_dir)
        log(f"vocabulary: {vocab.size} entries from {config.vocab}")
        return vocab
    if os.path.isfile(os.path.join(config.output_dir, VOCAB_FILE)):
        vocab = Vocabulary.load(config.output_dir)
        log(f"vocabulary: reusing {vocab.size} entries in {config.output_dir}")
        return vocab
    start = time.perf_counter()
    log(f"vocabulary: training {config.vocab_size} entries on the corpus")
    vocab = train_vocabulary(config.corpus, vocab_size=config.vocab_size,
                             output_dir=config.output_dir, log=lambda line: log(f"  {line}"))
    log(f"vocabulary: trained {vocab.size} entries in {time.perf_counter() - start:.0f}s")
    return vocab


def model_config(config: PretrainConfig, vocab_size: int):
    """The BertConfig of the run; an explicit vocab_size must agree with the vocabulary."""
    overrides = config.model
    if isinstance(overrides, str):
        overrides = read_json_file(overrides, error=ValueError)
    overrides = dict(overrides or {})
    if config.dropout is not None:
        overrides.setdefault("hidden_dropout", config.dropout)
        overrides.setdefault("attention_dropout", config.dropout)
    overrides.setdefault("vocab_size", vocab_size)
    overrides.setdefault("max_position_embeddings", max(512, config.seq_length))
    bert_config = BertConfig.preset(config.preset, **overrides)
    saved = os.path.join(config.output_dir, "model_config.json")
    if os.path.isfile(saved) and os.path.isdir(os.path.join(config.output_dir, "backup")):
        previous = BertConfig.from_json(saved)
        if previous != bert_config:
            raise ValueError(
                f"{config.output_dir} holds an unfinished run of a different model "
                f"({previous}); use another output_dir or delete its backup/ folder")
    bert_config.check_vocab(vocab_size)
    if config.seq_length > bert_config.max_position_embeddings:
        raise ValueError(f"seq_length {config.seq_length} exceeds max_position_embeddings "
                         f"{bert_config.max_position_embeddings}")
    return bert_config


def build_datasets(config: PretrainConfig, tokenizer, resume_epoch: int = 0):
    """(train, heldout) tf.data of (features, labels) batches from `kbert.data.pipeline`.

    train repeats forever with new pairs and masks at each pass over the corpus; heldout is a
    list of `config.eval_drawings` fixed evaluation sets built from the held-out chapters
    (`kbert.data.corpus.is_heldout`), each with its own pairs and masks (seed + k).
    A run resumed at epoch e draws its stream with seed + e instead of replaying the batches
    of epochs 0..e-1 (skipping them would cost as much input processing as making them).
    """
    pairs = PairOptions(config.seq_length)
    # A checkpoint's vocabulary has no corpus counts: random replacements are then drawn
    # uniformly, as in the reference BERT.
    masking = MaskingOptions(config.max_predictions, config.masked_lm_prob,
                             whole_word=config.whole_word_masking,
                             replacement="unigram" if tokenizer.vocab.counts is not None
                             else "uniform")
    train = pretraining_dataset(config.corpus, tokenizer, pairs, masking,
                                BatchOptions(config.batch_size, repeat=True),
                                split="train", seed=config.seed + resume_epoch)
    heldout = [pretraining_dataset(config.corpus, tokenizer, pairs, masking,
                                   BatchOptions(config.batch_size), split="heldout",
                                   seed=config.seed + k)
               for k in range(config.eval_drawings)]
    return train, heldout


def _resume_epoch(backup_dir: str) -> int:
    try:
        return int(read_json_file(os.path.join(backup_dir, "training_metadata.json"),
                                  ValueError)["epoch"])
    except (ValueError, KeyError, TypeError):
        return 0


def evaluate_heldout(model, datasets, batches: int) -> dict:
    """MLM and NSP accuracy on `batches` batches of each held-out dataset (one, or a list of
    drawings), with the best constant baseline.

    baseline_accuracy: the share of the most frequent held-out target token, i.e. the accuracy
    of always predicting it (the strongest single-token predictor, chosen with hindsight).
    """
    correct = total = nsp_correct = nsp_total = 0.0
    target_counts: dict[int, float] = {}
    if not isinstance(datasets, (list, tuple)):
        datasets = [datasets]
    batches_of_all = (batch for dataset in datasets for batch in dataset.take(batches))
    for x, y in batches_of_all:
        labels = {**x, **y}
        out = model(x, training=False)
        pred = np.argmax(np.asarray(out["mlm_logits"]), -1)
        ids = np.asarray(labels["masked_ids"])
        w = np.asarray(labels["masked_weights"], dtype="float64")
        correct += float((w * (pred == ids)).sum())
        total += float(w.sum())
        for token, weight in zip(ids[w > 0].tolist(), w[w > 0].tolist(), strict=True):
            target_counts[token] = target_counts.get(token, 0.0) + weight
        nsp = np.asarray(labels["next_sentence_labels"]).reshape(-1)
        nsp_correct += float((np.argmax(np.asarray(out["nsp_logits"]), -1) == nsp).sum())
        nsp_total += nsp.size
    if total == 0 or nsp_total == 0:
        raise ValueError("the held-out split produced no masked tokens; is the corpus too small?")
    top_token, top_count = max(target_counts.items(), key=lambda kv: kv[1])
    return {"mlm_accuracy": correct / total, "nsp_accuracy": nsp_correct / nsp_total,
            "baseline_accuracy": top_count / total, "baseline_token_id": int(top_token),
            "masked_tokens": int(total), "pairs": int(nsp_total), "drawings": len(datasets)}


def fill_mask_examples(model, tokenizer, corpus, count: int, seed: int) -> list[dict]:
    """Mask one word in each of `count` held-out sentences and predict it."""
    if count <= 0:
        return []
    rng = random.Random(seed)
    candidates = [s for doc in iter_documents(corpus, split="heldout") for s in doc.sentences
                  if 6 <= len(s.split()) <= 40]
    rng.shuffle(candidates)
    examples = []
    for sentence in candidates:
        words = sentence.split()
        order = [i for i, w in enumerate(words) if w.isalpha() and len(w) > 2]
        rng.shuffle(order)
        # a word that is a single piece, so one [MASK] stands for it exactly
        chosen = next((i for i in order[:8] if len(tokenizer.encode(words[i])[0]) == 1), None)
        if chosen is None:
            continue
        masked = " ".join(words[:chosen] + ["[MASK]"] + words[chosen + 1:])
        predictions = fill_mask(model, tokenizer, [masked], top_k=5)[0][0]
        examples.append({"text": masked, "answer": words[chosen].lower(),
                         "predictions": predictions})
        if len(examples) == count:
            break
    return examples


# ---------------------------------------------------------------------------------- the job
def pretrain(config: PretrainConfig | dict | None = None, log=print) -> dict:
    """Run the whole pre-training job; returns (and writes) the JSON summary as a dict.

    Re-running the same command after an interruption resumes from `output_dir/backup`.
    Raises TrainingDiverged (a ValueError) if the loss becomes NaN, naming the step and the
    last good checkpoint; ConfigError if the vocabulary does not fit the model.
    """
    if config is None:
        config = PretrainConfig()
    elif isinstance(config, dict):
        config = PretrainConfig.from_dict(config)
    config.validate()

    previous_policy = keras.mixed_precision.global_policy()
    # First: MultiWorkerMirroredStrategy must be created before any other TensorFlow op.
    job = DistributedJob(config.strategy, config.output_dir, log)
    try:
        return _pretrain(config, log, job)
    finally:
        job.close()
        keras.mixed_precision.set_global_policy(previous_policy)


@dataclasses.dataclass
class _Run:
    """What the steps of one job hand each other."""

    out: str                    # where this worker writes (output_dir on the chief)
    vocab: Any
    tokenizer: Any
    bert_config: Any
    precision: str
    backup_dir: str
    source: Any = None          # the `kbert.Loaded` checkpoint of a continued run
    model: Any = None
    train_ds: Any = None
    heldout_ds: Any = None
    init: dict | None = None    # where the weights came from (summary.json)
    seconds: dict = dataclasses.field(default_factory=dict)


def _pretrain(config: PretrainConfig, log, job) -> dict:
    started = time.perf_counter()
    run = set_up_run(config, job, log)
    run.seconds["vocab_and_setup"] = time.perf_counter() - started
    history, backup = fit_run(run, config, job, log)
    heldout, examples = evaluate_run(run, config)
    save_models(run.model, run.out)
    run.seconds["total"] = time.perf_counter() - started
    return write_summary(run, config, job, history, backup, heldout, examples)


def set_up_run(config: PretrainConfig, job, log=print) -> _Run:
    """Output directory, seed, precision, vocabulary and BertConfig (trained and built, or the
    checkpoint's), datasets, compiled model."""

    check_output_dir(config.output_dir)  # creatable and writable: a clear error now
    os.makedirs(config.output_dir, exist_ok=True)
    out = job.write_dir  # output_dir on the chief; another worker writes to a temp dir
    keras.utils.set_random_seed(config.seed)
    precision = set_precision(config.mixed_precision)
    backup_dir = os.path.join(config.output_dir, "backup")  # every worker restores the chief's
    if config.init_from is None:
        run = new_model_run(config, out, precision, backup_dir, log)
    else:
        run = continued_run(config, job, out, precision, backup_dir, log)
    run.bert_config.to_json(os.path.join(out, "model_config.json"))
    run.train_ds, run.heldout_ds = build_datasets(config, run.tokenizer,
                                                  _resume_epoch(run.backup_dir))
    run.train_ds = job.distribute_dataset(run.train_ds, config.corpus)
    run.model = compiled_model(config, run, job, log)
    describe_run(run, config, job, log)
    return run


def new_model_run(config: PretrainConfig, out: str, precision: str, backup_dir: str,
                  log=print) -> _Run:
    """A run from random weights: its vocabulary (trained or given) and BertConfig (preset)."""

    vocab = prepare_vocabulary(dataclasses.replace(config, output_dir=out), log)
    return _Run(out=out, vocab=vocab, tokenizer=BertTokenizer(vocab, max_length=config.seq_length),
                bert_config=model_config(config, vocab.size), precision=precision,
                backup_dir=backup_dir)


def continued_run(config: PretrainConfig, job, out: str, precision: str, backup_dir: str,
                  log=print) -> _Run:
    """A run from `config.init_from`: the checkpoint's vocabulary (saved in `out` with its
    casing in tokenizer_config.json), tokenizer and BertConfig; no vocabulary is trained."""
    with job.scope():  # the checkpoint's variables belong to the job's strategy
        source = load(config.init_from)
    if source.tokenizer is None:
        raise ValueError(f"init_from {config.init_from!r} has no vocab.txt beside it; continued "
                         f"pre-training needs the checkpoint's own vocabulary")
    bert_config = source.encoder.bert_config
    if config.seq_length > bert_config.max_position_embeddings:
        raise ValueError(f"seq_length {config.seq_length} exceeds the checkpoint's "
                         f"max_position_embeddings {bert_config.max_position_embeddings}")
    saved = os.path.join(config.output_dir, "model_config.json")
    if os.path.isfile(saved) and os.path.isdir(backup_dir):
        if BertConfig.from_json(saved) != bert_config:
            raise ValueError(f"{config.output_dir} holds an unfinished run of a different model; "
                             f"use another output_dir or delete its backup/ folder")
    vocab = source.tokenizer.vocab
    vocab.save(out)
    lower_case = bool(source.tokenizer.lower_case)
    with open(os.path.join(out, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump({"do_lower_case": lower_case}, f, indent=2)
        f.write("\n")
    log(f"vocabulary: the checkpoint's {vocab.size} entries "
        f"({'lower-cased' if lower_case else 'cased'}) from {config.init_from}")
    return _Run(out=out, vocab=vocab, tokenizer=BertTokenizer(
                    vocab, lower_case=lower_case, max_length=config.seq_length),
                bert_config=bert_config, precision=precision, backup_dir=backup_dir,
                source=source)


def initial_pretrainer(source, log=print):
    """The BertPretrainer a continued run starts from: `source.model` itself when it is one
    (heads imported), else one around its encoder with fresh MLM and NSP heads.

    Args: source, a `kbert.Loaded`. Returns (model, heads) with heads "imported" or "fresh".
    """
    if isinstance(source.model, BertPretrainer):
        return source.model, "imported"
    log(f"fresh MLM head: {source.path} ({source.kind}) has no pre-training heads; the MLM "
        f"transform and bias and the NSP head start from random weights")
    return BertPretrainer(encoder_of(source.model)), "fresh"


def compiled_model(config: PretrainConfig, run: _Run, job, log=print):
    """The BertPretrainer (new, or from the checkpoint) with its AdamW schedule, compiled in
    the job's scope."""
    with job.scope():
        if run.source is None:
            model = BertPretrainer.from_bert_config(run.bert_config)
        else:
            model, heads = initial_pretrainer(run.source, log)
            run.init = {"source": os.fspath(run.source.path), "kind": run.source.kind,
                        "heads": heads}
        model.compile(
            optimizer=create_optimizer(config.learning_rate, config.total_steps, config.warmup,
                                       weight_decay=config.weight_decay),
            jit_compile=job.jit_compile(config.jit_compile))
        job.prepare_optimizer(model.optimizer)
    return model


def describe_run(run: _Run, config: PretrainConfig, job, log=print) -> None:
    bert_config = run.bert_config
    origin = (config.preset if run.init is None
              else f"from {run.init['source']} ({run.init['heads']} heads),")
    log(f"model: {origin} {bert_config.num_layers} layers, hidden "
        f"{bert_config.hidden_size}, {run.model.count_params() / 1e6:.1f}M parameters, "
        f"{run.precision}; {config.total_steps} steps of {config.batch_size} x "
        f"{config.seq_length} tokens")
    if job.distributed:
        log(f"distribution: {config.strategy}, {job.num_replicas} replicas on "
            f"{job.role.num_workers} worker(s), this is {job.role.label}"
            f"{' (chief)' if job.is_chief else ''}; global batch {config.batch_size} = "
            f"{config.batch_size / job.num_replicas:g} sequences per replica")


def fit_run(run: _Run, config: PretrainConfig, job, log=print):
    """Keras fit with checkpoints, resume backup, metric logs and the NaN stop; returns
    (history, backup). Raises TrainingDiverged naming the last good checkpoint."""

    divergence = StopOnDivergence()
    checkpoints = AtomicCheckpoint(os.path.join(run.out, "checkpoints"), config.checkpoint_every,
                                   config.keep_checkpoints)
    verbose = fit_verbosity() if config.verbose == "auto" else config.verbose
    backup = job.backup(run.backup_dir, verbose=bool(verbose))
    loggers = metric_loggers(run.out, config.steps_per_epoch, log)
    fit_start = time.perf_counter()
    history = run.model.fit(run.train_ds, epochs=config.epochs,
                            steps_per_epoch=config.steps_per_epoch,
                            callbacks=[divergence, backup, checkpoints, *loggers],
                            verbose=verbose)
    run.seconds["fit"] = time.perf_counter() - fit_start
    if divergence.diverged_at_step is not None:
        latest = AtomicCheckpoint.latest(checkpoints.directory)
        raise TrainingDiverged(
            f"the loss became {divergence.loss} at step {divergence.diverged_at_step}; "
            f"training stopped. Last good checkpoint: {latest or 'none yet'}. Lower the "
            f"learning rate (now {config.learning_rate}) and re-run.")
    return history, backup


def evaluate_run(run: _Run, config: PretrainConfig):
    """(held-out metrics, fill-mask examples) of the trained model."""
    eval_start = time.perf_counter()
    heldout = evaluate_heldout(run.model, run.heldout_ds, config.eval_batches)
    heldout["baseline_token"] = run.vocab.tokens[heldout["baseline_token_id"]]
    examples = fill_mask_examples(run.model, run.tokenizer, config.corpus, config.examples,
                                  config.seed)
    run.seconds["eval"] = time.perf_counter() - eval_start
    return heldout, examples


def write_summary(run: _Run, config: PretrainConfig, job, history, backup, heldout,
                  examples) -> dict:
    """summary.json (written atomically) and the same dict returned."""

    out = run.out
    summary = {
        "config": dataclasses.asdict(config),
        "model_config": run.bert_config.to_dict(),
        "parameters": int(run.model.count_params()),
        "precision": run.precision,
        "init": run.init,
        "distribution": job.describe(),
        "steps": int(keras.ops.convert_to_numpy(run.model.optimizer.iterations)),
        "resumed_from_step": backup.resumed_from_step,
        "final_train_metrics": {k: float(v[-1]) for k, v in history.history.items()},
        "heldout": heldout,
        "examples": examples,
        "seconds": {k: round(run.seconds[k], 1)
                    for k in ("vocab_and_setup", "fit", "eval", "total")},
        "files": {"encoder": os.path.join(out, "encoder.keras"),
                  "pretrainer": os.path.join(out, "pretrainer.keras"),
                  "vocab": os.path.join(out, "vocab.txt")},
    }
    write_json_atomic(os.path.join(out, SUMMARY_FILE), summary)
    return summary


def continue_pretraining(init_from, corpus, output_dir: str, log=print, **options) -> dict:
    """Continued pre-training: MLM + NSP from `init_from`'s weights on `corpus`.

    Args:
        init_from: any source `kbert.load` reads (a kbert run or model directory, a
            transformers or Google checkpoint); its vocabulary, casing and BertConfig are kept.
        corpus: text files, directories or globs (see `kbert.data.corpus`); at least two
            documents (blank lines or headings separate them: NotNext pairs need another one).
        output_dir: the run directory, which `kbert.load` and `kbert finetune --model` read.
        **options: other `PretrainConfig` fields (steps, learning_rate, seq_length, ...).
    Returns the summary dict (summary.json), with "init": source, kind, heads imported/fresh.
    """
    config = PretrainConfig.from_dict({**options, "init_from": os.fspath(init_from),
                                       "corpus": corpus, "output_dir": os.fspath(output_dir)})
    return pretrain(config, log=log)


def metric_loggers(out: str, every_steps: int, log=print) -> list:
    """history.csv (appended across resumes) and TensorBoard logs when TensorBoard is installed
    (TensorFlow 2.21 no longer pulls it in; `pip install tensorboard` to get the logs)."""
    loggers = [keras.callbacks.CSVLogger(os.path.join(out, "history.csv"), append=True)]
    if importlib.util.find_spec("tensorboard") is not None:
        loggers.append(keras.callbacks.TensorBoard(os.path.join(out, "logs"), write_graph=False,
                                                   update_freq=every_steps))
    else:
        log("TensorBoard is not installed: metrics go to history.csv only")
    return loggers


def save_models(model, out: str) -> None:
    """encoder.keras and pretrainer.keras (no optimizer state), each written atomically."""
    # A fresh, uncompiled copy: `.keras` would otherwise carry the optimizer's moments (2x the
    # weights) that inference and fine-tuning do not need.
    clean = BertPretrainer.from_config(model.get_config())
    clean.set_weights(model.get_weights())
    for layer, name in ((clean.encoder, "encoder.keras"), (clean, "pretrainer.keras")):
        tmp = os.path.join(out, f"tmp-{name}")
        try:
            keras.saving.save_model(layer, tmp)
            os.replace(tmp, os.path.join(out, name))
        except BaseException:
            # Disk full, interrupted...: the previous file (if any) stays whole, no debris.
            remove_quietly(tmp)
            raise
