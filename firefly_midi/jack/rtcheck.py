"""Proof that a compiled callback is real-time safe, read from its optimised LLVM IR.

numba wraps a cfunc's body in a C-ABI wrapper.  When the body returns an error status, the
wrapper takes the GIL (``numba_gil_ensure``) and prints the exception (``PyErr_WriteUnraisable``):
on JACK's real-time thread that could wait on a Python thread for milliseconds.  The wrapper's
error branch is dead code as long as the body can never fail, which the IR shows: the body's
only return is the success status (``ret i32 0``).  And the body may call nothing but libjack and
LLVM intrinsics: no allocator, no NRT, no CPython, no libc.

The IR is only there for a fresh compile (numba does not keep it in its disk cache), so
``check`` compiles the function again, uncached.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from numba import cfunc
from numba.core.typing.templates import Signature

from firefly_midi.jack import binding

ALLOWED_PREFIXES = ("jack_", "llvm.")
_CALL = re.compile(r'call [^@]*@"?([A-Za-z0-9_.$]+)"?\(')
_DEFINE = re.compile(r'^define [^@\n]*@"?([^"(]+)"?\(.*?^}', re.M | re.S)
_RETURN = re.compile(r"\bret i32\b[^\n]*")


@dataclass(frozen=True)
class Verdict:
    calls: tuple[str, ...]  # every function the body calls
    returns: tuple[str, ...]  # every distinct return instruction in the body
    offenders: tuple[str, ...]  # calls outside ALLOWED_PREFIXES, and returns of anything but success

    @property
    def safe(self) -> bool:
        return not self.offenders


def body_ir(ir: str) -> str:
    """The body's function out of a cfunc's module: the one the ``cfunc.NAME`` C wrapper calls
    (NAME itself); only the body runs on the real-time path while it cannot fail."""
    functions = {match.group(1): match.group(0) for match in _DEFINE.finditer(ir)}
    wrapper = next(name for name in functions if name.startswith("cfunc."))
    return functions[wrapper.removeprefix("cfunc.")]


def inspect(ir: str) -> Verdict:
    """What the body in ``ir`` (a cfunc's ``inspect_llvm()``) calls and returns, and what is not allowed."""
    body = body_ir(ir)
    calls = tuple(sorted(set(_CALL.findall(body))))
    returns = tuple(sorted({match.group(0).strip() for match in _RETURN.finditer(body)}))
    offenders = tuple(name for name in calls if not name.startswith(ALLOWED_PREFIXES))
    offenders += tuple(ret for ret in returns if ret != "ret i32 0")
    return Verdict(calls, returns, offenders)


def check(function: Callable, signature: Signature) -> Verdict:
    """Compile ``function`` (a cfunc's Python body) afresh, as process.py does, and inspect it."""
    binding.load_libjack()
    compiled = cfunc(signature, cache=False, error_model="numpy")(function)
    return inspect(compiled.inspect_llvm())
