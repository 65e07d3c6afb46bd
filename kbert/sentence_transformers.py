"""A sentence-transformers folder's own sentence pipeline, read in one place.

A sentence-transformers model directory is a transformers BERT directory plus `modules.json`
(Transformer, then `Pooling` in `1_Pooling/`, optionally `Normalize` in `2_Normalize/`),
`1_Pooling/config.json` and `sentence_bert_config.json`. `read_sentence_settings(dir)` turns them
into a `SentenceSettings`; `kbert.load` attaches it as `Loaded.sentence`, and it sets the DEFAULTS
of `ContextualEmbedder.sentences`, `kbert embed --level sentence`, the exported
`sentence_embedding` signature and the fine-tuning pooling (`BertClassifier.from_pretrained`,
`kbert finetune`). Explicit arguments and flags still win.

    file                                  key                            setting
    modules.json                          a ...Normalize module          normalize = True
    1_Pooling/config.json                 pooling_mode_cls_token,        pooling ("mean",
                                          pooling_mode_mean_tokens,      "max", "cls+mean": the
                                          pooling_mode_max_tokens,       modes kbert.layers.pooling
                                          pooling_mode_mean_sqrt_len_    computes; several true
                                          tokens (or the newer           are concatenated in the
                                          "pooling_mode": str | list)    order cls, max, mean,
                                                                         mean_sqrt_len)
    sentence_bert_config.json             max_seq_length                 max_length ([CLS]/[SEP]
                                                                         included, as there;
    (sentence-transformers >= 6 writes    (tokenizer_config.json's       at most the model's
    it to tokenizer_config.json)          model_max_length)              positions)
                                          do_lower_case                  lower_case (true: lower-
                                                                         case the text first)

A folder whose pipeline kbert cannot reproduce (a Dense or other extra module, weightedmean or
lasttoken pooling) still loads: its settings carry `problem`, and asking for its default
pooling raises SentenceFolderError naming the module; an explicit pooling works.

Example:
    >>> settings = read_sentence_settings("path/to/all-MiniLM-L6-v2")   # doctest: +SKIP
    >>> settings.pooling, settings.normalize, settings.max_length        # doctest: +SKIP
    ('mean', True, 256)
"""

from __future__ import annotations

import dataclasses
import os

from kbert.config import read_json_file
from kbert.errors import KbertError
from kbert.layers.pooling import parse_pooling

MODULES_FILE = "modules.json"
POOLING_CONFIG = "config.json"
SENTENCE_CONFIG_FILE = "sentence_bert_config.json"
TOKENIZER_CONFIG_FILE = "tokenizer_config.json"

# sentence-transformers' legacy boolean keys, in the order its Pooling concatenates them.
LEGACY_POOLING_KEYS = {
    "pooling_mode_cls_token": "cls",
    "pooling_mode_max_tokens": "max",
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len_tokens",
    "pooling_mode_weightedmean_tokens": "weightedmean",
    "pooling_mode_lasttoken": "lasttoken",
}
# sentence-transformers' mode names -> kbert's (kbert.layers.pooling.POOLING_MODES).
KBERT_MODES = {"cls": "cls", "mean": "mean", "max": "max", "mean_sqrt_len_tokens": "mean_sqrt_len"}


class SentenceFolderError(KbertError, ValueError):
    """A sentence-transformers file that is malformed, or a pipeline kbert cannot reproduce."""


@dataclasses.dataclass(frozen=True)
class SentenceSettings:
    """The sentence pipeline of a sentence-transformers folder.

    Attributes:
        pooling: kbert pooling ("mean", "cls+max", ...); None when the Pooling module's mode
            is not one kbert computes. Fine-tuning takes it even when `problem` is set (a
            classifier needs no Dense projection); `default_pooling` does not.
        normalize: L2-normalise the pooled vector (a Normalize module).
        max_length: sentence_bert_config.json's max_seq_length, or None.
        lower_case: sentence_bert_config.json's do_lower_case, or None when absent.
        dimension: the Pooling config's embedding dimension (checked against the encoder).
        source: the file the pooling was read from.
        problem: why kbert cannot reproduce the folder's pipeline, or None.
    """

    pooling: str | None
    normalize: bool
    max_length: int | None
    lower_case: bool | None
    dimension: int | None
    source: str
    problem: str | None = None

    def default_pooling(self) -> str:
        """The folder's pooling; SentenceFolderError when kbert cannot reproduce the folder."""
        if self.problem:
            raise SentenceFolderError(f"{self.problem}; pass the pooling explicitly "
                                      f"(--pooling cls|mean|max|mean_sqrt_len)")
        return self.pooling

    def describe(self) -> str:
        """e.g. "mean pooling + L2 normalisation (from .../1_Pooling/config.json)"."""
        norm = " + L2 normalisation" if self.normalize else ""
        return f"{self.pooling} pooling{norm} (from {self.source})"


def is_sentence_transformers_folder(directory: str | os.PathLike) -> bool:
    return os.path.isfile(os.path.join(os.fspath(directory), MODULES_FILE))


