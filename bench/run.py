"""The benchmark suite: kbert against keras-hub and transformers, side by side on this machine.

    python bench/run.py            # the full suite (about an hour on 2 idle cores)
    python bench/run.py --quick    # one repetition of small sizes: a smoke run of a few minutes
    python bench/run.py --only train_small,infer_base_128 --reps 5

Every measurement runs in a fresh process (bench/workloads.py); the systems of a workload
alternate within each repetition (the order rotates), so a change in machine load hits all
of them alike. Reported: the median over repetitions of each process's median step time,
throughput, kbert/anchor ratios, achieved model GFLOP/s against the measured matmul peak,
and each process's peak RSS (os.wait4). The table is printed and written to bench/RESULTS.md,
the raw measurements to bench/results/<date>-<machine>.json. See bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from importlib.metadata import PackageNotFoundError, version

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

import workloads  # noqa: E402
from results_files import cpu_model, results_json  # noqa: E402

KBERT = ("kbert", "kbert_xla")
# anchor name -> the systems it is the best of
TRAIN_ANCHORS = {"keras-hub": ("keras_hub", "keras_hub_xla"), "transformers": ("hf",),
                 "transformers (gathered head)": ("hf_gathered",),
                 "keras-hub bf16": ("keras_hub_bf16", "keras_hub_xla_bf16")}
INFER_ANCHORS = {"keras-hub": ("keras_hub", "keras_hub_xla"), "transformers": ("hf",),
                 "keras-hub bf16": ("keras_hub_bf16", "keras_hub_xla_bf16")}


def groups(quick: bool) -> list[dict]:
    """The workloads of the suite, in run order."""
    train = list(workloads.TRAIN_SYSTEMS)
    infer = list(workloads.INFER_SYSTEMS)
    steps = 3 if quick else 6
    suite = [
        dict(name="peak", kind="peak", systems=list(workloads.PEAK_SYSTEMS), steps=10),
        dict(name="train_small", kind="train", model="small", seq=128, batch=32, steps=steps,
             systems=train, title="pre-train step, BERT-small-like L4 H256, seq 128, batch 32"),
        dict(name="train_base", kind="train", model="base", seq=128, batch=8,
             steps=max(2, steps - 2), systems=train,
             title="pre-train step, BERT-base, seq 128, batch 8"),
        dict(name="infer_base_128", kind="infer", model="base", seq=128, batch=8,
             steps=steps + 2, systems=infer,
             title="inference, BERT-base, seq 128, batch 8"),
        dict(name="infer_base_512", kind="infer", model="base", seq=512, batch=1,
             steps=steps + 2, systems=infer,
             title="inference, BERT-base, seq 512, batch 1"),
        dict(name="bf16_train_small", kind="train", model="small", seq=128, batch=32,
             steps=steps, systems=["kbert", "kbert_bf16", "kbert_xla_bf16", "keras_hub_bf16"],
             title="mixed_bfloat16 option: pre-train step, BERT-small-like, seq 128, batch 32"),
        dict(name="bf16_infer_base_128", kind="infer", model="base", seq=128, batch=8,
             steps=steps + 2, systems=["kbert", "kbert_bf16", "kbert_xla_bf16",
                                       "keras_hub_bf16"],
             title="mixed_bfloat16 option: inference, BERT-base, seq 128, batch 8"),
        dict(name="int8_infer_base_128", kind="infer", model="base", seq=128, batch=8,
             steps=steps + 2, systems=["kbert", "kbert_tflite", "kbert_tflite_int8",
                                       "keras_hub_xla", "hf"],
             title="int8 option: inference, BERT-base, seq 128, batch 8 (LiteRT)"),
        dict(name="bf16_effect", kind="precision", model="small", seq=128, batch=32,
             steps=4 if quick else 20, systems=["kbert"],
             title="mixed_bfloat16 against float32, same weights and batches"),
    ]
    if quick:  # same shapes of work, smaller: small model, shorter rows, fewer of them
        for g in suite[1:]:
            g.update(model="small", seq=min(g["seq"], 64), batch=min(g["batch"], 8))
            g["title"] += " [quick: small model, seq <= 64, batch <= 8]"
    curve_model, curve_steps = ("small", 2) if quick else ("small", 3)
    seqs = (64, 128) if quick else (64, 128, 256, 512)
    batches = (8, 16) if quick else (8, 16, 32, 64)
    for seq in seqs:
        suite.append(dict(name=f"curve_seq{seq}", kind="train", model=curve_model, seq=seq,
                          batch=8 if quick else 16, steps=curve_steps, systems=["kbert"],
                          curve=True))
    for batch in batches:
        suite.append(dict(name=f"curve_batch{batch}", kind="train", model=curve_model, seq=128,
                          batch=batch, steps=curve_steps, systems=["kbert"], curve=True))
    return suite


def shrink(group: dict) -> dict:
    """--scale tiny: every workload at toy size (the harness smoke test)."""
    group = dict(group)
    if group["kind"] == "peak":
        group.update(n=256, steps=2)
    elif group["kind"] == "precision":
        group.update(model="tiny", seq=16, batch=2, steps=2)
    else:
        group.update(model="tiny", seq=min(group["seq"], 16), batch=min(group["batch"], 2),
                     steps=1, warmup=1)
    return group


def run_child(spec: dict, timeout: float) -> dict:
    """One measurement in a fresh process; adds `maxrss_mb` (the child's peak RSS)."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", KERAS_BACKEND="tensorflow",
               PYTHONPATH=os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")]))
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, os.path.join(HERE, "workloads.py"),
                             json.dumps(spec)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, env=env, cwd=ROOT, text=True)
    lines: list[str] = []
    deadline = started + timeout
    try:
        for line in proc.stdout:
            lines.append(line)
            if time.perf_counter() > deadline:
                proc.kill()
                break
    finally:
        proc.stdout.close()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    result = next((json.loads(line[7:]) for line in reversed(lines) if line.startswith("RESULT ")),
                  None)
    if result is None:
        tail = "".join(lines[-15:])
        return {"error": f"exit {proc.returncode}: {tail[-1500:]}"}
    result["maxrss_mb"] = usage.ru_maxrss / 1024
    result["process_s"] = time.perf_counter() - started
    return result


