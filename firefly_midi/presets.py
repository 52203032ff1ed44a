"""TOML presets: where they are looked up, how they are read and checked.

A preset is a TOML file whose tables hold parameter keys: ``[swarm]`` holds ``swarm.*`` and so on.
Errors name the file, the line and the key, with the allowed range from the parameter table.
"""

from __future__ import annotations

import os
import re
import tempfile
import tomllib
from pathlib import Path
from typing import Any

import platformdirs
import tomli_w

from firefly_midi import params as P

DEFAULT_PRESET = "ermentrout-800"


def shipped_dir() -> Path:
    """The presets that come with firefly-midi: inside the wheel, or presets/ of a source checkout."""
    inside = Path(__file__).parent / "presets"
    return inside if inside.is_dir() else Path(__file__).resolve().parent.parent / "presets"


def user_dir() -> Path:
    return Path(platformdirs.user_config_dir("firefly-midi")) / "presets"


def search_path() -> list[Path]:
    """User presets first, so a user's file of the same name shadows a shipped one."""
    return [user_dir(), shipped_dir()]


def available() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for folder in reversed(search_path()):
        if folder.is_dir():
            found.update({p.stem: p for p in sorted(folder.glob("*.toml"))})
    return dict(sorted(found.items()))


def locate(name_or_path: str) -> Path:
    """A preset by name (searched) or by path; FileNotFoundError lists the names known."""
    path = Path(name_or_path)
    if path.suffix == ".toml" or path.exists():
        if not path.is_file():
            raise FileNotFoundError(f"no preset file {path}")
        return path
    known = available()
    if name_or_path in known:
        return known[name_or_path]
    raise FileNotFoundError(f"no preset named {name_or_path!r}; known presets: {', '.join(known) or 'none'}")


def load(name_or_path: str) -> dict[str, Any]:
    """Read a preset into flat, checked ``{key: value}`` (only the keys it sets)."""
    path = locate(name_or_path)
    return parse(read_text(path), str(path))


def read_text(path: Path) -> str:
    """A preset or state file's text; a file that is not UTF-8 is a ParamError naming it."""
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise P.ParamError(f"not UTF-8 text ({exc.reason} at byte {exc.start})", source=str(path)) from None


def parse(text: str, source: str = "<preset>") -> dict[str, Any]:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        match = re.search(r"line (\d+)", str(exc))
        raise P.ParamError(f"not valid TOML: {exc}", source=source, line=int(match.group(1)) if match else None) from None
    values: dict[str, Any] = {}
    for key, value in _flatten(data):
        try:
            values[key] = P.check(key, value)
        except P.ParamError as exc:
            raise exc.located(source, _line_of(text, key)) from None
    try:
        P.check_consistency({**P.defaults(), **values})
    except P.ParamError as exc:
        raise exc.located(source, _line_of(text, exc.key) if exc.key else None) from None
    return values


