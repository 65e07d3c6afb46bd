"""kbert.errors: every exception kbert defines is a KbertError, every warning a KbertWarning,
and each keeps the builtin it subclassed before (so `except ValueError` still works)."""

from __future__ import annotations

import ast
import importlib
import pathlib
import re

import pytest

from kbert.embeddings import TruncationWarning as from_embeddings
from kbert.errors import KbertError, KbertWarning, TruncationWarning
from kbert.tasks import TruncationWarning as from_tasks
from kbert.tasks.datasets import TruncationWarning as from_data

ROOT = pathlib.Path(__file__).resolve().parents[1] / "kbert"

# module -> {class: the builtin it must still be} (everything `class .*(Error|Warning)(` finds)
EXPECTED = {
    "kbert.textfiles": {"NotUTF8Error": ValueError},
    "kbert.config": {"ConfigError": ValueError, "MaxLengthError": ValueError},
    "kbert.outputs": {"OutputExistsError": ValueError},
    "kbert.embeddings": {"TextTooLongError": ValueError},
    "kbert.sentence_transformers": {"SentenceFolderError": ValueError},
    "kbert.errors": {"TruncationWarning": UserWarning},
    "kbert.loading": {"ModelSourceError": ValueError},
    "kbert.corpora": {"CorpusError": ValueError},
    "kbert.tokenization.vocab": {"VocabularyError": ValueError},
    "kbert.data.masking": {"MaskingError": ValueError},
    "kbert.data.tfrecords": {"PairFileError": ValueError},
    "kbert.convert.transformers_ckpt": {"CheckpointError": ValueError,
                                        "HeadWeightsWarning": UserWarning},
    "kbert.convert.safe_pickle": {"UnsafePickleError": ValueError},
    "kbert.convert.keras_hub_preset": {"PresetExportWarning": UserWarning},
    "kbert.export.saved_model": {"ExportError": ValueError},
    "kbert.export.op_check": {"OpCheckError": ValueError},
    "kbert.export.litert": {"LiteRTError": ValueError},
    "kbert.export.tflite": {"QuantizationWarning": UserWarning},
    "kbert.training.callbacks": {"CheckpointWriteError": OSError},
    "kbert.training.preflight": {"OutputDirError": OSError},
    "kbert.tasks.base": {"UntrainedHeadError": ValueError},
    "kbert.tasks.labels": {"DataError": ValueError, "UnknownLabelError": ValueError},
    "kbert.tasks.loading": {"EncoderSourceError": ValueError},
}


def _defined() -> dict[str, set[str]]:
    """module -> the Error / Warning classes its source defines."""
    found: dict[str, set[str]] = {}
    for path in sorted(ROOT.rglob("*.py")):
        source = path.read_text(encoding="utf-8")
        if not re.search(r"class \w*(Error|Warning)\(", source):
            continue
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.ClassDef) and re.search(r"(Error|Warning)$", node.name):
                found.setdefault(module, set()).add(node.name)
    found["kbert.errors"].discard("KbertError")
    found["kbert.errors"].discard("KbertWarning")
    return found


def test_every_error_and_warning_class_is_listed():
    assert _defined() == {m: set(names) for m, names in EXPECTED.items()}


@pytest.mark.parametrize("module", sorted(EXPECTED))
def test_errors_subclass_kbert_error_and_their_builtin(module):
    for name, builtin in EXPECTED[module].items():
        cls = getattr(importlib.import_module(module), name)
        assert issubclass(cls, builtin), name
        root = KbertWarning if issubclass(cls, Warning) else KbertError
        assert issubclass(cls, root), name


def test_one_truncation_warning():
    assert from_embeddings is from_tasks is from_data is TruncationWarning
    assert issubclass(TruncationWarning, UserWarning)
