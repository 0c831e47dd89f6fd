"""Run a case against its control and turn both into a Result.

The one place where case, host, samples and verdict meet, in that order.
The `pass` control (and the import-machinery probe) are measured once per
(python, mode, backend, cycles, warm-up, environment) and cached for the
life of the Engine: once per `run`, once per sweep, once per pytest worker.
"""

from __future__ import annotations

import os
import shutil
import statistics
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from .backends import get_backend
from .backends.base import Backend
from .backends.counters import CONTRACT_KEYS, EXTRA_KEYS
from .cases.model import CONTROL, Case
from .errors import HarnessError, HostBuildError
from .host.build import PROBE_EXT_MODULE, build_host, build_probe_extension
from .host.modes import check_mode
from .host.target import TargetPython, target_python
from .verdict.ending import ending_verdict, summary_line
from .result import Result
from .host.runner import HostRun, run_host
from .settings import RunSettings
from .verdict.rule import judge

#: Bytes allowed per discounted interned string: a compact ASCII string's
#: 40-byte header plus an identifier of up to 40 characters.
INTERNED_STRING_BYTES = 80.0
PYHOST_DRIVER = Path(__file__).parent / "host" / "pyhost_driver.py"
_FD = "{out_fd}"



@dataclass
class ControlRun:
    """The `pass` control and the extension-import probe, measured once."""

    passed: HostRun
    probe: HostRun | None


