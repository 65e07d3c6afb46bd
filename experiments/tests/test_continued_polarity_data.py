"""experiments/continued_polarity_data.py on a small fake of the cached polarity CSV (offline)."""

import csv

from experiment_loader import load_experiment


def test_files_split_subset_and_corpus(tmp_path, monkeypatch):
    rows = [(1 if i % 2 else -1, f"sentence number {i} is  here .\n") for i in range(50)]
    fake = tmp_path / "polarity.csv"
    with open(fake, "w", encoding="utf-8-sig", newline="") as f:
        csv.writer(f).writerows(rows)
    script = load_experiment("continued_polarity_data")
    import fetch_polarity  # on sys.path once the script is loaded

    monkeypatch.setattr(fetch_polarity, "cached_path", lambda: fake)
    assert script.main([str(tmp_path / "out"), "--train-subset", "10"]) == 0

    def read(name):
        with open(tmp_path / "out" / name, encoding="utf-8") as f:
            return list(csv.DictReader(f))

    train, test = read("train.csv"), read("test.csv")
    assert len(train) == 10 and len(test) == 10
    assert {r["label"] for r in train} == {"1", "-1"}
    assert all(r["text"] == " ".join(r["text"].split()) for r in train + test)
    documents = (tmp_path / "out" / "corpus.txt").read_text(encoding="utf-8").strip().split("\n\n")
    assert len(documents) == 40  # every training-split sentence, none of the test split
    assert not {r["text"] for r in test} & set(documents)
    assert {r["text"] for r in train} <= set(documents)
