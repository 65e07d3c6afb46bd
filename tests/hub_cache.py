"""Offline caches for the name tests: huggingface_hub's and kagglehub's cache layouts, built by
hand from local files (neither library has an API that imports files into its cache).

Hugging Face (huggingface_hub 2.x, as documented for reimplementation): under HF_HUB_CACHE,
`models--{org}--{name}/refs/{branch}` holds the commit hash (no trailing newline),
`snapshots/{commit}/{file}` are symlinks into `blobs/{id}`.
kagglehub 1.x: under KAGGLEHUB_CACHE, `models/{owner}/{model}/{framework}/{variation}/{version}/
{files}` and, once the whole bundle is there, the marker `.../{variation}/{version}.complete`
(files fetched one by one get `.../{variation}/.complete/{version}/{file}.complete` each).
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import shutil


def hf_repo_dir(cache: str, repo: str) -> str:
    return os.path.join(cache, "models--" + repo.replace("/", "--"))


def build_hf_cache(cache: str, repo: str, source_dir: str, commit: str, *,
                   refs: tuple[str, ...] = ("main",), patterns=None) -> str:
    """Put the files of `source_dir` (those matching `patterns`, fnmatch on the relative path;
    all when None) into `cache` as repo `repo` at `commit`, with `refs` pointing at it.
    Blobs are symlinks to the source files (nothing large is copied). -> the snapshot dir."""
    root = hf_repo_dir(cache, repo)
    snapshot = os.path.join(root, "snapshots", commit)
    os.makedirs(os.path.join(root, "blobs"), exist_ok=True)
    for dirpath, _, names in os.walk(source_dir):
        for name in names:
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, source_dir).replace(os.sep, "/")
            if patterns is not None and not any(fnmatch.fnmatch(rel, p) for p in patterns):
                continue
            blob_id = hashlib.sha256(f"{repo}/{commit}/{rel}".encode()).hexdigest()
            blob = os.path.join(root, "blobs", blob_id)
            if not os.path.lexists(blob):
                os.symlink(os.path.realpath(full), blob)
            target = os.path.join(snapshot, *rel.split("/"))
            os.makedirs(os.path.dirname(target), exist_ok=True)
            os.symlink(os.path.relpath(blob, os.path.dirname(target)), target)
    os.makedirs(os.path.join(root, "refs"), exist_ok=True)
    for ref in refs:
        with open(os.path.join(root, "refs", ref), "w") as f:
            f.write(commit)  # read without stripping: no newline
    return snapshot


def build_kaggle_cache(cache: str, handle: str, source_dir: str, *,
                       per_file: bool = False) -> str:
    """Copy `source_dir` into `cache` as the complete kagglehub bundle of the versioned
    `handle` (owner/model/framework/variation/version), or with `per_file` as the files
    keras-hub's `from_preset` fetches one at a time (a marker per file:
    `{variation}/.complete/{version}/{file}.complete`). -> the bundle dir."""
    owner, model, framework, variation, version = handle.split("/")
    base = os.path.join(cache, "models", owner, model, framework, variation)
    bundle = os.path.join(base, version)
    shutil.copytree(source_dir, bundle)
    if not per_file:
        open(os.path.join(base, f"{version}.complete"), "w").close()
        return bundle
    os.makedirs(os.path.join(base, ".complete", version))
    for name in os.listdir(source_dir):
        open(os.path.join(base, ".complete", version, f"{name}.complete"), "w").close()
    return bundle
