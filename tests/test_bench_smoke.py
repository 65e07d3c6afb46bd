"""The benchmark harness (bench/) keeps working: suite layout, FLOP counts, tables, tiny runs.

No timing is asserted: the numbers depend on the machine and its load.
"""

import json
import math
import os
import pathlib
import re
import subprocess
import sys
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "bench")
sys.path.insert(0, BENCH)

import results_files  # noqa: E402
import run as bench_run  # noqa: E402
import workloads  # noqa: E402


def test_suite_covers_every_workload_of_the_spec():
    names = [g["name"] for g in bench_run.groups(quick=False)]
    for name in ("peak", "train_small", "train_base", "infer_base_128", "infer_base_512"):
        assert name in names
    full = {g["name"]: g for g in bench_run.groups(quick=False)}
    assert (full["train_small"]["model"], full["train_small"]["seq"],
            full["train_small"]["batch"]) == ("small", 128, 32)
    assert (full["train_base"]["seq"], full["train_base"]["batch"]) == (128, 8)
    assert (full["infer_base_512"]["seq"], full["infer_base_512"]["batch"]) == (512, 1)
    assert {"keras_hub", "keras_hub_xla", "hf", "hf_gathered"} <= set(
        full["train_small"]["systems"])
    assert "kbert_savedmodel" in full["infer_base_128"]["systems"]
    int8 = full["int8_infer_base_128"]
    assert (int8["model"], int8["seq"], int8["batch"]) == ("base", 128, 8)
    assert {"kbert", "kbert_tflite_int8", "keras_hub_xla", "hf"} <= set(int8["systems"])
    curve = [g for g in full.values() if g.get("curve")]
    assert {g["seq"] for g in curve} >= {64, 128, 256, 512}
    assert len({g["batch"] for g in curve}) >= 3
    # --quick keeps every workload but shrinks them
    quick = {g["name"]: g for g in bench_run.groups(quick=True)}
    assert set(quick) >= {"train_small", "train_base", "infer_base_128", "infer_base_512"}
    assert all(quick[n]["seq"] <= full[n]["seq"] for n in ("train_base", "infer_base_512"))


def test_flop_count_matches_a_hand_count():
    spec = {"kind": "train", "model": "1,4,1,8,10", "seq": 2, "batch": 3}
    # per token: 2 * (4*16 + 2*4*8) + 4*2*4 = 256 + 32 = 288; 6 tokens
    # head: 3 rows * 1 prediction * (2*16 + 2*4*10) = 3 * 112; pooler 3 * 2*16
    assert workloads.num_predictions(2) == 1
    expected = 3 * (6 * 288 + 3 * 112 + 3 * 32)
    assert workloads.flops_per_step(spec) == expected
    infer = dict(spec, kind="infer")
    assert workloads.flops_per_step(infer) == 6 * 288 + 3 * 32


def test_random_batch_is_valid_pretraining_data():
    spec = {"kind": "train", "model": "tiny", "seq": 40, "batch": 5}
    batch = workloads.random_batch(spec)
    preds = workloads.num_predictions(40)
    assert preds == math.ceil(0.15 * 40)
    assert batch["masked_positions"].shape == (5, preds)
    for row in batch["masked_positions"]:
        assert len(set(row.tolist())) == preds  # distinct positions
        assert row.min() >= 1 and row.max() < 40  # never [CLS]
    assert batch["token_ids"].max() < workloads.VOCAB
    assert set(batch["next_sentence_labels"].tolist()) <= {0, 1}


def test_model_sizes_reject_bad_names():
    assert workloads.model_sizes("base") == (12, 768, 12, 3072, 30522)
    assert workloads.model_sizes("2,64,2,128,500") == (2, 64, 2, 128, 500)
    with pytest.raises(ValueError, match="model must be one of"):
        workloads.model_sizes("huge")
    with pytest.raises(ValueError, match="unknown workload"):
        workloads.run({"kind": "train", "system": "nope", "model": "tiny", "seq": 8,
                       "batch": 1})


def _fake(rate_ms, rss, flops=1e9):
    return {"wall_s": [rate_ms / 1e3] * 3, "cpu_s": [0.1] * 3, "maxrss_mb": rss,
            "flops_per_step": flops, "loss": 1.0}


def test_summary_and_table_compute_ratios_against_the_best_anchor_mode():
    group = dict(name="train_small", kind="train", model="small", seq=128, batch=32,
                 systems=["kbert", "keras_hub", "keras_hub_xla", "hf", "hf_gathered"],
                 title="pre-train small")
    raw = {"kbert": [_fake(100, 1000), _fake(300, 900), _fake(110, 950)],
           "keras_hub": [_fake(200, 1500)], "keras_hub_xla": [_fake(150, 2000)],
           "hf": [_fake(400, 500)], "hf_gathered": [{"error": "exit 1: boom"}]}
    summary = bench_run.summarize(group, raw)
    assert summary["kbert"]["step_s"] == pytest.approx(0.110)  # median of the medians
    assert summary["kbert"]["maxrss_mb"] == 1000  # the worst process
    assert summary["kbert"]["rate"] == pytest.approx(128 * 32 / 0.110)
    peak = {"tf": {"gflops": {"float32": 100.0, "bfloat16": 50.0}}}
    meta = dict(command="x", when="now", cpu="cpu", load_before="1", load_after="2", reps=3,
                versions="v")
    text = bench_run.render([{"name": "peak", "kind": "peak"}, group],
                            {"peak": peak, "train_small": summary}, meta)
    # keras-hub's best mode is XLA (150 ms): 150 / 110 = 1.36x; memory 1000 / 2000
    assert "1.36x keras-hub (keras_hub_xla; by CPU time 1.00x), memory 0.50x" in text
    assert "3.64x transformers (hf; by CPU time 1.00x)" in text
    assert "| hf_gathered | failed: exit 1: boom" in text
    assert "| 9 | 9% |" in text  # 1 GFLOP / 0.110 s = 9 GFLOP/s of a 100 GFLOP/s peak


