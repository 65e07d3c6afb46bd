"""pretraining_dataset end to end on a small generated corpus; TFRecord pairs; `kbert prepare`."""

import argparse
import os

import numpy as np
import pytest
import tensorflow as tf

from kbert.commands import prepare
from kbert.corpora import CorpusError
from kbert.data import tfrecords
from kbert.data.corpus import CorpusOptions, iter_documents
from kbert.data.masking import MaskingOptions
from kbert.data.pairs import PairOptions
from kbert.data.pipeline import FEATURE_NAMES, LABEL_NAMES, BatchOptions, pretraining_dataset
from kbert.models.pretrainer import BertPretrainer
from kbert.tokenization.vocab import Vocabulary

WORDS = ("the a of and to in was she he it her his had that for with not be as but at on by so "
         "this all mr mrs emma elton knightley weston harriet letter house walk day time").split()
LETTERS = "abcdefghijklmnopqrstuvwxyz"
TOKENS = (["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[unused0]", "[unused1]"]
          + [w for w in WORDS if len(w) > 1] + list(LETTERS) + ["##" + c for c in LETTERS]
          + list(".,!?[]"))
SEQ, BATCH, P = 32, 8, 5


@pytest.fixture(scope="module")
def vocab() -> Vocabulary:
    return Vocabulary(TOKENS, np.arange(len(TOKENS), dtype=np.int64) + 1)


def write_corpus(directory, docs=40, seed=0, name="gen.txt"):
    """google-research format: one sentence per line, a blank line between documents."""
    rng = np.random.default_rng(seed)
    lines = []
    for _ in range(docs):
        for _ in range(rng.integers(3, 12)):
            words = rng.choice(WORDS + ["zebra", "quixotic"], size=rng.integers(3, 15))
            lines.append(" ".join(words).capitalize() + rng.choice([".", "!", "?"]))
        lines.append("")
    path = os.path.join(directory, name)
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines))
    return path


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return write_corpus(str(tmp_path_factory.mktemp("corpus")))


def batches(ds, n=None):
    return list(ds.take(n).as_numpy_iterator() if n else ds.as_numpy_iterator())


def build(corpus, vocab, batch=BATCH, heldout_fraction=None, dynamic=None, **kw):
    reading = CorpusOptions(heldout_fraction=heldout_fraction) if heldout_fraction else None
    return pretraining_dataset(corpus, vocab, PairOptions(SEQ), MaskingOptions(P),
                               BatchOptions(batch, dynamic=dynamic), reading=reading, seed=11,
                               **kw)


def test_keras_layout_shapes_and_dtypes_and_seeded_dynamic_epochs(corpus, vocab):
    ds = build(corpus, vocab)
    features, labels = ds.element_spec
    assert sorted(features) == sorted(FEATURE_NAMES) and sorted(labels) == sorted(LABEL_NAMES)
    for name in ("token_ids", "segment_ids", "padding_mask"):
        assert features[name].shape == (BATCH, SEQ) and features[name].dtype == tf.int32
    assert features["masked_positions"].shape == (BATCH, P)
    assert labels["masked_ids"].shape == (BATCH, P) and labels["masked_ids"].dtype == tf.int32
    assert labels["masked_weights"].dtype == tf.float32
    assert labels["next_sentence_labels"].shape == (BATCH,)

    epoch1, epoch2 = batches(ds), batches(ds)
    x, y = epoch1[0]
    assert (x["token_ids"][:, 0] == vocab.cls_id).all()
    assert ((y["masked_weights"] == 1).sum(axis=1) >= 1).all()
    rerun = batches(build(corpus, vocab))  # a new pipeline with the same seed
    assert len(epoch1) == len(rerun) > 3
    for (x1, y1), (x2, y2) in zip(epoch1, rerun, strict=True):
        for k in x1:
            np.testing.assert_array_equal(x1[k], x2[k])
        for k in y1:
            np.testing.assert_array_equal(y1[k], y2[k])
    assert not np.array_equal(epoch1[0][0]["token_ids"], epoch2[0][0]["token_ids"])
    static = build(corpus, vocab, dynamic=False)
    for (x1, _), (x2, _) in zip(batches(static), batches(static), strict=True):
        np.testing.assert_array_equal(x1["token_ids"], x2["token_ids"])


def test_heldout_split_is_static_complete_and_only_heldout_documents(corpus, vocab):
    held_ds = build(corpus, vocab, split="heldout", heldout_fraction=0.25, debug=True)
    first, second = batches(held_ds), batches(held_ds)
    used = {int(d) for b in first for k in ("a_doc", "b_doc") for d in b[k]}
    heldout = {d.index for d in iter_documents(corpus, split="heldout", heldout_fraction=0.25)}
    assert used and used <= heldout and len(heldout) < 40
    for b1, b2 in zip(first, second, strict=True):
        np.testing.assert_array_equal(b1["token_ids"], b2["token_ids"])
    assert len(first[-1]["token_ids"]) <= BATCH  # the last partial batch is kept


def test_one_document_corpus_is_a_clear_error(tmp_path, vocab):
    path = tmp_path / "one.txt"
    path.write_text("Only one document here.\nWith two sentences.\n")
    with pytest.raises(CorpusError, match="only one document.*NotNext"):
        build(str(path), vocab)
    with pytest.raises(CorpusError, match="no document"):
        pretraining_dataset(str(path), vocab, split="heldout",
                            reading=CorpusOptions(heldout_fraction=0.0))


