"""Regenerate the presets gallery: docs/gallery.md, and docs/gallery/NAME.opus and NAME.png for every
shipped preset (presets/*.toml).

    .venv/bin/python docs/make_gallery.py              # every preset, 20 s each
    .venv/bin/python docs/make_gallery.py --only entrain --seconds 15

For each preset, through the same commands a user types: ``firefly-midi render`` writes what the
swarm plays to a MIDI file, FluidSynth plays that file with the General MIDI soundfont
(fluid-soundfont-gm), the sound is peak-normalised and encoded as Ogg Opus; ``firefly-midi simulate
--raster`` draws the flash raster and r(t) over the same seconds, and its metrics go in the page.
The presets send no program change, so every demo is GM program 1, the acoustic grand piano.
``entrain`` follows a pulse: it is rendered with a click track as its input (``render --input``),
and the click is mixed into its demo on the drum channel.

Same presets, seconds, seeds and tool versions: the same files.  Run as root, it installs the Debian
packages it needs when they are missing (fluidsynth, fluid-soundfont-gm, opus-tools), as .ci/run
installs jackd2.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import wave
from pathlib import Path

import mido
import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
PRESETS = ROOT / "presets"
GALLERY = ROOT / "docs" / "gallery"
PAGE = ROOT / "docs" / "gallery.md"
SOUNDFONT = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
PACKAGES = {"fluidsynth": "fluidsynth", "opusenc": "opus-tools", SOUNDFONT: "fluid-soundfont-gm"}
RATE = 48_000  # Opus's own rate: no resampling on the way in
BITRATE_KBPS = 40
PEAK = 10 ** (-1 / 20)  # -1 dBFS
COLOURS = 32  # the raster's palette: a few colours draw it exactly, at a third of the bytes
CLICK = (9, 37, 100)  # the entrain demo's click: drum channel, side stick, velocity
CLICK_BPM, CLICK_FROM_S, CLICK_UNTIL_S = 100.0, 2.0, 14.0


def shipped() -> list[str]:
    """The shipped presets' names, sorted: what the gallery must show, no more, no less."""
    return sorted(path.stem for path in PRESETS.glob("*.toml"))


def sounds_like(name: str) -> str:
    """The preset's own ``# Sounds like:`` comment, joined into one line."""
    lines, inside = [], False
    for line in (PRESETS / f"{name}.toml").read_text().splitlines():
        if not line.startswith("#"):
            break
        text = line.lstrip("#").strip()
        inside = inside or text.startswith("Sounds like:")
        if inside:
            lines.append(text)
    if not lines:
        raise SystemExit(f"make_gallery: presets/{name}.toml has no '# Sounds like:' comment")
    return " ".join(lines).removeprefix("Sounds like:").strip()


def ensure_tools() -> None:
    """Install what is missing when root (apt-get update first); otherwise say what to install."""
    missing = sorted({package for need, package in PACKAGES.items() if not _present(need)})
    if missing and os.geteuid() == 0 and shutil.which("apt-get"):
        subprocess.run(["apt-get", "update", "-qq"], check=True)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "install", "-y", "-qq", *missing], check=True, env=env, stdout=subprocess.DEVNULL)
        missing = sorted({package for need, package in PACKAGES.items() if not _present(need)})
    if missing:
        raise SystemExit(f"make_gallery: needs {', '.join(missing)} (Debian: sudo apt-get install {' '.join(missing)})")


def _present(need: str | Path) -> bool:
    return need.is_file() if isinstance(need, Path) else shutil.which(need) is not None


def firefly(work: Path, *args: str) -> str:
    """Run ``firefly-midi`` as a user would, but blind to the user's own presets (which shadow shipped ones)."""
    env = {**os.environ, "XDG_CONFIG_HOME": str(work / "config"), "XDG_STATE_HOME": str(work / "state")}
    done = subprocess.run([sys.executable, "-m", "firefly_midi", *args], cwd=work, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"make_gallery: firefly-midi {' '.join(args)} failed ({done.returncode}):\n{done.stderr}")
    return done.stdout


