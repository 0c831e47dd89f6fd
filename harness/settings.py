"""How to run a case: everything but the case itself, validated once.

Frozen and hashable: the settings (with the target and environment) key the
`pass` control cache, so one control serves every case run the same way.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

from .backends import backend_names
from .errors import HarnessError
from .host.modes import MODES

#: more threads than this is a typo, not a test (each holds an interpreter)
MAX_THREADS = 256
#: cycles + warm-up beyond this is a typo, not a test: at ~6 ms a cycle it is
#: over a week of one core; the host's cycle numbers are C ints, so 2^31 and
#: up used to wrap to 0 cycles, and no growth read as clean
MAX_TOTAL_CYCLES = 100_000
#: the fewest measured cycles: a slope needs points (adaptive cycles stop no earlier)
MIN_CYCLES = 4


@dataclass(frozen=True)
class BackendOptions:
    """Options one backend reads and the others ignore (the CLI flags stay
    flat: --suppressions, --keep-capture, --trace-depth); grouped so the
    run's own settings say how to run, not how one backend reports."""

    #: valgrind: extra .supp files
    suppressions: tuple[str, ...] = ()
    #: memray: keep the case's capture file in this directory (--keep-capture)
    keep_capture: str | None = None
    #: tracemalloc: frames kept per traceback (--trace-depth)
    trace_depth: int = 10
    #: valgrind: only the leak sites of the run are read (an --explain run),
    #: so memcheck need not track which bits are defined nor where a block
    #: was freed: it runs without --undef-value-errors (pdb, 3.13.0: 20% less
    #: time) and keeps allocation stacks only (a few % more; invalid reads and
    #: writes and the leak records are found as before), and no plain start
    #: is run for errors
    sites_only: bool = False
    #: counters: the counting host also names each PyMem block's first caller
    #: outside CPython (--pymem-sites; an --explain run of a finalize leak,
    #: where memray and tracemalloc cannot run): sites of kind "pymem"
    pymem_sites: bool = False

    def __post_init__(self) -> None:
        # hashable: the options key the control cache with the settings
        object.__setattr__(self, "suppressions", tuple(str(p) for p in self.suppressions))


@dataclass(frozen=True)
class RunSettings:
    """How to run: everything but the case itself."""

    python: str | None = None
    mode: str = "finalize"
    backend: str = "counters"
    cycles: int = 20
    warmup: int = 5
    timeout: float = 120.0
    pythonpath: tuple[str, ...] = ()
    site: bool = False
    xoptions: tuple[str, ...] = ()
    host: str = "auto"          # auto | c | python
    #: host threads of a threaded mode (parallel), None for the CPU count;
    #: ignored by the other modes (see `thread_count`)
    threads: int | None = None
    backend_options: BackendOptions = BackendOptions()
    #: adaptive cycles: `cycles` is the most a case runs; it stops once its
    #: verdict is settled (verdict.settled), never before `min_cycles`
    #: measured cycles (None: the fewest that can settle it).  True: every
    #: case runs all `cycles` (the old behaviour, --fixed-cycles).
    fixed_cycles: bool = False
    min_cycles: int | None = None

    def __post_init__(self) -> None:
        # a mapping (settings read back from JSON, e.g. a `bisect git` step) becomes the options
        if isinstance(self.backend_options, dict):
            object.__setattr__(self, "backend_options", BackendOptions(**self.backend_options))
        # hashable: settings key the control cache
        object.__setattr__(self, "pythonpath", tuple(str(p) for p in self.pythonpath))
        object.__setattr__(self, "xoptions", tuple(self.xoptions))
        if self.threads is not None and not 1 <= self.threads <= MAX_THREADS:
            raise HarnessError(f"--threads must be between 1 and {MAX_THREADS} (got {self.threads})")
        for name, value in (("--cycles", self.cycles), ("--warmup", self.warmup)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise HarnessError(f"{name} must be a whole number (got {value!r})")
        if self.cycles + max(self.warmup, 0) > MAX_TOTAL_CYCLES:
            raise HarnessError(f"--cycles + --warmup must be at most {MAX_TOTAL_CYCLES:,} "
                               f"(got {self.cycles} + {self.warmup})")
        if self.cycles < MIN_CYCLES:
            raise HarnessError(f"--cycles must be at least {MIN_CYCLES} (got {self.cycles}): "
                               "a slope needs points")
        if self.warmup < 0:
            raise HarnessError(f"--warmup must be >= 0 (got {self.warmup})")
        if self.min_cycles is not None and (
                isinstance(self.min_cycles, bool) or not isinstance(self.min_cycles, int)
                or not 1 <= self.min_cycles <= self.cycles):
            raise HarnessError(f"--min-cycles must be a whole number from 1 to --cycles "
                               f"({self.cycles}) (got {self.min_cycles!r})")
        if not (isinstance(self.timeout, (int, float)) and math.isfinite(self.timeout)
                and self.timeout > 0):
            raise HarnessError(f"--timeout must be a positive number of seconds (got {self.timeout})")
        if self.mode not in MODES:   # a typo is a usage error, not a mode this Python lacks
            raise HarnessError(f"unknown mode {self.mode!r}; choose from {', '.join(MODES)}")
        if self.backend not in backend_names():
            raise HarnessError(f"backend {self.backend!r} is not available; choose from {', '.join(backend_names())}")
        if self.host not in ("auto", "c", "python"):
            raise HarnessError(f"--host must be auto, c or python (got {self.host!r})")

    @property
    def thread_count(self) -> int | None:
        """Threads the host runs in a threaded mode (default: the CPU count,
        one interpreter per thread per CPU being the goal); None otherwise.
        Kept apart from `threads` because a sweep swaps the mode of one base
        setting: --threads must survive a detour through finalize."""
        if self.mode not in MODES or not MODES[self.mode].threaded:
            return None
        return self.threads if self.threads is not None else (os.cpu_count() or 1)
