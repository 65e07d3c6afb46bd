"""`kbert models`: the names kbert loads by name, what they are, and which are cached.

    kbert models                 # everything: keras-hub presets, Hugging Face repos, kbert sizes
    kbert models minilm          # rows whose name contains "minilm" (or matches a * pattern)
    kbert models --cached        # only what is in the local caches (loads offline)
    kbert models --json          # one JSON object per row

Rows (kbert/hub.py `catalogue`): keras-hub's registered BERT presets (when keras-hub is installed;
cached = a complete kagglehub bundle in KAGGLEHUB_CACHE), well-known Hugging Face BERT repos and any
other BERT repo in the Hugging Face cache (HF_HOME / HF_HUB_CACHE), and kbert's random-init sizes
for `kbert pretrain --preset`. Listing never uses the network.
"""

from __future__ import annotations

import argparse
import json

from kbert.config import PRESETS
from kbert.hub import catalogue, keras_hub_presets, matches


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("pattern", nargs="?", default=None,
                        help="show rows whose name contains this text or matches this * pattern")
    parser.add_argument("--cached", action="store_true",
                        help="only models already in a local cache (they load offline)")
    parser.add_argument("--json", action="store_true", help="one JSON object per row")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")


def run(args: argparse.Namespace) -> int:
    rows = catalogue(PRESETS)
    if args.pattern:
        rows = [r for r in rows if matches(r, args.pattern)]
    if args.cached:
        rows = [r for r in rows if r.cached]
    if args.json:
        for r in rows:
            print(json.dumps({"name": r.name, "source": r.source, "description": r.description,
                              "cached": r.cached}, ensure_ascii=False))
        return 0
    if not rows:
        print("no model matches" + (" (none is cached)" if args.cached else ""))
        return 0
    width = max(len(r.name) for r in rows)
    cut = lambda text: text if len(text) <= 90 else text[:89] + "…"  # noqa: E731 (--json: all)
    print(f"{'name':<{width}}  {'from':<11}  {'cached':<6}  what")
    for r in rows:
        print(f"{r.name:<{width}}  {r.source:<11}  {'yes' if r.cached else '-':<6}  "
              f"{cut(r.description)}")
    notes = []
    if keras_hub_presets() is None:
        notes.append("keras-hub is not installed: its presets are not listed")
    notes.append("load any name with kbert.load(NAME) or --model NAME; a Hugging Face repo not "
                 "listed here works too (org/name, hf://org/name@revision)")
    for note in notes:
        print(f"\n{note}")
    return 0
