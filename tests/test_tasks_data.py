"""kbert.tasks labels / readers / datasets: loading labelled data from every source, label maps,
splits, tf.data."""

import json
import warnings

import numpy as np
import pytest
import tensorflow as tf
from test_tasks_support import tokenizer

from kbert.tasks import (
    DataError,
    LabelledData,
    LabelMap,
    TruncationWarning,
    UnknownLabelError,
    load_labelled,
    stratified_split,
    text_dataset,
)
from kbert.tasks.datasets import truncation_report

ROWS = [("good film", "pos"), ("bad film", "neg"), ("great movie", "pos"), ("dull", "neg")]


def _write(path, text):
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_csv_with_header_and_pairs(tmp_path):
    path = _write(tmp_path / "d.csv", 'sentence,other,y\n"a, b",c,1\nd,e,0\n')
    data = load_labelled(path, text_column="sentence", text_pair_column="other", label_column="y")
    assert data.texts == ["a, b", "d"] and data.pairs == ["c", "e"]
    assert data.labels == [1, 0]  # all-integer string labels become ints


def test_headerless_csv_with_bom_and_multiline_text(tmp_path):
    (tmp_path / "p.csv").write_bytes('\ufeff"1","first\nline"\n"-1","second"\n'.encode("utf-8"))
    data = load_labelled(tmp_path / "p.csv", header=False, text_column=1, label_column=0)
    assert data.texts == ["first\nline", "second"] and data.labels == [1, -1]


def test_tsv_and_jsonl(tmp_path):
    tsv = _write(tmp_path / "d.tsv", "text\tlabel\nx y\tA\nz\tB\n")
    assert load_labelled(tsv).labels == ["A", "B"]
    jsonl = _write(tmp_path / "d.jsonl",
                   "\n".join(json.dumps({"t": t, "l": label}) for t, label in ROWS))
    data = load_labelled(jsonl, text_column="t", label_column="l")
    assert data.texts == [t for t, _ in ROWS] and data.labels == [label for _, label in ROWS]


def test_python_lists_dicts_and_tuples():
    as_dicts = load_labelled([{"text": t, "label": label} for t, label in ROWS])
    as_columns = load_labelled({"text": [t for t, _ in ROWS],
                                "label": [label for _, label in ROWS]})
    as_tuples = load_labelled(ROWS, text_column=0, label_column=1)
    assert as_dicts.texts == as_columns.texts == as_tuples.texts
    assert as_dicts.labels == as_columns.labels == as_tuples.labels


def test_tf_data_source():
    ds = tf.data.Dataset.from_tensor_slices({"text": ["é one", "two"], "label": [3, 4]})
    data = load_labelled(ds)
    assert data.texts == ["é one", "two"] and data.labels == [3, 4]


def test_missing_label_column_names_the_columns(tmp_path):
    path = _write(tmp_path / "d.csv", "text,target\na,1\n")
    with pytest.raises(DataError, match=r"no column 'label'.*\['text', 'target'\]"):
        load_labelled(path)


def test_empty_text_is_an_error_naming_the_row(tmp_path):
    path = _write(tmp_path / "d.csv", "text,label\na,1\n  ,0\n")
    with pytest.raises(DataError, match="row 2"):
        load_labelled(path)
    with pytest.raises(DataError, match="empty"):
        LabelledData(["ok", ""], [0, 1])


def test_label_map_sorted_encode_decode_and_json(tmp_path):
    label_map = LabelMap.from_labels(["pos", "neg", "pos", "neutral"])
    assert label_map.labels == ["neg", "neutral", "pos"]
    assert label_map.encode(["pos", "neg"]).tolist() == [2, 0]
    assert label_map.decode([1, 2]) == ["neutral", "pos"]
    label_map.save(tmp_path / "labels.json")
    assert LabelMap.load(tmp_path / "labels.json") == label_map


def test_integer_labels_sort_numerically_and_match_their_strings():
    label_map = LabelMap.from_labels([10, -1, 2])
    assert label_map.labels == [-1, 2, 10]
    assert label_map.encode(["10", -1]).tolist() == [2, 0]  # "10" read from a CSV is 10


def test_unknown_label_error_lists_them():
    label_map = LabelMap(["neg", "pos"])
    with pytest.raises(UnknownLabelError, match=r"'neutral'.*not in the model's label map"):
        label_map.encode(["pos", "neutral"])
    with pytest.raises(UnknownLabelError, match="outside"):
        label_map.decode([2])