def run_group(group: dict, reps: int, timeout: float, log) -> dict:
    """-> system -> list of child results, the systems interleaved (order rotated per rep)."""
    results: dict[str, list] = {s: [] for s in group["systems"]}
    systems = group["systems"]
    for rep in range(reps):
        order = systems[rep % len(systems):] + systems[:rep % len(systems)]
        for system in order:
            spec = {k: v for k, v in group.items()
                    if k not in ("name", "systems", "title", "curve")}
            spec["system"] = system
            result = run_child(spec, timeout)
            results[system].append(result)
            log(f"  {group['name']} rep {rep + 1}/{reps} {system}: " + (
                result["error"].splitlines()[0] if "error" in result else
                f"{_median(result.get('wall_s', [0])) * 1e3:.0f} ms/step, "
                f"{result['maxrss_mb']:.0f} MB" if "wall_s" in result else
                json.dumps(result.get("gflops"))))
    return results


def _median(values):
    return statistics.median(values) if values else float("nan")


def summarize(group: dict, results: dict) -> dict:
    """system -> {step_s, cpu_s, rate, gflops, maxrss_mb, n, error}."""
    out = {}
    for system, runs in results.items():
        good = [r for r in runs if "error" not in r]
        if not good:
            out[system] = {"error": runs[0]["error"] if runs else "not run"}
            continue
        if group["kind"] == "peak":
            out[system] = {"gflops": {k: _median([r["gflops"][k] for r in good])
                                      for k in good[0]["gflops"]}}
            continue
        if group["kind"] == "precision":
            out[system] = {k: v for k, v in good[0].items()
                           if k not in ("self_maxrss_mb", "process_s")}
            continue
        step = _median([_median(r["wall_s"]) for r in good])
        units = group["batch"] * group["seq"] if group["kind"] == "train" else group["batch"]
        out[system] = {
            "step_s": step,
            "cpu_s": _median([_median(r["cpu_s"]) for r in good]),
            "rate": units / step,
            "gflops": good[0]["flops_per_step"] / step / 1e9,
            "maxrss_mb": max(r["maxrss_mb"] for r in good),
            "loss": good[0].get("loss"),
            "n": len(good),
            "note": good[0].get("note", ""),
        }
    return out


def _best(summary, systems):
    ok = [(summary[s]["rate"], s) for s in systems if "rate" in summary.get(s, {})]
    return max(ok)[1] if ok else None


