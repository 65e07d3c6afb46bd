"""Every script in examples/ runs to completion in its --fast mode, so none rots."""

import json
import os
import pathlib
import subprocess
import sys

import pytest

EXAMPLES = sorted((pathlib.Path(__file__).parent.parent / "examples").glob("*.py"))


@pytest.mark.slow
@pytest.mark.parametrize("script", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_runs_fast_mode(script, tmp_path):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    result = subprocess.run([sys.executable, str(script), "--fast"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


@pytest.mark.slow  # fine-tunes MiniLM on a few sentences, then one dynamic-int8 conversion
def test_polarity_example_converts_the_classifier_and_measures_agreement(tmp_path):
    script = pathlib.Path(__file__).parent.parent / "examples" / "finetune_polarity.py"
    out = tmp_path / "run"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    result = subprocess.run([sys.executable, str(script), "--fast", "--output", str(out),
                             "--tflite", "dynamic_int8"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    measured = summary["tflite"]["dynamic_int8"]
    assert (out / "polarity-dynamic_int8.tflite").stat().st_size / 2**20 == pytest.approx(
        measured["size_mb"], abs=0.01)
    # MiniLM with int8 weights gives (nearly) the Keras probabilities. Not the labels: offline,
    # --fast fine-tunes on the example's 24 built-in sentences, and a classifier that barely
    # moved from 0.5 can flip a label on a difference of 0.002 (measured: 1 of 4).
    assert measured["max_probability_difference"] < 0.02, measured
    assert 0.0 <= measured["agreement_with_keras"] <= 1.0
    assert 0.0 <= measured["test_accuracy"] <= 1.0
