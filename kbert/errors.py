"""The roots of kbert's own exceptions and warnings.

Every exception class kbert defines subclasses `KbertError` (and keeps the builtin it always
subclassed, so `except ValueError` still catches a `DataError`); every warning class subclasses
`KbertWarning`. `except kbert.errors.KbertError` catches anything the library raises on purpose.
Imports nothing: any module may import it.

Example:
    >>> from kbert.errors import KbertError
    >>> class DataError(KbertError, ValueError): ...
    >>> issubclass(DataError, ValueError) and issubclass(DataError, KbertError)
    True
"""

from __future__ import annotations


class KbertError(Exception):
    """The base of every exception kbert raises on purpose."""


class KbertWarning(UserWarning):
    """The base of every warning kbert issues."""


class TruncationWarning(KbertWarning):
    """Some texts are longer than max_length and lose their last tokens (embeddings, fine-tuning
    data, token tagging: the message says which and how many)."""
