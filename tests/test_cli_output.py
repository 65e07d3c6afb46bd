"""What the `kbert` commands print and write: no overwritten work, no TensorFlow log lines, no
progress-bar escapes in a pipe, progress on long steps, one-line errors naming a bad line of a
file, one rule for --max-length."""

import hashlib
import io
import json
import os
import re
import subprocess
import sys

import pytest
from test_tasks_support import encoder, tokenizer

from kbert.cli import main, native_log_filter
from kbert.commands import tokenize
from kbert.config import MaxLengthError, check_max_length
from kbert.outputs import check_output, fit_verbosity
from kbert.training.pretrain import PretrainConfig, is_same_run

KBERT = [sys.executable, "-m", "kbert.cli"]
NATIVE = re.compile(r"^[IWEF]\d{4} \d\d:\d\d:\d\d\.\d+\s+\d+ \S+:\d+\]|absl::InitializeLog", re.M)
ROWS = [("good film", "pos"), ("great movie", "pos"), ("fun story", "pos"), ("good fun", "pos"),
        ("bad film", "neg"), ("awful movie", "neg"), ("dull story", "neg"), ("bad dull", "neg")]


def _env(**extra):
    """The environment of a user who set nothing: no TF_CPP_MIN_LOG_LEVEL (conftest sets it)."""
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    env["PYTHONPATH"] = os.pathsep.join(
        [os.path.dirname(os.path.dirname(os.path.abspath(__file__)))]
        + [p for p in [env.get("PYTHONPATH")] if p])
    env.update(extra)
    return env


def _digest(path) -> dict:
    """sha256 of every file under path (or of the file)."""
    if os.path.isfile(path):
        return {"": hashlib.sha256(open(path, "rb").read()).hexdigest()}
    return {os.path.relpath(os.path.join(root, n), path):
            hashlib.sha256(open(os.path.join(root, n), "rb").read()).hexdigest()
            for root, _, names in os.walk(path) for n in names}


@pytest.fixture
def run_dir(tmp_path):
    """A tiny pre-training run directory: encoder.keras (64 positions) + vocab.txt."""
    run = tmp_path / "pretrain"
    run.mkdir()
    encoder().save(run / "encoder.keras")
    tokenizer().vocab.save(run)
    return run


# ------------------------------------------------------------------- 1. nothing is lost
def _previous_work(tmp_path):
    out = tmp_path / "previous"
    out.mkdir()
    (out / "model.keras").write_bytes(b"weights of last week's run")
    (out / "notes.txt").write_text("do not lose me\n")
    return out


