"""The model code runs on the JAX backend without TensorFlow, with the same numbers as on TF.

The parent (TF backend) builds a small encoder with random weights, saves the weights and its
outputs; a child process with KERAS_BACKEND=jax and every `tensorflow*` import blocked loads
the weights and must reproduce the outputs within 1e-5. If kbert.layers or kbert.models (or
kbert.config, or `import kbert`) import TensorFlow, the child fails.
"""

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
from layer_checks import randomize_weights
from test_tasks_support import encoder, with_tokenizer

from kbert.models import BertEncoder
from kbert.tasks import BertClassifier

pytest.importorskip("jax")

CONFIG = dict(vocab_size=80, hidden_size=32, num_layers=2, num_heads=4, intermediate_size=64,
              max_position_embeddings=16, hidden_act="gelu")

CHILD = textwrap.dedent("""
    import importlib.abc
    import json
    import os
    import sys

    class BlockTensorFlow(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "tensorflow" or name.startswith(("tensorflow.", "tensorflow_")):
                raise ImportError(f"tensorflow is blocked in this process: import {name!r}")
            return None

    sys.meta_path.insert(0, BlockTensorFlow())
    assert os.environ["KERAS_BACKEND"] == "jax"

    import numpy as np
    import keras
    import kbert
    from kbert.models import BertEncoder
    import kbert.layers

    assert keras.backend.backend() == "jax", keras.backend.backend()
    work = sys.argv[1]
    with open(os.path.join(work, "config.json")) as f:
        config = json.load(f)
    encoder = BertEncoder(**config)
    encoder.load_weights(os.path.join(work, "encoder.weights.h5"))
    data = np.load(os.path.join(work, "io.npz"))
    inputs = {k: data[k] for k in ("token_ids", "segment_ids", "padding_mask")}
    out = encoder(inputs, output_hidden_states=True, output_attentions=True)
    fused = encoder(inputs)
    results = {
        "sequence_output": out["sequence_output"],
        "pooled_output": out["pooled_output"],
        "fused_sequence_output": fused["sequence_output"],
    }
    for i, h in enumerate(out["hidden_states"]):
        results[f"hidden_{i}"] = h
    for i, p in enumerate(out["attention_probs"]):
        results[f"probs_{i}"] = p
    results = {k: np.asarray(v) for k, v in results.items()}
    np.savez(os.path.join(work, "jax_out.npz"), **results)
    loaded = sorted(m for m in sys.modules if m.split(".")[0] == "tensorflow")
    assert not loaded, loaded
    print("JAX_CHILD_OK")
""")


def _inputs():
    rng = np.random.default_rng(7)
    lengths = np.array([10, 6, 0])
    padding_mask = (np.arange(10)[None] < lengths[:, None]).astype("int32")
    token_ids = rng.integers(1, CONFIG["vocab_size"], (3, 10)).astype("int32") * padding_mask
    segment_ids = ((np.arange(10)[None] >= 4) * padding_mask).astype("int32")
    return {"token_ids": token_ids, "segment_ids": segment_ids, "padding_mask": padding_mask}


def test_jax_backend_without_tensorflow_matches_tensorflow_backend(tmp_path):
    assert keras.backend.backend() == "tensorflow"
    encoder = BertEncoder(**CONFIG)
    randomize_weights(encoder, seed=3)
    encoder.save_weights(str(tmp_path / "encoder.weights.h5"))
    (tmp_path / "config.json").write_text(json.dumps(encoder.bert_config.to_dict()))
    inputs = _inputs()
    np.savez(tmp_path / "io.npz", **inputs)
    out = encoder(inputs, output_hidden_states=True, output_attentions=True)
    expected = {"sequence_output": out["sequence_output"], "pooled_output": out["pooled_output"],
                "fused_sequence_output": encoder(inputs)["sequence_output"]}
    expected.update({f"hidden_{i}": h for i, h in enumerate(out["hidden_states"])})
    expected.update({f"probs_{i}": p for i, p in enumerate(out["attention_probs"])})

    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run([sys.executable, "-c", CHILD, str(tmp_path)], env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and "JAX_CHILD_OK" in proc.stdout, proc.stderr[-4000:]

    got = np.load(tmp_path / "jax_out.npz")
    assert sorted(got.files) == sorted(expected)
    for name, value in expected.items():
        np.testing.assert_allclose(got[name], keras.ops.convert_to_numpy(value), rtol=0,
                                   atol=1e-5, err_msg=name)


TASK_CHILD = CHILD.split("import numpy as np")[0] + textwrap.dedent("""
    import numpy as np
    import keras
    import kbert

    assert keras.backend.backend() == "jax"
    work = sys.argv[1]
    loaded = kbert.load(os.path.join(work, "clf"))
    assert loaded.kind == "task" and loaded.tokenizer is None and loaded.model.trained
    assert loaded.model.label_map.labels == ["neg", "pos"]
    data = np.load(os.path.join(work, "io.npz"))
    logits = loaded.model.predict({k: data[k] for k in data.files}, verbose=0)
    np.save(os.path.join(work, "jax_logits.npy"), np.asarray(logits))
    assert not [m for m in sys.modules if m.split(".")[0] == "tensorflow"]
    print("JAX_CHILD_OK")
""")


def test_a_task_saved_under_tensorflow_loads_and_predicts_on_jax_without_tensorflow(tmp_path):
    model = with_tokenizer(BertClassifier(encoder(), num_classes=2), max_length=16)
    model.fit(["good film", "bad film"], ["pos", "neg"], epochs=1, verbose=0)
    model.save_pretrained(tmp_path / "clf")
    packed = {k: np.asarray(v) for k, v in
              model.tokenizer(["good film", "a bad, dull film"], max_length=16).items()}
    np.savez(tmp_path / "io.npz", **packed)
    expected = model.predict(packed, verbose=0)

    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run([sys.executable, "-c", TASK_CHILD, str(tmp_path)], env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and "JAX_CHILD_OK" in proc.stdout, proc.stderr[-4000:]
    np.testing.assert_allclose(np.load(tmp_path / "jax_logits.npy"), expected, atol=1e-5)
