"""What machine a benchmark ran on: every figure in docs/performance.md names it."""

from __future__ import annotations

import os
import platform
import subprocess
import time
from typing import Any


def cpu_model() -> str:
    """The CPU's model name from lscpu (platform.processor() is empty on most Linux systems)."""
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def commit(checkout: str | os.PathLike[str] | None = None) -> str:
    """The short commit of a checkout (this script's by default), "-dirty" when its tracked files differ."""
    where = str(checkout) if checkout is not None else os.path.dirname(os.path.abspath(__file__))
    try:
        out = subprocess.run(["git", "-C", where, "describe", "--always", "--dirty"], capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return out.stdout.strip()


def describe(**extra: Any) -> dict[str, Any]:
    """CPU, cores this process may use, Python, kernel, date and load: the context of a measurement."""
    return {
        "cpu": cpu_model(),
        "cores": len(os.sched_getaffinity(0)),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
        **extra,
    }
