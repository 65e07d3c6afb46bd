"""The embedded default corpus and plain-text file helpers (no TensorFlow).

`austen_files()` lists the six Jane Austen novels shipped as package data (see PROVENANCE.md);
`expand_paths()` turns files, directories and globs into a sorted list of text files;
`read_lines()` streams their lines (plain or .gz), decoding UTF-8 with a clear error.

Example:
    >>> from kbert.corpora import austen_files, read_lines
    >>> len(austen_files())
    6
    >>> next(iter(read_lines(austen_files()[:1])))[:5]
    'EMMA'
"""

from __future__ import annotations

import glob
import gzip
import os
from collections.abc import Iterable, Iterator
from importlib import resources

from kbert.errors import KbertError
from kbert.textfiles import not_utf8

TEXT_SUFFIXES = (".txt", ".txt.gz", ".gz", ".text")


class CorpusError(KbertError, ValueError):
    """A corpus path or file that cannot be read as text."""


def austen_dir() -> str:
    return str(resources.files(__package__) / "austen")


def austen_files() -> list[str]:
    """Paths of the embedded corpus: one gzip file per novel, sorted by name."""
    return sorted(glob.glob(os.path.join(austen_dir(), "*.txt.gz")))


def expand_paths(paths: str | os.PathLike | Iterable[str | os.PathLike]) -> list[str]:
    """Files, directories (searched recursively for text files) and globs -> sorted file list.

    The special name "austen" means the embedded corpus. Raises CorpusError if a path
    does not exist or nothing is found.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    found: list[str] = []
    for raw in paths:
        path = os.fspath(raw)
        if path == "austen":
            found.extend(austen_files())
        elif os.path.isdir(path):
            for root, _, names in os.walk(path):
                found.extend(os.path.join(root, n) for n in names if n.endswith(TEXT_SUFFIXES))
        elif any(ch in path for ch in "*?["):
            matches = [p for p in glob.glob(path, recursive=True) if os.path.isfile(p)]
            if not matches:
                raise CorpusError(f"no files match {path!r}")
            found.extend(matches)
        elif os.path.isfile(path):
            found.append(path)
        else:
            raise CorpusError(f"corpus path {path!r} does not exist")
    files = sorted(dict.fromkeys(found))
    if not files:
        raise CorpusError(f"no text files found in {list(map(os.fspath, paths))}")
    return files


def open_text(path: str, errors: str = "strict"):
    """Open a plain or gzip text file as UTF-8 (a BOM is dropped)."""
    with open(path, "rb") as f:
        gz = f.read(2) == b"\x1f\x8b"
    if gz:
        return gzip.open(path, "rt", encoding="utf-8-sig", errors=errors, newline=None)
    return open(path, encoding="utf-8-sig", errors=errors, newline=None)


def read_lines(paths: str | Iterable[str], errors: str = "strict") -> Iterator[str]:
    """Yield every line (without its newline) of every file, streaming.

    errors="strict" raises CorpusError naming the file, line and column of invalid UTF-8
    (`kbert.textfiles.not_utf8`); "replace" substitutes U+FFFD instead.
    """
    for path in expand_paths(paths):
        try:
            with open_text(path, errors=errors) as f:
                for line in f:
                    yield line.rstrip("\r\n")
        except UnicodeDecodeError:
            raise not_utf8(path, CorpusError) from None
        except (OSError, EOFError) as e:
            raise CorpusError(f"{path}: cannot be read ({e})") from None
