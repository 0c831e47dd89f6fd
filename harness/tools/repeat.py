"""In-process repetition, regrtest `-R` style: run a callable again and again, count what stays.

This is the check for an ordinary test body (the `no_leaks` marker), where
no interpreter is created or ended: the same process runs the body
`warmup + repeats` times and, after each run, cleans the caches the
standard library fills on purpose and reads the counters:

- `refs`: `sys.gettotalrefcount()`, debug builds only (release builds do
  not count references; every refcount-based leak tool needs Py_DEBUG);
- `blocks`: `sys.getallocatedblocks()`, the memory blocks the Python
  allocators (pymalloc) hold, on every build;
- `native_bytes`: glibc's `mallinfo2()` in-use bytes (plain `malloc` by
  extensions), reported only, since the C allocator keeps freed memory;
- `fds`: open file descriptors (Linux `/proc/self/fd`).

On 3.12+, strings a body interns stay interned (immortal) for the life of
the interpreter; as regrtest does, the growth of
`sys.getunicodeinternedsize()` is taken off refs and blocks.

The rule is regrtest's: a counter leaks when it grows beyond its limit in
*every* repetition after warm-up (deltas `[1, 1, 1]` leak, `[3, 0, 0]` does
not).  It is deliberately the simple in-process rule; the cross-lifecycle
verdict with a measured control lives in `verdict.py`.

No pytest here: the bisect feature drives the same machinery.
"""

from __future__ import annotations

import array
import ctypes
import ctypes.util
import gc
import os
import sys
from dataclasses import dataclass, field
from typing import Callable

#: Counters judged against a limit, and the ones only reported.
JUDGED = ("refs", "blocks", "fds")
REPORTED = ("native_bytes",)


@dataclass(frozen=True)
class RepeatLimits:
    """How often to run and how much growth per repetition is allowed."""

    warmup: int = 3
    repeats: int = 6
    max_refs: int = 0
    max_blocks: int = 0
    max_fds: int = 0

    def __post_init__(self) -> None:
        if self.warmup < 0:
            raise ValueError(f"warmup must be >= 0 (got {self.warmup})")
        if self.repeats < 1:
            raise ValueError(f"repeats must be >= 1 (got {self.repeats})")


@dataclass
class RepeatResult:
    """Deltas per repetition after warm-up, and the counters that leaked."""

    limits: RepeatLimits
    deltas: dict[str, list[int]] = field(default_factory=dict)
    leaked: list[str] = field(default_factory=list)
    debug_build: bool = hasattr(sys, "gettotalrefcount")

    @property
    def verdict(self) -> str:
        return "leak" if self.leaked else "clean"

    def per_repeat(self, counter: str) -> float | None:
        """Mean growth per repetition after warm-up (None when not measured)."""
        values = self.deltas.get(counter)
        return sum(values) / len(values) if values else None

    def message(self) -> str:
        """One line per counter, regrtest's wording: 'leaked [1, 1, 1] blocks, sum=3'."""
        lines = []
        for counter in (*JUDGED, *REPORTED):
            values = self.deltas.get(counter)
            if values is None:
                continue
            limit = getattr(self.limits, f"max_{counter}", None)
            state = "LEAK" if counter in self.leaked else "ok"
            rule = f" (limit {limit}/repetition)" if limit is not None else " (reported only)"
            lines.append(f"{state:4} {counter}: deltas {values}, sum={sum(values)}{rule}")
        if not self.debug_build:
            lines.append("refs not counted: this is a release build (needs Py_DEBUG)")
        return "\n".join(lines)

    def to_json(self) -> dict:
        return {"verdict": self.verdict, "leaked": self.leaked, "deltas": self.deltas,
                "warmup": self.limits.warmup, "repeats": self.limits.repeats,
                "per_repeat": {k: self.per_repeat(k) for k in self.deltas}}


