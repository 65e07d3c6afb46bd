"""`kbert.load`: the one loader. Every command, every `from_pretrained`, `ContextualEmbedder`
and export read models through it.

`load(source)` -> `Loaded(model, tokenizer, kind, path)`, where `kind` says what the source is.
A directory is recognised by the first of these rules that holds (the documented precedence):

    kind            what it holds                                  model
    keras_hub       config.json of a Keras object (class_name      BertEncoder (tanh GELU, as
                    BertBackbone) + model.weights.h5: a keras-hub  keras-hub computes); tokenizer
                    preset, backbone or task (its task.json is     from assets/tokenizer/ when
                    keras-hub's, not kbert's)                      present
    task            task.json + model.keras (kbert finetune,       the task model (BertClassifier,
                    TaskModel.save_pretrained)                     ...), tokenizer attached
    pretrain_run    pretrainer.keras (+ encoder.keras, vocab.txt:  BertPretrainer (MLM + NSP
                    a finished `kbert pretrain` run, or `kbert     heads; `.encoder` for the rest)
                    convert` of a whole checkpoint)
    kbert_model     encoder.keras + vocab.txt (kbert convert,      BertEncoder
                    save_kbert_model)
    transformers    config.json + model.safetensors (or its index,  BertPretrainer when the
                    or pytorch_model.bin) + vocab.txt               weights hold the MLM head
    google          bert_config.json + bert_model.ckpt.* + vocab   (cls.predictions / cls/
                                                                   predictions), else BertEncoder

Whole checkpoints: a transformers BertForPreTraining or BertForMaskedLM, or a Google release
with its `cls/` variables, loads with its pre-training heads (a missing NSP head, as in
BertForMaskedLM, is fresh and a HeadWeightsWarning says so), so `kbert fill-mask` works on it;
`Loaded.encoder` (`encoder_of`) gives the encoder to every other caller.

A name (a Hugging Face repo id, a keras-hub preset, a `kaggle://` handle; kbert/hub.py) is first
resolved to the local directory it downloads to, and that directory is loaded by these rules; a
local path that exists always wins over a name.

A file: `<prefix>.index` beside it makes a Google checkpoint prefix (kind "google"); a `.keras`
file is kind "keras_file" and gives whatever it holds (an encoder, a pre-training model or a task
model; its vocabulary is looked for beside it). `.keras` archives are read in Keras' safe mode
(`kbert.convert.keras_files`) after every kbert class has been made known to Keras
(`register_kbert_classes`), so a model loads in a fresh process that imported nothing else.

Example:
    >>> import kbert
    >>> loaded = kbert.load("runs/polarity")                  # doctest: +SKIP
    >>> loaded.kind, type(loaded.model).__name__              # doctest: +SKIP
    ('task', 'BertClassifier')
    >>> encoder, tokenizer = loaded.encoder, loaded.tokenizer  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import importlib
import os

from kbert.config import read_json_file
from kbert.convert.google_ckpt import load_google_checkpoint
from kbert.convert.keras_files import load_keras_file
from kbert.convert.keras_hub_preset import is_keras_hub_preset, load_keras_hub_preset
from kbert.convert.transformers_ckpt import (
    CheckpointError,
    load_transformers_checkpoint,
    tokenizer_for_directory,
)
from kbert.hub import resolve
from kbert.models.encoder import BertEncoder
from kbert.sentence_transformers import SentenceSettings, read_sentence_settings

TASK_FILE = "task.json"
TASK_MODEL_FILE = "model.keras"
PRETRAINER_FILE = "pretrainer.keras"
ENCODER_FILE = "encoder.keras"
VOCAB_FILE = "vocab.txt"

KINDS = ("keras_hub", "task", "pretrain_run", "kbert_model", "transformers", "google", "keras_file")

# Every module that defines a class registered with Keras (package "kbert"): imported before a
# `.keras` archive is deserialised. Task heads are named here rather than imported at the top,
# because kbert.tasks itself loads through this module (the arrow runs tasks -> loading).
_SERIALIZABLE_MODULES = (
    "kbert.layers.embeddings", "kbert.layers.attention", "kbert.layers.transformer",
    "kbert.layers.heads", "kbert.models.encoder", "kbert.models.pretrainer",
    "kbert.tasks.classifier", "kbert.tasks.token_classifier", "kbert.tasks.span_extractor",
    "kbert.tasks.multiple_choice",
)


class ModelSourceError(CheckpointError):
    """A path that holds nothing kbert can load (or holds it broken); the message says what was
    expected."""


def register_kbert_classes() -> None:
    """Make every kbert layer, model and task head known to Keras' deserialiser."""
    for module in _SERIALIZABLE_MODULES:
        importlib.import_module(module)


