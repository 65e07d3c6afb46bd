#!/usr/bin/env python3
"""Rebuild kbert/corpora/austen/*.txt.gz from the Debian package r-cran-janeaustenr.

Steps (see kbert/corpora/PROVENANCE.md): `apt-get download r-cran-janeaustenr` (run
`apt-get update` first on a fresh machine), `dpkg -x` it, read the R lazy-load database
`janeaustenr/data/Rdata.rdb/.rdx` with the `rdata` package (pip-installed into a private
directory, ~/.cache/kbert/rdata-pylib, when missing), join each novel's lines with "\\n",
check the sha256 of every text against PROVENANCE.md, and only then write the gzip files.

    python scripts/rebuild_austen.py                  # check against the shipped files
    python scripts/rebuild_austen.py --write          # also overwrite kbert/corpora/austen/
    python scripts/rebuild_austen.py --deb FILE.deb   # use an already downloaded package

The .rdx is a gzip file holding an R serialisation whose
`variables` maps each name to (offset, length) in the .rdb; each .rdb entry is again a 4-byte
big-endian length and a zlib stream of one R object: a character vector, one printed line each.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import importlib
import os
import re
import subprocess
import sys
import tempfile
import warnings
import zlib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS_DIR = os.path.join(ROOT, "kbert", "corpora", "austen")
PROVENANCE = os.path.join(ROOT, "kbert", "corpora", "PROVENANCE.md")
PACKAGE = "r-cran-janeaustenr"
DATA = "usr/lib/R/site-library/janeaustenr/data/Rdata"
# R object name -> file name
NOVELS = {"emma": "emma", "mansfieldpark": "mansfieldpark", "northangerabbey": "northangerabbey",
          "persuasion": "persuasion", "prideprejudice": "prideprejudice",
          "sensesensibility": "sensesensibility"}


def expected_hashes() -> dict[str, str]:
    with open(PROVENANCE, encoding="utf-8") as f:
        text = f.read()
    found = dict((name, digest) for digest, name in
                 re.findall(r"^([0-9a-f]{64})\s+(\w+)\.txt$", text, flags=re.M))
    if set(found) != set(NOVELS.values()):
        sys.exit(f"{PROVENANCE}: expected sha256 lines for {sorted(NOVELS.values())}, "
                 f"found {sorted(found)}")
    return found


def import_rdata():
    try:
        # deferred: rdata is installed on demand, only to rebuild the corpus
        import rdata  # noqa: F401, PLC0415
    except ImportError:
        # a private directory, reused by later runs, so the project's environment is untouched
        target = os.path.join(os.path.expanduser("~"), ".cache", "kbert", "rdata-pylib")
        sys.path.append(target)  # appended: the system numpy/pandas stay first
        try:
            # deferred: rdata is installed on demand, only to rebuild the corpus
            import rdata  # noqa: PLC0415
            return rdata
        except ImportError:
            pass
        print(f"pip install rdata (into {target})")
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--target", target,
                        "rdata"], check=True)
        importlib.invalidate_caches()
    # deferred: rdata is installed on demand, only to rebuild the corpus
    import rdata  # noqa: PLC0415
    return rdata


def download_package(workdir: str) -> str:
    print(f"apt-get download {PACKAGE}")
    subprocess.run(["apt-get", "download", PACKAGE], cwd=workdir, check=True)
    debs = [f for f in os.listdir(workdir) if f.startswith(PACKAGE) and f.endswith(".deb")]
    if len(debs) != 1:
        sys.exit(f"expected one {PACKAGE} .deb in {workdir}, found {debs}")
    return os.path.join(workdir, debs[0])


def _inflate(blob: bytes) -> bytes:
    return zlib.decompress(blob[4:])  # 4-byte big-endian uncompressed length, then zlib


def read_novels(deb: str, workdir: str) -> dict[str, str]:
    rdata = import_rdata()
    warnings.filterwarnings("ignore", message="Unknown file type")  # lazy-load entries are bare
    root = os.path.join(workdir, "pkg")
    subprocess.run(["dpkg", "-x", deb, root], check=True)
    with gzip.open(os.path.join(root, DATA + ".rdx"), "rb") as f:
        index = rdata.conversion.convert(rdata.parser.parse_data(f.read()))
    with open(os.path.join(root, DATA + ".rdb"), "rb") as f:
        database = f.read()
    novels = {}
    for name, file_name in NOVELS.items():
        offset, length = (int(v) for v in index["variables"][name])
        obj = rdata.conversion.convert(
            rdata.parser.parse_data(_inflate(database[offset:offset + length])))
        lines = [str(line) for line in (obj.tolist() if hasattr(obj, "tolist") else obj)]
        novels[file_name] = "\n".join(lines)
    return novels


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deb", help="a downloaded r-cran-janeaustenr .deb (default: download)")
    parser.add_argument("--write", action="store_true",
                        help="overwrite kbert/corpora/austen/*.txt.gz (after the sha256 check)")
    args = parser.parse_args(argv)
    hashes = expected_hashes()
    with tempfile.TemporaryDirectory() as workdir:
        deb = os.path.abspath(args.deb) if args.deb else download_package(workdir)
        novels = read_novels(deb, workdir)
    bad = 0
    for name, text in sorted(novels.items()):
        digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
        ok = digest == hashes[name]
        bad += not ok
        shipped = os.path.join(CORPUS_DIR, f"{name}.txt.gz")
        same = os.path.isfile(shipped) and gzip.open(shipped, "rt", encoding="utf-8").read() == text
        print(f"{name}.txt: {len(text):,} chars sha256 {'OK' if ok else 'MISMATCH ' + digest}"
              f"{'' if same else ' (differs from the shipped file)'}")
    if bad:
        print(f"{bad} text(s) do not match PROVENANCE.md; nothing written", file=sys.stderr)
        return 1
    if args.write:
        for name, text in novels.items():
            path = os.path.join(CORPUS_DIR, f"{name}.txt.gz")
            with open(path, "wb") as raw, gzip.GzipFile(filename="", fileobj=raw, mode="wb",
                                                        mtime=0) as f:
                f.write(text.encode("utf-8"))
            print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
