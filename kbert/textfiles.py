"""Reading users' text files as UTF-8, with errors that name the file, the line and the column.

Every reader of a user's text file (labelled data, corpora, `--input` files, vocabulary
training) reports a decoding failure through `not_utf8`, so they all say the same thing:

    reviews.csv, line 7: not valid UTF-8 (byte 0xe9 at column 12); re-save it as UTF-8

instead of Python's "'utf-8' codec can't decode byte 0xe9 in position 258". The line is found
by re-reading the file in binary, line by line (plain or gzip), after a streaming decoder
failed; `read_lines` decodes line by line itself. Imports nothing from kbert but
kbert.errors.

Example:
    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "latin1.txt")
    >>> _ = open(path, "wb").write("ok\\ncaf\\u00e9\\n".encode("latin-1"))
    >>> try:
    ...     read_lines(path)
    ... except NotUTF8Error as e:
    ...     print(str(e).replace(path, "latin1.txt"))
    latin1.txt, line 2: not valid UTF-8 (byte 0xe9 at column 4); re-save it as UTF-8
"""

from __future__ import annotations

import gzip
import os
import sys
from collections.abc import Iterable
from typing import BinaryIO

from kbert.errors import KbertError

_BOM = b"\xef\xbb\xbf"
STDIN_NAME = "standard input"


class NotUTF8Error(KbertError, ValueError):
    """A text file (or standard input) that is not valid UTF-8; the message names the line."""


def _message(name: str, number: int, raw: bytes, error: UnicodeDecodeError) -> str:
    column = len(raw[:error.start].decode("utf-8", "replace")) + 1
    bad = raw[error.start:error.start + 1]
    what = f"byte 0x{bad.hex()}" if bad else "a truncated character"
    return (f"{name}, line {number}: not valid UTF-8 ({what} at column {column}); "
            f"re-save it as UTF-8")


def _decode(raw: bytes, name: str, number: int, error: type[Exception]) -> str:
    if number == 1 and raw.startswith(_BOM):
        raw = raw[len(_BOM):]
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise error(_message(name, number, raw, e)) from None


def decode_lines(lines: Iterable[bytes], name: str,
                 error: type[Exception] = NotUTF8Error) -> Iterable[str]:
    """Decode binary lines as UTF-8 (a BOM on the first is dropped), keeping their line ends;
    the first invalid one raises `error` naming `name`, the line and the column."""
    for number, raw in enumerate(lines, 1):
        yield _decode(raw, name, number, error)


def _open_binary(path: str) -> BinaryIO:
    f = open(path, "rb")
    if f.peek(2)[:2] == b"\x1f\x8b":
        f.close()
        return gzip.open(path, "rb")
    return f


def not_utf8(path: str | os.PathLike, error: type[Exception] = NotUTF8Error,
             name: str | None = None) -> Exception:
    """The exception to raise when decoding `path` (plain or gzip) as UTF-8 failed: re-reads it
    in binary line by line to name the first bad line. `name`: how to call the file (default:
    the path as given)."""
    path = os.fspath(path)
    name = path if name is None else name
    try:
        with _open_binary(path) as f:
            for _ in decode_lines(f, name, error):
                pass
    except error as e:
        return e
    except (OSError, EOFError):
        pass
    return error(f"{name}: not valid UTF-8; re-save it as UTF-8")


def read_lines(path: str | os.PathLike, error: type[Exception] = NotUTF8Error) -> list[str]:
    """The lines of a UTF-8 text file (plain or gzip; "-" = standard input) without their line
    ends; invalid UTF-8 raises `error` naming the file, the line and the column."""
    path = os.fspath(path)
    if path == "-":
        stream = getattr(sys.stdin, "buffer", None)
        lines = sys.stdin if stream is None else decode_lines(stream, STDIN_NAME, error)
        return [line.rstrip("\r\n") for line in lines]
    with _open_binary(path) as f:
        return [line.rstrip("\r\n") for line in decode_lines(f, path, error)]


def iter_lines(path: str | os.PathLike, error: type[Exception] = NotUTF8Error) -> Iterable[str]:
    """Stream the lines of a UTF-8 text file (plain or gzip) without their line ends;
    invalid UTF-8 raises `error` naming the file, the line and the column."""
    path = os.fspath(path)
    with _open_binary(path) as f:
        for line in decode_lines(f, path, error):
            yield line.rstrip("\r\n")


def command_texts(texts: list[str] | None, input_path: str | None, *,
                  default_input: str | None = None, skip_blank: bool = False) -> list[str]:
    """The texts a command works on: its TEXT arguments, or the lines of its `--input` file
    ("-" = standard input; `default_input` when neither is given). `skip_blank` drops the
    lines that hold only white space. ValueError for both or neither."""
    if input_path and texts:
        raise ValueError("give texts as arguments or with --input, not both")
    if texts:
        return list(texts)
    input_path = input_path or default_input
    if not input_path:
        raise ValueError("no texts: pass them as arguments or with --input FILE")
    lines = read_lines(input_path)
    return [line for line in lines if line.strip()] if skip_blank else lines
