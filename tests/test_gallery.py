"""The presets gallery (docs/gallery.md, docs/gallery/) shows exactly the shipped presets, and is
what docs/make_gallery.py writes from them; no FluidSynth needed to check that."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
GALLERY = ROOT / "docs" / "gallery"
SHIPPED = sorted(path.stem for path in (ROOT / "presets").glob("*.toml"))
OPUS_MAX, PNG_MAX, TOTAL_MAX = 250_000, 60_000, 2_000_000  # bytes: a few hundred KB a preset at most


def load_make_gallery():
    spec = importlib.util.spec_from_file_location("make_gallery", ROOT / "docs" / "make_gallery.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def make_gallery():
    return load_make_gallery()


def test_the_page_has_a_section_for_exactly_the_shipped_presets() -> None:
    headings = re.findall(r"^## (\S+)$", (ROOT / "docs" / "gallery.md").read_text(), flags=re.MULTILINE)
    assert headings == SHIPPED


def test_the_readme_lists_exactly_the_shipped_presets(make_gallery) -> None:
    readme = (ROOT / "README.md").read_text()
    table = readme.split(make_gallery.README_START, 1)[1].split(make_gallery.README_END, 1)[0]
    assert re.findall(r"^\| \[`([^`]+)`\]", table, flags=re.MULTILINE) == SHIPPED


def test_every_shipped_preset_has_its_demo_and_picture_and_nothing_else_is_there() -> None:
    expected = {f"{name}.{kind}" for name in SHIPPED for kind in ("opus", "png")} | {"metrics.json"}
    assert {path.name for path in GALLERY.iterdir()} == expected
    for name in SHIPPED:
        opus = (GALLERY / f"{name}.opus").read_bytes()
        assert opus[:4] == b"OggS" and opus[28:36] == b"OpusHead", f"{name}.opus is not Ogg Opus"
        assert (GALLERY / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_media_stay_small() -> None:
    sizes = {path.name: path.stat().st_size for path in GALLERY.iterdir()}
    for name, size in sizes.items():
        assert size <= (OPUS_MAX if name.endswith(".opus") else PNG_MAX), f"{name}: {size} bytes"
    assert sum(sizes.values()) <= TOTAL_MAX


def test_the_page_and_the_readme_table_are_what_the_script_writes(make_gallery) -> None:
    # A changed "Sounds like" comment, or a preset added or removed, shows here until the script runs again.
    metrics = json.loads((GALLERY / "metrics.json").read_text())
    assert list(metrics) == SHIPPED
    assert (ROOT / "docs" / "gallery.md").read_text() == make_gallery.page(metrics)
    table = make_gallery.index_table(SHIPPED, "docs/gallery.md", "docs/gallery")
    assert f"{make_gallery.README_START}\n{table}\n{make_gallery.README_END}" in (ROOT / "README.md").read_text()


@pytest.mark.parametrize("name", SHIPPED)
def test_every_preset_says_what_it_sounds_like(make_gallery, name: str) -> None:
    line = make_gallery.sounds_like(name)
    assert len(line) > 20 and "#" not in line and "\n" not in line
