"""Models by name (kbert/hub.py through kbert.load), offline: huggingface_hub's and kagglehub's
real cache layouts are built in tmp dirs (tests/hub_cache.py), HF_HUB_OFFLINE is on, and
kagglehub.model_download fails the test if it is reached. Nothing here touches the network."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from hub_cache import build_hf_cache, build_kaggle_cache, hf_repo_dir
from minilm import minilm_dir_or_skip
from pytorch_bin import save_pytorch_bin
from safetensors.numpy import load_file

from kbert import hub
from kbert.cli import main
from kbert.config import BertConfig
from kbert.convert import save_transformers_checkpoint
from kbert.embeddings import ContextualEmbedder
from kbert.loading import ModelSourceError, load
from kbert.models.encoder import BertEncoder
from kbert.tasks import BertClassifier

REPO = "sentence-transformers/all-MiniLM-L6-v2"
MAIN = "1" * 40  # commit of refs/main
TAGGED = "2" * 40  # commit of refs/v1
TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "river", "bank", "hi", "a", "."]
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def minilm_dir() -> str:
    return minilm_dir_or_skip("loading it by name is skipped")


@pytest.fixture(scope="module")
def caches(tmp_path_factory):
    """HF_HOME with MiniLM at refs/main and refs/v1 (two commits); an empty KAGGLEHUB_CACHE."""
    home = tmp_path_factory.mktemp("hf_home")
    cache = str(home / "hub")
    source = minilm_dir()
    build_hf_cache(cache, REPO, source, MAIN, patterns=hub.HF_FILES)
    build_hf_cache(cache, REPO, source, TAGGED, refs=("v1",), patterns=hub.HF_FILES)
    return {"home": str(home), "cache": cache, "kaggle": str(tmp_path_factory.mktemp("kaggle"))}


@pytest.fixture
def offline(caches, monkeypatch):
    """The environment a user sets, and huggingface_hub's constants (read at its import)."""
    # deferred: kagglehub and huggingface_hub are optional dependencies
    import kagglehub  # noqa: PLC0415
    from huggingface_hub import constants  # noqa: PLC0415

    monkeypatch.setenv("HF_HOME", caches["home"])
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("KAGGLEHUB_CACHE", caches["kaggle"])
    monkeypatch.setattr(constants, "HF_HUB_CACHE", caches["cache"])
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)

    def no_network(*args, **kwargs):
        pytest.fail(f"kagglehub.model_download{args} reached for the network")

    monkeypatch.setattr(kagglehub, "model_download", no_network)
    return caches


def snapshot(caches, commit=MAIN):
    return os.path.join(hf_repo_dir(caches["cache"], REPO), "snapshots", commit)


def sequence_output(loaded, text="The river bank was muddy."):
    packed = loaded.tokenizer([text])
    out = loaded.encoder({k: np.asarray(v) for k, v in packed.items()})
    return np.asarray(out["sequence_output"])


@pytest.mark.parametrize("text, expected", [
    ("bert-base-uncased", ("hf", "bert-base-uncased", None)),
    ("google-bert/bert-base-uncased", ("hf", "google-bert/bert-base-uncased", None)),
    (f"{REPO}@v1", ("hf", REPO, "v1")),
    (f"hf://{REPO}@{MAIN}", ("hf", REPO, MAIN)),
    ("hf://org/name", ("hf", "org/name", None)),
    ("bert_base_en_uncased", ("keras_hub", "bert_base_en_uncased", None)),
    ("bge_base_v1.5_en", ("keras_hub", "bge_base_v1.5_en", None)),
    ("kaggle://keras/bert/keras/bert_tiny_en_uncased/3",
     ("kaggle", "keras/bert/keras/bert_tiny_en_uncased/3", None)),
])
def test_names_parse(text, expected):
    assert hub.parse(text) == hub.ModelName(*expected)


@pytest.mark.parametrize("text", ["./runs/clf", "/abs/model", "~/model", "../m", "model.keras",
                                  "runs/a/b", "ckpt/bert_model.ckpt.index", "a\\b", ""])
