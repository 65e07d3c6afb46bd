"""Models by name: a Hugging Face repo id or a keras-hub preset becomes a local directory.

`kbert.load` (kbert/loading.py) calls `resolve(source)` first, so every `from_pretrained` and
every command's `--model` takes a name as well as a path. The rules, in order:

    source                                        resolved to
    a path that exists                            itself (a local path always wins over a name)
    hf://org/name[@revision]                      huggingface_hub.snapshot_download -> the snapshot
    kaggle://owner/model/keras/variant[/version]  kagglehub.model_download -> the cached bundle
    a keras-hub preset name (bert_base_en_uncased) its registered kaggle:// handle, as above
    org/name[@revision], or a single name such    a Hugging Face repo id, as hf://
      as bert-base-uncased
    anything else                                 itself (`kbert.load` says it does not exist)

Downloads are the libraries' own, with their progress bars, caches and settings: HF_HOME /
HF_HUB_CACHE, HF_HUB_OFFLINE and HF_TOKEN for huggingface_hub (the optional extra `kbert[hub]`);
KAGGLEHUB_CACHE and Kaggle credentials for kagglehub (a keras-hub dependency). From a Hugging
Face repo only what kbert reads is fetched (`HF_FILES`: config, vocabulary, tokenizer files,
safetensors weights, the sentence-transformers folders); `pytorch_model.bin` only when the repo
has no safetensors. A kagglehub bundle already in the cache is used without asking Kaggle.

A name that cannot be had (huggingface_hub not installed, offline and not cached, an unknown or
gated repo, Kaggle unreachable) raises the caller's error class with one line saying how to get
the weights. This module imports no TensorFlow and no other kbert module (the loader passes its
`ModelSourceError` in, as it does to `read_json_file`).

Example:
    >>> parse("hf://sentence-transformers/all-MiniLM-L6-v2@main")
    ModelName(source='hf', name='sentence-transformers/all-MiniLM-L6-v2', revision='main')
    >>> parse("./runs/clf") is None  # a path, not a name
    True
"""

from __future__ import annotations

import dataclasses
import fnmatch
import json
import os
import re

HF_SCHEME = "hf://"
KAGGLE_SCHEME = "kaggle://"
HUB_EXTRA = "pip install 'kbert[hub]'"

# What kbert reads from a Hugging Face repo (huggingface_hub's fnmatch patterns).
HF_FILES = (
    "config.json", "vocab.txt", "tokenizer_config.json", "tokenizer.json",
    "special_tokens_map.json",
    "model.safetensors", "model.safetensors.index.json", "model-*-of-*.safetensors",
    "modules.json", "sentence_bert_config.json", "1_Pooling/config.json", "2_Normalize/*",
)
HF_TORCH_FILE = "pytorch_model.bin"  # fetched only when a repo has no safetensors
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", HF_TORCH_FILE)
KERAS_HUB_PRESET_FILES = ("config.json", "model.weights.h5")  # a keras-hub backbone preset

# Well-known BERT repos on the Hugging Face Hub (all `model_type: bert` with a vocab.txt).
HF_MODELS: dict[str, str] = {
    "google-bert/bert-base-uncased": "BERT-base, English, lower-cased (12 layers, H 768)",
    "google-bert/bert-base-cased": "BERT-base, English, cased",
    "google-bert/bert-large-uncased": "BERT-large, English, lower-cased (24 layers, H 1024)",
    "google-bert/bert-base-multilingual-cased": "BERT-base, 104 languages, cased",
    "google-bert/bert-base-chinese": "BERT-base, Chinese",
    "google/bert_uncased_L-2_H-128_A-2": "BERT-tiny, English, lower-cased (2 layers, H 128)",
    "google/bert_uncased_L-4_H-256_A-4": "BERT-mini (4 layers, H 256)",
    "google/bert_uncased_L-4_H-512_A-8": "BERT-small (4 layers, H 512)",
    "google/bert_uncased_L-8_H-512_A-8": "BERT-medium (8 layers, H 512)",
    "sentence-transformers/all-MiniLM-L6-v2": "sentence embeddings, 6 layers, H 384 (mean pooling)",
    "sentence-transformers/all-MiniLM-L12-v2": "sentence embeddings, 12 layers, H 384",
    "BAAI/bge-small-en-v1.5": "sentence embeddings, 12 layers, H 384 ([CLS] pooling)",
    "intfloat/e5-small-v2": "sentence embeddings, 12 layers, H 384 (\"query: \" / \"passage: \")",
}

# bert_base_en_uncased, bge_base_v1.5_en
_KERAS_HUB_NAME = re.compile(r"^[a-z0-9.]+(_[a-z0-9.]+)+$")
_HF_NAME = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")  # org/name or a single name