def read_sentence_settings(directory: str | os.PathLike) -> SentenceSettings | None:
    """The settings of a sentence-transformers folder, None for any other directory.

    Raises SentenceFolderError naming the file and the value for a malformed file.
    """
    directory = os.fspath(directory)
    modules_path = os.path.join(directory, MODULES_FILE)
    if not os.path.isfile(modules_path):
        return None
    modules = read_json_file(modules_path, SentenceFolderError, expected=list)
    pooling = normalize = None
    problems, source, dimension = [], modules_path, None
    for n, module in enumerate(modules):
        if not isinstance(module, dict) or not isinstance(module.get("type"), str):
            raise SentenceFolderError(f"{modules_path}: entry {n} is not an object with a "
                                      f"\"type\" string")
        kind = module["type"].rsplit(".", 1)[-1]
        path = module.get("path", "")
        if not isinstance(path, str):
            raise SentenceFolderError(f"{modules_path}: entry {n} has a non-string \"path\"")
        if kind == "Transformer":
            if path not in ("", "."):
                problems.append(f"{modules_path}: the Transformer lives in {path!r}: load "
                                f"{os.path.join(directory, path)} instead")
        elif kind == "Pooling":
            source = os.path.join(directory, path, POOLING_CONFIG)
            pooling, dimension, problem = _read_pooling(source)
            if problem:
                problems.append(problem)
        elif kind == "Normalize":
            normalize = True
        else:
            problems.append(f"{modules_path}: module {n} ({module['type']}, {path!r}) is not "
                            f"one kbert applies (it applies Transformer, Pooling, Normalize)")
    if pooling is None and not problems:
        problems.append(f"{modules_path}: no Pooling module (sentence-transformers would "
                        f"return token vectors)")
    max_length, lower_case = _read_sentence_config(directory)
    problem = "; ".join(problems) or None
    return SentenceSettings(pooling, bool(normalize), max_length, lower_case, dimension, source,
                            problem)


def _read_pooling(path: str) -> tuple[str | None, int | None, str | None]:
    """-> (kbert pooling, dimension, problem) of a Pooling module's config.json."""
    config = read_json_file(path, SentenceFolderError)
    if "pooling_mode" in config:  # sentence-transformers >= 6: a mode or a list of modes
        modes = config["pooling_mode"]
        modes = [modes] if isinstance(modes, str) else modes
        if not isinstance(modes, list) or not modes or not all(isinstance(m, str) for m in modes):
            raise SentenceFolderError(f"{path}: pooling_mode must be a mode name or a list of "
                                      f"them, got {config['pooling_mode']!r}")
    else:
        for key in LEGACY_POOLING_KEYS:
            if key in config and not isinstance(config[key], bool):
                raise SentenceFolderError(f"{path}: {key} must be true or false, got "
                                          f"{config[key]!r}")
        modes = [mode for key, mode in LEGACY_POOLING_KEYS.items() if config.get(key)]
        modes = modes or ["mean"]  # sentence-transformers' default when none is set
    unknown = [m for m in modes if m not in KBERT_MODES]
    dimension = config.get("embedding_dimension", config.get("word_embedding_dimension"))
    if dimension is not None and (isinstance(dimension, bool) or not isinstance(dimension, int)
                                  or dimension < 1):
        raise SentenceFolderError(f"{path}: the embedding dimension must be a positive integer, "
                                  f"got {dimension!r}")
    if unknown:
        return None, dimension, (f"{path}: pooling mode {unknown[0]!r} is not one kbert computes "
                                 f"(it computes {', '.join(KBERT_MODES)})")
    pooling = "+".join(KBERT_MODES[m] for m in modes)
    parse_pooling(pooling)
    return pooling, dimension, None


def _read_sentence_config(directory: str) -> tuple[int | None, bool | None]:
    """-> (max_seq_length, do_lower_case) of sentence_bert_config.json (None where absent); a
    folder written by sentence-transformers >= 6 keeps the length as tokenizer_config.json's
    model_max_length instead."""
    path = os.path.join(directory, SENTENCE_CONFIG_FILE)
    config = read_json_file(path, SentenceFolderError) if os.path.isfile(path) else {}
    max_length, lower_case = config.get("max_seq_length"), config.get("do_lower_case")
    tokenizer_path = os.path.join(directory, TOKENIZER_CONFIG_FILE)
    if max_length is None and os.path.isfile(tokenizer_path):
        length = read_json_file(tokenizer_path, SentenceFolderError).get("model_max_length")
        if isinstance(length, int) and not isinstance(length, bool) and 2 <= length <= 10**6:
            max_length = length  # transformers writes 1e30 for "no limit": ignored
    if max_length is not None and (isinstance(max_length, bool) or not isinstance(max_length, int)
                                   or max_length < 2):
        raise SentenceFolderError(f"{path}: max_seq_length must be an integer >= 2, got "
                                  f"{max_length!r}")
    if lower_case is not None and not isinstance(lower_case, bool):
        raise SentenceFolderError(f"{path}: do_lower_case must be true or false, got "
                                  f"{lower_case!r}")
    return max_length, lower_case