def test_bad_arguments(corpus, vocab):
    with pytest.raises(ValueError, match="tokenizer_or_vocab"):
        pretraining_dataset(corpus)
    with pytest.raises(ValueError, match="max_predictions"):
        pretraining_dataset(corpus, vocab, PairOptions(16), MaskingOptions(17))
    with pytest.raises(ValueError, match="batch_size"):
        BatchOptions(0)


def test_non_utf8_file_in_the_corpus_is_named(tmp_path, vocab):
    write_corpus(str(tmp_path), docs=5)
    (tmp_path / "zz_latin1.txt").write_bytes("Caf\u00e9 and tea.\n\nMore.\n".encode("latin-1"))
    ds = build(str(tmp_path), vocab, batch=2)
    with pytest.raises(Exception, match="zz_latin1.txt"):
        batches(ds)


def test_typed_special_tokens_in_text_are_plain_text(tmp_path, vocab):
    path = write_corpus(str(tmp_path), docs=6)
    with open(path, "a", encoding="utf-8") as f:
        f.write("\n\nShe wrote [MASK] and [SEP] in a letter.\nThe end.\n")
    ds = build(path, vocab, batch=2, split="all", debug=True)
    for b in batches(ds):
        ids = b["original_token_ids"]
        assert not (ids == vocab.mask_id).any()
        assert ((ids == vocab.sep_id).sum(axis=1) == 2).all()


def test_fit_a_tiny_pretrainer_on_it(corpus, vocab):
    model = BertPretrainer.from_preset("tiny", vocab_size=len(TOKENS),
                                       max_position_embeddings=SEQ)
    model.compile(optimizer="adam")
    ds = pretraining_dataset(corpus, vocab, PairOptions(SEQ), MaskingOptions(P),
                             BatchOptions(BATCH, repeat=True))
    history = model.fit(ds, steps_per_epoch=2, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"]).all()


def test_tfrecord_round_trip(tmp_path):
    rng = np.random.default_rng(5)
    lengths_a, lengths_b = rng.integers(1, 14, 50), rng.integers(1, 14, 50)
    ids = np.zeros((50, SEQ), np.int32)
    segments = np.zeros((50, SEQ), np.int32)
    for i, (la, lb) in enumerate(zip(lengths_a, lengths_b, strict=True)):
        ids[i, :la + lb + 3] = [2] + list(rng.integers(5, 90, la)) + [3] + \
            list(rng.integers(5, 90, lb)) + [3]
        segments[i, la + 2:la + lb + 3] = 1
    original = {"token_ids": ids, "segment_ids": segments,
                "padding_mask": (ids != 0).astype(np.int32),
                "next_sentence_labels": rng.integers(0, 2, 50).astype(np.int32)}
    info = tfrecords.write_pair_files(tf.data.Dataset.from_tensor_slices(original), tmp_path,
                                      "train", num_shards=3)
    tfrecords.write_metadata(tmp_path, {
        "seq_length": SEQ, "vocab_size": len(TOKENS), "pad_id": 0,
        "vocab_fingerprint": tfrecords.vocabulary_fingerprint(TOKENS),
        "splits": {"train": info}})
    back = batches(tfrecords.read_pairs(tmp_path, "train", seq_length=SEQ))
    assert info["examples"] == len(back) == 50
    assert info["not_next"] == original["next_sentence_labels"].sum()
    order = {row.tobytes(): i for i, row in enumerate(ids)}  # shards interleave the order
    for b in back:
        i = order[b["token_ids"].tobytes()]
        for k in original:
            np.testing.assert_array_equal(b[k], original[k][i])
    with pytest.raises(tfrecords.PairFileError, match="seq_length 32"):
        tfrecords.read_pairs(tmp_path, "train", seq_length=64)
    with pytest.raises(tfrecords.PairFileError, match="different vocabulary"):
        tfrecords.read_pairs(tmp_path, "train", vocab_tokens=TOKENS[:-1] + ["?!"])
    with pytest.raises(tfrecords.PairFileError, match="no 'heldout' pairs"):
        tfrecords.read_pairs(tmp_path, "heldout")


def test_prepare_command_writes_pairs_that_train_with_fresh_masks(tmp_path, corpus, vocab):
    vocab.save(tmp_path / "vocab")
    parser = argparse.ArgumentParser()
    prepare.add_arguments(parser)
    args = parser.parse_args([corpus, "--vocab", str(tmp_path / "vocab"), "--output",
                              str(tmp_path / "pairs"), "--seq-length", str(SEQ),
                              "--dupe-factor", "2", "--shards", "2",
                              "--heldout-fraction", "0.25"])
    assert prepare.run(args) == 0
    meta = tfrecords.read_metadata(tmp_path / "pairs")
    assert meta["seq_length"] == SEQ and meta["dupe_factor"] == 2
    train = meta["splits"]["train"]
    assert len(train["files"]) == 2 and 0.35 < train["not_next"] / train["examples"] < 0.65
    ds = pretraining_dataset(str(tmp_path / "pairs"), str(tmp_path / "vocab"), PairOptions(SEQ),
                             MaskingOptions(P), BatchOptions(BATCH, drop_remainder=False))
    epoch1, epoch2 = batches(ds), batches(ds)
    assert sum(len(y["next_sentence_labels"]) for _, y in epoch1) == train["examples"]
    assert not np.array_equal(epoch1[0][0]["token_ids"], epoch2[0][0]["token_ids"])
    held = pretraining_dataset(str(tmp_path / "pairs"), str(tmp_path / "vocab"),
                               PairOptions(SEQ), MaskingOptions(P), BatchOptions(BATCH),
                               split="heldout")
    assert sum(len(y["next_sentence_labels"]) for _, y in batches(held)) == \
        meta["splits"]["heldout"]["examples"]
