"""The kernels' numba cache: a folder keyed on the kernels' sources, toolchain and CPU, wherever installed."""

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from firefly_midi.swarm.kernels import cache


def test_the_key_changes_with_any_kernel_module_and_not_with_the_install_location(tmp_path):
    here, there = tmp_path / "a" / "kernels", tmp_path / "b" / "kernels"
    shutil.copytree(cache.PACKAGE_DIR, here, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(here, there)
    assert cache.source_key(here) == cache.source_key(there) == cache.source_key(cache.PACKAGE_DIR)
    for module in ("prc.py", "intrinsics.py", "offline.py"):  # a leaf that others inline, the bottom, the top
        edited = tmp_path / module / "kernels"
        shutil.copytree(here, edited)
        path = edited / module
        path.write_text(path.read_text().replace("return", "return  ", 1))
        assert cache.source_key(edited) != cache.source_key(here), module
    assert cache.source_key(here).startswith(cache.host_cpu()[0] + "-")


def test_the_folder_follows_the_environment_variable(tmp_path, monkeypatch):
    monkeypatch.setenv(cache.ENV_VAR, str(tmp_path))
    assert cache.cache_root() == tmp_path
    monkeypatch.delenv(cache.ENV_VAR)
    assert cache.cache_root() != tmp_path and "firefly-midi" in str(cache.cache_root())


def test_folders_unused_for_a_month_are_pruned_and_the_rest_kept(tmp_path):
    root = tmp_path / "numba"
    month_ago = time.time() - 31 * 86400
    names = ("stale-stamped", "stale-unstamped", "recent-stamped", "mine")
    for name in names:
        (root / name).mkdir(parents=True)
        (root / name / "x.nbi").write_bytes(b"code")
    for name in ("stale-stamped", "recent-stamped"):
        (root / name / cache.STAMP).touch()
    os.utime(root / "stale-stamped" / cache.STAMP, (month_ago, month_ago))
    os.utime(root / "stale-unstamped", (month_ago, month_ago))
    os.utime(root / "mine", (month_ago, month_ago))  # the folder in use is never removed
    (root / "notes.txt").write_text("not a key folder")
    assert sorted(cache.prune_unused(root, keep="mine")) == ["stale-stamped", "stale-unstamped"]
    assert sorted(p.name for p in root.iterdir()) == ["mine", "notes.txt", "recent-stamped"]
    assert cache.prune_unused(root, keep="mine") == []


_PROBE = """
import numpy as np
from firefly_midi.swarm import kernels as K
from firefly_midi.swarm.kernels import cache
K.fill_uniform(np.zeros(4), np.uint64(1), np.uint64(0))
print(cache.cache_dir(), sum(K.fill_uniform.stats.cache_hits.values()))
"""


def _probe(root: Path) -> tuple[Path, int]:
    """(the cache folder, cache hits) of a new process that calls one kernel; it may compile for minutes."""
    env = dict(os.environ, **{cache.ENV_VAR: str(root)})
    env.pop("NUMBA_CACHE_DIR", None)
    done = subprocess.run([sys.executable, "-c", _PROBE], env=env, capture_output=True, text=True, timeout=240, check=True)
    folder, hits = done.stdout.split()
    return Path(folder), int(hits)


def test_a_fresh_process_compiles_into_the_keyed_folder_and_the_next_one_loads_from_it(tmp_path):
    folder, hits = _probe(tmp_path)
    assert folder == tmp_path / "numba" / cache.source_key()
    assert hits == 0
    assert (folder / cache.STAMP).is_file()
    assert list(folder.glob("rng.fill_uniform-*.nbi")) and list(folder.glob("rng.fill_uniform-*.nbc"))
    assert _probe(tmp_path) == (folder, 1)
