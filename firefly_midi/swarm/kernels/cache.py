"""Where numba keeps the kernels' machine code: the user cache folder, in a subfolder keyed on everything
that shapes that code.

numba's own locators keep a function's cache beside its source (or under ``NUMBA_CACHE_DIR``, in a
subfolder named after the source's path) and check only the source file of the function itself.  A
kernel inlines kernels from the other modules of this package, so an edit there would leave a stale
kernel to load; and a new venv or checkout would compile everything again.  Here the folder is
``<user cache>/numba/<key>``, the key a hash of every module of this package, the numba, llvmlite,
numpy and Python versions, and the host CPU's name and features: a stale or foreign kernel is never
looked for, and the same sources on the same machine share one cache wherever they are installed.

Every upgrade or edit makes a new key, so old folders would pile up (tens of MB each).  A process
stamps the folder it uses (``last-used``); the first use in a process removes the sibling folders no
process has used for ``UNUSED_DAYS``, so checkouts used side by side keep theirs.

``FIREFLY_MIDI_CACHE_DIR`` replaces the user cache folder (tests, a fresh-start benchmark).
"""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import llvmlite
import numba
import numpy as np
import platformdirs
from llvmlite import binding as llvm
from numba.core import caching

ENV_VAR = "FIREFLY_MIDI_CACHE_DIR"
PACKAGE_DIR = Path(__file__).resolve().parent
# The folders whose compiled functions are cached by key: the swarm's kernels, and the native JACK
# client's callbacks (they inline clock, parse, rings and layout: numba's own stamp, the defining
# file's, missed an edit to those and loaded a stale callback after a `git pull`).
KEYED_DIRS = (PACKAGE_DIR, PACKAGE_DIR.parents[1] / "jack")
UNUSED_DAYS = 30.0
STAMP = "last-used"


def cache_root() -> Path:
    """The folder of firefly-midi's caches: ``$FIREFLY_MIDI_CACHE_DIR`` or the user cache folder."""
    return Path(os.environ.get(ENV_VAR) or platformdirs.user_cache_dir("firefly-midi"))


def host_cpu() -> tuple[str, str]:
    """(name, features) of the CPU numba compiles for: the host's, unless numba is told otherwise."""
    name = numba.config.CPU_NAME or llvm.get_host_cpu_name()
    features = numba.config.CPU_FEATURES or llvm.get_host_cpu_features().flatten()
    return name, features


def source_key(package_dir: Path = PACKAGE_DIR) -> str:
    """``<cpu>-<hash>``: the hash of every module in ``package_dir``, the toolchain's versions and the CPU."""
    digest = hashlib.sha256()
    for path in sorted(package_dir.glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    name, features = host_cpu()
    for part in (sys.version, numba.__version__, llvmlite.__version__, np.__version__, name, features):
        digest.update(part.encode() + b"\0")
    return f"{name}-{digest.hexdigest()[:20]}"


def cache_dir() -> Path:
    """This process's kernel cache folder, ``<cache root>/numba/<source key>`` (fixed at first use);
    stamped as used, and the folders unused for ``UNUSED_DAYS`` beside it removed."""
    return keyed_dir(PACKAGE_DIR)


@functools.cache
def keyed_dir(package_dir: Path) -> Path:
    """The cache folder of the compiled functions defined in ``package_dir`` (one of ``KEYED_DIRS``),
    keyed on that folder's modules: ``<cache root>/numba/<source key>``, the kernels' unprefixed."""
    prefix = "" if package_dir == PACKAGE_DIR else f"{package_dir.name}-"
    folder = cache_root() / "numba" / (prefix + source_key(package_dir))
    try:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / STAMP).touch()
        prune_unused(folder.parent, keep=folder.name)
    except OSError:
        pass  # an unwritable cache: the locator falls back to a private folder
    return folder


def prune_unused(root: Path, keep: str, days: float = UNUSED_DAYS) -> list[str]:
    """Remove the key folders under ``root`` (but ``keep``) whose stamp, or the folder itself when
    unstamped, is older than ``days``; returns their names.  Other files are left alone."""
    cutoff = time.time() - days * 86400.0
    removed = []
    for folder in root.iterdir():
        if folder.name == keep or not folder.is_dir():
            continue
        stamp = folder / STAMP
        try:
            used = (stamp if stamp.exists() else folder).stat().st_mtime
        except OSError:
            continue  # removed meanwhile by another process
        if used < cutoff:
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder.name)
    return removed


class KernelCacheLocator(caching._CacheLocator):
    """numba's locator for the functions defined in this package: the keyed folder, stamped with its key.

    The folder's key already covers the sources, so the stamp numba checks is the key itself, not
    the defining file's own hash (which would miss edits to the kernels it inlines).
    """

    def __init__(self, py_func, path: Path):
        self._lineno = py_func.__code__.co_firstlineno
        self._path = path

    def get_cache_path(self) -> str:
        return str(self._path)

    def get_source_stamp(self) -> str:
        return self._path.name

    def get_disambiguator(self) -> str:
        return str(self._lineno)

    @classmethod
    def from_function(cls, py_func, py_file):
        folder = Path(py_file).resolve().parent
        if folder not in KEYED_DIRS:
            return None  # not ours to key: numba's own locators decide
        locator = cls(py_func, keyed_dir(folder))
        try:
            locator.ensure_cache_path()
        except OSError:  # no writable cache folder: a private one for this process, never a stale one
            locator = cls(py_func, _private_dir() / keyed_dir(folder).name)
        return locator


@functools.cache
def _private_dir() -> Path:
    return Path(tempfile.mkdtemp(prefix="firefly-midi-numba-"))


def use_keyed_cache() -> None:
    """Put KernelCacheLocator first in numba's locator list (once); it declines every other function.

    Must run before the kernels are decorated: numba picks a function's locator when ``cache=True``
    is applied.
    """
    impl = getattr(caching, "CacheImpl", None) or caching._CacheImpl  # _CacheImpl in older numba
    if KernelCacheLocator not in impl._locator_classes:
        impl._locator_classes.insert(0, KernelCacheLocator)