def _mallinfo():
    """glibc's mallinfo2 (in-use bytes) or None off glibc / before 2.33."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        func = libc.mallinfo2 if libc is not None else None
    except (OSError, AttributeError):
        return None

    class MallInfo2(ctypes.Structure):
        _fields_ = [(n, ctypes.c_size_t) for n in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
            "uordblks", "fordblks", "keepcost")]

    func.restype = MallInfo2

    def in_use_bytes() -> int:
        info = func()
        return int(info.uordblks + info.hblkhd)   # small blocks + mmap'ed ones
    return in_use_bytes


_NATIVE_BYTES = _mallinfo()


def _fd_count() -> int | None:
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return None


def _interned() -> int:
    size = getattr(sys, "getunicodeinternedsize", None)
    if size is None:
        return 0
    try:
        return size(_only_immortal=True)   # 3.13: mortal interned strings can go
    except TypeError:
        return size()


def clear_caches() -> None:
    """Empty the caches the stdlib fills on purpose, so they do not look like leaks.

    A subset of regrtest's `dash_R_cleanup`: the regex, struct and line caches,
    the ABC and type-attribute caches, then a full collection (twice, as
    finalizers can free more).
    """
    for name, attr in (("re", "purge"), ("linecache", "clearcache"), ("struct", "_clearcache"),
                       ("typing", "_cleanups")):
        module = sys.modules.get(name)
        target = getattr(module, attr, None) if module else None
        if name == "typing" and target is not None:
            for cleanup in list(target):
                cleanup()
        elif callable(target):
            target()
    abc = sys.modules.get("abc")
    if abc is not None:
        for klass in list(_abc_classes()):
            klass._abc_caches_clear()
    clear_type = getattr(sys, "_clear_internal_caches", None) or getattr(sys, "_clear_type_cache")
    clear_type()
    gc.collect()
    gc.collect()


def _abc_classes():
    import abc
    for klass in list(_all_subclasses(object)):
        if isinstance(klass, abc.ABCMeta):
            yield klass


def _all_subclasses(root: type):
    stack, seen = [root], set()
    while stack:
        klass = stack.pop()
        try:
            subs = type.__subclasses__(klass)
        except TypeError:
            continue
        for sub in subs:
            if id(sub) not in seen:
                seen.add(id(sub))
                yield sub
                stack.append(sub)


def _counter_readers() -> dict[str, Callable[[], int]]:
    """The counters this build and platform offer, each a function reading it now."""
    readers: dict[str, Callable[[], int]] = {}
    if hasattr(sys, "gettotalrefcount"):
        readers["refs"] = lambda: sys.gettotalrefcount() - _interned()
    readers["blocks"] = lambda: sys.getallocatedblocks() - _interned()
    if _fd_count() is not None:
        readers["fds"] = _fd_count
    if _NATIVE_BYTES is not None:
        readers["native_bytes"] = _NATIVE_BYTES
    return readers


def snapshot() -> dict[str, int]:
    """The counters now, after cleaning caches; interned strings taken off refs/blocks."""
    clear_caches()
    return {name: read() for name, read in _counter_readers().items()}


def repeat_check(body: Callable[[], object], limits: RepeatLimits = RepeatLimits()) -> RepeatResult:
    """Run `body` warmup + repeats times; judge the deltas after warm-up.

    The readings go into an array preallocated before the first run: a
    list or dict per reading would itself be a block that stays, and show
    up as +1 or +2 blocks in every repetition of a perfectly clean body.
    An exception from `body` propagates: a failing test is a failure, not
    a leak verdict.
    """
    readers = list(_counter_readers().items())
    runs = limits.warmup + limits.repeats
    width = len(readers)
    readings = array.array("q", bytes(8 * width * (runs + 1)))

    def read_into(row: int) -> None:
        clear_caches()
        for column, (_, read) in enumerate(readers):
            readings[row * width + column] = read()

    read_into(0)
    for run in range(1, runs + 1):
        body()
        read_into(run)
    result = RepeatResult(limits=limits)
    for column, (counter, _) in enumerate(readers):
        series = readings[column::width]
        result.deltas[counter] = [series[i] - series[i - 1] for i in range(limits.warmup + 1, runs + 1)]
    for counter in JUDGED:
        values = result.deltas.get(counter)
        limit = getattr(limits, f"max_{counter}")
        if values and all(v > limit for v in values):
            result.leaked.append(counter)
    return result


def parse_repeats(text: str) -> tuple[int, int]:
    """'W:R' (regrtest's -R syntax, also 'W:R:file' tolerated) -> (warmup, repeats)."""
    parts = text.split(":")
    try:
        warmup, repeats = int(parts[0]), int(parts[1])
    except (IndexError, ValueError):
        raise ValueError(f"expected WARMUP:REPEATS such as 3:6, not {text!r}") from None
    if warmup < 0 or repeats < 1:
        raise ValueError(f"expected WARMUP >= 0 and REPEATS >= 1, not {text!r}")
    return warmup, repeats
