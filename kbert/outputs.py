"""What the commands write: the "nothing is lost" rule for output paths, and how they show
training progress. Pure Python (no TensorFlow).

`check_output` is the one check behind `--output` / `--output-dir` of `kbert finetune`,
`pretrain` (a new run), `convert`, `tflite` and `vocab`: a path that already holds something (an
existing file, or a directory that is not empty) is refused unless `--overwrite` is given, so a
mistyped path never replaces earlier work:

    runs/clf already holds files (model.keras, vocab.txt, ...); pass --overwrite to write over
    them or choose another --output-dir

Example:
    >>> import tempfile
    >>> check_output(tempfile.mkdtemp(), flag="--output")   # an empty directory is fine
    >>> import io
    >>> fit_verbosity(io.StringIO())   # not a terminal: one plain line per epoch
    2
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable

from kbert.errors import KbertError


class OutputExistsError(KbertError, ValueError):
    """An output path that already holds something, without --overwrite."""


def _holds(path: str) -> list[str] | None:
    """None if writing `path` loses nothing (absent, or an empty directory); else what is there
    (the directory's entries, or [] for a file)."""
    if os.path.isdir(path):
        entries = sorted(os.listdir(path))
        return entries or None
    if os.path.lexists(path):
        return []
    return None


def check_output(paths: str | os.PathLike | Iterable[str | os.PathLike], *,
                 overwrite: bool = False, flag: str = "--output",
                 own: Callable[[str], bool] | None = None) -> None:
    """Raise OutputExistsError (one line naming the path) if a path to be written already holds
    something: an existing file, or a directory that is not empty.

    Args:
        paths: the file or directory the command writes, or all the files it writes.
        overwrite: the user's --overwrite: nothing is refused.
        flag: the option that named the path, for the message ("choose another --output-dir").
        own: `own(path)` -> True when what the path holds is the command's own earlier state
            that it continues from (an unfinished `kbert pretrain` run): not refused.
    """
    if overwrite:
        return
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    for path in map(os.fspath, paths):
        held = _holds(path)
        if held is None or (own is not None and own(path)):
            continue
        if held:
            shown = ", ".join(held[:3]) + (", ..." if len(held) > 3 else "")
            what = f"{path} already holds files ({shown})"
        else:
            what = f"{path} already exists"
        raise OutputExistsError(f"{what}; pass --overwrite to write over "
                                f"{'them' if held else 'it'} or choose another {flag}")


def fit_verbosity(stream=None) -> int:
    """Keras `verbose` for `fit`: the animated progress bar (1) only when `stream` (default
    standard output) is a terminal; else plain lines, one per epoch (2): a piped or redirected
    output gets no ANSI escapes and no carriage-return redraws."""
    stream = sys.stdout if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    return 1 if isatty is not None and isatty() else 2