def render(suite, summaries, meta) -> str:
    peak = summaries.get("peak", {})
    tf_peak = peak.get("tf", {}).get("gflops", {}).get("float32")
    lines = [
        "# kbert benchmark results",
        "",
        f"`{meta['command']}` on {meta['when']}; {meta['cpu']}; load average before "
        f"{meta['load_before']}, after {meta['load_after']}; {meta['reps']} repetition(s), "
        f"medians of interleaved fresh processes. {meta['versions']}.",
        "",
    ]
    if peak:
        cells = [f"{s}: fp32 {v['gflops'].get('float32', 0):.0f}, bf16 "
                 f"{v['gflops'].get('bfloat16', 0):.0f} GFLOP/s" for s, v in peak.items()
                 if "gflops" in v]
        lines += ["Matmul peak (2048^2): " + "; ".join(cells) + ".", ""]
    for group in suite:
        if group["kind"] == "precision" and group["name"] in summaries:
            s = summaries[group["name"]].get("kbert", {})
            lines += [f"## {group['title']}", ""]
            if "error" in s:
                lines += [f"failed: {s['error'].splitlines()[0]}", ""]
                continue
            lines += [
                f"{group['model']} model, seq {group['seq']}, batch {group['batch']}: encoder "
                f"output max |diff| {s['max_abs_diff']:.3g} (mean |output| "
                f"{s['mean_abs']:.3g}), lowest token cosine {s['min_token_cosine']:.6f}.", "",
                "| step | " + " | ".join(str(i + 1) for i in range(len(s["loss_float32"])))
                + " |", "|---" * (len(s["loss_float32"]) + 1) + "|",
                "| loss float32 | " + " | ".join(f"{v:.3f}" for v in s["loss_float32"]) + " |",
                "| loss mixed_bfloat16 | " + " | ".join(f"{v:.3f}" for v in s["loss_bf16"])
                + " |", ""]
            continue
        if group["kind"] in ("peak", "precision") or group.get("curve") or (
                group["name"] not in summaries):
            continue
        summary = summaries[group["name"]]
        unit = "tokens/s" if group["kind"] == "train" else "seq/s"
        anchors = dict(TRAIN_ANCHORS if group["kind"] == "train" else INFER_ANCHORS)
        if "kbert_bf16" in group["systems"] or "kbert_tflite_int8" in group["systems"]:
            anchors["kbert float32"] = ("kbert",)
        lines += [f"## {group['title']}", "",
                  f"| system | step ms | CPU s/step | {unit} | model GFLOP/s | % of TF fp32 peak "
                  "| peak RSS MB |", "|---|---|---|---|---|---|---|"]
        for system in group["systems"]:
            s = summary.get(system, {})
            if "error" in s:
                lines.append(f"| {system} | failed: {s['error'].splitlines()[0][:80]} |||||")
                continue
            pct = f"{100 * s['gflops'] / tf_peak:.0f}%" if tf_peak else "-"
            lines.append(f"| {system}{' (' + s['note'] + ')' if s['note'] else ''} "
                         f"| {s['step_s'] * 1e3:.0f} | {s['cpu_s']:.2f} | {s['rate']:,.1f} "
                         f"| {s['gflops']:.0f} | {pct} | {s['maxrss_mb']:,.0f} |")
        lines.append("")
        kbert_rows = [k for k in group["systems"] if k.startswith("kbert")]
        ratio_rows = []
        for kb in kbert_rows:
            if "rate" not in summary.get(kb, {}):
                continue
            cells = []
            for anchor, systems in anchors.items():
                best = _best(summary, systems)
                if best is None or best == kb:
                    continue
                a, k = summary[best], summary[kb]
                cells.append(f"{k['rate'] / a['rate']:.2f}x {anchor} ({best}; by CPU time "
                             f"{a['cpu_s'] / k['cpu_s']:.2f}x), memory "
                             f"{k['maxrss_mb'] / a['maxrss_mb']:.2f}x")
            ratio_rows.append(f"- {kb}: " + "; ".join(cells))
        lines += ["Ratios: throughput kbert / anchor (the anchor's faster mode), the same by "
                  "CPU seconds per step, and peak RSS kbert / anchor:", ""]
        lines += ratio_rows + [""]
    curve = [g for g in suite if g.get("curve") and g["name"] in summaries]
    if curve:
        lines += [f"## Cost curve: kbert pre-training step, {curve[0]['model']} model "
                  "(graph mode, fp32)", "",
                  "| seq | batch | step ms | tokens/s | model GFLOP/s | peak RSS MB |",
                  "|---|---|---|---|---|---|"]
        for group in curve:
            s = summaries[group["name"]].get("kbert", {})
            if "error" in s:
                lines.append(f"| {group['seq']} | {group['batch']} | failed ||||")
                continue
            lines.append(f"| {group['seq']} | {group['batch']} | {s['step_s'] * 1e3:.0f} | "
                         f"{s['rate']:,.0f} | {s['gflops']:.0f} | {s['maxrss_mb']:,.0f} |")
        lines.append("")
    if meta.get("pipeline"):
        lines += ["## Data pipeline (bench/bench_pipeline.py)", "", "```",
                  meta["pipeline"].rstrip(), "```", ""]
    return "\n".join(lines)