@dataclasses.dataclass(frozen=True)
class ModelName:
    """A parsed model name.

    Attributes:
        source: "hf" (a Hugging Face repo), "kaggle" (a kagglehub handle) or "keras_hub" (a
            keras-hub preset name, not yet looked up in its registry).
        name: the repo id, the handle (without kaggle://) or the preset name.
        revision: a Hugging Face branch, tag or commit (None: the default branch).
    """

    source: str
    name: str
    revision: str | None = None


def parse(source: str | os.PathLike) -> ModelName | None:
    """The name `source` spells, or None when it can only be a path (see the module table;
    whether the path exists is not checked here)."""
    if not isinstance(source, str):
        return None
    text = source.strip()
    if text.startswith(HF_SCHEME):
        repo, _, revision = text[len(HF_SCHEME):].partition("@")
        return ModelName("hf", repo, revision or None)
    if text.startswith(KAGGLE_SCHEME):
        return ModelName("kaggle", text[len(KAGGLE_SCHEME):].strip("/"))
    if text.endswith((".keras", ".json", ".bin", ".index", ".txt")) or "\\" in text:
        return None
    if text.startswith((".", "/", "~")) or not _HF_NAME.match(text.partition("@")[0]):
        return None
    if _KERAS_HUB_NAME.match(text):
        return ModelName("keras_hub", text)
    repo, _, revision = text.partition("@")
    return ModelName("hf", repo, revision or None)


def resolve(source: str | os.PathLike, error: type[Exception] = ValueError) -> str:
    """A local path for `source`: itself when it exists (or is no name), else the directory
    its name downloads to (or is cached in). Raises `error` with one line when a name cannot
    be had."""
    path = os.fspath(source)
    if os.path.exists(path):
        return path
    name = parse(path)
    if name is None:
        return path
    if name.source == "keras_hub":
        handle = keras_hub_handle(name.name, error)
        if handle is None:  # not a keras-hub preset: a Hugging Face repo id (bert_tiny, ...)
            return hf_snapshot(name.name, None, error)
        return kaggle_bundle(handle, error)
    if name.source == "kaggle":
        return kaggle_bundle(name.name, error)
    return hf_snapshot(name.name, name.revision, error)


# ------------------------------------------------------------------ Hugging Face Hub
def _huggingface_hub(name: str, error: type[Exception]):
    try:
        # deferred: huggingface_hub is an optional dependency
        import huggingface_hub  # noqa: PLC0415
    except ImportError:
        raise error(f"{name}: no such local path, and loading it from the Hugging Face Hub needs "
                    f"huggingface_hub: {HUB_EXTRA}, or pass a local model directory") from None
    return huggingface_hub


def _has_weights(directory: str, names: tuple[str, ...] = WEIGHT_FILES) -> bool:
    return any(os.path.isfile(os.path.join(directory, f)) for f in names)


def hf_snapshot(repo: str, revision: str | None, error: type[Exception] = ValueError, *,
                local_files_only: bool = False) -> str:
    """The local snapshot directory of Hugging Face repo `repo` at `revision` (None: the default
    branch), downloading what kbert reads (`HF_FILES`, else `pytorch_model.bin`) unless it is
    cached or `local_files_only`."""
    hub = _huggingface_hub(repo, error)
    # deferred: huggingface_hub is an optional dependency
    from huggingface_hub import constants, errors, utils  # noqa: PLC0415

    label = repo + (f"@{revision}" if revision else "")
    offline = constants.HF_HUB_OFFLINE or local_files_only
    cache = constants.HF_HUB_CACHE
    get_it = (f"unset HF_HUB_OFFLINE and run once online to download it into {cache}, "
              f"or pass a local model directory" if offline else
              "check the connection and run again, or pass a local model directory")
    try:
        utils.validate_repo_id(repo)
        directory = hub.snapshot_download(repo, revision=revision, allow_patterns=list(HF_FILES),
                                          local_files_only=local_files_only)
        if not _has_weights(directory, WEIGHT_FILES[:2]):
            # No safetensors in the repo (or not in the cache): its pytorch_model.bin, which
            # kbert reads with its allow-list unpickler. The commit is pinned by the snapshot.
            directory = hub.snapshot_download(repo, revision=os.path.basename(directory),
                                              allow_patterns=[HF_TORCH_FILE],
                                              local_files_only=local_files_only)
    except errors.HFValidationError:
        raise error(f"{label}: no such local path, and not a valid Hugging Face repo id "
                    f"(org/name): pass a model directory or a repo id") from None
    except errors.GatedRepoError:
        raise error(f"{label} is a gated Hugging Face repo: accept its terms on "
                    f"https://huggingface.co/{repo} and set HF_TOKEN (or `hf auth login`), "
                    f"or pass a local model directory") from None
    except errors.RevisionNotFoundError:
        raise error(f"{label}: the Hugging Face repo {repo} has no revision {revision!r}: pass "
                    f"a branch, tag or commit it has") from None
    except errors.RepositoryNotFoundError:
        raise error(f"{label}: no such local path, and no Hugging Face repo of that name (a "
                    f"private one needs HF_TOKEN): check the name, or pass a local model "
                    f"directory") from None
    except errors.LocalEntryNotFoundError:
        where = "HF_HUB_OFFLINE is set" if offline else "the Hugging Face Hub cannot be reached"
        raise error(f"{label}: no such local path, and not in the Hugging Face cache ({cache}) "
                    f"while {where}: {get_it}") from None
    except errors.HfHubHTTPError as e:
        status = getattr(getattr(e, "response", None), "status_code", "?")
        raise error(f"{label}: the Hugging Face Hub answered HTTP {status}: {get_it}") from None
    if not _has_weights(directory) or not os.path.isfile(os.path.join(directory, "config.json")):
        missing = ("config.json" if _has_weights(directory) else
                   "weights (model.safetensors or pytorch_model.bin)")
        raise error(f"{label}: the snapshot {directory} has no {missing} (offline and only "
                    f"partly cached, or not a BERT repo): {get_it}" if offline else
                    f"{label}: the Hugging Face repo has no {missing} kbert can read (kbert "
                    f"loads BERT checkpoints): pass a BERT repo or a local model directory")
    return directory