def _flatten(data: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    items = []
    for name, value in data.items():
        key = f"{prefix}{name}"
        if isinstance(value, dict):
            items.extend(_flatten(value, key + "."))
        else:
            items.append((key, value))
    return items


def _line_of(text: str, key: str) -> int | None:
    """The line that sets ``key`` (as ``name =`` under its table, or dotted), for error messages."""
    table, _, name = key.rpartition(".")
    current = ""
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        header = re.match(r"^\[([^\[\]]+)\]", stripped)
        if header:
            current = header.group(1).strip()
            continue
        assigned = re.match(r"^([\w.\-\"]+)\s*=", stripped)
        if not assigned:
            continue
        full = ".".join(p for p in (current, assigned.group(1).replace('"', "")) if p)
        if full == key or (current == table and assigned.group(1) == name):
            return number
    for number, line in enumerate(text.splitlines(), start=1):  # an array of tables: [[automation]], [[learn]]
        if line.strip().startswith(f"[[{key}]]"):
            return number
    return None


def resolve(preset: str | None, assignments: list[str] | None = None, seed: int | None = None) -> dict[str, Any]:
    """Defaults, then the preset, then ``--set`` assignments, then ``--seed``: checked as a whole."""
    values = P.defaults()
    values.update(load(preset or DEFAULT_PRESET))
    for text in assignments or []:
        key, value = P.parse_assignment(text)
        values[key] = value
    if seed is not None:
        values["swarm.seed"] = P.check("swarm.seed", seed)
    P.check_consistency(values)
    return values


# ----------------------------------------------------------------------------------------------- writing
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def dumps(values: dict[str, Any], comment: str = "", only: set[str] | None = None) -> str:
    """A preset file for ``values`` (every key, or those in ``only``), with ``comment`` on top."""
    tables: dict[str, Any] = {}
    for key, value in values.items():
        if only is not None and key not in only:
            continue
        if P.PARAMS[key].kind in ("ramps", "bindings"):  # arrays of tables: [[automation]], [[learn]]
            if value:
                tables[key] = [item.as_table() for item in value]
            continue
        table, _, name = key.partition(".")
        tables.setdefault(table, {})[name] = list(value) if isinstance(value, tuple) else value
    header = "".join(f"# {line}\n".replace("# \n", "#\n") for line in comment.splitlines())
    return header + tomli_w.dumps(tables)


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that a reader, or a crash, never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, _file_mode(path))  # mkstemp makes 0600: a preset is as readable as any file the user writes
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _file_mode(path: Path) -> int:
    """The mode the file has, or the one a new file gets under the user's umask."""
    try:
        return path.stat().st_mode & 0o777
    except OSError:
        mask = os.umask(0o022)
        os.umask(mask)
        return 0o666 & ~mask


def save(name: str, values: dict[str, Any], comment: str = "") -> Path:
    """Write ``values`` as the user preset ``name``; the name is a plain file stem."""
    if not NAME.fullmatch(name):
        raise P.ParamError(f"a preset name is letters, digits, '-', '_' or '.', up to 64 of them; got {name!r}")
    path = user_dir() / f"{name}.toml"
    text = dumps(values, comment)
    parse(text, str(path))  # never write a preset we could not read back
    write_atomic(path, text)
    return path


# ----------------------------------------------------------------------------------- the daemon's state
def state_file() -> Path:
    return Path(platformdirs.user_state_dir("firefly-midi")) / "state.toml"


def save_state(path: Path, preset: str, values: dict[str, Any], connections: list[list[str]] | None = None) -> None:
    """The preset playing, the changes made to it since and the ports' connections, atomically."""
    try:
        base = resolve(preset) if preset else P.defaults()
    except (P.ParamError, FileNotFoundError):
        preset, base = "", P.defaults()
    tweaks = {k for k, v in values.items() if v != base.get(k)}
    head = tomli_w.dumps({"preset": preset, "connections": connections or []})
    write_atomic(path, "# firefly-midi: what the daemon was playing; it resumes this on start\n" + head + dumps(values, only=tweaks))


def load_state(path: Path) -> tuple[str, dict[str, Any]]:
    """(preset, values) of a saved state; ParamError/FileNotFoundError when it cannot be used."""
    text = read_text(path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise P.ParamError(f"not valid TOML: {exc}", source=str(path)) from None
    preset = data.pop("preset", "")
    data.pop("connections", None)  # the ports' business: load_connections
    if not isinstance(preset, str):
        raise P.ParamError("preset must be a preset name", source=str(path))
    values = resolve(preset or None)
    values.update(parse(tomli_w.dumps(data), str(path)))
    P.check_consistency(values)
    return preset or DEFAULT_PRESET, values


def load_connections(path: Path) -> list[list[str]]:
    """The port connections a saved state kept, as [our port, other port] pairs ([] if none or unreadable)."""
    try:
        pairs = tomllib.loads(read_text(path)).get("connections", [])
    except (OSError, P.ParamError, tomllib.TOMLDecodeError):
        return []
    ok = isinstance(pairs, list) and all(isinstance(p, list) and len(p) == 2 and all(isinstance(x, str) for x in p) for p in pairs)
    return pairs if ok else []
