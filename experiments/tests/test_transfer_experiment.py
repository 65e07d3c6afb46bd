"""experiments/transfer_experiment.py (pre-trained vs random encoder on sentence polarity) runs
in its --fast mode and honours --train-size / --freeze-layers; every experiment finds the
product's scripts/ and examples/ modules it imports from where it now lives."""

import json
import os
import pathlib
import subprocess
import sys

import pytest

EXPERIMENTS = pathlib.Path(__file__).resolve().parent.parent

# experiment -> the modules of scripts/, examples/ or experiments/ it imports by name
SIBLINGS = {
    "nsp_trials": ["nsp_novel_bound"],
    "transfer_gpu_trial": ["nsp_gpu_trial", "fetch_polarity", "finetune_polarity"],
    "polarity_probe": ["finetune_polarity"],
    "transfer_experiment": ["finetune_polarity"],
}


def test_experiments_find_the_modules_they_import(tmp_path):
    code = """
import importlib.util, json, pathlib, sys
root = pathlib.Path(sys.argv[1])
missing = []
for name, siblings in json.loads(sys.argv[2]).items():
    spec = importlib.util.spec_from_file_location(name, root / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # runs the script's own sys.path set-up
    missing += [f"{name}: {s}" for s in siblings if importlib.util.find_spec(s) is None]
print(json.dumps(missing))
"""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    done = subprocess.run([sys.executable, "-c", code, str(EXPERIMENTS), json.dumps(SIBLINGS)],
                          cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []


@pytest.mark.slow
def test_transfer_experiment_runs_fast_mode(tmp_path):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    result = subprocess.run([sys.executable, str(EXPERIMENTS / "transfer_experiment.py"), "--fast"],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


@pytest.mark.slow  # a tiny pre-training and two tiny fine-tunings
def test_transfer_experiment_fine_tunes_both_arms_on_the_requested_subset(tmp_path):
    script = EXPERIMENTS / "transfer_experiment.py"
    out = tmp_path / "transfer.json"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    # 6: a subset of --fast's training side both offline (the built-in 24 sentences leave 9)
    # and with the cached CSV (32)
    result = subprocess.run([sys.executable, str(script), "--fast", "--train-size", "6",
                             "--freeze-layers", "0", "--output", str(out)], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    summary = json.loads(out.read_text())
    assert summary["train_examples"] == 6
    assert sorted(r["arm"] for r in summary["runs"]) == ["pretrained", "random"]
    # --freeze-layers 0 keeps the embeddings fixed in both arms: the token table (vocab x 64,
    # vocab <= 2000), positions (512 x 64), segments (2 x 64) and their LayerNorm (2 x 64)
    fixed = [r["parameters"] - r["trainable_parameters"] for r in summary["runs"]]
    assert fixed[0] == fixed[1] and fixed[0] % 64 == 0, fixed
    assert 500 < fixed[0] // 64 - (512 + 2 + 2) <= 2000, fixed
    bad = subprocess.run([sys.executable, str(script), "--fast", "--train-size", "1"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert bad.returncode != 0 and "--train-size must be in 2.." in bad.stderr
