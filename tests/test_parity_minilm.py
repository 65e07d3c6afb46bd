"""Parity with transformers on the real all-MiniLM-L6-v2 weights (no torch needed here).

The reference (tests/fixtures/minilm_reference.npz) was computed by transformers + torch with
scripts/make_parity_reference.py: 50 sentences and 10 sentence pairs, each batch padded to its
longest member; hidden states stored at real tokens only.
"""

import hashlib
import os

import numpy as np
import pytest
from minilm import minilm_dir_or_skip

from kbert.convert import load_transformers_checkpoint
from kbert.embeddings import ContextualEmbedder

FIXTURE = os.path.join(os.path.dirname(__file__), "fixtures", "minilm_reference.npz")
LAYER_TOL = 1e-4
POOLED_TOL = 1e-4
MIN_COSINE = 0.99999


@pytest.fixture(scope="module")
def model_dir():
    return minilm_dir_or_skip("MiniLM parity tests skipped")


@pytest.fixture(scope="module")
def reference(model_dir):
    ref = dict(np.load(FIXTURE))
    digest = hashlib.sha256(open(os.path.join(model_dir, "model.safetensors"), "rb").read())
    if digest.hexdigest() != str(ref["model_sha256"]):
        pytest.fail("the installed MiniLM weights differ from those the reference was made "
                    "with; rerun scripts/make_parity_reference.py")
    return ref


@pytest.fixture(scope="module")
def loaded(model_dir):
    return load_transformers_checkpoint(model_dir)


def _packed(tokenizer, reference, batch):
    seq = reference[f"{batch}_token_ids"].shape[1]
    if batch == "single":
        packed = tokenizer(list(reference["single_texts"]), max_length=seq)
    else:
        packed = tokenizer(list(reference["pair_a"]), pairs=list(reference["pair_b"]),
                           max_length=seq)
    return {k: np.asarray(v) for k, v in packed.items()}


@pytest.mark.parametrize("batch", ["single", "pair"])
def test_tokenizer_ids_equal_the_reference(loaded, reference, batch):
    _, tokenizer = loaded
    packed = _packed(tokenizer, reference, batch)
    for key in ("token_ids", "segment_ids", "padding_mask"):
        np.testing.assert_array_equal(packed[key], reference[f"{batch}_{key}"], err_msg=key)


@pytest.mark.parametrize("batch", ["single", "pair"])
def test_every_layer_and_pooled_output_match(loaded, reference, batch):
    encoder, _ = loaded
    inputs = {k: reference[f"{batch}_{k}"] for k in ("token_ids", "segment_ids", "padding_mask")}
    out = encoder(inputs, output_hidden_states=True)
    mask = inputs["padding_mask"].astype(bool)
    expected = reference[f"{batch}_hidden_states"]
    assert len(out["hidden_states"]) == expected.shape[0] == 7
    diffs = [float(np.abs(np.asarray(h)[mask] - expected[i]).max())
             for i, h in enumerate(out["hidden_states"])]
    pooled = float(np.abs(np.asarray(out["pooled_output"]) - reference[f"{batch}_pooled"]).max())
    print(f"\n{batch}: per-layer max abs diff {[f'{d:.2e}' for d in diffs]}, pooled {pooled:.2e}")
    assert max(diffs) <= LAYER_TOL, diffs
    assert pooled <= POOLED_TOL


def test_sentence_embeddings_match_sentence_transformers_definition(loaded, reference):
    embedder = ContextualEmbedder(*loaded, batch_size=16)  # other padding than the reference
    got = embedder.sentences(list(reference["single_texts"]), pooling="mean", normalize=True)
    expected = reference["single_sentence_embedding"]
    cosine = (got * expected).sum(axis=1) / np.linalg.norm(expected, axis=1)
    print(f"\nsentence embeddings: min cosine {cosine.min():.8f}, "
          f"max abs diff {np.abs(got - expected).max():.2e}")
    assert cosine.min() >= MIN_COSINE
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)


def test_pair_sentence_embeddings_from_hidden_states(loaded, reference):
    encoder, _ = loaded
    inputs = {k: reference[f"pair_{k}"] for k in ("token_ids", "segment_ids", "padding_mask")}
    last = np.asarray(encoder(inputs)["sequence_output"])
    mask = inputs["padding_mask"][..., None].astype(np.float32)
    mean = (last * mask).sum(1) / mask.sum(1)
    got = mean / np.linalg.norm(mean, axis=1, keepdims=True)
    assert ((got * reference["pair_sentence_embedding"]).sum(axis=1)).min() >= MIN_COSINE