def _has_transformers_weights(path: str) -> bool:
    return any(os.path.isfile(os.path.join(path, name)) for name in
               ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin"))


def detect(source: str | os.PathLike) -> str:
    """The kind of a path (one of KINDS), by the precedence of the module docstring."""
    path = os.fspath(source)
    if os.path.isfile(path + ".index"):
        return "google"  # a checkpoint prefix: .../bert_model.ckpt
    if os.path.isfile(path):
        if path.endswith(".keras"):
            return "keras_file"
        raise ModelSourceError(f"{path} is a file but not a .keras model (a model is a "
                               f"directory, a .keras file or a Google checkpoint prefix)")
    if not os.path.isdir(path):
        raise ModelSourceError(f"{path} does not exist: pass a model directory, a .keras file "
                               f"or a Google checkpoint prefix")
    has = lambda name: os.path.isfile(os.path.join(path, name))  # noqa: E731
    if is_keras_hub_preset(path):  # before "task": a keras-hub task preset has a task.json too
        return "keras_hub"
    if has(TASK_FILE):
        return "task"
    if has(PRETRAINER_FILE):
        return "pretrain_run"
    if has(ENCODER_FILE):
        return "kbert_model"
    if has("config.json") and _has_transformers_weights(path):
        return "transformers"
    if has("bert_config.json"):
        return "google"
    if has("config.json"):
        return "transformers"  # its loader names the missing weights file
    if os.path.isdir(os.path.join(path, "backup")) and has(VOCAB_FILE):
        raise ModelSourceError(f"{path} is an unfinished `kbert pretrain` run (backup/ but no "
                               f"{PRETRAINER_FILE} yet): run the same command again to finish it")
    raise ModelSourceError(
        f"{path}: not a model directory (expected {TASK_FILE} of a fine-tuned model, "
        f"{PRETRAINER_FILE} of a pre-training run, {ENCODER_FILE}, a transformers checkpoint "
        f"(config.json + model.safetensors), a keras-hub preset (config.json + "
        f"model.weights.h5) or a Google BERT checkpoint (bert_config.json))")


@dataclasses.dataclass(frozen=True)
class Loaded:
    """What `load` returns; unpacks as `model, tokenizer = loaded` too.

    Attributes:
        model: a BertEncoder, a BertPretrainer or a task model (see `kind`).
        tokenizer: the BertTokenizer of the model's vocabulary, or None where the source has
            none (a `.keras` file without a vocab.txt beside it).
        kind: one of KINDS.
        path: the source path (for a name: the local directory it resolved to).
        sentence: a sentence-transformers folder's pooling / normalisation / max_length
            (`kbert.sentence_transformers`), None for any other source.
    """

    model: object
    tokenizer: object | None
    kind: str
    path: str
    sentence: SentenceSettings | None = None

    def __iter__(self):
        return iter((self.model, self.tokenizer))

    @property
    def encoder(self):
        """The BertEncoder of any kind of model."""
        return encoder_of(self.model)

    @property
    def is_task(self) -> bool:
        return hasattr(self.model, "encoder") and hasattr(self.model, "save_pretrained")


def encoder_of(model):
    """`model` itself for a BertEncoder, else the BertEncoder it holds as `.encoder`."""
    if isinstance(model, BertEncoder):
        return model
    encoder = getattr(model, "encoder", None)
    if isinstance(encoder, BertEncoder):
        return encoder
    raise ModelSourceError(f"a {type(model).__name__} is neither a BertEncoder nor a model "
                           f"holding one as `.encoder`")


def _tokenizer_beside(directory: str, model, lower_case: bool | None, required: bool):
    """The tokenizer of `directory`'s vocab.txt (None when absent and not required)."""
    if not required and not os.path.isfile(os.path.join(directory, VOCAB_FILE)):
        return None
    return tokenizer_for_directory(directory, encoder_of(model).bert_config,
                                   lower_case=lower_case)


def _recased(tokenizer, lower_case: bool):
    # deferred: the tokenizer is TensorFlow code, not needed on JAX
    from kbert.tokenization.tokenizer import BertTokenizer  # noqa: PLC0415

    return BertTokenizer(tokenizer.vocab, lower_case=lower_case, max_length=tokenizer.max_length)


def _load_archive(path: str):
    register_kbert_classes()
    return load_keras_file(path)  # safe mode: no Lambda, no foreign classes


def _read_task_file(directory: str) -> dict:
    path = os.path.join(directory, TASK_FILE)
    task = read_json_file(path, ModelSourceError)  # size-limited, a JSON object
    max_length, lower_case = task.get("max_length"), task.get("lower_case")
    if max_length is not None and (isinstance(max_length, bool)
                                   or not isinstance(max_length, int) or max_length < 2):
        raise ModelSourceError(f"{path}: max_length must be an integer >= 2, got {max_length!r}")
    if lower_case is not None and not isinstance(lower_case, bool):
        raise ModelSourceError(f"{path}: lower_case must be true or false, got {lower_case!r}")
    if not isinstance(task.get("task"), str):
        raise ModelSourceError(f"{path}: no \"task\" name (the head's class)")
    return task


def _load_task(directory: str, lower_case: bool | None):
    task = _read_task_file(directory)
    model = _load_archive(os.path.join(directory, TASK_MODEL_FILE))
    if type(model).__name__ != task["task"]:
        raise ModelSourceError(f"{directory}: task.json names a {task['task']} but "
                               f"{TASK_MODEL_FILE} holds a {type(model).__name__}")
    if lower_case is None:
        lower_case = task.get("lower_case")
    try:
        tokenizer = model.tokenizer
    except ImportError:  # no TensorFlow (a JAX-only machine): ids in, no text methods
        model.load_task_extras(directory, task)
        return model, None
    if tokenizer is None:  # archives from before the vocabulary was saved inside them
        tokenizer = _tokenizer_beside(directory, model, lower_case, required=True)
        model.set_tokenizer(tokenizer, task.get("max_length"))
    elif lower_case is not None and model.tokenizer.lower_case != lower_case:
        model.set_tokenizer(_recased(model.tokenizer, lower_case))
    model.load_task_extras(directory, task)
    return model, model.tokenizer


def load(source: str | os.PathLike, *, lower_case: bool | None = None) -> Loaded:
    """Load any model kbert reads (see the module docstring) -> `Loaded`.

    Args:
        source: a directory, a `.keras` file or a Google checkpoint prefix; or a name
            (kbert/hub.py): a Hugging Face repo id (`bert-base-uncased`, `org/name`,
            `hf://org/name@revision`), a keras-hub preset (`bert_base_en_uncased`) or a
            `kaggle://` handle, downloaded or found in its library's cache. A local path that
            exists always wins over a name.
        lower_case: override the tokenizer's lower-casing (None: the model's own setting).
    Raises ModelSourceError (a ValueError) naming the path and what was expected, or for a
    name, how to get its weights.
    """
    path = resolve(source, ModelSourceError)  # `source` itself unless it is a name
    kind = detect(path)
    if kind == "task":
        model, tokenizer = _load_task(path, lower_case)
    elif kind == "transformers":
        model, tokenizer = load_transformers_checkpoint(path, pretraining_heads=True)
    elif kind == "google":
        model, tokenizer = load_google_checkpoint(path, lower_case=lower_case,
                                                  pretraining_heads=True)
    elif kind == "keras_hub":
        model, tokenizer = load_keras_hub_preset(path, lower_case=lower_case)
    else:
        file = {"pretrain_run": os.path.join(path, PRETRAINER_FILE),
                "kbert_model": os.path.join(path, ENCODER_FILE)}.get(kind, path)
        model = _load_archive(file)
        expected = {"pretrain_run": "BertPretrainer", "kbert_model": "BertEncoder"}.get(kind)
        if expected and type(model).__name__ != expected:
            raise ModelSourceError(f"{file} holds a {type(model).__name__}, not a {expected}")
        tokenizer = getattr(model, "tokenizer", None)
        if tokenizer is None:
            tokenizer = _tokenizer_beside(os.path.dirname(file) or ".", model, lower_case,
                                          required=kind != "keras_file")
    # a sentence-transformers folder: its modules.json / 1_Pooling / sentence_bert_config.json
    sentence = read_sentence_settings(path) if kind != "task" and os.path.isdir(path) else None
    if lower_case is None and sentence is not None and sentence.lower_case:
        lower_case = True  # do_lower_case: the text is lower-cased before tokenization
    if kind == "transformers" and lower_case is not None and tokenizer is not None:
        tokenizer = _recased(tokenizer, lower_case)
    return Loaded(model, tokenizer, kind, path, sentence)