def run_pipeline(quick: bool, timeout: float) -> str | None:
    """helper-4's bench/bench_pipeline.py, when present: its printed output."""
    script = os.path.join(HERE, "bench_pipeline.py")
    if not os.path.isfile(script):
        return None
    args = [sys.executable, script] + (["--quick"] if quick else [])
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2",
               PYTHONPATH=os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")]))
    try:
        done = subprocess.run(args, capture_output=True, text=True, timeout=timeout, env=env,
                              cwd=ROOT)
    except subprocess.TimeoutExpired:
        return f"timed out after {timeout:.0f}s"
    text = done.stdout if done.returncode == 0 else done.stdout + done.stderr[-2000:]
    return "\n".join(text.strip().splitlines()[-40:])


def _versions() -> str:
    names = []
    for pkg in ("tensorflow", "keras", "keras-hub", "torch", "transformers"):
        try:
            names.append(f"{pkg} {version(pkg)}")
        except PackageNotFoundError:
            names.append(f"{pkg} missing")
    return ", ".join(names)


def _cpu() -> str:
    return f"{os.cpu_count()} x {cpu_model()}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 repetition, smaller sizes")
    parser.add_argument("--reps", type=int, help="repetitions (default 3, quick 1)")
    parser.add_argument("--only", help="comma-separated workload names or prefixes (peak, "
                                       "train_small, train_base, infer, bf16, int8, curve, "
                                       "pipeline)")
    parser.add_argument("--systems", help="comma-separated systems to keep (default: all)")
    parser.add_argument("--scale", choices=("full", "tiny"), default="full",
                        help="tiny: every workload at toy size (tests the harness only)")
    parser.add_argument("--output", default=os.path.join(HERE, "RESULTS.md"),
                        help="where to write the table ('-' = nowhere)")
    parser.add_argument("--json", help="also write the raw results here (default: "
                                       "bench/results/<date>-<machine>.json when --output "
                                       "writes a file; '-' = nowhere)")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per process")
    args = parser.parse_args(argv)
    if args.json is None:
        args.json = "-" if args.output == "-" else results_json()

    reps = args.reps or (1 if args.quick else 3)
    suite = groups(args.quick)
    wanted = args.only.split(",") if args.only else None
    if wanted:
        suite = [g for g in suite if any(g["name"].startswith(w) for w in wanted)]
    if args.systems:
        keep = set(args.systems.split(","))
        for g in suite:
            g["systems"] = [s for s in g["systems"] if s in keep] or g["systems"][:0]
        suite = [g for g in suite if g["systems"]]
    if args.scale == "tiny":
        suite = [shrink(g) for g in suite]

    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    meta = {"command": "python bench/run.py " + " ".join(sys.argv[1:] if argv is None else argv),
            "when": time.strftime("%Y-%m-%d %H:%M"), "cpu": _cpu(), "reps": reps,
            "load_before": " ".join(f"{x:.1f}" for x in os.getloadavg()),
            "versions": _versions()}
    raw, summaries = {}, {}
    for group in suite:
        log(f"{group['name']}: {', '.join(group['systems'])}")
        raw[group["name"]] = run_group(group, reps, args.timeout, log)
        summaries[group["name"]] = summarize(group, raw[group["name"]])
    if wanted is None or any("pipeline".startswith(w) or w == "pipeline" for w in wanted):
        log("pipeline")
        meta["pipeline"] = run_pipeline(args.quick or args.scale == "tiny", args.timeout)
    meta["load_after"] = " ".join(f"{x:.1f}" for x in os.getloadavg())
    text = render(suite, summaries, meta)
    print(text)
    if args.output != "-":
        with open(args.output, "w", encoding="utf-8") as f:
            f.write(text + "\n")
    if args.json != "-":
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"meta": meta, "raw": raw, "summary": summaries}, f, indent=1)
    failed = [f"{g}/{s}" for g, summ in summaries.items() for s, v in summ.items()
              if "error" in v]
    if failed:
        log("failed: " + ", ".join(failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