@pytest.mark.parametrize("command, argv, flag", [
    ("finetune", ["--model", "m", "--train", "t.csv", "--output-dir", "{out}"], "--output-dir"),
    ("pretrain", ["--output-dir", "{out}"], "--output-dir"),
    ("convert", ["--from-transformers", "src", "--output", "{out}"], "--output"),
    ("vocab", ["--corpus", "austen", "--output", "{out}"], "--output"),
    ("tflite", ["model", "--inputs", "all", "--output", "{out}"], "--output"),
])
def test_commands_refuse_an_output_that_holds_files(tmp_path, capsys, command, argv, flag):
    out = _previous_work(tmp_path)
    if command == "tflite":  # a directory is fine; a file it would write is not
        (out / "text-float32.tflite").write_bytes(b"an earlier export")
    before = _digest(out)
    assert main([command] + [a.format(out=out) for a in argv]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    target = out / "text-float32.tflite" if command == "tflite" else out
    assert err.startswith(f"kbert {command}: error: {target} already ")
    them = "it" if command == "tflite" else "them"
    assert err.rstrip().endswith(f"pass --overwrite to write over {them} or choose another {flag}")
    assert _digest(out) == before


def test_tflite_refuses_an_existing_file_and_a_sidecar(tmp_path, capsys):
    target = tmp_path / "model.tflite"
    target.write_bytes(b"an earlier export")
    assert main(["tflite", "model", "--output", str(target)]) == 1
    assert f"{target} already exists; pass --overwrite" in capsys.readouterr().err
    target.unlink()
    (tmp_path / "model.tflite.json").write_text("{}")
    assert main(["tflite", "model", "--output", str(target)]) == 1
    assert "model.tflite.json already exists" in capsys.readouterr().err


def test_an_empty_or_new_output_is_accepted_and_overwrite_lifts_the_check(tmp_path):
    (tmp_path / "empty").mkdir()
    check_output(tmp_path / "empty")
    check_output(tmp_path / "new" / "dir")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    check_output(tmp_path / "full", overwrite=True)
    with pytest.raises(ValueError, match=r"full already holds files \(x\); pass --overwrite"):
        check_output(tmp_path / "full", flag="--output-dir")


def test_pretrain_continues_its_own_run_but_refuses_other_work(tmp_path, capsys):
    out = tmp_path / "run"
    config = PretrainConfig(output_dir=str(out), steps=40)
    out.mkdir()
    assert is_same_run(config)  # empty
    (out / "vocab.txt").write_text("[PAD]\n")  # a vocabulary put there to be reused
    (out / "model_config.json").write_text("{}")
    (out / "backup").mkdir()  # an unfinished run: resumed (model_config checks the model)
    assert is_same_run(config)
    (out / "backup").rmdir()
    summary = {"config": json.loads(json.dumps(
        {**config.__dict__, "verbose": 2, "output_dir": "elsewhere/run"}))}
    (out / "summary.json").write_text(json.dumps(summary))
    assert is_same_run(config)  # finished, same configuration: re-run as before
    assert not is_same_run(PretrainConfig(output_dir=str(out), steps=80))
    (out / "summary.json").unlink()
    (out / "my_notes.txt").write_text("mine")
    assert not is_same_run(config)
    before = _digest(out)
    assert main(["pretrain", "--output-dir", str(out), "--steps", "40"]) == 1
    err = capsys.readouterr().err
    assert err == (f"kbert pretrain: error: {out} already holds files (model_config.json, "
                   f"my_notes.txt, vocab.txt); pass --overwrite to write over them or choose "
                   f"another --output-dir\n")
    assert _digest(out) == before


# ------------------------------------------------------------------- 2. clean output
def test_native_log_filter_keeps_everything_else():
    captured = (
        "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
        "I0000 00:00:1796292999.164198    5234 port.cc:153] oneDNN custom operations are on.\n"
        "I0000 00:00:1796292999.215235    5234 cpu_feature_guard.cc:227] This TensorFlow binary\n"
        "To enable the following instructions: AVX2 FMA, in other operations, rebuild ...\n"
        "E0000 00:00:1796293003.469499    5234 cuda_platform.cc:52] failed call to cuInit\n"
        "/x/y.py:3: UserWarning: something of Python's own\n"
        "  warnings.warn(\"something\")\n"
        "a line of a library\n")
    assert native_log_filter(captured) == (
        "/x/y.py:3: UserWarning: something of Python's own\n"
        "  warnings.warn(\"something\")\n"
        "a line of a library\n")


def test_a_command_prints_no_tensorflow_log_lines_unless_verbose(tmp_path):
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nhello\nworld\n")
    quiet = subprocess.run(KBERT + ["tokenize", "--vocab", str(vocab), "hello world"],
                           env=_env(), capture_output=True, text=True, timeout=300)
    assert quiet.returncode == 0, quiet.stderr
    assert "hello" in quiet.stdout and "world" in quiet.stdout
    assert not NATIVE.search(quiet.stderr), quiet.stderr
    assert quiet.stderr == ""
    # --verbose (after the command here; `kbert --verbose tokenize` works too) shows them
    loud = subprocess.run(KBERT + ["tokenize", "--verbose", "--vocab", str(vocab), "hello"],
                          env=_env(), capture_output=True, text=True, timeout=300)
    assert loud.returncode == 0, loud.stderr
    assert NATIVE.search(loud.stderr), loud.stderr


def test_verbose_is_a_global_flag_too(capsys, monkeypatch):
    seen = []
    monkeypatch.setattr(tokenize, "run", lambda args: seen.append(args.verbose) or 0)
    assert main(["--verbose", "tokenize", "--vocab", "v"]) == 0
    assert main(["tokenize", "--vocab", "v", "--verbose"]) == 0
    assert main(["tokenize", "--vocab", "v"]) == 0
    assert seen == [True, True, False]


# ------------------------------------------------------------------- 3. progress bars
def test_fit_verbosity_follows_the_terminal():
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    assert fit_verbosity(Terminal()) == 1
    assert fit_verbosity(io.StringIO()) == 2


@pytest.mark.slow
def test_finetune_into_a_pipe_prints_plain_lines(run_dir, tmp_path):
    train = tmp_path / "train.csv"
    train.write_text("text,label\n" + "".join(f"{t},{y}\n" for t, y in ROWS * 2))
    result = subprocess.run(
        KBERT + ["finetune", "--model", str(run_dir), "--train", str(train), "--epochs", "2",
                 "--batch-size", "4", "--max-length", "8", "--output-dir", str(tmp_path / "clf")],
        env=_env(), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "\x1b[" not in result.stdout and "\r" not in result.stdout and "\b" not in result.stdout
    assert re.search(r"^Epoch 2/2$", result.stdout, re.M)
    assert re.search(r"^4/4 - \d+s - .*loss: ", result.stdout, re.M), result.stdout  # 14 / 4
    assert not NATIVE.search(result.stderr), result.stderr


def test_interrupted_starts_on_its_own_line(capsys, monkeypatch):
    def interrupted(args):
        sys.stdout.write("\r 7/20 ━━━━━━━━ 3s 120ms/step - loss: 4.1")  # a bar: mid-line
        raise KeyboardInterrupt

    monkeypatch.setattr(tokenize, "run", interrupted)
    assert main(["tokenize", "--vocab", "v"]) == 130
    captured = capsys.readouterr()
    assert captured.out.endswith("loss: 4.1\n") and captured.err == "kbert: interrupted\n"

    def interrupted_after_a_line(args):
        print("a whole line")
        raise KeyboardInterrupt

    monkeypatch.setattr(tokenize, "run", interrupted_after_a_line)
    assert main(["tokenize", "--vocab", "v"]) == 130
    assert capsys.readouterr().out == "a whole line\n"  # no blank line added


# ------------------------------------------------------------------- 5. decoding errors
@pytest.mark.parametrize("command, extra", [
    ("classify", ["--model", "m"]),
    ("embed", ["--model", "m"]),
    ("tokenize", ["--vocab", "v"]),
])
def test_input_file_that_is_not_utf8_is_named_with_its_line(tmp_path, capsys, command, extra):
    path = tmp_path / "texts.txt"
    path.write_bytes("a first text\nles caf\u00e9s\n".encode("latin-1"))
    assert main([command, *extra, "--input", str(path)]) == 1
    assert capsys.readouterr().err == (
        f"kbert {command}: error: {path}, line 2: not valid UTF-8 (byte 0xe9 at column 8); "
        f"re-save it as UTF-8\n")


def test_not_utf8_standard_input(tmp_path):
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nhello\n")
    result = subprocess.run(KBERT + ["tokenize", "--vocab", str(vocab)],
                            input="hello\n\u00e9t\u00e9\n".encode("latin-1"),
                            env=_env(TF_CPP_MIN_LOG_LEVEL="3"), capture_output=True, timeout=300)
    assert result.returncode == 1
    assert result.stderr.decode().endswith(
        "standard input, line 2: not valid UTF-8 (byte 0xe9 at column 1); re-save it as UTF-8\n")


# ------------------------------------------------------------------- 6. --max-length
def test_check_max_length_is_one_rule():
    assert check_max_length(2, 512) == 2 and check_max_length(512, 512) == 512
    for bad in (1, 513, 100000, 0, -3, 2.5, "8", True):
        with pytest.raises(MaxLengthError) as info:
            check_max_length(bad, 512)
        assert str(info.value) == (f"--max-length {bad}: the model takes 2 to 512 tokens (its "
                                   f"max_position_embeddings)")


@pytest.mark.parametrize("value", ["100000", "1"])
def test_embed_and_finetune_refuse_a_max_length_the_model_cannot_take(run_dir, tmp_path, capsys,
                                                                     value):
    message = (f"--max-length {value}: the model takes 2 to 64 tokens (its "
               f"max_position_embeddings)\n")
    assert main(["embed", "--model", str(run_dir), "--max-length", value, "good film"]) == 1
    assert capsys.readouterr().err == f"kbert embed: error: {message}"
    train = tmp_path / "train.csv"
    train.write_text("text,label\n" + "".join(f"{t},{y}\n" for t, y in ROWS))
    assert main(["finetune", "--model", str(run_dir), "--train", str(train), "--max-length",
                 value, "--output-dir", str(tmp_path / "clf")]) == 1
    assert capsys.readouterr().err.endswith(f"kbert finetune: error: {message}")
    # within the limit, the given length is used (not silently capped)
    assert main(["embed", "--model", str(run_dir), "--max-length", "64", "--level", "token",
                 "good film"]) == 0
