"""What a backend is: how it wraps the host, and what it reads back.

Data flows one way: the engine asks the backend how to launch the host
(`launch`), runs it, lets the backend read what the run left in its work
directory (`collect`, into `HostRun.artifacts`, before the directory is
removed), turns samples into metric series (`series`) for the verdict, and
finally lets the backend add sites/errors to the result (`finish`).
Backends never print.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .counters import series_from_samples
from .native_sites import MAX_SITES, by_excess, held_by, native_sites

if TYPE_CHECKING:
    from ..settings import RunSettings
    from ..host.target import TargetPython
    from ..result import Result
    from ..host.runner import HostRun


@dataclass
class Launch:
    """How one host process is started for a backend."""

    prefix: list[str] = field(default_factory=list)      # e.g. valgrind and its options
    env: dict[str, str] = field(default_factory=dict)    # added to the host's environment
    host_args: list[str] = field(default_factory=list)   # extra arguments for the C host
    timeout_factor: float = 1.0                          # slow backends get longer
    #: also run the case for these total cycle counts (differential measuring);
    #: the runs land in HostRun.companions by count
    companion_cycles: tuple[int, ...] = ()
    #: what launch() decided that collect() needs back; the engine passes this
    #: Launch to collect(), as case and control of one backend run at once
    state: Any = None


class Backend:
    """The counters backend is this base class itself: no wrapper, hook counters."""

    name = "counters"
    #: host kinds the backend works with ("c": compiled host, "python": pyhost)
    hosts: tuple[str, ...] = ("c", "python")
    #: whether the extension-import probe control is measured too
    wants_extension_probe = True
    #: whether the host counts the C allocator (interposes malloc); off for
    #: backends that replace malloc themselves
    native_counting = True
    #: whether a case may stop once its verdict is settled (adaptive cycles):
    #: the counters read every cycle's sample as it comes; the tracing
    #: backends analyse a capture of a fixed length after the run
    adaptive_cycles = True

    def check(self, target: "TargetPython", settings: "RunSettings") -> None:
        """Raise a HarnessError when this backend cannot measure `settings.mode` on `target`."""

    def launch(self, target: "TargetPython", settings: "RunSettings", role: str,
               workdir: Path) -> Launch:
        """role: "case", "control", "probe" or "reinit" (re-importing an extension alone)."""
        return Launch(host_args=["--pymem-sites"] if settings.backend_options.pymem_sites else [])

    def collect(self, run: "HostRun", workdir: Path, role: str, settings: "RunSettings",
                launched: Launch) -> Any:
        """Read what the run left in `workdir` (`launched`: what launch() returned
        for this run); the result lands in run.artifacts."""
        return None

    def series(self, run: "HostRun") -> dict[str, list[float] | None]:
        return series_from_samples(run.samples)

    def finish(self, result: "Result", case_run: "HostRun", control_run: "HostRun",
               settings: "RunSettings") -> None:
        """Add sites, errors or evidence.  Never the verdict: what errors mean
        for it is decided once, in harness.verdict.ending.with_memcheck_errors.

        The counters' sites: the native callers that grew (the counting host's)."""
        threads = settings.thread_count or 1
        result.sites = native_sites(case_run, control_run, settings.warmup,
                                    settings.cycles * threads)
        if settings.backend_options.pymem_sites:
            pymem = native_sites(case_run, control_run, settings.warmup, settings.cycles * threads,
                                 table="pymem_sites", limit=None)
            # what every pymem site holds, before the list is cut to its top
            result.evidence["pymem_sites_held"] = held_by(pymem)
            result.sites = sorted(result.sites + pymem, key=by_excess)[:MAX_SITES]

    def crashed(self, result: "Result", case_run: "HostRun", control_run: "HostRun | None",
                settings: "RunSettings") -> None:
        """A `crash` result: add what the backend saw before the host died (memcheck
        errors, its stack of the fault); the host's own crash record is already in."""


class MainHookBackend(Backend):
    """Backends that trace from the target's main interpreter (--main-hook).

    They need the C host, and skip the extension-import probe: it would be
    a third traced run, and what it measures (the module's interned name)
    is already in the interned-string discount.
    """

    hosts = ("c",)
    wants_extension_probe = False
    # memray owns malloc; tracemalloc measures PyMem only, and its verdict
    # should not change with a second kind of counter
    native_counting = False
    adaptive_cycles = False