def test_one_class_only_is_an_error():
    with pytest.raises(DataError, match="1 class"):
        LabelMap.from_labels(["pos", "pos"])


def test_multi_label_separator_and_multi_hot():
    data = load_labelled([{"text": "x", "label": "a|b"}, {"text": "y", "label": "c"}],
                         label_separator="|")
    label_map = LabelMap.from_labels(data.labels)
    np.testing.assert_array_equal(label_map.encode_multi_hot(data.labels), [[1, 1, 0], [0, 0, 1]])


def test_stratified_split_keeps_class_proportions_and_is_seeded():
    labels = ["a"] * 50 + ["b"] * 30 + ["c"] * 20
    data = LabelledData([f"t{i}" for i in range(100)], labels)
    train, val = stratified_split(data, 0.2, seed=3)
    assert sorted(val.labels) == ["a"] * 10 + ["b"] * 6 + ["c"] * 4
    assert sorted(train.texts + val.texts) == sorted(data.texts)
    again = stratified_split(data, 0.2, seed=3)[1]
    other = stratified_split(data, 0.2, seed=4)[1]
    assert again.texts == val.texts and other.texts != val.texts


def test_stratified_split_puts_small_classes_in_both_parts():
    data = LabelledData(["a1", "a2", "b1", "b2", "b3", "b4", "b5", "b6"], list("aabbbbbb"))
    train, val = stratified_split(data, 0.1, seed=0)
    assert "a" in train.labels and "a" in val.labels


def test_truncation_is_reported_with_counts():
    tok = tokenizer()
    texts = ["the film is good", "the film is good and fun and great"]  # 4 and 8 pieces
    with pytest.warns(TruncationWarning, match="1 of 2 examples.*lose 2 tokens"):
        report = truncation_report(tok, texts, max_length=8)
    assert (report.truncated_examples, report.removed_tokens) == (1, 2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert truncation_report(tok, texts, max_length=10).truncated_examples == 0


def test_text_dataset_tokenizes_in_the_pipeline_and_keeps_order():
    tok = tokenizer()
    texts = ["the film is good", "bad", "the movie was not fun , it was dull"]
    ds = text_dataset(tok, texts, targets=[1, 0, 0], max_length=32, batch_size=2)
    batches = list(ds)
    expected = np.asarray(tok(texts, max_length=32)["token_ids"])
    assert batches[0][0]["token_ids"].shape == (2, 16)  # cut after the longest row, to 16
    np.testing.assert_array_equal(batches[0][0]["token_ids"], expected[:2, :16])
    np.testing.assert_array_equal(batches[1][1], [0])


def test_text_dataset_buckets_training_batches_by_length():
    tok = tokenizer()
    short = "the film"
    long = "the film is good and fun and great and not dull at all very big story"
    texts = [short] * 6 + [long] * 6
    ds = text_dataset(tok, texts, targets=list(range(12)), max_length=40, batch_size=3,
                      shuffle=True, seed=1)
    seen, batches = [], 0
    for features, targets in ds:
        batches += 1
        lengths = set(np.asarray(features["padding_mask"]).sum(1).tolist())
        assert len(lengths) == 1  # never a short sentence padded to a long one
        assert features["token_ids"].shape[1] % 16 == 0
        seen += np.asarray(targets).tolist()
    assert sorted(seen) == list(range(12))
    assert int(ds.cardinality()) == batches == 4  # known up front: a progress bar from epoch 1


@pytest.mark.parametrize("name, content", [
    ("reviews.csv", "text,label\ngood film,pos\nbad film,neg\nle caf\u00e9 est bon,pos\n"),
    ("reviews.jsonl", '{"text": "good", "label": "pos"}\n{"text": "caf\u00e9", "label": "neg"}\n'),
])
def test_latin1_file_error_names_the_line_and_column(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content.encode("latin-1"))
    with pytest.raises(DataError) as info:
        load_labelled(str(path))
    line, column = (4, 7) if name.endswith(".csv") else (2, 14)
    assert str(info.value) == (f"{path}, line {line}: not valid UTF-8 (byte 0xe9 at column "
                               f"{column}); re-save it as UTF-8")
