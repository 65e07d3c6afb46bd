"""keras-hub presets both ways, checked against keras-hub itself (tiny random models, offline).

keras-hub -> kbert: `save_to_preset` of a BertBackbone / BertTextClassifier, read by `kbert.load`.
kbert -> keras-hub: `kbert convert --to-keras-hub` (a subprocess), read by keras-hub's
`from_preset`. keras-hub computes the tanh GELU; a kbert encoder with the exact (erf) GELU
differs from its keras-hub export by the GELU form only (GELU_FORM_* below, docs/keras_hub.md).
"""

import json
import os
import re
import subprocess
import sys
import warnings

import h5py
import numpy as np
import pytest
from minilm import minilm_dir_or_skip
from test_convert import TOKENS, random_encoder, sample_inputs

import kbert
from kbert.convert import (
    CheckpointError,
    PresetExportWarning,
    save_kbert_model,
    save_keras_hub_preset,
    save_transformers_checkpoint,
)
from kbert.errors import KbertWarning
from kbert.loading import ModelSourceError, detect
from kbert.models.encoder import BertEncoder
from kbert.tokenization.tokenizer import BertTokenizer
from kbert.tokenization.vocab import Vocabulary

keras_hub = pytest.importorskip("keras_hub", reason="keras-hub is not installed (the `test` "
                                "extra has it): keras-hub interop tests skipped")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAME = 1e-5
# The GELU-form difference (max |exact-GELU kbert - keras-hub tanh-GELU|), measured here:
# the tiny random encoder below (weights N(0, 0.3)): 2.7e-4 (sequence_output), 2.1e-4 (pooled);
# all-MiniLM-L6-v2 on a padded batch of 3 sentences: 2.7e-3 (sequence_output at real tokens),
# 2.3e-4 (pooled), token cosine >= 0.9999984. The same weights with the tanh GELU in kbert
# match keras-hub to 2.3e-6.
GELU_FORM_TINY = 1e-3
GELU_FORM_MINILM = 5e-3


def random_backbone(seed=0, **changes):
    """A tiny keras-hub BertBackbone with every weight random."""
    values = {"name": "bert_backbone", "vocabulary_size": len(TOKENS), "num_layers": 2,
              "num_heads": 2, "hidden_dim": 16, "intermediate_dim": 24,
              "max_sequence_length": 20}
    values.update(changes)
    backbone = keras_hub.models.BertBackbone(**values)
    rng = np.random.default_rng(seed)
    for v in backbone.weights:
        v.assign(rng.normal(0, 0.3, size=tuple(v.shape)).astype("float32"))
    return backbone


def outputs(model, inputs):
    out = model(inputs)
    return np.asarray(out["sequence_output"]), np.asarray(out["pooled_output"])


def max_diff(a, b):
    return max(float(np.abs(x - y).max()) for x, y in zip(a, b, strict=True))


def kbert_cli(*args):
    # a user's environment: no TF_CPP_MIN_LOG_LEVEL (conftest sets it), so the CLI hides TF's lines
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [ROOT, env.get("PYTHONPATH")]))
    return subprocess.run([sys.executable, "-m", "kbert.cli", *args], env=env, check=False,
                          capture_output=True, text=True, timeout=600)


def test_backbone_preset_loads_with_keras_hub_outputs(tmp_path):
    backbone = random_backbone()
    backbone.save_to_preset(str(tmp_path / "preset"))
    assert detect(tmp_path / "preset") == "keras_hub"
    loaded = kbert.load(tmp_path / "preset")
    assert loaded.kind == "keras_hub" and loaded.tokenizer is None  # no tokenizer saved
    config = loaded.encoder.bert_config
    assert (config.hidden_act, config.layer_norm_epsilon, config.num_layers,
            config.max_position_embeddings) == ("gelu_tanh", 1e-12, 2, 20)
    inputs = sample_inputs()  # batch row 1 is padded
    assert inputs["padding_mask"].min() == 0
    diff = max_diff(outputs(loaded.encoder, inputs), outputs(backbone, inputs))
    assert diff <= SAME, diff


def test_bfloat16_preset_loads_as_float32(tmp_path):
    backbone = random_backbone(seed=8, dtype="bfloat16")
    backbone.save_to_preset(str(tmp_path / "bf16"))
    encoder = kbert.load(tmp_path / "bf16").encoder  # keras stores bfloat16 as raw 2-byte values
    assert all(w.dtype == np.float32 for w in encoder.get_weights())
    theirs = {w.path: np.asarray(w.numpy(), np.float32) for w in backbone.weights}
    np.testing.assert_array_equal(
        encoder.get_layer("embeddings").token_embedding.embeddings.numpy(),
        theirs["token_embedding/embeddings"])
    np.testing.assert_array_equal(encoder.get_layer("pooler").kernel.numpy(),
                                  theirs["pooled_dense/kernel"])