def hf_cached(repo: str) -> str | None:
    """The cached snapshot of `repo`'s default branch when it holds weights, else None; never
    uses the network (None as well without huggingface_hub)."""
    try:
        return hf_snapshot(repo, None, ValueError, local_files_only=True)
    except ValueError:
        return None


# ------------------------------------------------------------------ keras-hub / kagglehub
def keras_hub_presets() -> dict[str, dict] | None:
    """keras-hub's registered BERT presets: name -> {"description", "params", "handle"}, or
    None when keras-hub is not installed."""
    try:
        # deferred: keras_hub is an optional dependency
        import keras_hub  # noqa: PLC0415
    except ImportError:
        return None
    presets = {}
    for name, preset in sorted(keras_hub.models.BertBackbone.presets.items()):
        metadata = preset.get("metadata", {})
        presets[name] = {"description": " ".join(str(metadata.get("description", "")).split()),
                         "params": metadata.get("params"),
                         "handle": preset["kaggle_handle"].removeprefix(KAGGLE_SCHEME)}
    return presets


def keras_hub_handle(name: str, error: type[Exception] = ValueError) -> str | None:
    """The kaggle handle of keras-hub preset `name`; None when keras-hub has no preset of that
    name (or is not installed). A preset of another architecture raises `error`."""
    presets = keras_hub_presets()
    if presets is None:
        return None
    if name in presets:
        return presets[name]["handle"]
    # deferred: keras_hub is an optional dependency
    import keras_hub  # noqa: PLC0415

    everything = keras_hub.models.Backbone.presets
    if name in everything:
        raise error(f"{name} is a keras-hub preset of another architecture "
                    f"({everything[name].get('metadata', {}).get('path', '?')}): kbert loads "
                    f"BERT models; `kbert models` lists them")
    return None


def _kaggle_handle(handle: str, error: type[Exception]):
    # deferred: kagglehub is an optional dependency
    from kagglehub.handle import parse_model_handle  # noqa: PLC0415

    try:
        parsed = parse_model_handle(handle)
    except ValueError:
        parsed = None
    if parsed is None or len(handle.split("/")) not in (4, 5):
        raise error(f"kaggle://{handle}: a Kaggle model handle is "
                    f"kaggle://owner/model/framework/variation[/version]")
    return parsed


def kaggle_cached(handle: str) -> str | None:
    """The complete kagglehub bundle of `handle` in KAGGLEHUB_CACHE (its newest cached version
    when the handle has none), else None; never uses the network. A version whose config.json
    and model.weights.h5 keras-hub fetched file by file (`from_preset`) counts as cached."""
    try:
        # deferred: kagglehub is an optional dependency
        from kagglehub.cache import Cache, get_cache_folder  # noqa: PLC0415
    except ImportError:
        return None
    h = _kaggle_handle(handle, ValueError)
    cache = Cache()

    def complete(h):
        # The whole bundle (kagglehub.model_download), or the files keras-hub's `from_preset`
        # fetched one by one (a marker per file): its config and weights.
        found = cache.load_from_cache(h)
        if found or not all(cache.load_from_cache(h, f) for f in KERAS_HUB_PRESET_FILES):
            return found
        return os.path.dirname(cache.load_from_cache(h, KERAS_HUB_PRESET_FILES[0]))

    if h.is_versioned():
        return complete(h)
    base = os.path.join(get_cache_folder(), "models", h.owner, h.model, h.framework, h.variation)
    versions = sorted((int(v) for v in (os.listdir(base) if os.path.isdir(base) else ())
                       if v.isdigit()), reverse=True)
    for version in versions:
        found = complete(h.with_version(version))
        if found:
            return found
    return None


