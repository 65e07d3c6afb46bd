"""ContextualEmbedder: token / word / sentence vectors, layers, offsets, truncation; contextuality
on the real all-MiniLM-L6-v2 weights."""

import json
import unicodedata
import warnings

import numpy as np
import pytest
from minilm import minilm_dir_or_skip

from kbert.cli import main
from kbert.convert import save_kbert_model, save_transformers_checkpoint
from kbert.embeddings import ContextualEmbedder, TextTooLongError, TruncationWarning
from kbert.models.encoder import BertEncoder
from kbert.tokenization.tokenizer import BertTokenizer
from kbert.tokenization.vocab import Vocabulary

TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "bank", "river", "money", "a",
          "of", "on", "is", ".", ",", "!", "we", "sat", "by", "water", "##s", "##ing", "open",
          "account", "my", "i", "go", "to", "walk", "fish", "cafe", "##e"]


@pytest.fixture(scope="module")
def tiny():
    encoder = BertEncoder(vocab_size=len(TOKENS), hidden_size=16, num_layers=2, num_heads=2,
                          intermediate_size=24, max_position_embeddings=24)
    rng = np.random.default_rng(0)
    for v in encoder.weights:
        v.assign(rng.normal(0, 0.3, size=tuple(v.shape)).astype("float32"))
    return encoder, BertTokenizer(Vocabulary(TOKENS))


def direct_states(encoder, ids):
    """Hidden states of `[CLS] ids [SEP]` run alone (no padding): [L + 1] x [len + 2, H]."""
    token_ids = np.array([[2] + list(ids) + [3]], "int32")
    out = encoder({"token_ids": token_ids, "padding_mask": np.ones_like(token_ids)},
                  output_hidden_states=True)
    return [np.asarray(h)[0] for h in out["hidden_states"]]


def test_token_vectors_match_the_encoder_at_every_layer(tiny):
    encoder, tokenizer = tiny
    texts = ["we sat by the river", "my bank account is open !", "fishing"]
    embedder = ContextualEmbedder(encoder, tokenizer, batch_size=2)  # padding + several batches
    for layer in (0, 1, -1, -3):
        for text, records in zip(texts, embedder.tokens(texts, layer=layer), strict=True):
            ids = [r.id for r in records]
            assert ids == tokenizer.encode([text])[0]
            expected = direct_states(encoder, ids)[layer]
            got = np.stack([r.vector for r in records])
            assert got.dtype == np.float32 and got.shape == (len(ids), 16)
            np.testing.assert_allclose(got, expected[1:-1], atol=2e-5)


def test_token_records_carry_pieces_and_character_spans(tiny):
    encoder, tokenizer = tiny
    text = "Café by the  RIVER, walking!"
    records = ContextualEmbedder(encoder, tokenizer).tokens([text])[0]
    assert [r.token for r in records] == ["cafe", "by", "the", "river", ",", "walk", "##ing", "!"]
    assert [text[r.start:r.end] for r in records] == [
        "Café", "by", "the", "RIVER", ",", "walk", "ing", "!"]


def test_words_of_a_text_with_lone_surrogates(tiny):
    # a lone surrogate ("\ud83d": half an emoji) is 3 bytes the tokenizer drops; the spans of
    # the words around it are still character spans of the original str
    encoder, tokenizer = tiny
    text = "the \ud83d river\udfff bank"
    words = ContextualEmbedder(encoder, tokenizer).words([text])[0]
    assert [w.word for w in words] == ["the", "river", "bank"]
    assert [(w.start, w.end) for w in words] == [(0, 3), (6, 11), (13, 17)]


def test_words_group_continuation_pieces(tiny):
    encoder, tokenizer = tiny
    text = "Fishing by the rivers"
    embedder = ContextualEmbedder(encoder, tokenizer)
    tokens = embedder.tokens([text])[0]
    first = embedder.words([text], pooling="first")[0]
    mean = embedder.words([text], pooling="mean")[0]
    assert [(w.word, w.pieces, w.start, w.end) for w in first] == [
        ("Fishing", ("fish", "##ing"), 0, 7), ("by", ("by",), 8, 10),
        ("the", ("the",), 11, 14), ("rivers", ("river", "##s"), 15, 21)]
    np.testing.assert_array_equal(first[0].vector, tokens[0].vector)
    np.testing.assert_allclose(mean[3].vector, (tokens[4].vector + tokens[5].vector) / 2,
                               atol=1e-6)


def test_sentence_pooling_definitions(tiny):
    encoder, tokenizer = tiny
    texts = ["we sat by the river", "a bank"]
    embedder = ContextualEmbedder(encoder, tokenizer)
    cls = embedder.sentences(texts, pooling="cls")
    mean = embedder.sentences(texts, pooling="mean", normalize=True, layer=1)
    for n, text in enumerate(texts):
        states = direct_states(encoder, tokenizer.encode([text])[0])
        np.testing.assert_allclose(cls[n], states[-1][0], atol=2e-5)
        m = states[1].mean(axis=0)  # every real position, [CLS] and [SEP] included
        np.testing.assert_allclose(mean[n], m / np.linalg.norm(m), atol=2e-5)
    assert cls.dtype == np.float32 and cls.shape == (2, 16)