def test_task_preset_loads_with_its_vocabulary(tmp_path):
    backbone = random_backbone(seed=3)
    for lowercase in (True, False):
        tokenizer = keras_hub.models.BertTokenizer(vocabulary=TOKENS, lowercase=lowercase)
        preprocessor = keras_hub.models.BertTextClassifierPreprocessor(tokenizer,
                                                                       sequence_length=12)
        classifier = keras_hub.models.BertTextClassifier(backbone, num_classes=2,
                                                         preprocessor=preprocessor)
        path = tmp_path / f"task_{lowercase}"
        classifier.save_to_preset(str(path))
        assert os.path.isfile(path / "task.json")  # keras-hub's, not a kbert task dir
        with pytest.warns(KbertWarning, match="task.weights.h5 is not imported"):
            loaded = kbert.load(path)
        assert loaded.kind == "keras_hub"
        assert list(loaded.tokenizer.vocab.tokens) == TOKENS
        assert loaded.tokenizer.lower_case is lowercase
        text = "We sat by the river bank."
        ours = loaded.tokenizer([text], max_length=12)["token_ids"].numpy()[0]
        theirs = np.asarray(preprocessor([text])["token_ids"])[0]
        np.testing.assert_array_equal(ours, theirs)
        inputs = sample_inputs(seed=4)
        assert max_diff(outputs(loaded.encoder, inputs), outputs(backbone, inputs)) <= SAME


def test_convert_to_keras_hub_cli_loads_in_keras_hub(tmp_path):
    encoder = random_encoder(seed=5)  # exact erf GELU, like transformers' BERTs
    assert encoder.bert_config.hidden_act == "gelu"
    tokenizer = BertTokenizer(Vocabulary(TOKENS), lower_case=True, max_length=20)
    save_kbert_model(encoder, tokenizer, tmp_path / "source")
    out = tmp_path / "preset"
    done = kbert_cli("convert", "--to-keras-hub", str(tmp_path / "source"), "--output", str(out))
    assert done.returncode == 0, done.stderr
    assert "verified: reloaded outputs differ from the source by at most" in done.stdout
    assert "keras-hub computes the tanh GELU" in done.stdout
    assert {"config.json", "model.weights.h5", "metadata.json", "tokenizer.json",
            "preprocessor.json"} <= set(os.listdir(out))

    inputs = sample_inputs(seed=6)
    backbone = keras_hub.models.BertBackbone.from_preset(str(out))
    theirs = outputs(backbone, inputs)
    # keras-hub's outputs = the same weights with the tanh GELU ...
    tanh = kbert.load(out).encoder
    assert max_diff(outputs(tanh, inputs), theirs) <= SAME
    # ... and differ from the exact-GELU source by the GELU form only (measured: 2.7e-4)
    gelu_form = max_diff(outputs(encoder, inputs), theirs)
    assert 1e-5 < gelu_form <= GELU_FORM_TINY, gelu_form

    classifier = keras_hub.models.BertTextClassifier.from_preset(str(out), num_classes=2)
    text = "We sat by the river bank."
    assert classifier.preprocessor.sequence_length == 20  # preprocessor.json: the positions
    theirs_ids = np.asarray(classifier.preprocessor([text])["token_ids"])[0]
    ours_ids = tokenizer([text], max_length=20)["token_ids"].numpy()[0]
    np.testing.assert_array_equal(theirs_ids, ours_ids)
    assert classifier.predict([text], verbose=0).shape == (1, 2)

    again = kbert_cli("convert", "--to-keras-hub", str(tmp_path / "source"), "--output", str(out))
    assert again.returncode != 0 and "--overwrite" in again.stderr
    assert len(again.stderr.strip().splitlines()) == 1, again.stderr
    forced = kbert_cli("convert", "--to-keras-hub", str(tmp_path / "source"), "--output",
                       str(out), "--overwrite", "--no-verify")
    assert forced.returncode == 0, forced.stderr


AUTO_NAME = r"(softmax|dropout|bert_backbone)(_\d+)?"


