"""The valgrind backend: the host under memcheck, with PYTHONMALLOC=malloc.

What it sees that the counters cannot: memory an extension takes with plain
malloc (invisible to the allocator hook), and reads/writes of freed or
uninitialised memory (memcheck errors).  PYTHONMALLOC=malloc makes every
Python object a libc block, so memcheck tracks each one.

Two ways of counting, chosen per host binary:

- client requests (preferred): the host, compiled with <valgrind/memcheck.h>,
  runs VALGRIND_DO_ADDED_LEAK_CHECK after every cycle and writes the lost
  bytes/blocks (definite + indirect) into each sample, so one run gives a
  per-cycle series, judged like the counters' series.
- differential (fallback, when the header was missing at build time): the
  case runs twice, for k1 = W + 1 and k2 = W + C cycles; valgrind's exit
  leak check gives lost(k) and the per-cycle loss is
  (lost(k2) - lost(k1)) / (k2 - k1).  One-time allocations cancel out.
  With client requests the same formula over the run's own samples is
  reported as a cross-check.

Loss records that grow over the window are attributed to modules
(harness.attribution) and become `sites`.  Memcheck errors are the case's
(`errors`) only when neither the control nor a plain interpreter start
(`python -c pass`, which runs site's pure-Python code, where 3.11 shows
uninitialised-value reports of its own) shows the same error class: same
kind, same innermost frames up to the first frame outside CPython.  What
errors mean for the verdict is decided in harness.outcome, not here.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from . import suppressions as suppress
from ..attribution import object_name
from ...errors import HarnessError
from ...host.build import build_host
from ...report.numbers import fmt_bytes
from .analysis import (
    ValgrindArtifacts, case_errors, differential_series, error_signature, evidence, per_cycle,
    record_growth,
)
from .memcheck_xml import parse_file
from ..base import Backend, Launch
from .records import error_json, sites
from ..counters import series_from_samples

if TYPE_CHECKING:
    from ...settings import RunSettings
    from ...host.target import TargetPython
    from ...result import Result
    from ...host.runner import HostRun

VALGRIND_ENV = "LEAK_HARNESS_VALGRIND"          # a valgrind other than the one on PATH
METHOD_ENV = "LEAK_HARNESS_VALGRIND_METHOD"     # auto | client-requests | differential
KEEP_XML_ENV = "LEAK_HARNESS_KEEP_XML"          # directory to copy each run's XML into
#: match-leak-kinds in suppressions and --show-leak-kinds (3.9), inlined
#: frames in XML stacks and suppressions (3.10)
MIN_VERSION = (3, 10)
#: deep enough to reach an extension's frame below the interpreter's eval
#: loop, the import machinery and the host (typically 20-35 frames)
NUM_CALLERS = 50
XML_NAME = "memcheck.xml"
PLAIN_START_TIMEOUT_S = 600.0


class ValgrindUnavailable(HarnessError):
    """valgrind is missing or too old."""


@dataclass(frozen=True)
class LaunchPlan:
    """What launch() decided for one run and collect() needs back (the engine
    hands it over in `Launch.state`: the case and the control launch at once,
    so nothing of a run is kept on the shared backend)."""

    method: str
    suppression_files: list[str]
    host_object: str
    valgrind: str
    python: str


@functools.lru_cache(maxsize=None)
def valgrind_version(executable: str) -> tuple[int, ...] | None:
    try:
        out = subprocess.run([executable, "--version"], capture_output=True, text=True,
                             timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r"valgrind-(\d+)\.(\d+)(?:\.(\d+))?", out)
    return tuple(int(g) for g in match.groups() if g is not None) if match else None


def find_valgrind() -> str:
    """The valgrind executable, or ValgrindUnavailable with what to install."""
    wanted = os.environ.get(VALGRIND_ENV) or "valgrind"
    path = shutil.which(wanted)
    if not path:
        raise ValgrindUnavailable(
            f"valgrind not found ({wanted!r}); install it (Debian/Ubuntu: `apt-get install valgrind`, "
            f"which also brings <valgrind/memcheck.h> for per-cycle leak checks)")
    version = valgrind_version(path)
    if version is None:
        raise ValgrindUnavailable(f"{path} --version did not print a valgrind version; "
                                  "install valgrind (`apt-get install valgrind`)")
    if version < MIN_VERSION:
        raise ValgrindUnavailable(
            f"valgrind {'.'.join(map(str, version))} at {path} is too old: the backend needs "
            f"{'.'.join(map(str, MIN_VERSION))}+ (match-leak-kinds, inlined frames); "
            "install a newer one (`apt-get install valgrind` on a current distribution)")
    return path


@functools.lru_cache(maxsize=None)
def host_has_client_requests(host_binary: str) -> bool:
    """Was the host compiled with <valgrind/memcheck.h>?  Its sample format
    string then names the vg_lost_bytes key."""
    try:
        return b'"vg_lost_bytes"' in Path(host_binary).read_bytes()
    except OSError:
        return False


class ValgrindBackend(Backend):
    name = "valgrind"
    hosts = ("c",)
    wants_extension_probe = True
    native_counting = False    # memcheck owns malloc
    adaptive_cycles = False    # its leak checks are read from the XML after the run
    #: what per-cycle runs print; indirect blocks are in the definite records' totals
    show_leak_kinds = "definite,possible"
    #: off for `suppressions generate`, which must see what they would hide
    use_version_suppressions = True
    gen_suppressions = False

    def check(self, target: "TargetPython", settings: "RunSettings") -> None:
        find_valgrind()
        if settings.host == "python":
            raise HarnessError("the valgrind backend needs the C host (--host c or auto)")
        suppress.files_for(target, settings.backend_options.suppressions)   # extra files must exist

    # -- running ------------------------------------------------------------
    def launch(self, target: "TargetPython", settings: "RunSettings", role: str,
               workdir: Path) -> Launch:
        valgrind = find_valgrind()
        host = str(build_host(target, native=False))
        files = suppress.files_for(target, settings.backend_options.suppressions,
                                   include_version=self.use_version_suppressions)
        method = self._method(host)
        plan = LaunchPlan(method=method, suppression_files=[str(f) for f in files],
                          host_object=object_name(host), valgrind=valgrind,
                          python=target.sys_executable)
        prefix = [
            valgrind, "--tool=memcheck", "--leak-check=full",
            f"--show-leak-kinds={self.show_leak_kinds}", "--errors-for-leak-kinds=none",
            "--xml=yes", f"--xml-file={workdir / XML_NAME}", f"--num-callers={NUM_CALLERS}",
            "--child-silent-after-fork=yes",
            *(f"--suppressions={f}" for f in files),
        ]
        if self.gen_suppressions:
            prefix.append("--gen-suppressions=all")
        if settings.backend_options.sites_only:
            # a leak record carries the allocation's stack only: the stack of
            # each free (kept for use-after-free reports) is not captured
            prefix += ["--undef-value-errors=no", "--keep-stacktraces=alloc"]
        companions = (settings.warmup + 1,) if method == "differential" else ()
        return Launch(prefix=prefix, env={"PYTHONMALLOC": "malloc"}, timeout_factor=1.0,
                      companion_cycles=companions, state=plan)

    @staticmethod
    def _method(host: str) -> str:
        wanted = os.environ.get(METHOD_ENV, "auto")
        if wanted not in ("auto", "client-requests", "differential"):
            raise HarnessError(f"{METHOD_ENV} must be auto, client-requests or differential "
                               f"(got {wanted!r})")
        if wanted == "auto":
            return "client-requests" if host_has_client_requests(host) else "differential"
        if wanted == "client-requests" and not host_has_client_requests(host):
            raise HarnessError("the host was built without <valgrind/memcheck.h>; install "
                               "valgrind's headers (`apt-get install valgrind`) and clear the "
                               "host cache, or use the differential method")
        return wanted

    def collect(self, run: "HostRun", workdir: Path, role: str, settings: "RunSettings",
                launched: Launch) -> ValgrindArtifacts:
        xml = workdir / XML_NAME
        plan: LaunchPlan = launched.state
        method, files, host = plan.method, plan.suppression_files, plan.host_object
        kept = None
        keep_dir = os.environ.get(KEEP_XML_ENV)
        if keep_dir and xml.exists():
            Path(keep_dir).mkdir(parents=True, exist_ok=True)
            kept = str(Path(keep_dir) / f"{role}-{os.getpid()}-{id(run)}.xml")
            shutil.copyfile(xml, kept)
        # a plain start's own errors are uninitialised-value reports (3.11:
        # 622 from 26 contexts; 0 on 3.10, 3.12, 3.13), which a sites-only
        # run does not make (0 on all four): nothing to discount, no run
        plain = (plain_start_errors(plan.valgrind, plan.python, tuple(files), host)
                 if role == "control" and not settings.backend_options.sites_only else frozenset())
        return ValgrindArtifacts(report=parse_file(xml), method=method, suppression_files=files,
                                 host_object=host, xml_bytes=xml.stat().st_size if xml.exists() else 0,
                                 kept_xml=kept, plain_start_errors=plain)

    # -- measuring ------------------------------------------------------------
    def series(self, run: "HostRun") -> dict[str, list[float] | None]:
        counters = series_from_samples(run.samples)
        out: dict[str, list[float] | None] = {
            "refs": counters["refs"], "rss": counters["rss"], "fds": counters["fds"],
            "threads": counters["threads"],
            # mallinfo2() reads valgrind's replacement malloc as empty; the
            # hook's raw domain is not what this backend judges
            "heap_in_use_bytes": None, "raw_blocks": None, "raw_bytes": None,
            # its host is built without native counting: memcheck owns malloc
            "native_blocks": None, "native_bytes": None,
        }
        if per_cycle(run):
            # lost and still reachable: a C static that keeps growing holds
            # memory memcheck never calls lost (older hosts lack the key)
            out["blocks"] = [float(s["vg_lost_blocks"] + s.get("vg_reachable_blocks", 0))
                             for s in run.samples]
            out["bytes"] = [float(s["vg_lost_bytes"] + s.get("vg_reachable_bytes", 0))
                            for s in run.samples]
        else:
            line = differential_series(run)
            out["blocks"], out["bytes"] = (line or (None, None))
        return out

    def finish(self, result: "Result", case_run: "HostRun", control_run: "HostRun",
               settings: "RunSettings") -> None:
        case_art: ValgrindArtifacts | None = case_run.artifacts
        control_art: ValgrindArtifacts | None = control_run.artifacts
        if case_art is None:
            return
        warmup = settings.warmup
        case_growth = record_growth(case_run, warmup)
        control_growth = record_growth(control_run, warmup) if control_art else {}
        result.sites = sites(case_growth, control_growth, result.module, case_art.host_object,
                             settings.pythonpath)
        own, cpythons = case_errors(case_art, control_art)
        result.errors = [error_json(e, result.module, case_art.host_object, settings.pythonpath)
                         for e in own]
        result.evidence["valgrind"] = evidence(
            case_run, control_run, warmup, num_callers=NUM_CALLERS,
            version=".".join(map(str, valgrind_version(find_valgrind()) or ())))
        result.evidence["valgrind"]["cpython_errors"] = {
            "count": len(cpythons), "kinds": sorted({e.kind for e in cpythons}),
            "why": "the same error class shows in the control or in a plain `python -c pass`"}
        if result.sites and result.verdict == "leak":
            top = result.sites[0]
            where = f"({top['note']})" if top.get("note") else f"at {top['at']}"
            result.message = (f"{result.message}; top site: {top['module']} "
                              f"{fmt_bytes(top['bytes_per_cycle'])}/cycle {where}")


    def crashed(self, result: "Result", case_run: "HostRun", control_run: "HostRun | None",
                settings: "RunSettings") -> None:
        """Memcheck's errors before the crash are kept (the XML may be cut short:
        everything before the cut is read), and the faulting access's stack —
        the last invalid read/write/jump, else memcheck's fatal-signal stack —
        is the crash's stack: the host's own handlers do not run under valgrind."""
        case_art: ValgrindArtifacts | None = case_run.artifacts
        if case_art is None:
            return
        control_art = control_run.artifacts if control_run is not None else None
        control_errors = ({e.key() for e in control_art.report.errors}
                          if isinstance(control_art, ValgrindArtifacts) else set())
        new_errors = [e for e in case_art.report.errors if e.key() not in control_errors]
        result.errors = [error_json(e, result.module, case_art.host_object, settings.pythonpath)
                         for e in new_errors]
        faults = [e for e in case_art.report.errors if e.kind.startswith("Invalid")]
        stack = faults[-1].stack if faults else case_art.report.fatal_stack
        if stack and result.crash is not None:
            from ...verdict.crash import stack_from_frames
            result.crash.update(stack_from_frames(
                [(f.fn, f.obj, f.file, f.line, f.ip) for f in stack], result.module))
            result.crash["stack_from"] = (f"memcheck {faults[-1].kind}" if faults
                                          else "memcheck fatal signal")
            result.crash.pop("note", None)
        if result.errors:
            first = result.errors[0]
            from ...verdict.crash import insert_before_tail
            result.message = insert_before_tail(
                result.message, f"memcheck found {len(result.errors)} error(s) before the crash: "
                f"{first['kind']} in {first['module']} ({first['at']})")


@functools.lru_cache(maxsize=None)
def plain_start_errors(valgrind: str, python: str, suppression_files: tuple[str, ...],
                       host_object: str) -> frozenset:
    """Error signatures of `python -c pass` under memcheck, as the host is run
    (PYTHONMALLOC=malloc, the same suppressions): what CPython reports of
    itself at a plain start, site included.  Once per process and target;
    an empty set when the run fails (then nothing is discounted by it)."""
    import tempfile
    with tempfile.TemporaryDirectory(prefix="leak-harness-plain-") as workdir:
        xml = Path(workdir) / XML_NAME
        argv = [valgrind, "--tool=memcheck", "--leak-check=no", "--xml=yes", f"--xml-file={xml}",
                f"--num-callers={NUM_CALLERS}", *(f"--suppressions={f}" for f in suppression_files),
                python, "-c", "pass"]
        env = dict(os.environ, PYTHONMALLOC="malloc")
        try:
            subprocess.run(argv, env=env, capture_output=True, timeout=PLAIN_START_TIMEOUT_S)
            report = parse_file(xml)
        except (OSError, subprocess.SubprocessError, ValueError):
            return frozenset()
    return frozenset(error_signature(e, host_object) for e in report.errors)
