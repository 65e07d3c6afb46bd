"""A whole fine-tuning run, data to trained model, against keras-hub's `BertTextClassifier.fit`
and transformers' `Trainer`: one process per run, the systems interleaved, order rotated.

    pip install -e ".[bench]"
    python bench/finetune_speed.py                                   # polarity, 1 epoch, 2 reps
    python bench/finetune_speed.py --torch-python /path/venv/bin/python --epochs 2 --reps 3

Every system gets the same work: the polarity training part (3,200 sentences, fetched by
scripts/fetch_labelled.py) at max length 128, batch 32, `--epochs` epochs, the test part (800)
evaluated after each epoch, an encoder of all-MiniLM-L6-v2's shape (L6 H384 A12 I1536, its
30,522-piece vocabulary and tokenizer) and a 2-class head. Speed does not depend on the
weights: kbert starts from the installed all-MiniLM-L6-v2 weights, the anchors from random
weights of the same shape.
  kbert         `kbert finetune --model MINILM --train train.jsonl --validation test.jsonl
                --epochs E --early-stopping 0 --max-length 128`: the command a user runs
                (writes the model, reports and plots too).
  keras_hub     `BertTextClassifier(BertBackbone(...), num_classes=2, preprocessor=
                BertTextClassifierPreprocessor(BertTokenizer(vocab), sequence_length=128))`,
                its default `compile()`, `fit(texts, labels, validation_data=..., epochs=E,
                batch_size=32)`, TensorFlow backend.
  hf_dynamic    transformers `Trainer` (torch, CPU) on `BertForSequenceClassification`, texts
                tokenized with truncation at 128 and padded per batch (DataCollatorWithPadding).
  hf_padded     the same, tokenized with `padding="max_length"` as in transformers' fine-tuning
                tutorial.
Timed: the whole process (interpreter start, imports, reading the data, tokenizing, building,
training, evaluating, and for kbert saving) and, inside it, the run without the interpreter's
start (framework imports included: each system imports its framework inside the run). Ratios
are the anchor's median over kbert's median. The transformers arms need torch and transformers
(+ accelerate) in `--torch-python`'s environment.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from finetune_quality import default_model, fetch, read_jsonl  # noqa: E402
from results_files import results_json  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SYSTEMS = ("kbert", "keras_hub", "hf_dynamic", "hf_padded")
SHAPE = {"vocab_size": 30522, "hidden": 384, "layers": 6, "heads": 12, "intermediate": 1536,
         "positions": 512}


def _read(path: str):
    """Texts and integer labels (the classes in sorted order)."""
    texts, labels = read_jsonl(path)
    names = sorted(set(labels), key=str)
    return texts, [names.index(label) for label in labels]


# ------------------------------------------------------------------------------ workers
def _worker_kbert(job: dict) -> None:
    from kbert.cli import main  # noqa: PLC0415  (worker process)

    out = os.path.join(job["tmp"], "kbert")
    code = main(["finetune", "--model", job["model"], "--train", job["train"],
                 "--validation", job["test"], "--epochs", str(job["epochs"]),
                 "--early-stopping", "0", "--max-length", str(job["max_length"]),
                 "--batch-size", str(job["batch"]), "--output-dir", out, "--quiet"])
    if code:
        raise SystemExit(f"kbert finetune exited {code}")


def _worker_keras_hub(job: dict) -> None:
    import keras  # noqa: PLC0415
    import keras_hub  # noqa: PLC0415

    train = _read(job["train"])
    test = _read(job["test"])
    keras.utils.set_random_seed(0)
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=SHAPE["vocab_size"], num_layers=SHAPE["layers"],
        num_heads=SHAPE["heads"], hidden_dim=SHAPE["hidden"],
        intermediate_dim=SHAPE["intermediate"], max_sequence_length=SHAPE["positions"])
    tokenizer = keras_hub.models.BertTokenizer(vocabulary=job["vocab"], lowercase=True)
    preprocessor = keras_hub.models.BertTextClassifierPreprocessor(
        tokenizer, sequence_length=job["max_length"])
    model = keras_hub.models.BertTextClassifier(backbone, num_classes=2,
                                                preprocessor=preprocessor)
    model.compile()
    model.fit(x=train[0], y=train[1], validation_data=(test[0], test[1]),
              epochs=job["epochs"], batch_size=job["batch"], verbose=0)


def _worker_hf(job: dict, padded: bool) -> None:
    import torch  # noqa: PLC0415
    from transformers import (  # noqa: PLC0415
        BertConfig,
        BertForSequenceClassification,
        BertTokenizerFast,
        DataCollatorWithPadding,
        Trainer,
        TrainingArguments,
    )

    train = _read(job["train"])
    test = _read(job["test"])
    tokenizer = BertTokenizerFast(vocab_file=job["vocab"], do_lower_case=True)
    padding = "max_length" if padded else False

    class Rows(torch.utils.data.Dataset):
        def __init__(self, texts, labels):
            self.encoded = tokenizer(texts, truncation=True, max_length=job["max_length"],
                                     padding=padding)
            self.labels = labels

        def __len__(self):
            return len(self.labels)

        def __getitem__(self, i):
            row = {k: v[i] for k, v in self.encoded.items()}
            row["labels"] = self.labels[i]
            return row

    torch.manual_seed(0)
    config = BertConfig(vocab_size=SHAPE["vocab_size"], hidden_size=SHAPE["hidden"],
                        num_hidden_layers=SHAPE["layers"], num_attention_heads=SHAPE["heads"],
                        intermediate_size=SHAPE["intermediate"],
                        max_position_embeddings=SHAPE["positions"], num_labels=2)
    model = BertForSequenceClassification(config)
    arguments = TrainingArguments(
        output_dir=os.path.join(job["tmp"], "hf"), num_train_epochs=job["epochs"],
        per_device_train_batch_size=job["batch"], per_device_eval_batch_size=job["batch"],
        learning_rate=1e-4, eval_strategy="epoch", save_strategy="no", logging_strategy="no",
        report_to=[], use_cpu=True, disable_tqdm=True, dataloader_num_workers=0, seed=0)
    trainer = Trainer(model=model, args=arguments, train_dataset=Rows(*train),
                      eval_dataset=Rows(*test), data_collator=DataCollatorWithPadding(tokenizer))
    trainer.train()


def worker(system: str, job: dict) -> None:
    started = time.perf_counter()
    if system == "kbert":
        _worker_kbert(job)
    elif system == "keras_hub":
        _worker_keras_hub(job)
    else:
        _worker_hf(job, padded=system == "hf_padded")
    print("RESULT " + json.dumps({"run_s": time.perf_counter() - started}), flush=True)


# ------------------------------------------------------------------------------ driver
def _one(system: str, job: dict, python: str) -> dict:
    tmp = tempfile.mkdtemp(prefix=f"ftspeed-{system}-")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=ROOT)
    command = [python, os.path.abspath(__file__), "--worker", system,
               "--job", json.dumps(dict(job, tmp=tmp))]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    wall = time.perf_counter() - started
    shutil.rmtree(tmp, ignore_errors=True)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        tail = "\n".join(done.stderr.strip().splitlines()[-5:])
        raise SystemExit(f"{system} failed ({done.returncode}):\n{tail}")
    return {"process_s": wall, **json.loads(lines[-1][len("RESULT "):])}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--systems", default=",".join(SYSTEMS))
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--limit", type=int, default=None,
                        help="the first N training and test rows only (a smoke run)")
    parser.add_argument("--model", default=None, help="kbert's encoder (default the installed "
                        "all-MiniLM-L6-v2); its vocab.txt is every system's vocabulary")
    parser.add_argument("--torch-python", default=sys.executable,
                        help="python with torch, transformers and accelerate (hf_* arms)")
    parser.add_argument("--cache-dir", default=None)
    parser.add_argument("--data-dir", default=None,
                        help="a folder with train.jsonl and test.jsonl instead of polarity")
    parser.add_argument("--json", default=None)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--job", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args.worker, json.loads(args.job))
        return 0

    model = args.model or default_model()
    directory = args.data_dir or fetch("polarity", args.cache_dir)
    train, test = (os.path.join(directory, f"{p}.jsonl") for p in ("train", "test"))
    if args.limit:
        small = tempfile.mkdtemp(prefix="ftspeed-data-")
        for name in ("train", "test"):
            with open(os.path.join(directory, f"{name}.jsonl"), encoding="utf-8") as f:
                rows = [next(f) for _ in range(args.limit)]
            with open(os.path.join(small, f"{name}.jsonl"), "w", encoding="utf-8") as f:
                f.writelines(rows)
        train, test = (os.path.join(small, f"{p}.jsonl") for p in ("train", "test"))
    job = {"model": model, "vocab": os.path.join(model, "vocab.txt"), "train": train,
           "test": test, "epochs": args.epochs, "max_length": args.max_length,
           "batch": args.batch}
    systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    load = [os.getloadavg()[0]]
    runs: dict[str, list[dict]] = {s: [] for s in systems}
    for rep in range(args.reps):
        order = systems[rep % len(systems):] + systems[:rep % len(systems)]
        for system in order:
            python = args.torch_python if system.startswith("hf_") else sys.executable
            run = _one(system, job, python)
            runs[system].append(run)
            print(f"rep {rep + 1} {system:10s} process {run['process_s']:7.1f} s   "
                  f"run {run['run_s']:7.1f} s", flush=True)
    load.append(os.getloadavg()[0])
    summary = {s: {k: statistics.median(r[k] for r in rs) for k in ("process_s", "run_s")}
               for s, rs in runs.items()}
    print(f"\nmedians of {args.reps} interleaved run(s); load average {load[0]:.2f} -> "
          f"{load[1]:.2f}\n\n| system | whole process (s) | run without interpreter start (s) "
          "| anchor / kbert |\n|---|---|---|---|")
    for system, s in summary.items():
        ratio = (f"{s['process_s'] / summary['kbert']['process_s']:.2f}x"
                 if "kbert" in summary and system != "kbert" else "")
        print(f"| {system} | {s['process_s']:.1f} | {s['run_s']:.1f} | {ratio} |")
    results = {"job": job, "reps": args.reps, "load": load, "runs": runs, "median": summary}
    if args.json != "-":
        path = args.json or results_json("finetune-speed")
        with open(path, "w", encoding="utf-8") as f:
            json.dump(results, f, indent=1)
        print(f"\nraw results: {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