def test_written_h5_has_keras_hubs_own_layout(tmp_path):
    backbone = random_backbone(num_layers=3)
    backbone.save_to_preset(str(tmp_path / "theirs"))
    with pytest.warns(PresetExportWarning, match="tanh GELU"):
        save_keras_hub_preset(random_encoder(num_layers=3, intermediate_size=24),
                              tmp_path / "ours")

    def layout(path):
        """path -> (shape, layer name); Keras' process-wide auto names
        (softmax_7, bert_backbone_2) as None."""
        found = {}

        def visit(name, item):
            layer = item.attrs.get("name")
            if layer is not None and re.fullmatch(AUTO_NAME, layer):
                layer = None
            found[name] = (getattr(item, "shape", None), layer)

        with h5py.File(path, "r") as h5:
            h5.visititems(visit)
        return found

    assert layout(tmp_path / "ours" / "model.weights.h5") == \
        layout(tmp_path / "theirs" / "model.weights.h5")
    ours = json.loads((tmp_path / "ours" / "config.json").read_text())
    theirs = json.loads((tmp_path / "theirs" / "config.json").read_text())
    ours["config"]["dropout"] = theirs["config"]["dropout"]
    assert ours == theirs


def test_keras_hub_config_is_not_a_transformers_config(tmp_path):
    encoder = random_encoder(seed=7)
    save_transformers_checkpoint(encoder, tmp_path / "hf", vocab=TOKENS)
    open(tmp_path / "hf" / "model.weights.h5", "wb").close()  # a stray file must not matter
    assert detect(tmp_path / "hf") == "transformers"
    random_backbone().save_to_preset(str(tmp_path / "kh"))
    assert detect(tmp_path / "kh") == "keras_hub"


def test_bad_presets_give_one_line_errors(tmp_path):
    random_backbone().save_to_preset(str(tmp_path / "p"))
    config_path = tmp_path / "p" / "config.json"
    config = json.loads(config_path.read_text())

    config["class_name"] = "RobertaBackbone"
    config_path.write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="RobertaBackbone.*BertBackbone only"):
        kbert.load(tmp_path / "p")

    config["class_name"] = "BertBackbone"
    config["config"]["num_layers"] = 3
    config_path.write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="transformer_encoder_2.*3 layers"):
        kbert.load(tmp_path / "p")

    config["config"]["num_layers"] = 1
    config_path.write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="more transformer layers"):
        kbert.load(tmp_path / "p")

    config["config"].update(num_layers=2, hidden_dim=32)
    config_path.write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="shape .* implies"):
        kbert.load(tmp_path / "p")

    config_path.write_text("{not json")
    with pytest.raises((CheckpointError, ModelSourceError), match="config.json"):
        kbert.load(tmp_path / "p")


@pytest.fixture(scope="module")
def minilm_dir():
    return minilm_dir_or_skip("MiniLM keras-hub round trip skipped")


def test_minilm_round_trip_through_keras_hub(minilm_dir, tmp_path):
    source = kbert.load(minilm_dir)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PresetExportWarning)
        save_keras_hub_preset(source.encoder, tmp_path / "minilm", vocab=source.tokenizer)
    back = kbert.load(tmp_path / "minilm")
    assert back.kind == "keras_hub" and back.tokenizer.lower_case is True
    assert list(back.tokenizer.vocab.tokens) == list(source.tokenizer.vocab.tokens)
    for a, b in zip(source.encoder.get_weights(), back.encoder.get_weights(),
                    strict=True):
        np.testing.assert_array_equal(a, b)  # the weights survive exactly

    texts = ["A man is playing a guitar.", "The new movie is awesome and I loved every minute.",
             "Tea."]
    inputs = {k: np.asarray(v) for k, v in source.tokenizer(texts, max_length=24).items()}
    assert inputs["padding_mask"].min() == 0
    tanh_source = BertEncoder.from_bert_config(
        source.encoder.bert_config.replace(hidden_act="gelu_tanh"))
    tanh_source.set_weights(source.encoder.get_weights())
    mask = inputs["padding_mask"][..., None]

    def real(out):  # padded rows may hold anything
        return out[0] * mask, out[1]

    assert max_diff(real(outputs(back.encoder, inputs)),
                    real(outputs(tanh_source, inputs))) <= SAME
    backbone = keras_hub.models.BertBackbone.from_preset(str(tmp_path / "minilm"))
    keras_hub_out = real(outputs(backbone, inputs))
    assert max_diff(real(outputs(back.encoder, inputs)), keras_hub_out) <= SAME
    gelu_form = max_diff(real(outputs(source.encoder, inputs)), keras_hub_out)
    assert 1e-5 < gelu_form <= GELU_FORM_MINILM, gelu_form
