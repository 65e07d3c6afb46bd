"""Which ops a SavedModel needs, and whether stock TensorFlow Serving can run them.

TF Serving links core TensorFlow and a fixed build of TF-Text: 2.16.1-2.19.1 embed
tensorflow-text 2.12.1, which lacks the trimmer ops (`TFText>RoundRobinTrim` fails there with
"Op type not registered", tensorflow/serving#2267). A SavedModel that needs any other op loads
in Python and then fails on the server, so the export checks the written graph instead of
trusting the code that built it.

`saved_model_ops(dir)` reads `saved_model.pb` directly (every node of the graph and of every
function in its library) and counts op types; `check_serving_ops(dir)` raises `OpCheckError`
naming each op that is neither core TensorFlow nor in `SERVING_TFTEXT_OPS`.

Core TensorFlow here means: an op of the installed TensorFlow with a `tf.raw_ops` wrapper.
Ops added to core TensorFlow after 2.16 would pass this check; the export uses none (the test
lists the ops of a real export).

Example:
    >>> report = check_serving_ops("saved_models/minilm/1")             # doctest: +SKIP
    >>> sorted(report.tftext)                                           # doctest: +SKIP
    ['FastWordpieceTokenizeWithOffsets', 'NormalizeUTF8']
"""

from __future__ import annotations

import collections
import dataclasses
import os

import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2

from kbert.errors import KbertError

# The ops of tensorflow-text 2.12.1 that tensorflow-text 2.21 still registers: the names
# registered by the 2.21.1 op libraries whose NUL-terminated name string occurs in the 2.12.1
# wheel's op libraries (`pip download tensorflow-text==2.12.1`, checked by hand, 2024 wheels).
SERVING_TFTEXT_OPS = frozenset({
    "CaseFoldUTF8", "ConstrainedSequence", "FastBertNormalize",
    "FastWordpieceTokenizeWithOffsets", "FindSourceOffsets", "MaxSpanningTree", "NormalizeUTF8",
    "NormalizeUTF8WithOffsetsMap", "PhraseTokenize", "RegexSplitWithOffsets",
    "SentenceFragments", "SentenceFragmentsV2", "SentencepieceDetokenizeOp",
    "SentencepieceIdToStringOp", "SentencepieceOp", "SentencepieceStringToIdOp",
    "SentencepieceTokenizeOp", "SentencepieceTokenizeWithOffsetsOp", "SentencepieceVocabSizeOp",
    "SplitMergeTokenizeWithOffsets", "TFText>BoiseTagsToOffsets", "TFText>ByteSplitByOffsets",
    "TFText>ByteSplitWithOffsets", "TFText>FastSentencepieceDetokenize",
    "TFText>FastSentencepieceTokenize", "TFText>FastWordpieceDetokenize",
    "TFText>NgramsStringJoin", "TFText>OffsetsToBoiseTags", "TFText>PhraseDetokenize",
    "TFText>WhitespaceTokenizeWithOffsetsV2", "TokenizerFromLogits",
    "UnicodeScriptTokenizeWithOffsets", "WhitespaceTokenizeWithOffsets",
    "WordpieceTokenizeWithOffsets",
})
# tf-text 2.21 ops that 2.12.1 does not have (named in the error so the cause is plain).
NEWER_TFTEXT_OPS = frozenset({
    "TFText>RoundRobinTrim", "TFText>RoundRobinGenerateMasks", "TFText>Utf8Binarize"})


class OpCheckError(KbertError, ValueError):
    """A SavedModel needs ops that stock TensorFlow Serving (2.16+) does not register."""


@dataclasses.dataclass
class OpReport:
    """The op types of a SavedModel, sorted into what TF Serving has and what it lacks.

    Attributes:
        counts: op type -> number of nodes (graph and function library together).
        core: op types of core TensorFlow.
        tftext: TF-Text op types that TF Serving 2.16+ embed.
        forbidden: everything else, op type -> why.
    """

    counts: dict[str, int]
    core: list[str]
    tftext: list[str]
    forbidden: dict[str, str]

    @property
    def ok(self) -> bool:
        return not self.forbidden


def saved_model_ops(export_dir: str | os.PathLike) -> dict[str, int]:
    """Op type -> node count over every meta graph, its nodes and its function library.

    Calls of library functions by name are not counted as ops (their bodies are).
    """
    path = os.path.join(os.fspath(export_dir), "saved_model.pb")
    if not os.path.isfile(path):
        raise OpCheckError(f"{export_dir}: no saved_model.pb (not a SavedModel directory)")
    saved = saved_model_pb2.SavedModel()
    with open(path, "rb") as f:
        saved.ParseFromString(f.read())
    counts: collections.Counter = collections.Counter()
    for meta in saved.meta_graphs:
        functions = {fn.signature.name for fn in meta.graph_def.library.function}
        nodes = list(meta.graph_def.node)
        for fn in meta.graph_def.library.function:
            nodes.extend(fn.node_def)
        counts.update(node.op for node in nodes if node.op not in functions)
    return dict(sorted(counts.items()))


def _is_core(op: str) -> bool:
    return hasattr(tf.raw_ops, op)


def classify_ops(counts: dict[str, int]) -> OpReport:
    core, tftext, forbidden = [], [], {}
    for op in sorted(counts):
        if op in SERVING_TFTEXT_OPS:
            tftext.append(op)
        elif op in NEWER_TFTEXT_OPS:
            forbidden[op] = ("a tensorflow-text op newer than 2.12.1, the TF-Text that "
                             "TF Serving 2.16-2.19 embed ('Op type not registered' there)")
        elif _is_core(op):
            core.append(op)
        else:
            forbidden[op] = ("neither a core TensorFlow op nor a tensorflow-text 2.12.1 op "
                             "(a custom op TF Serving does not register)")
    return OpReport(counts=dict(counts), core=core, tftext=tftext, forbidden=forbidden)


def check_serving_ops(export_dir: str | os.PathLike) -> OpReport:
    """Read the written SavedModel and refuse ops stock TF Serving 2.16+ cannot run.

    Returns the `OpReport`; raises `OpCheckError` listing every forbidden op with its node count.
    """
    report = classify_ops(saved_model_ops(export_dir))
    if report.forbidden:
        lines = [f"  {op} (x{report.counts[op]}): {why}" for op, why in report.forbidden.items()]
        raise OpCheckError(
            f"{export_dir}: the SavedModel uses ops stock TensorFlow Serving 2.16+ cannot run:\n"
            + "\n".join(lines)
            + "\nBuild the graph from core TF ops (pack with kbert.tokenization.packing, not "
              "tf-text trimmers or keras-hub packers) and export again.")
    return report
