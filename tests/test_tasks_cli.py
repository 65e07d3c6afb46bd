"""`kbert finetune` (JSON config + flags) and `kbert classify` on a tiny pre-training run dir."""

import argparse
import json

import pytest
from test_tasks_support import encoder, tokenizer

from kbert.commands import classify, finetune
from kbert.tasks import BertClassifier, search
from kbert.tasks.plots import have_matplotlib

ROWS = [("good film", "pos"), ("great movie", "pos"), ("fun story", "pos"), ("good fun", "pos"),
        ("bad film", "neg"), ("awful movie", "neg"), ("dull story", "neg"), ("bad dull", "neg")]


def _args(module, argv):
    parser = argparse.ArgumentParser()
    module.add_arguments(parser)
    return parser.parse_args(argv)


def _run_dir(tmp_path):
    run = tmp_path / "pretrain"
    run.mkdir()
    encoder().save(run / "encoder.keras")
    tokenizer().vocab.save(run)
    return run


def test_config_file_and_flags_merge(tmp_path):
    config = tmp_path / "ft.json"
    config.write_text(json.dumps({"model": "m", "train": "t.csv", "epochs": 5, "text_column": 1,
                                  "label_column": 0, "header": False}))
    options = finetune.resolve_options(_args(finetune, ["--config", str(config), "--epochs", "2"]))
    assert options["epochs"] == 2 and options["text_column"] == 1 and options["model"] == "m"
    config.write_text(json.dumps({"model": "m", "train": "t.csv", "epoch": 5}))
    with pytest.raises(ValueError, match=r"unknown keys \['epoch'\]"):
        finetune.resolve_options(_args(finetune, ["--config", str(config)]))
    with pytest.raises(ValueError, match="missing --model"):
        finetune.resolve_options(_args(finetune, ["--train", "x.csv"]))
    with pytest.raises(ValueError, match="must be a column index"):
        finetune.resolve_options(_args(finetune, ["--model", "m", "--train", "t", "--no-header"]))


@pytest.mark.slow
def test_finetune_then_classify(tmp_path, capsys):
    run = _run_dir(tmp_path)
    train = tmp_path / "train.csv"
    train.write_text("\n".join(f"{label},{text}" for text, label in ROWS * 2) + "\n")
    config = tmp_path / "ft.json"
    config.write_text(json.dumps({"model": str(run), "train": str(train), "header": False,
                                  "text_column": 1, "label_column": 0, "max_length": 8}))
    out = tmp_path / "clf"
    code = finetune.run(_args(finetune, ["--config", str(config), "--epochs", "1",
                                         "--batch-size", "4", "--validation-split", "0.25",
                                         "--output-dir", str(out), "--quiet"]))
    assert code == 0

    plots = "png" if have_matplotlib() else "txt"
    for name in ("model.keras", "vocab.txt", "labels.json", "task.json", "metrics.json",
                 f"confusion_validation.{plots}", f"training_curves.{plots}",
                 "report_validation.txt"):
        assert (out / name).is_file(), name
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["validation"]["confusion_matrix"] and metrics["options"]["epochs"] == 1
    capsys.readouterr()

    assert classify.run(_args(classify, ["--model", str(out), "good film", "dull story"])) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["text"] for r in lines] == ["good film", "dull story"]
    for r in lines:
        assert r["label"] in ("neg", "pos")
        assert sum(r["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
        assert r["label"] == max(r["probabilities"], key=r["probabilities"].get)


def test_classify_bad_input(tmp_path):
    with pytest.raises(ValueError, match="no texts"):
        classify.run(_args(classify, ["--model", str(tmp_path)]))
    with pytest.raises(ValueError, match="even number"):
        classify.run(_args(classify, ["--model", str(tmp_path), "--pair", "a", "b", "c"]))


def test_classify_refuses_a_saved_head_that_was_never_trained(tmp_path):
    model = BertClassifier(encoder(), num_classes=2)
    model.set_tokenizer(tokenizer(), 8)
    model.save_pretrained(tmp_path / "untrained")
    with pytest.raises(ValueError, match="never trained"):
        classify.run(_args(classify, ["--model", str(tmp_path / "untrained"), "good film"]))
    with pytest.raises(ValueError, match="no classifier head.*kbert finetune"):
        classify.run(_args(classify, ["--model", str(_run_dir(tmp_path)), "good film"]))


@pytest.mark.slow
def test_finetune_search_and_seeds_keep_the_best_on_validation(tmp_path, capsys, monkeypatch):
    """--search tries the grid around the defaults and keeps the best validation trial; --seeds
    reports the spread over seeds; metrics.json records every trial and the kept settings.
    (A 2 x 2 grid here instead of 3 x 2, to keep the test short.)"""
    monkeypatch.setattr(search, "RATE_FACTORS", (1.0, 2.0))
    run = _run_dir(tmp_path)
    train = tmp_path / "train.csv"
    train.write_text("text,label\n" + "\n".join(f"{t},{label}" for t, label in ROWS * 2) + "\n")
    test = tmp_path / "test.csv"
    test.write_text("text,label\n" + "\n".join(f"{t},{label}" for t, label in ROWS) + "\n")
    out = tmp_path / "clf"
    assert finetune.run(_args(finetune, [
        "--model", str(run), "--train", str(train), "--test", str(test), "--max-length", "8",
        "--epochs", "1", "--batch-size", "4", "--validation-split", "0.25", "--search",
        "--seeds", "2", "--output-dir", str(out), "--quiet"])) == 0
    printed = capsys.readouterr().out
    assert "epochs 1 (given); lr 0.0002 (hidden" in printed  # the tiny encoder is narrow
    assert "truncation at 8 drops 0.0% of the training pieces; no windows" in printed
    assert "== search on the validation split ==" in printed and "<- kept" in printed
    assert "== 2 seeds ==" in printed and "test accuracy:" in printed
    metrics = json.loads((out / "metrics.json").read_text())
    seeds = metrics["seeds"]
    trials = metrics["search"]
    assert sorted({row["learning_rate"] for row in trials}) == [2e-4, 4e-4]
    assert {row["epochs"] for row in trials} == {1, 2} and len(trials) == 4
    best = max(trials, key=lambda row: row["score"])
    assert [row["seed"] for row in seeds] == [0, 1]
    assert seeds[0]["learning_rate"] == best["learning_rate"] == metrics["options"]["learning_rate"]
    kept = max(seeds, key=lambda row: row["score"])
    assert metrics["options"]["seed"] == kept["seed"]
    assert all(0.0 <= row["test_score"] <= 1.0 for row in seeds)
    # 4 validation examples choose no epoch: every run keeps, and is scored by, its last one
    assert "4 validation examples, too few to choose an epoch by); the last epoch" in printed
    assert all(row["best_epoch"] == row["epochs"] for row in trials + seeds)
    assert len(metrics["history"]["loss"]) == kept["epochs"] or kept["best_epoch"] <= kept["epochs"]