def kaggle_bundle(handle: str, error: type[Exception] = ValueError) -> str:
    """The local directory of kagglehub model `handle` (owner/model/framework/variation[/v]):
    from the kagglehub cache when complete there, else downloaded by kagglehub."""
    try:
        # deferred: kagglehub is an optional dependency
        import kagglehub  # noqa: PLC0415
    except ImportError:
        raise error(f"kaggle://{handle}: loading a keras-hub / Kaggle model needs kagglehub: "
                    f"pip install kagglehub (or keras-hub), or pass a local directory") from None
    h = _kaggle_handle(handle, error)
    cached = kaggle_cached(handle) if h.is_versioned() else None
    if cached:
        return cached
    try:
        return kagglehub.model_download(handle)
    except Exception as e:  # noqa: BLE001 - kagglehub raises requests' and its own errors
        cached = kaggle_cached(handle)
        if cached:  # unversioned, Kaggle unreachable: the newest version in the cache
            return cached
        # deferred: kagglehub is an optional dependency
        from kagglehub.config import get_cache_folder  # noqa: PLC0415

        reason = " ".join(str(e).split())[:160] or type(e).__name__
        raise error(f"kaggle://{handle} is not in the kagglehub cache ({get_cache_folder()}) "
                    f"and could not be downloaded ({reason}): run once online (a gated model "
                    f"needs Kaggle credentials), or pass a local directory") from None


# ------------------------------------------------------------------ the catalogue
@dataclasses.dataclass(frozen=True)
class KnownModel:
    """One row of `kbert models`: a name kbert loads, what it is, and where it is cached."""

    name: str
    source: str  # "keras-hub", "huggingface" or "kbert"
    description: str
    cached: str | None = None  # the local directory, when cached


def _hf_cached_bert_repos() -> list[str]:
    """Repo ids in the Hugging Face cache whose snapshot has a BERT config.json."""
    try:
        # deferred: huggingface_hub is an optional dependency
        import huggingface_hub  # noqa: PLC0415
        scan = huggingface_hub.scan_cache_dir()
    except Exception:  # noqa: BLE001 - not installed, no cache yet, unreadable cache
        return []
    found = []
    for repo in scan.repos:
        if repo.repo_type != "model":
            continue
        for revision in repo.revisions:
            config = os.path.join(revision.snapshot_path, "config.json")
            try:
                with open(config, encoding="utf-8") as f:
                    is_bert = json.load(f).get("model_type") == "bert"
            except (OSError, ValueError, AttributeError):
                continue
            if is_bert:
                found.append(repo.repo_id)
                break
    return sorted(set(found))


def catalogue(size_presets: dict[str, tuple[int, int]] | None = None) -> list[KnownModel]:
    """Every name `kbert models` lists, with what is cached (no network).

    Args:
        size_presets: kbert's random-init sizes (name -> (layers, hidden)), listed last.
    """
    rows = []
    presets = keras_hub_presets() or {}
    for name, preset in presets.items():
        params = f" ({preset['params'] / 1e6:.1f}M parameters)" if preset["params"] else ""
        rows.append(KnownModel(name, "keras-hub", preset["description"] + params,
                               kaggle_cached(preset["handle"])))
    listed = set()
    for repo, description in HF_MODELS.items():
        rows.append(KnownModel(repo, "huggingface", description, hf_cached(repo)))
        listed.add(repo)
    for repo in _hf_cached_bert_repos():
        if repo not in listed:
            rows.append(KnownModel(repo, "huggingface", "BERT repo in the local cache",
                                   hf_cached(repo)))
    for name, (layers, hidden) in (size_presets or {}).items():
        rows.append(KnownModel(name, "kbert", f"random init, {layers} layers, H {hidden}: "
                                              f"kbert pretrain --preset {name}"))
    return rows


def matches(row: KnownModel, pattern: str) -> bool:
    """Whether `pattern` (a shell-style pattern or a substring, any case) selects `row`."""
    pattern = pattern.lower()
    name = row.name.lower()
    return pattern in name or fnmatch.fnmatch(name, pattern)