def click_track(path: Path, seconds: float) -> list[float]:
    """A steady click as a MIDI file (the swarm's input); returns the click times in seconds."""
    times = list(np.arange(CLICK_FROM_S, min(CLICK_UNTIL_S, seconds), 60.0 / CLICK_BPM))
    channel, note, velocity = CLICK
    track, previous = mido.MidiTrack(), 0
    beat_ticks = 480  # at mido's default 120 BPM: one beat is 0.5 s
    for at in times:
        tick = round(at * 2 * beat_ticks)
        track.append(mido.Message("note_on", channel=channel, note=note, velocity=velocity, time=tick - previous))
        track.append(mido.Message("note_off", channel=channel, note=note, time=beat_ticks // 8))
        previous = tick + beat_ticks // 8
    midi = mido.MidiFile(type=0, ticks_per_beat=beat_ticks)
    midi.tracks.append(track)
    midi.save(path)
    return times


def click_hits(times: list[float]) -> list[tuple[float, list[int]]]:
    """The click as (seconds, bytes): each stroke 60 ms long."""
    channel, note, velocity = CLICK
    hits = [(at, [0x90 | channel, note, velocity]) for at in times] + [(at + 0.06, [0x80 | channel, note, 64]) for at in times]
    return sorted(hits, key=lambda hit: hit[0])


def drum_track(path: Path, seconds: float) -> list[tuple[float, list[int]]]:
    """The follow-drummer demo's drummer (a groove with a fill every fourth bar, 100 BPM speeding up to
    112, a stop and a start again) as a MIDI file: the swarm's input.  Returns its messages."""
    from firefly_midi.testing.drummers import play  # the benchmark's and the tests' drummer

    stop = (0.6 * seconds, 0.6 * seconds + 2.5)
    hits = play("demo", lambda t: 100.0 + 12.0 * min(t / stop[0], 1.0), seconds, sigma_ms=8.0, fill_every=4, stop=stop).hits
    track, previous = mido.MidiTrack(), 0
    ticks_per_s = 960  # at mido's default 120 BPM with 480 ticks a beat
    for at, message in hits:
        tick = round(at * ticks_per_s)
        track.append(mido.Message.from_bytes(message, time=tick - previous))
        previous = tick
    midi = mido.MidiFile(type=0, ticks_per_beat=480)
    midi.tracks.append(track)
    midi.save(path)
    return hits


def mix_input(rendered: Path, hits: list[tuple[float, list[int]]]) -> None:
    """Add the input (a click, a drummer) to the rendered file as a second track, on the render's own tick grid."""
    midi = mido.MidiFile(rendered)
    tempo = next(m.tempo for m in midi.tracks[0] if m.type == "set_tempo")
    ticks_per_s = midi.ticks_per_beat * 1_000_000 / tempo
    track, previous = mido.MidiTrack(), 0
    for at, message in hits:
        tick = round(at * ticks_per_s)
        track.append(mido.Message.from_bytes(message, time=tick - previous))
        previous = tick
    merged = mido.MidiFile(type=1, ticks_per_beat=midi.ticks_per_beat)
    merged.tracks.extend([midi.tracks[0], track])
    merged.save(rendered)


def synthesize(midi: Path, opus: Path, work: Path, title: str) -> None:
    """MIDI -> FluidSynth (float) -> peak-normalised 16-bit WAV -> Ogg Opus."""
    raw = work / "audio.raw"
    fluid = ["fluidsynth", "-q", "-n", "-i", "-T", "raw", "-O", "float", "-r", str(RATE), "-g", "0.5", "-F", str(raw)]
    subprocess.run([*fluid, str(SOUNDFONT), str(midi)], check=True, capture_output=True)
    audio = np.fromfile(raw, dtype="<f4")
    audio *= PEAK / max(float(np.abs(audio).max()), 1e-9)
    pcm = work / "audio.wav"
    with wave.open(str(pcm), "wb") as out:
        out.setnchannels(2)
        out.setsampwidth(2)
        out.setframerate(RATE)
        out.writeframes(np.round(audio * 32767).astype("<i2").tobytes())
    encode = ["opusenc", "--quiet", "--bitrate", str(BITRATE_KBPS), "--serial", "1", "--title", title, "--artist", "firefly-midi"]
    subprocess.run([*encode, str(pcm), str(opus)], check=True)


def shrink_png(path: Path) -> None:
    """Matplotlib's RGBA raster as a small palette PNG (same picture, a third of the bytes)."""
    with Image.open(path) as image:
        small = image.convert("RGB").quantize(COLOURS, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    small.save(path, optimize=True)


def make_one(name: str, seconds: float, seed: int | None) -> dict:
    """Render, synthesize and draw one preset; returns its simulate metrics."""
    seed_args = ["--seed", str(seed)] if seed is not None else []
    with tempfile.TemporaryDirectory(prefix=f"gallery-{name}-") as folder:
        work = Path(folder)
        midi = work / f"{name}.mid"
        render = ["render", "--preset", name, "--seconds", f"{seconds:g}", *seed_args, "-o", str(midi)]
        heard = work / "input.mid"
        if name == "entrain":
            hits = click_hits(click_track(heard, seconds))
        else:
            hits = drum_track(heard, seconds) if name == "follow-drummer" else []
        firefly(work, *render, *(["--input", str(heard)] if hits else []))
        if hits:
            mix_input(midi, hits)
        synthesize(midi, GALLERY / f"{name}.opus", work, f"firefly-midi preset {name}")
        picture = GALLERY / f"{name}.png"
        simulate = ["simulate", "--preset", name, "--seconds", f"{seconds:g}", *seed_args, "--json", "--raster", str(picture)]
        metrics = json.loads(firefly(work, *simulate))
        shrink_png(picture)
    return metrics


def describe(metrics: dict) -> str:
    """The numbers a musician choosing a preset wants: how many, how fast, how together."""
    sync = metrics.get("sync_time_s")
    locked = f", locked (r ≥ 0.95) from {sync:.1f} s" if sync is not None else ""
    return (
        f"{metrics['n']} fireflies ({metrics['model']}), seed {metrics['seed']}: {metrics['tempo_bpm']:.0f} flashes a minute each, "
        f"r = {metrics['order_parameter']:.2f} at the end{locked}"
    )


def index_table(names: list[str], page_link: str, media: str) -> str:
    """One row a preset: its name (linking to its section of ``page_link``), what it sounds like, its demo."""
    rows = ["| preset | sounds like | demo |", "|---|---|---|"]
    for name in names:
        rows.append(f"| [`{name}`]({page_link}#{name}) | {sounds_like(name)} | [▶ listen]({media}/{name}.opus) |")
    return "\n".join(rows)


def page(metrics: dict[str, dict]) -> str:
    """docs/gallery.md: the index, then a section a preset with its demo, numbers and raster."""
    names = shipped()
    head = f"""# Presets gallery

Every shipped preset from a fresh start: what it plays, rendered offline (`firefly-midi render`) and
played by FluidSynth's General MIDI piano (the presets send no program change, so your synth's first
patch plays them), and its flash raster (one dot a flash, firefly id against time) above the order
parameter r(t) (1 = all in phase), from `firefly-midi simulate --raster`, which gives the numbers too.
`entrain` follows a pulse: its demo feeds it a {CLICK_BPM:g} BPM side stick from {CLICK_FROM_S:g} to
{CLICK_UNTIL_S:g} s (mixed into the audio); its raster and numbers show it alone. `follow-drummer`
follows a drummer: its demo feeds it a rock groove (100 BPM speeding up to 112, a fill every fourth
bar, a short stop), mixed in on the drum channel; its raster and numbers show it alone.

Play one live with `firefly-midi run --preset NAME`. Regenerate this page and docs/gallery/ with
`.venv/bin/python docs/make_gallery.py` (on Debian, as root, it installs fluidsynth,
fluid-soundfont-gm and opus-tools first).

{index_table(names, "", "gallery")}
"""
    sections = [
        f"""## {name}

Sounds like {sounds_like(name)}

[▶ listen](gallery/{name}.opus) (Ogg Opus, {metrics[name]["seconds"]:g} s) · {describe(metrics[name])}

![{name}: flash raster and r(t)](gallery/{name}.png)
"""
        for name in names
    ]
    return head + "\n" + "\n".join(sections)


README_START, README_END = "<!-- gallery: made by docs/make_gallery.py -->", "<!-- gallery end -->"


def update_readme(readme: Path) -> None:
    """Replace the README's gallery table (between its markers), if it has them."""
    text = readme.read_text()
    if README_START not in text:
        return
    before, rest = text.split(README_START, 1)
    after = rest.split(README_END, 1)[1]
    table = index_table(shipped(), "docs/gallery.md", "docs/gallery")
    readme.write_text(f"{before}{README_START}\n{table}\n{README_END}{after}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each demo and raster (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=None, help="swarm seed for every preset (default: each preset's own)")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="redo these presets only; the page keeps the others")
    args = parser.parse_args(argv)
    names = args.only or shipped()
    unknown = sorted(set(names) - set(shipped()))
    if unknown:
        parser.error(f"no shipped preset {', '.join(unknown)}; shipped: {', '.join(shipped())}")
    ensure_tools()
    GALLERY.mkdir(parents=True, exist_ok=True)
    store = GALLERY / "metrics.json"
    metrics = json.loads(store.read_text()) if store.is_file() else {}
    for name in names:
        print(f"make_gallery: {name}", file=sys.stderr, flush=True)
        found = make_one(name, args.seconds, args.seed)
        metrics[name] = {key: found[key] for key in ("n", "model", "seed", "seconds", "tempo_bpm", "order_parameter", "sync_time_s")}
    missing = sorted(set(shipped()) - set(metrics))
    if missing:
        raise SystemExit(f"make_gallery: no demo yet for {', '.join(missing)}; run it without --only")
    metrics = {name: metrics[name] for name in shipped()}  # a preset no longer shipped leaves the gallery
    for leftover in GALLERY.iterdir():
        if leftover.stem not in metrics and leftover != store:
            leftover.unlink()
    store.write_text(json.dumps(metrics, indent=1, sort_keys=True) + "\n")
    PAGE.write_text(page(metrics))
    update_readme(ROOT / "README.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