class Engine:
    """Runs cases; keeps the controls it measured so each is measured once."""

    def __init__(self) -> None:
        self._controls: dict[tuple, ControlRun] = {}
        self._locks: dict[tuple, threading.Lock] = {}
        self._guard = threading.Lock()

    # -- public -------------------------------------------------------------
    def run(self, case: Case, settings: RunSettings) -> Result:
        target, backend = self._prepare(settings)
        host_kind, launcher = self._launcher(target, settings, backend)
        key = self._key(target, host_kind, settings)
        with ThreadPoolExecutor(max_workers=1) as pool:
            control_future = pool.submit(self._control, key, launcher, backend, settings)
            case_run = launcher(case, settings, "case")
            control = control_future.result()
        result = self._result(case, settings, target, host_kind, case_run, control, backend)
        if result.verdict in ("leak", "clean"):
            backend.finish(result, case_run, control.passed, settings)
        return result

    def control_result(self, settings: RunSettings) -> Result:
        """CPython's own row: the `pass` control's growth, judged against zero."""
        target, backend = self._prepare(settings)
        host_kind, launcher = self._launcher(target, settings, backend)
        control = self._control(self._key(target, host_kind, settings), launcher, backend, settings)
        flat = [{k: 0 for k in s} for s in control.passed.samples]
        nothing = ControlRun(passed=HostRun(samples=flat, completed=True, returncode=0), probe=None)
        result = self._result(CONTROL, settings, target, host_kind, control.passed, nothing, backend)
        if result.verdict in ("leak", "clean"):
            result.message = "CPython's own growth per cycle (the `pass` control); " + (result.message or "")
        return result

    @staticmethod
    def _prepare(settings: RunSettings) -> tuple[TargetPython, Backend]:
        target = target_python(settings.python)
        check_mode(settings.mode, target)
        backend = get_backend(settings.backend)
        backend.check(target, settings)
        return target, backend

    @staticmethod
    def _key(target: TargetPython, host_kind: str, settings: RunSettings) -> tuple:
        # threads: the `pass` control of parallel mode runs the same thread count
        return (target.realpath, host_kind, settings.mode, settings.backend, settings.cycles,
                settings.warmup, settings.thread_count, settings.pythonpath, settings.site,
                settings.xoptions, settings.suppressions,
                os.environ.get("PYTHONPATH", ""), os.environ.get("PYTHONMALLOC", ""))

    # -- hosts --------------------------------------------------------------
    def _launcher(self, target: TargetPython, settings: RunSettings, backend: Backend):
        """(host kind, launch(case, settings, role) -> HostRun) for this target and backend."""
        if settings.host == "python":
            return "python", self._pyhost_launcher(target, settings, backend, None)
        try:
            binary = build_host(target, native=backend.native_counting)
        except HostBuildError as exc:
            if (settings.host == "auto" and settings.mode == "subinterpreter"
                    and target.has_interpreters and "python" in backend.hosts):
                return "python", self._pyhost_launcher(target, settings, backend, str(exc))
            raise
        probe_dir = str(build_probe_extension(target))

        def launch(case: Case, s: RunSettings, role: str) -> HostRun:
            def argv_for(launch_spec, total_cycles: int) -> list[str]:
                argv = [*launch_spec.prefix, str(binary), s.mode, str(total_cycles),
                        "{case_file}", _FD, target.sys_executable]
                if s.site:
                    argv.append("--site")
                for opt in s.xoptions:
                    argv += ["-X", opt]
                if s.thread_count is not None:
                    argv += ["--threads", str(s.thread_count)]
                # the host writes its native sites after the warm-up and at the end
                argv += ["--warmup", str(s.warmup)]
                return argv + launch_spec.host_args
            return _run_backend_host(case, s, role, backend, target, argv_for, [probe_dir])

        return "c", launch

    def _pyhost_launcher(self, target: TargetPython, settings: RunSettings, backend: Backend,
                         why: str | None):
        if settings.mode != "subinterpreter":
            raise HarnessError(f"the pure-Python host runs only subinterpreter mode, not {settings.mode}")
        if not target.has_interpreters:
            raise HarnessError(f"Python {target.version} has no _interpreters/_xxsubinterpreters module")
        if "python" not in backend.hosts:
            raise HarnessError(f"the {backend.name} backend needs the C host")

        def launch(case: Case, s: RunSettings, role: str) -> HostRun:
            def argv_for(launch_spec, total_cycles: int) -> list[str]:
                # -S -P, not -I: PYTHONPATH must reach the subinterpreters
                return [*launch_spec.prefix, target.sys_executable, "-S", "-P", str(PYHOST_DRIVER),
                        "{case_file}", str(total_cycles), _FD]
            run = _run_backend_host(case, s, role, backend, target, argv_for, [])
            run.fallback_reason = why
            return run

        return launch

    def _control(self, key, launcher, backend: Backend, settings: RunSettings) -> ControlRun:
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            if key not in self._controls:
                passed = launcher(CONTROL, settings, "control")
                probe = None
                if key[1] == "c" and backend.wants_extension_probe:
                    probe = launcher(Case(name="(control: extension import)",
                                          code=f"import {PROBE_EXT_MODULE}"), settings, "probe")
                self._controls[key] = ControlRun(passed=passed, probe=probe)
            return self._controls[key]

    # -- interpretation -----------------------------------------------------
    def _result(self, case: Case, settings: RunSettings, target: TargetPython, host_kind: str,
                case_run: HostRun, control: ControlRun, backend: Backend) -> Result:
        result = Result(
            case=case.name, module=case.module, python=target.to_json(), mode=settings.mode,
            backend=settings.backend, host=host_kind, cycles=settings.cycles,
            warmup=settings.warmup, verdict="error", samples=case_run.samples,
            last_cycle=case_run.last_cycle, wall_s=case_run.wall_s,
        )
        fallback = case_run.fallback_reason
        if fallback:
            result.evidence["host_fallback"] = f"C host unavailable ({fallback}); used the pure-Python host"
        ended = ending_verdict(case_run, settings)
        if ended:
            result.verdict, result.message = ended
            return result
        control_problem = ending_verdict(control.passed, settings)
        if control_problem:
            result.verdict = "error"
            result.message = f"the `pass` control failed on its own: {control_problem[1]}"
            return result
        case_series = _per_interpreter(backend.series(case_run), settings)
        control_series = _per_interpreter(backend.series(control.passed), settings)
        machinery = self._machinery_share(control, settings, backend)
        interned = interned_excess(case_run.samples, control.passed.samples, settings.warmup)
        allowance = {
            "blocks": interned + machinery.get("blocks", 0.0),
            "bytes": interned * INTERNED_STRING_BYTES + machinery.get("bytes", 0.0),
        }
        judgement = judge(case_series, control_series, settings.warmup, allowance=allowance)
        keys = CONTRACT_KEYS + EXTRA_KEYS
        result.verdict = judgement.verdict
        result.per_cycle = {k: _round(judgement.per_cycle.get(k)) for k in keys}
        result.excess = {k: _round(judgement.excess.get(k)) for k in keys}
        result.control = {
            "case": CONTROL.name,
            "per_cycle": {k: _round(judgement.control_per_cycle.get(k)) for k in keys},
            "extension_import_per_cycle": {k: _round(v) for k, v in machinery.items()},
        }
        result.evidence["interned_strings_per_cycle"] = _round(interned)
        result.tolerance = {k: _round(v) for k, v in judgement.tolerance.items()}
        result.evidence.update({
            "triggered_by": judgement.triggered_by,
            "excess_halves": {k: [_round(a), _round(b)] for k, (a, b) in judgement.halves.items()},
        })
        if settings.thread_count is not None:
            _add_parallel_evidence(result, case_run, control.passed, settings)
        result.message = summary_line(result, judgement.triggered_by)
        return result

    def _machinery_share(self, control: ControlRun, settings: RunSettings,
                         backend: Backend) -> dict[str, float]:
        """Per-cycle growth of importing a known-clean extension, over `pass`,
        beyond the interned strings already discounted (normally nothing left:
        on 3.12/3.13 the one block it keeps is its interned module name)."""
        if control.probe is None or ending_verdict(control.probe, settings):
            return {}
        probe = judge(_per_interpreter(backend.series(control.probe), settings),
                      _per_interpreter(backend.series(control.passed), settings), settings.warmup)
        interned = interned_excess(control.probe.samples, control.passed.samples, settings.warmup)
        share = {k: max(0.0, v) for k, v in probe.excess.items()
                 if k in ("blocks", "bytes", "refs") and v is not None}
        share["blocks"] = max(0.0, share.get("blocks", 0.0) - interned)
        share["bytes"] = max(0.0, share.get("bytes", 0.0) - interned * INTERNED_STRING_BYTES)
        return share