def test_paths_are_not_names(text):
    assert hub.parse(text) is None
    assert hub.resolve(text) == text  # kbert.load then says it does not exist


def test_load_a_repo_id_from_the_cache_offline(offline):
    loaded = load(REPO)
    assert loaded.kind == "transformers"
    assert loaded.path == snapshot(offline)
    assert loaded.encoder.bert_config.hidden_size == 384
    np.testing.assert_allclose(sequence_output(loaded), sequence_output(load(minilm_dir())),
                               atol=1e-6)


def test_revisions_resolve_through_refs_or_commits(offline):
    assert hub.resolve(f"hf://{REPO}@v1") == snapshot(offline, TAGGED)
    assert hub.resolve(f"{REPO}@v1") == snapshot(offline, TAGGED)
    assert hub.resolve(f"hf://{REPO}@{MAIN}") == snapshot(offline, MAIN)
    assert hub.resolve(f"hf://{REPO}") == snapshot(offline, MAIN)
    assert load(f"hf://{REPO}@{TAGGED}").path == snapshot(offline, TAGGED)


def test_an_existing_local_path_wins_over_a_name(offline, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    os.makedirs(REPO)
    assert hub.resolve(REPO) == REPO
    with pytest.raises(ModelSourceError, match="not a model directory"):
        load(REPO)  # the empty local directory, not the cached repo


def test_offline_and_not_cached_is_one_line_saying_how_to_get_it(offline):
    with pytest.raises(ModelSourceError) as e:
        load("google-bert/bert-base-uncased")
    message = str(e.value)
    assert "\n" not in message
    assert message.startswith("google-bert/bert-base-uncased: no such local path")
    assert "HF_HUB_OFFLINE" in message and "run once online" in message
    assert offline["cache"] in message and "local model directory" in message
    with pytest.raises(ModelSourceError, match="not in the Hugging Face cache"):
        load(f"{REPO}@v2")  # a revision that is not cached


def test_a_partly_cached_repo_names_what_is_missing(offline, tmp_path):
    partial = tmp_path / "partial"
    partial.mkdir()
    (partial / "config.json").write_text('{"model_type": "bert"}')
    build_hf_cache(offline["cache"], "someone/partial-bert", str(partial), "3" * 40)
    with pytest.raises(ModelSourceError, match=r"has no weights \(model.safetensors or "
                                               r"pytorch_model.bin\).*HF_HUB_OFFLINE"):
        load("someone/partial-bert")


def test_pytorch_bin_is_fetched_only_without_safetensors(offline, tmp_path, monkeypatch):
    # deferred: huggingface_hub is an optional dependency
    from huggingface_hub import snapshot_download  # noqa: PLC0415
    encoder = BertEncoder.from_bert_config(BertConfig(
        vocab_size=len(TOKENS), hidden_size=16, num_layers=1, num_heads=2, intermediate_size=24,
        max_position_embeddings=16))
    save_transformers_checkpoint(encoder, tmp_path / "st", vocab=TOKENS)
    (tmp_path / "bin").mkdir()
    save_pytorch_bin(load_file(tmp_path / "st" / "model.safetensors"),
                     tmp_path / "bin" / "pytorch_model.bin")
    for name in ("config.json", "vocab.txt"):
        (tmp_path / "bin" / name).write_bytes((tmp_path / "st" / name).read_bytes())
    build_hf_cache(offline["cache"], "someone/bin-bert", str(tmp_path / "bin"), "4" * 40)

    calls = []

    def recording(repo, **kwargs):
        calls.append((repo, kwargs["allow_patterns"]))
        return snapshot_download(repo, **kwargs)

    monkeypatch.setattr("huggingface_hub.snapshot_download", recording)
    loaded = load("someone/bin-bert")
    assert [patterns for _, patterns in calls] == [list(hub.HF_FILES), ["pytorch_model.bin"]]
    assert "pytorch_model.bin" not in hub.HF_FILES
    np.testing.assert_allclose(sequence_output(loaded, "hi the river"),
                               sequence_output(load(tmp_path / "st"), "hi the river"), atol=1e-6)
    calls.clear()
    load(REPO)  # safetensors there: one call, no .bin
    assert calls == [(REPO, list(hub.HF_FILES))]


def _http_error(cls, status):
    # deferred: httpx2 is an optional dependency
    import httpx2  # noqa: PLC0415

    response = httpx2.Response(status, request=httpx2.Request("GET", "https://huggingface.co/x"))
    return cls(f"{status} error", response=response)


@pytest.mark.parametrize("error, expected", [
    ("GatedRepoError", "is a gated Hugging Face repo: accept its terms on "
                       "https://huggingface.co/org/gated and set HF_TOKEN"),
    ("RepositoryNotFoundError", "no such local path, and no Hugging Face repo of that name"),
    ("RevisionNotFoundError", "has no revision"),
])
def test_hub_refusals_are_one_line(offline, monkeypatch, error, expected):
    # deferred: huggingface_hub is an optional dependency
    from huggingface_hub import errors  # noqa: PLC0415

    def refuse(repo, **kwargs):
        raise _http_error(getattr(errors, error), 401 if error == "GatedRepoError" else 404)

    monkeypatch.setattr("huggingface_hub.snapshot_download", refuse)
    with pytest.raises(ModelSourceError) as e:
        load("org/gated")
    assert expected in str(e.value) and "\n" not in str(e.value)


def test_without_huggingface_hub_the_error_names_the_extra(offline, monkeypatch):
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # import fails
    with pytest.raises(ModelSourceError, match=r"pip install 'kbert\[hub\]'"):
        load("google-bert/bert-base-uncased")


def test_classifier_from_pretrained_by_name(offline):
    clf = BertClassifier.from_pretrained(REPO, num_classes=2)
    reference = load(minilm_dir()).encoder
    np.testing.assert_array_equal(
        np.asarray(clf.encoder.get_layer("embeddings").token_embedding.embeddings),
        np.asarray(reference.get_layer("embeddings").token_embedding.embeddings))
    assert clf.tokenizer.vocab_size == 30522


def test_embed_by_name_in_a_fresh_process_offline(offline):
    env = {**os.environ, "HF_HOME": offline["home"], "HF_HUB_OFFLINE": "1",
           "KAGGLEHUB_CACHE": offline["kaggle"], "PYTHONPATH": ROOT}
    env.pop("HF_HUB_CACHE", None)
    result = subprocess.run([sys.executable, "-m", "kbert.cli", "embed", "--model", REPO, "hi"],
                            capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr
    vector = np.asarray(json.loads(result.stdout.splitlines()[-1])["vector"])
    expected = ContextualEmbedder.from_pretrained(minilm_dir()).sentences(["hi"])[0]
    assert vector.shape == (384,)
    np.testing.assert_allclose(vector, expected, atol=2e-6)

    missing = subprocess.run([sys.executable, "-m", "kbert.cli", "embed", "--model",
                              "google-bert/bert-base-uncased", "hi"],
                             capture_output=True, text=True, env=env, timeout=600)
    assert missing.returncode == 1
    assert missing.stderr.strip().splitlines()[-1].startswith(
        "kbert embed: error: google-bert/bert-base-uncased: no such local path, and not in the "
        "Hugging Face cache")


# ------------------------------------------------------------------ keras-hub / kagglehub
TINY_HANDLE = "keras/bert/keras/bert_tiny_en_uncased/3"


@pytest.fixture
def tiny_preset(tmp_path):
    """A real (random, tiny) keras-hub BERT preset directory, written by keras-hub itself."""
    keras_hub = pytest.importorskip("keras_hub")
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=len(TOKENS), num_layers=1, num_heads=2, hidden_dim=8,
        intermediate_dim=16, max_sequence_length=16)
    backbone.save_to_preset(str(tmp_path / "preset"))
    return str(tmp_path / "preset")


def test_a_keras_hub_preset_name_resolves_to_the_kagglehub_cache(offline, tiny_preset):
    assert hub.keras_hub_handle("bert_tiny_en_uncased") == TINY_HANDLE
    bundle = build_kaggle_cache(offline["kaggle"], TINY_HANDLE, tiny_preset)
    assert hub.resolve("bert_tiny_en_uncased") == bundle
    assert hub.resolve(f"kaggle://{TINY_HANDLE}") == bundle
    assert sorted(os.listdir(bundle)) == ["config.json", "metadata.json", "model.weights.h5"]
    rows = {r.name: r for r in hub.catalogue()}
    assert rows["bert_tiny_en_uncased"].cached == bundle
    assert rows["bert_tiny_en_uncased"].source == "keras-hub"
    assert rows[REPO].cached == snapshot(offline)
    assert rows["bert_small_en_uncased"].cached is None
    # what keras-hub's own from_preset left (file by file): cached too, without config: not
    small = build_kaggle_cache(offline["kaggle"], "keras/bert/keras/bert_small_en_uncased/3",
                               tiny_preset, per_file=True)
    assert hub.resolve("bert_small_en_uncased") == small
    os.remove(os.path.join(os.path.dirname(small), ".complete", "3", "model.weights.h5.complete"))
    assert hub.kaggle_cached("keras/bert/keras/bert_small_en_uncased/3") is None
    assert rows["google-bert/bert-base-uncased"].cached is None


def test_a_kaggle_handle_of_a_transformers_layout_loads(offline, tmp_path, monkeypatch):
    encoder = BertEncoder.from_bert_config(BertConfig(
        vocab_size=len(TOKENS), hidden_size=16, num_layers=1, num_heads=2, intermediate_size=24,
        max_position_embeddings=16))
    save_transformers_checkpoint(encoder, tmp_path / "bert", vocab=TOKENS)
    build_kaggle_cache(offline["kaggle"], "someone/minibert/keras/tiny/1", str(tmp_path / "bert"))
    newest = build_kaggle_cache(offline["kaggle"], "someone/minibert/keras/tiny/2",
                                str(tmp_path / "bert"))
    loaded = load("kaggle://someone/minibert/keras/tiny/2")
    assert loaded.kind == "transformers" and loaded.path == newest
    np.testing.assert_allclose(sequence_output(loaded, "hi the river"),
                               sequence_output(load(tmp_path / "bert"), "hi the river"),
                               atol=1e-6)

    # deferred: kagglehub is an optional dependency
    import kagglehub  # noqa: PLC0415

    def unreachable(handle, *args, **kwargs):
        raise ConnectionError("Max retries exceeded with url: /api/v1/models")

    monkeypatch.setattr(kagglehub, "model_download", unreachable)
    # no version: Kaggle is asked for the latest; unreachable, the newest cached one is used
    assert hub.resolve("kaggle://someone/minibert/keras/tiny") == newest
    with pytest.raises(ModelSourceError) as e:
        load("kaggle://someone/minibert/keras/other/1")
    assert "is not in the kagglehub cache" in str(e.value) and "\n" not in str(e.value)
    assert offline["kaggle"] in str(e.value) and "run once online" in str(e.value)
    with pytest.raises(ModelSourceError, match="kaggle://owner/model/framework/variation"):
        load("kaggle://too/short")


def test_a_keras_hub_preset_of_another_architecture_is_refused(offline):
    pytest.importorskip("keras_hub")
    with pytest.raises(ModelSourceError, match="gemma_2b_en is a keras-hub preset of another "
                                               "architecture"):
        load("gemma_2b_en")


def test_kbert_models_lists_what_is_cached(offline, capsys):
    assert main(["models", "--cached", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert {"name": REPO, "source": "huggingface",
            "description": hub.HF_MODELS[REPO], "cached": snapshot(offline)} in rows
    assert all(r["cached"] for r in rows)
    assert main(["models", "tiny"]) == 0
    out = capsys.readouterr().out
    assert "kbert pretrain --preset tiny" in out and "google/bert_uncased_L-2_H-128_A-2" not in out
