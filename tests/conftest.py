"""What every test shares: Hypothesis profiles, the session's own folders, markers and time limits."""

from __future__ import annotations

import os
import shutil
import tempfile

import pytest
from hypothesis import settings

settings.register_profile("ci", max_examples=60, deadline=None, derandomize=True)
settings.register_profile("dev", max_examples=40, deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")

OWN_FOLDERS = ("XDG_CONFIG_HOME", "XDG_STATE_HOME", "XDG_RUNTIME_DIR")
# An integration test starts a JACK server and processes, which compile nothing but wait for each
# other on a loaded machine; a unit test gets the ini's limit (pyproject.toml, [tool.pytest.ini_options]).
INTEGRATION_TIMEOUT_S = 600

_saved: dict[str, str | None] = {}
_session_folder: str | None = None


def pytest_configure(config: pytest.Config) -> None:
    """Presets, state and sockets go to a folder of the session, never the user's, from before
    collection on: a parametrize list built from ``presets.available()`` must not see the user's own."""
    global _session_folder
    if _session_folder is not None:
        return
    _session_folder = tempfile.mkdtemp(prefix="firefly-tests-")
    for name in OWN_FOLDERS:
        _saved[name] = os.environ.get(name)
        folder = os.path.join(_session_folder, name.lower())
        os.makedirs(folder, mode=0o700)
        os.environ[name] = folder


def pytest_unconfigure(config: pytest.Config) -> None:
    global _session_folder
    if _session_folder is None:
        return
    for name, value in _saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    shutil.rmtree(_session_folder, ignore_errors=True)
    _session_folder = None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test that runs on a private JACK server ``jack``, and give the integration tests
    their longer time limit, so that ``-m "not slow and not jack"`` is the everyday run."""
    for item in items:
        if "jack_server" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.jack)
        if "integration" in item.path.parts and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(INTEGRATION_TIMEOUT_S))
