"""Lazy public names for a package: resolved from their module on first use, then cached.

Keeps `import kbert` (and its sub-packages) cheap: TensorFlow loads only when a name that needs
it is used.

Example (in a package's __init__.py):
    _EXPORTS = {"Vocabulary": "kbert.tokenization.vocab"}
    __getattr__, __dir__ = lazy_exports(__name__, globals(), _EXPORTS)
"""

from __future__ import annotations

import importlib


def lazy_exports(package: str, namespace: dict, exports: dict[str, str]):
    """Module-level `__getattr__` and `__dir__` resolving `exports` (name -> module)."""

    def __getattr__(name: str):
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value
        return value

    def __dir__():
        return sorted(list(namespace) + list(exports))

    return __getattr__, __dir__
