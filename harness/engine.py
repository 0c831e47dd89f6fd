"""Run a case against its control and turn both into a Result.

The one place where case, host, samples and verdict meet, in that order.
The `pass` control (and the import-machinery probe) are measured once per
(python, mode, backend, cycles, warm-up, environment) and cached for the
life of the Engine: once per `run`, once per sweep, once per pytest worker.
A case's chosen control (`--control CODE`, a case file's `control`) is
measured the same way, cached per (those settings, its code), and the
verdict is on the case minus it; the `pass` control is still run and
reported beside it (`control.pass_per_cycle`), as CPython's own row.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import statistics
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable
from pathlib import Path

from .backends import get_backend
from .backends.base import Backend
from .backends.counters import CONTRACT_KEYS, EXTRA_KEYS
from .cases.model import CONTROL, Case, chosen_control
from .verdict import crash as crash_stacks
from .errors import HarnessError, HostBuildError
from .host.build import PROBE_EXT_MODULE, build_host, build_probe_extension
from .cases.packages import distribution_json, import_hint
from .host.modes import check_mode
from .host.target import TargetPython, check_xoptions, search_path, target_python
from .verdict.ending import ending_verdict, lost_extension, reinit_message, summary_line, with_memcheck_errors
from .result import Result
from .host.runner import TOKEN_FD, HostRun, run_host
from .settings import RunSettings
from .verdict.rule import judge
from .verdict.deltas import per_cycle_deltas

PYHOST_DRIVER = Path(__file__).parent / "host" / "pyhost_driver.py"
_FD = "{out_fd}"



@dataclass
class ControlRun:
    """A control and the extension-import probe, measured once.

    `passed` is the run the case is judged against: the `pass` control, or
    the case's chosen control (`case` says which); then `pass_run` is the
    `pass` control of the same settings, reported beside it."""

    passed: HostRun
    probe: HostRun | None
    case: Case = CONTROL
    pass_run: HostRun | None = None


class Engine:
    """Runs cases; keeps the controls it measured so each is measured once."""

    def __init__(self) -> None:
        self._controls: dict[tuple, ControlRun] = {}
        self._locks: dict[tuple, threading.Lock] = {}
        self._guard = threading.Lock()

    # -- public -------------------------------------------------------------
    def run(self, case: Case, settings: RunSettings,
            on_sample: Callable[[str, dict], None] | None = None) -> Result:
        """`on_sample(role, sample)` sees each sample of the case ("case") and of
        controls measured now ("control") as it arrives: the live cycle line."""
        target, backend = self._prepare(settings)
        watch = (lambda role: (lambda sample: on_sample(role, sample))) if on_sample else (lambda role: None)
        host_kind, launcher = self._launcher(target, settings, backend)
        key = self._key(target, host_kind, settings)
        chosen = chosen_control(case)

        def controls() -> ControlRun:
            passed = self._control(key, launcher, backend, settings, on_sample=watch("pass"))
            if chosen is None:
                return passed
            own = self._control(self._key(target, host_kind, settings, chosen.code),
                                launcher, backend, settings, chosen, on_sample=watch("control"))
            # the probe measures extension-import machinery over `pass`;
            # a chosen control that imports an extension already holds it
            return ControlRun(passed=own.passed, probe=passed.probe, case=chosen,
                              pass_run=passed.passed)

        with ThreadPoolExecutor(max_workers=1) as pool:
            control_future = pool.submit(controls)
            case_run = launcher(case, settings, "case", on_sample=watch("case"))
            control = control_future.result()
        result = self._result(case, settings, target, host_kind, case_run, control, backend, launcher)
        if result.verdict in ("leak", "clean"):
            backend.finish(result, case_run, control.passed, settings)
            with_memcheck_errors(result)
        if result.verdict == "crash":
            backend.crashed(result, case_run, control.passed, settings)
            result.message = crash_stacks.with_crash_stack(result.message, result.crash)
        if result.verdict == "crash" and host_kind == "c" and settings.backend == "counters":
            self._rerun_bare(case, settings, launcher, result)
        return result

    @staticmethod
    def _rerun_bare(case: Case, settings: RunSettings, launcher, result: Result) -> None:
        """Whose crash: the same case on the bare host (no allocator hook, no
        counters) up to the cycle that crashed.  A crash the bare host does not
        repeat is the harness's, never CPython's or the module's."""
        crash = result.crash if result.crash is not None else {}
        cycle = max(1, crash.get("cycle") or result.last_cycle + 1)
        bare = launcher(case, settings, "bare", cycle)
        reproduces = None if bare.timed_out else bare.signal_name is not None
        crash["reproduces_without_hook"] = reproduces
        crash["bare_host"] = {"cycles": cycle, "signal": bare.signal_name,
                              "timed_out": bare.timed_out, "completed": bare.completed}
        result.crash = crash
        result.message = crash_stacks.insert_before_tail(result.message, crash_stacks.whose_note(crash))

    @property
    def controls_measured(self) -> int:
        """How many controls this engine ran (each is measured once and reused)."""
        return len(self._controls)

    def control_result(self, settings: RunSettings) -> Result:
        """CPython's own row: the `pass` control's growth, judged against zero."""
        target, backend = self._prepare(settings)
        host_kind, launcher = self._launcher(target, settings, backend)
        control = self._control(self._key(target, host_kind, settings), launcher, backend, settings)
        flat = [{k: v if k == "cycle" else 0 for k, v in s.items()} for s in control.passed.samples]
        nothing = ControlRun(passed=HostRun(samples=flat, completed=True, returncode=0), probe=None)
        result = self._result(CONTROL, settings, target, host_kind, control.passed, nothing, backend)
        if result.verdict in ("leak", "clean"):
            result.message = "CPython's own growth per cycle (the `pass` control); " + (result.message or "")
        return result

    @staticmethod
    def _prepare(settings: RunSettings) -> tuple[TargetPython, Backend]:
        target = target_python(settings.python)
        check_mode(settings.mode, target)
        check_xoptions(target.executable, settings.xoptions)
        backend = get_backend(settings.backend)
        backend.check(target, settings)
        return target, backend

    @staticmethod
    def _key(target: TargetPython, host_kind: str, settings: RunSettings,
             control_code: str = CONTROL.code) -> tuple:
        # threads: the `pass` control of parallel mode runs the same thread count
        # the executable too: a venv shares its base's binary, not its sys.path
        return (control_code, target.realpath, target.executable, host_kind, settings.mode, settings.backend,
                settings.cycles, settings.warmup, settings.thread_count, settings.pythonpath,
                settings.site, settings.xoptions, settings.suppressions,
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

        dumper = crash_stacks.traceback_dumper_offset(crash_stacks.libpython_of(target))

        def launch(case: Case, s: RunSettings, role: str, total_cycles: int | None = None,
                   on_sample=None) -> HostRun:
            def argv_for(launch_spec, total_cycles: int) -> list[str]:
                # role "bare": the same case without the hook (whose crash is it?)
                mode = f"bare-{s.mode}" if role == "bare" else s.mode
                argv = [*launch_spec.prefix, str(binary), mode, str(total_cycles),
                        "{case_file}", _FD, target.sys_executable, "--token-fd", TOKEN_FD,
                        "--crash-file", "{crash_file}"]
                if dumper:
                    argv += ["--traceback-dumper", hex(dumper)]
                if s.site:
                    argv.append("--site")
                else:
                    argv += ["--path-file", "{path_file}"]
                for opt in s.xoptions:
                    argv += ["-X", opt]
                if s.thread_count is not None:
                    argv += ["--threads", str(s.thread_count)]
                # the host writes its native sites after the warm-up and at the end
                argv += ["--warmup", str(s.warmup)]
                return argv + launch_spec.host_args
            return _run_backend_host(case, s, role, backend, target, argv_for, [probe_dir],
                                     total_cycles, on_sample)

        return "c", launch

    def _pyhost_launcher(self, target: TargetPython, settings: RunSettings, backend: Backend,
                         why: str | None):
        if settings.mode != "subinterpreter":
            raise HarnessError(f"the pure-Python host runs only subinterpreter mode, not {settings.mode}")
        if not target.has_interpreters:
            raise HarnessError(f"Python {target.version} has no _interpreters/_xxsubinterpreters module")
        if "python" not in backend.hosts:
            raise HarnessError(f"the {backend.name} backend needs the C host")

        def launch(case: Case, s: RunSettings, role: str, on_sample=None) -> HostRun:
            def argv_for(launch_spec, total_cycles: int) -> list[str]:
                # -S -P, not -I: PYTHONPATH must reach the subinterpreters
                return [*launch_spec.prefix, target.sys_executable, "-S", "-P", str(PYHOST_DRIVER),
                        "{case_file}", str(total_cycles), _FD, TOKEN_FD]
            run = _run_backend_host(case, s, role, backend, target, argv_for, [], None, on_sample)
            run.fallback_reason = why
            return run

        return launch

    def _control(self, key, launcher, backend: Backend, settings: RunSettings,
                 control_case: Case = CONTROL, on_sample=None) -> ControlRun:
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            if key not in self._controls:
                passed = launcher(control_case, settings, "control", on_sample=on_sample)
                probe = None
                if (control_case is CONTROL and key[3] == "c"
                        and backend.wants_extension_probe):
                    probe = launcher(Case(name="(control: extension import)",
                                          code=f"import {PROBE_EXT_MODULE}"), settings, "probe")
                self._controls[key] = ControlRun(passed=passed, probe=probe)
            return self._controls[key]

    # -- interpretation -----------------------------------------------------
    def _result(self, case: Case, settings: RunSettings, target: TargetPython, host_kind: str,
                case_run: HostRun, control: ControlRun, backend: Backend, launcher=None) -> Result:
        result = Result(
            case=case.name, module=case.module, python=target.to_json(), mode=settings.mode,
            backend=settings.backend, host=host_kind, cycles=settings.cycles,
            warmup=settings.warmup, verdict="error", samples=case_run.samples,
            last_cycle=case_run.last_cycle, wall_s=case_run.wall_s,
            distribution=distribution_json(target, case.module),
        )
        fallback = case_run.fallback_reason
        if fallback:
            result.evidence["host_fallback"] = f"C host unavailable ({fallback}); used the pure-Python host"
        if case_run.forged_lines:
            result.evidence["forged_lines"] = case_run.forged_lines
        ended = ending_verdict(case_run, settings)
        if ended:
            result.verdict, result.message = ended
            crash_stacks.attach(result, case_run, case.module)
            hint = import_hint(target, result.message, settings.site) if ended[0] == "error" else None
            result.message += f"\n{hint}" if hint else ""
            return result
        if case_run.extensions.get(1):
            result.evidence["extensions_loaded"] = sorted(case_run.extensions[1])
        lost = lost_extension(case_run)
        if lost:
            result.verdict = "unsupported"
            result.message = reinit_message(lost.module, settings.mode, lost.cycle,
                                            _refusal_alone(lost.module, settings, launcher))
            return result
        control_problem = ending_verdict(control.passed, settings)
        if control_problem:
            result.verdict = "error"
            result.message = (f"the `{control.case.code.strip()}` control failed on its own: "
                              f"{control_problem[1]}")
            return result
        case_series = _per_interpreter(backend.series(case_run), settings)
        control_series = _per_interpreter(backend.series(control.passed), settings)
        machinery = self._machinery_share(control, settings, backend)
        interned = interned_excess(case_run.samples, control.passed.samples, settings.warmup)
        allowance = {
            "blocks": interned["blocks"] + machinery.get("blocks", 0.0),
            "bytes": interned["bytes"] + machinery.get("bytes", 0.0),
        }
        judgement = judge(case_series, control_series, settings.warmup, allowance=allowance)
        keys = CONTRACT_KEYS + EXTRA_KEYS
        result.verdict = judgement.verdict
        result.per_cycle = {k: _round(judgement.per_cycle.get(k)) for k in keys}
        result.excess = {k: _round(judgement.excess.get(k)) for k in keys}
        result.control = {
            "case": control.case.name,
            "code": control.case.code.strip(),
            "per_cycle": {k: _round(judgement.control_per_cycle.get(k)) for k in keys},
            "pass_per_cycle": self._pass_per_cycle(control, judgement, backend, settings, keys),
            "extension_import_per_cycle": {k: _round(v) for k, v in machinery.items()},
        }
        result.evidence["interned_strings_per_cycle"] = _round(interned["count"])
        result.evidence["interned_per_cycle"] = {
            "blocks": _round(interned["blocks"]), "bytes": _round(interned["bytes"]),
            "measured": interned["measured"]}
        result.tolerance = {k: _round(v) for k, v in judgement.tolerance.items()}
        result.evidence["per_cycle_deltas"] = per_cycle_deltas(
            case_series, control_series, case_run.samples, control.passed.samples, settings.warmup)
        result.evidence.update({
            "triggered_by": judgement.triggered_by,
            "excess_halves": {k: [_round(a), _round(b)] for k, (a, b) in judgement.halves.items()},
        })
        if settings.thread_count is not None:
            _add_parallel_evidence(result, case_run, control.passed, settings)
        result.message = summary_line(result, judgement.triggered_by)
        return result

    @staticmethod
    def _pass_per_cycle(control: ControlRun, judgement, backend: Backend,
                        settings: RunSettings, keys) -> dict[str, float | None]:
        """The `pass` control's growth per cycle, beside a chosen control's,
        so a reader sees what the chosen control itself adds over CPython."""
        if control.pass_run is None:
            per_cycle = judgement.control_per_cycle
        elif ending_verdict(control.pass_run, settings):
            return {k: None for k in keys}
        else:
            series = _per_interpreter(backend.series(control.pass_run), settings)
            per_cycle = judge(series, series, settings.warmup).per_cycle
        return {k: _round(per_cycle.get(k)) for k in keys}

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
        share["blocks"] = max(0.0, share.get("blocks", 0.0) - interned["blocks"])
        share["bytes"] = max(0.0, share.get("bytes", 0.0) - interned["bytes"])
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


def interned_excess(case_samples: list[dict], control_samples: list[dict],
                    warmup: int) -> dict[str, float | str]:
    """What CPython itself keeps of the case per cycle beyond the control's (3.12+).

    3.12 and 3.13 keep immortal interned strings after Py_FinalizeEx and
    Py_EndInterpreter: every identifier a module's code interns stays behind
    each cycle, whatever the module.  The host reads the interpreter's
    interned dict at each cycle's end (what the case's run added to it) and
    takes each string's exact block and size from its allocator hook, so the
    allowance is a measurement: `blocks`, `bytes` and the string `count`
    (the median over the window of case minus control).  Without the hook
    (valgrind) the host reads sizes from each string's layout (what
    unicode_new asked the allocator for), which under PYTHONMALLOC=malloc
    are memcheck's blocks; `measured` says which.  A host without either
    (the pure-Python one) gives only the count, allowed as blocks.
    """
    def excess(key: str) -> float | None:
        case = [s.get(key) for s in case_samples[warmup + 1:]]
        control = [s.get(key) for s in control_samples[warmup + 1:]]
        if not case or not control or None in case or None in control:
            return None
        n = min(len(case), len(control))
        return max(0.0, float(statistics.median(a - b for a, b in zip(case[:n], control[:n]))))

    count = excess("interned")
    blocks, size = excess("interned_blocks"), excess("interned_bytes")
    if count is None:
        return {"count": 0.0, "blocks": 0.0, "bytes": 0.0, "measured": "none"}
    if blocks is None or size is None:
        return {"count": count, "blocks": count, "bytes": 0.0,
                "measured": "count only (this host reads no sizes)"}
    sources = {s.get("interned_from_hook") for s in case_samples[warmup + 1:]}
    how = ("blocks and bytes from the allocator hook" if sources == {1}
           else "blocks and bytes from each string's layout (no allocator hook)")
    return {"count": count, "blocks": blocks, "bytes": size, "measured": how}


def _refusal_alone(module: str, settings: RunSettings, launcher) -> str | None:
    """The error `import MODULE` alone raises in its second cycle, same mode.

    A package that swallows its extension's refusal (try/except ImportError
    around the import, then pure Python) leaves no message in the case's
    run; importing the extension itself in a fresh host of the same mode
    shows what it said.  None when that import succeeds every time.
    """
    if launcher is None:
        return None
    probe = Case(name=f"(re-import {module})", code=f"import {module}")
    run = launcher(probe, dataclasses.replace(settings, warmup=0, cycles=4), "reinit")
    error = run.error or {}
    lines = [ln.strip() for ln in (error.get("message") or "").splitlines() if ln.strip()]
    return lines[-1] if lines else None


def _run_backend_host(case: Case, settings: RunSettings, role: str, backend: Backend,
                      target: TargetPython, argv_for, extra_path: list[str],
                      total_cycles: int | None = None, on_sample=None) -> HostRun:
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
        case_file.write_text(case.source_code, encoding="utf-8")
        crash_file = workdir / "crash.txt"
        spec = backend.launch(target, settings, role, workdir)
        placeholders = {"{case_file}": str(case_file), "{crash_file}": str(crash_file)}
        argv = [placeholders.get(a, a) for a in argv_for(spec, total)]
        env = _env(settings, extra_path)
        env.update(spec.env)
        if not settings.site:
            argv = _give_search_path(argv, env, target, workdir)
        run = run_host(argv, _FD, env, settings.timeout * spec.timeout_factor, on_sample)
        run.artifacts = backend.collect(run, workdir, role, settings)
        if crash_file.exists() and crash_file.stat().st_size:
            run.crash_report = crash_file.read_text(errors="replace")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    if total_cycles is None and run.completed:
        for companion_total in spec.companion_cycles:
            run.companions[companion_total] = _run_backend_host(
                case, settings, role, backend, target, argv_for, extra_path, companion_total)
    return run


def _give_search_path(argv: list[str], env: dict[str, str], target: TargetPython,
                      workdir: Path) -> list[str]:
    """The target's own sys.path (venv and .pth entries; see
    host.target.search_path) after PYTHONPATH: to the C host as its module search
    path (--path-file), to the pure-Python host (run with -S) by PYTHONPATH."""
    inherited = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    entries = list(dict.fromkeys([*inherited, *search_path(target)]))
    if "{path_file}" not in argv:
        env["PYTHONPATH"] = os.pathsep.join(entries)
        return argv
    path_file = workdir / "sys_path.txt"
    path_file.write_bytes(b"".join(os.fsencode(e) + b"\n" for e in entries))
    return [str(path_file) if a == "{path_file}" else a for a in argv]


def _env(settings: RunSettings, extra_path: list[str]) -> dict[str, str]:
    env = dict(os.environ)
    inherited = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join([*settings.pythonpath, *inherited, *extra_path])
    return env


def _round(value: float | None) -> float | None:
    if value is None:
        return None
    return round(value, 3)