def _per_interpreter(series: dict[str, list[float] | None],
                     settings: RunSettings) -> dict[str, list[float] | None]:
    """Parallel mode's samples are process totals after each round of N
    interpreter cycles (one per thread): divided by N, growth per sample is
    growth per interpreter cycle, comparable with the sequential modes.  The
    host's `interned` count is already one interpreter's, so it stays."""
    threads = settings.thread_count
    if threads is None or threads == 1:
        return series
    return {k: None if v is None else [x / threads for x in v] for k, v in series.items()}


def _add_parallel_evidence(result: Result, case_run: HostRun, control_run: HostRun,
                           settings: RunSettings) -> None:
    """Thread count and throughput (interpreter cycles per second after the
    warm-up, counters hook on) of the case and of the `pass` control."""
    threads = settings.thread_count or 1
    result.evidence["threads"] = threads
    result.evidence["per_cycle_is"] = "per interpreter cycle (round growth / threads)"
    for key, run in (("cycles_per_s", case_run), ("control_cycles_per_s", control_run)):
        rate = run.cycles_per_s(settings.warmup, threads)
        result.evidence[key] = None if rate is None else round(rate, 2)


def interned_excess(case_samples: list[dict], control_samples: list[dict], warmup: int) -> float:
    """Strings the case interns per cycle beyond the control's (3.12+).

    3.12 and 3.13 keep interned strings (immortal) after Py_FinalizeEx and
    Py_EndInterpreter: every identifier a module's code interns stays behind
    each cycle, whatever the module.  The host reports the interned count at
    each cycle's end; the excess is CPython's retention, discounted from the
    module's growth as regrtest -R discounts sys.getunicodeinternedsize().
    """
    case = [s.get("interned") for s in case_samples[warmup + 1:]]
    control = [s.get("interned") for s in control_samples[warmup + 1:]]
    if not case or not control or None in case or None in control:
        return 0.0
    n = min(len(case), len(control))
    return max(0.0, float(statistics.median(a - b for a, b in zip(case[:n], control[:n]))))


def _run_backend_host(case: Case, settings: RunSettings, role: str, backend: Backend,
                      target: TargetPython, argv_for, extra_path: list[str],
                      total_cycles: int | None = None) -> HostRun:
    """Write the case file, ask the backend how to launch, run, let it collect, clean up.

    A backend that measures by difference (valgrind without per-cycle leak
    checks) asks for `companion_cycles`: the same case run again for those
    total cycle counts, kept in `run.companions` by count, and only after a
    main run that completed.
    """
    total = settings.warmup + settings.cycles if total_cycles is None else total_cycles
    workdir = Path(tempfile.mkdtemp(prefix=f"leak-harness-{role}-"))
    try:
        case_file = workdir / "case.py"
        case_file.write_text(case.source_code)
        spec = backend.launch(target, settings, role, workdir)
        argv = [str(case_file) if a == "{case_file}" else a for a in argv_for(spec, total)]
        env = _env(settings, extra_path)
        env.update(spec.env)
        run = run_host(argv, _FD, env, settings.timeout * spec.timeout_factor)
        run.artifacts = backend.collect(run, workdir, role, settings)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    if total_cycles is None and run.completed:
        for companion_total in spec.companion_cycles:
            run.companions[companion_total] = _run_backend_host(
                case, settings, role, backend, target, argv_for, extra_path, companion_total)
    return run


def _env(settings: RunSettings, extra_path: list[str]) -> dict[str, str]:
    env = dict(os.environ)
    inherited = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join([*settings.pythonpath, *inherited, *extra_path])
    return env


def _round(value: float | None) -> float | None:
    if value is None:
        return None
    return round(value, 3)