def test_empty_inputs(tiny):
    encoder, tokenizer = tiny
    embedder = ContextualEmbedder(encoder, tokenizer)
    assert embedder.tokens([]) == [] and embedder.words([]) == []
    assert embedder.sentences([]).shape == (0, 16)
    assert embedder.tokens([""]) == [[]] and embedder.words(["", "a"])[0] == []
    states = direct_states(encoder, [])
    np.testing.assert_allclose(embedder.sentences([""], pooling="cls")[0], states[-1][0], atol=2e-5)
    np.testing.assert_allclose(embedder.sentences([""], pooling="mean")[0],
                               states[-1].mean(axis=0), atol=2e-5)


def test_long_text_is_truncated_with_a_counting_warning(tiny):
    encoder, tokenizer = tiny
    embedder = ContextualEmbedder(encoder, tokenizer, max_length=6)
    with pytest.warns(TruncationWarning, match=r"1 text\(s\) longer .* 2 tokens dropped"):
        records = embedder.tokens(["we sat by the river bank", "a bank"])
    assert [r.token for r in records[0]] == ["we", "sat", "by", "the"]
    assert [r.token for r in records[1]] == ["a", "bank"]
    strict = ContextualEmbedder(encoder, tokenizer, max_length=6, truncation="error")
    with pytest.raises(TextTooLongError, match="2 tokens dropped"):
        strict.sentences(["we sat by the river bank"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        strict.sentences(["we sat by the"])  # exactly max_length: no warning


def test_max_length_is_capped_by_the_position_table(tiny):
    encoder, tokenizer = tiny
    embedder = ContextualEmbedder(encoder, tokenizer)  # default 512 > 24 positions
    assert embedder.max_length == 24
    with pytest.warns(TruncationWarning):
        assert len(embedder.tokens(["a " * 30])[0]) == 22


@pytest.mark.parametrize("call, message", [
    (lambda e: e.tokens(["a"], layer=3), "layer must be an integer in \\[-3, 2\\]"),
    (lambda e: e.tokens(["a"], layer=-4), "layer must be"),
    (lambda e: e.words(["a"], pooling="max"), "word pooling"),
    (lambda e: e.sentences(["a"], pooling="first"), "sentence pooling"),
])
def test_bad_arguments_are_refused(tiny, call, message):
    with pytest.raises(ValueError, match=message):
        call(ContextualEmbedder(*tiny))


def test_a_bare_string_is_refused(tiny):
    with pytest.raises(TypeError, match="list of strings"):
        ContextualEmbedder(*tiny).tokens("a bank")


def test_from_pretrained_reads_kbert_and_transformers_dirs(tiny, tmp_path):
    encoder, tokenizer = tiny
    expected = ContextualEmbedder(encoder, tokenizer).sentences(["the river bank"])
    save_kbert_model(encoder, tokenizer, tmp_path / "kbert")
    save_transformers_checkpoint(encoder, tmp_path / "hf", vocab=tokenizer)
    for name in ("kbert", "hf"):
        got = ContextualEmbedder.from_pretrained(tmp_path / name).sentences(["the river bank"])
        np.testing.assert_allclose(got, expected, atol=1e-6)


# ------------------------------------------------------------------------- real MiniLM weights

def _minilm_dir():
    return minilm_dir_or_skip("real-weight tests skipped")


@pytest.fixture(scope="module")
def minilm():
    return ContextualEmbedder.from_pretrained(_minilm_dir())


RIVER = ["We sat on the grassy bank of the river and watched the boats.",
         "The river overflowed its bank after the heavy rain.",
         "Fishermen lined the muddy bank of the stream at dawn.",
         "Wildflowers grew along the steep bank of the creek."]
MONEY = ["She opened a savings account at the bank downtown.",
         "The bank approved his mortgage application yesterday.",
         "I need to deposit this cheque at the bank before noon.",
         "The bank charged a fee for the international transfer."]


def _bank_vectors(embedder, texts, layer):
    vectors = [w.vector for words in embedder.words(texts, layer=layer)
               for w in words if w.word.lower() == "bank"]
    assert len(vectors) == len(texts)
    v = np.stack(vectors)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _sense_similarities(embedder, layer):
    river, money = _bank_vectors(embedder, RIVER, layer), _bank_vectors(embedder, MONEY, layer)
    upper = np.triu_indices(len(RIVER), 1)
    same = np.concatenate([(river @ river.T)[upper], (money @ money.T)[upper]])
    cross = (river @ money.T).ravel()
    return same, cross, np.concatenate([river, money])


def test_bank_vectors_separate_by_sense(minilm):
    same, cross, vectors = _sense_similarities(minilm, layer=-1)
    print(f"\nlast layer 'bank' cosine: same sense mean {same.mean():.3f} (min {same.min():.3f}), "
          f"cross sense mean {cross.mean():.3f} (max {cross.max():.3f})")
    # measured: same 0.815, cross 0.685
    assert same.mean() - cross.mean() > 0.08
    # leave-one-out nearest sense centroid classifies every occurrence
    labels = np.array([0] * len(RIVER) + [1] * len(MONEY))
    for i in range(len(vectors)):
        keep = np.arange(len(vectors)) != i
        centroids = [vectors[keep & (labels == k)].mean(axis=0) for k in (0, 1)]
        scores = [vectors[i] @ c / np.linalg.norm(c) for c in centroids]
        assert int(np.argmax(scores)) == labels[i], i


def test_embedding_layer_is_not_contextual(minilm):
    # Control: at layer 0 "bank" differs only by its position, so the senses do not separate.
    same, cross, _ = _sense_similarities(minilm, layer=0)
    assert abs(same.mean() - cross.mean()) < 0.02


def _normalised(text):
    text = unicodedata.normalize("NFD", text.lower())
    return "".join(c for c in text if unicodedata.category(c) != "Mn")


def test_word_spans_map_back_to_the_original_characters(minilm):
    texts = ["José and Zoë flew from São Paulo to Zürich — “naïvely”.",
             "Tokyo is written 東京 in Japanese; the café's crème brûlée was 3.5€.",
             "Self-driving cars struggle: ÉCOLE, Łódź, smörgåsbord!"]
    for text, words in zip(texts, minilm.words(texts), strict=True):
        assert words, text
        previous_end = 0
        for w in words:
            assert w.word == text[w.start:w.end]
            assert w.start >= previous_end and text[previous_end:w.start].strip() == "", (
                text, previous_end, w.start)  # only whitespace between words
            pieces = "".join(p[2:] if p.startswith("##") else p for p in w.pieces)
            assert pieces == _normalised(w.word), (w.word, w.pieces)
            previous_end = w.end
        assert text[previous_end:].strip() == ""


# ------------------------------------------------------------------------- CLI

@pytest.fixture(scope="module")
def tiny_dir(tiny, tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny_model")
    save_transformers_checkpoint(tiny[0], path, vocab=tiny[1])
    return str(path)


def test_cli_embed_formats(tiny, tiny_dir, tmp_path, capsys):
    texts = ["Fishing by the rivers", "a bank"]
    embedder = ContextualEmbedder(*tiny)
    assert main(["embed", "--model", tiny_dir, "--level", "sentence", "--pooling", "mean",
                 "--normalize", "--output", str(tmp_path / "s.npy")] + texts) == 0
    np.testing.assert_allclose(np.load(tmp_path / "s.npy"),
                               embedder.sentences(texts, pooling="mean", normalize=True), atol=1e-6)

    (tmp_path / "in.txt").write_text("\n".join(texts) + "\n")
    assert main(["embed", "--model", tiny_dir, "--level", "word", "--layer", "1",
                 "--input", str(tmp_path / "in.txt"), "--output", str(tmp_path / "w.jsonl")]) == 0
    rows = [json.loads(line) for line in (tmp_path / "w.jsonl").read_text().splitlines()]
    words = embedder.words(texts, layer=1)
    assert [r["text"] for r in rows] == texts
    assert [w["word"] for w in rows[0]["words"]] == ["Fishing", "by", "the", "rivers"]
    np.testing.assert_allclose(rows[0]["words"][3]["vector"], words[0][3].vector, atol=1e-6)

    assert main(["embed", "--model", tiny_dir, "--level", "token",
                 "--output", str(tmp_path / "t.npz")] + texts) == 0
    z = np.load(tmp_path / "t.npz")
    assert z["vectors"].shape == (8, 16) and z["text_index"].tolist() == [0] * 6 + [1] * 2
    assert z["label"].tolist()[:2] == ["fish", "##ing"] and z["end"][1] == 7

    capsys.readouterr()
    assert main(["embed", "--model", tiny_dir, "--level", "token", "a bank"]) == 0
    line = json.loads(capsys.readouterr().out)
    assert [t["token"] for t in line["tokens"]] == ["a", "bank"]


@pytest.mark.parametrize("argv, message", [
    (["--level", "word", "--output", "x.npy", "a"], ".npy holds one"),
    (["--level", "token", "--pooling", "mean", "a"], "does not apply"),
    (["--level", "word", "--normalize", "a"], "--normalize applies"),
    ([], "no texts"),
])
def test_cli_embed_refuses_bad_arguments(tiny_dir, argv, message, capsys):
    assert main(["embed", "--model", tiny_dir] + argv) == 1
    assert message in capsys.readouterr().err
