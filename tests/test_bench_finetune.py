"""The fine-tuning benchmarks (bench/finetune_quality.py, bench/finetune_speed.py) keep working:
every arm runs at toy size in its own processes, the table's verdict follows the numbers.

No accuracy or timing is asserted beyond sanity: the numbers of record are in bench/RESULTS.md.
"""

import json
import os
import subprocess
import sys

import pytest
from minilm import minilm_dir_or_skip
from test_tasks_support import encoder, tokenizer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "bench"))

import finetune_quality  # noqa: E402

POSITIVE = ["good film", "great movie", "fun story", "good fun", "great fun", "fun film"]
NEGATIVE = ["bad film", "awful movie", "dull story", "bad dull", "awful dull", "dull film"]


def _toy_set(directory):
    os.makedirs(directory)
    rows = [(t, "pos") for t in POSITIVE] + [(t, "neg") for t in NEGATIVE]
    for part in ("train", "test"):
        with open(os.path.join(directory, f"{part}.jsonl"), "w", encoding="utf-8") as f:
            for text, label in rows:
                f.write(json.dumps({"text": text, "label": label}) + "\n")


def _env():
    env = dict(os.environ, PYTHONPATH=ROOT)
    env.pop("KBERT_CACHE", None)
    return env


@pytest.mark.slow
def test_quality_bench_runs_every_cheap_arm_on_a_local_set(tmp_path):
    pytest.importorskip("sklearn")
    model = tmp_path / "model"
    model.mkdir()
    encoder().save(model / "encoder.keras")
    tokenizer().vocab.save(model)
    _toy_set(tmp_path / "data" / "toy")
    out = tmp_path / "fq.json"
    done = subprocess.run(
        [sys.executable, os.path.join(ROOT, "bench", "finetune_quality.py"), "--sets", "toy",
         "--data-dir", str(tmp_path / "data"), "--model", str(model), "--seeds", "2",
         "--arms", "defaults,tfidf,frozen", "--work-dir", str(tmp_path / "runs"),
         "--kbert-args", "--epochs 1 --max-length 8 --batch-size 4", "--json", str(out)],
        capture_output=True, text=True, env=_env(), timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    results = json.loads(out.read_text())
    arms = results["sets"]["toy"]["arms"]
    assert set(arms) == {"defaults", "tfidf", "frozen"}
    for runs in arms.values():
        assert [r["seed"] for r in runs] == [1, 2]
        assert all(0.0 <= r["accuracy"] <= 1.0 and 0.0 <= r["macro_f1"] <= 1.0 for r in runs)
    # the kbert arm ran the CLI with the flags asked, and kept each run's folder
    assert arms["defaults"][0]["choices"]["epochs"] == 1
    assert (tmp_path / "runs" / "toy" / "defaults-seed2" / "metrics.json").is_file()
    assert "| toy | 12 / 12 |" in done.stdout


def test_quality_table_verdict_follows_the_means():
    def runs(*accuracies):
        return [{"accuracy": a, "macro_f1": a} for a in accuracies]

    results = {"sets": {
        "wins": {"train": 10, "test": 5, "arms": {"defaults": runs(0.9, 0.8),
                                                  "tfidf": runs(0.8), "frozen": runs(0.84)}},
        "loses": {"train": 10, "test": 5, "arms": {"defaults": runs(0.9, 0.8),
                                                   "tfidf": runs(0.8), "frozen": runs(0.86)}},
        "ties": {"train": 10, "test": 5, "arms": {"defaults": runs(1.0), "frozen": runs(1.0)}},
    }}
    table = finetune_quality.markdown(results, ["defaults", "tfidf", "frozen"]).splitlines()
    assert table[2].startswith("| wins |") and table[2].endswith("| yes |")
    assert "0.850 ± 0.071" in table[2]
    assert table[3].endswith("| **no** |")
    assert table[4].endswith("| **no** |") and "| - |" in table[4]  # a tie is not a win


def test_quality_bench_refuses_an_unknown_arm(capsys):
    with pytest.raises(SystemExit):
        finetune_quality.main(["--arms", "defaults,bogus", "--json", "-"])
    assert "unknown arm(s) bogus" in capsys.readouterr().err


@pytest.mark.slow
def test_speed_bench_times_kbert_and_keras_hub_in_their_own_processes(tmp_path):
    pytest.importorskip("keras_hub")
    model = minilm_dir_or_skip("the speed benchmark's smoke run")
    data = tmp_path / "labelled" / "polarity"
    _toy_set(data)
    out = tmp_path / "speed.json"
    done = subprocess.run(
        [sys.executable, os.path.join(ROOT, "bench", "finetune_speed.py"), "--model", str(model),
         "--systems", "kbert,keras_hub", "--reps", "1", "--max-length", "16", "--batch", "4",
         "--data-dir", str(data), "--json", str(out)],
        capture_output=True, text=True, env=_env(), timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    results = json.loads(out.read_text())
    assert set(results["runs"]) == {"kbert", "keras_hub"}
    for system, runs in results["runs"].items():
        assert len(runs) == 1, system
        assert 0 < runs[0]["run_s"] < runs[0]["process_s"]
    assert results["job"]["max_length"] == 16
    assert "| keras_hub |" in done.stdout and "x |" in done.stdout