@pytest.mark.parametrize("model, name", [
    ("2 x AMD EPYC", "epyc"), ("AMD EPYC 9454 48-Core Processor", "epyc"),
    ("2 x Intel(R) Xeon(R) Processor", "xeon"), ("Intel(R) Xeon(R) Platinum 8480+", "xeon"),
    ("Intel(R) Core(TM) i7-8700 CPU @ 3.20GHz", "core"), ("Apple M2", "apple")])
def test_results_files_are_named_by_date_and_machine(tmp_path, model, name):
    when = time.strptime("2026-11-27 10:27", "%Y-%m-%d %H:%M")
    first = results_files.results_json(model=model, when=when, directory=str(tmp_path))
    assert first == str(tmp_path / f"2026-11-27-{name}.json")
    assert results_files.results_json("load", model=model, when=when, directory=str(tmp_path)
                                      ) == str(tmp_path / f"2026-11-27-{name}-load.json")
    pathlib.Path(first).write_text("{}")  # a second run that day keeps the first one's file
    assert results_files.results_json(model=model, when=when, directory=str(tmp_path)
                                      ) == str(tmp_path / f"2026-11-27-{name}-1027.json")


def test_committed_results_follow_the_naming_and_every_reference_resolves():
    names = sorted(os.listdir(os.path.join(BENCH, "results")))
    assert names and all(re.fullmatch(r"\d{4}-\d{2}-\d{2}-[a-z0-9]+(-[a-z0-9-]+)?\.json", n)
                         for n in names), names
    assert not [n for n in os.listdir(BENCH) if n.endswith(".json")]  # none left at the top
    for doc in ("RESULTS.md", "LOAD_RESULTS.md", "README.md"):
        text = pathlib.Path(BENCH, doc).read_text(encoding="utf-8")
        for ref in re.findall(r"results/[\w.-]+\.json", text):
            assert os.path.exists(os.path.join(BENCH, ref)), (doc, ref)
    for name in names:  # each raw file is the one of a run the documents report
        meta = json.loads(pathlib.Path(BENCH, "results", name).read_text()).get("meta")
        if meta:  # bench/run.py's files: the date in the name is the run's
            assert meta["when"].startswith(name[:10]), (name, meta["when"])


@pytest.mark.parametrize("system,quantization", sorted(workloads.TFLITE_SYSTEMS.items()))
def test_tflite_inference_workload_times_litert_and_measures_its_outputs(system, quantization):
    out = workloads.run({"kind": "infer", "system": system, "model": "tiny", "seq": 16,
                         "batch": 2, "steps": 1, "warmup": 1})
    assert len(out["wall_s"]) == 1 and out["wall_s"][0] > 0
    assert quantization in out["note"]
    # float32 matches Keras; dynamic int8 stays close on this random tiny model
    assert out["token_cosine_min"] > (0.9999 if quantization == "float32" else 0.98)


@pytest.mark.slow
def test_tiny_suite_runs_end_to_end(tmp_path):
    out = tmp_path / "RESULTS.md"
    raw = tmp_path / "raw.json"
    done = subprocess.run(
        [sys.executable, os.path.join(BENCH, "run.py"), "--scale", "tiny", "--reps", "1",
         "--only", "train_small,infer_base_128", "--systems", "kbert,keras_hub,kbert_savedmodel",
         "--output", str(out), "--json", str(raw)],
        capture_output=True, text=True, timeout=900, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    text = out.read_text()
    assert "x keras-hub (keras_hub; by CPU time " in text
    assert "kbert_savedmodel" in text
    results = json.loads(raw.read_text())
    for group in ("train_small", "infer_base_128"):
        for system, runs in results["raw"][group].items():
            assert "error" not in runs[0], (group, system, runs[0])
            assert runs[0]["maxrss_mb"] > 100  # a real process' peak RSS was read
    assert math.isfinite(results["raw"]["train_small"]["kbert"][0]["loss"])


@pytest.mark.slow
def test_gpu_bench_runs_on_jax_without_tensorflow():
    env = dict(os.environ, KERAS_BACKEND="jax", BENCH_DEV="cpu", BENCH_BLOCK_TF="1",
               BENCH_CFG="2,32,2,64,120")
    done = subprocess.run([sys.executable, os.path.join(BENCH, "gpu_bench.py"), "kbert", "16",
                           "2", "1"], capture_output=True, text=True, timeout=600, env=env,
                          cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    line = json.loads(done.stdout.strip().splitlines()[-1])
    assert line["system"] == "kbert_jax_bf16" and line["tf_loaded"] == []
    assert line["attention"] == "explicit" and math.isfinite(line["loss"])
    assert line["tokens_per_s"] > 0 and line["device"].lower().startswith("cpu")


@pytest.mark.slow
def test_step_breakdown_times_every_part(tmp_path):
    done = subprocess.run([sys.executable, os.path.join(BENCH, "step_breakdown.py"), "--model",
                           "tiny", "--seq", "16", "--batch", "2", "--steps", "1", "--reps", "1"],
                          capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = {r["row"]: r["ms"] for r in (json.loads(line) for line in done.stdout.splitlines()
                                        if line.startswith("{"))}
    assert len(rows) == 6 and all(len(v) == 1 and v[0] > 0 for v in rows.values()), rows
    assert any(name.startswith("matmuls") for name in rows)
