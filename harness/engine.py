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

import contextvars
import dataclasses
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable

from .backends import get_backend
from .backends.base import Backend
from .backends.counters import CONTRACT_KEYS, EXTRA_KEYS
from .cases.model import CONTROL, Case, chosen_control
from .verdict import crash as crash_stacks
from .errors import HarnessError, HostBuildError
from .host.build import PROBE_EXT_MODULE, build_host, build_probe_extension
from .cases.packages import distribution_extensions, distribution_json, import_hint
from .host.modes import check_mode
from .host.target import TargetPython, check_xoptions, target_python
from .verdict.ending import ending_verdict, lost_extension, reinit_message, REFUSING_MODES, summary_line, explained_ending, with_memcheck_errors, with_refused_fallback, with_where_hint
from .result import Result
from .host.launch import CASE_FILE, CRASH_FILE, PATH_FILE, c_host_argv, pyhost_argv, run_case_host
from .host.runner import HostRun, Stopping
from .host.samples_check import stop_problem
from .verdict.inputs import add_parallel_evidence, interned_excess, per_interpreter
from .settings import MIN_CYCLES, RunSettings
from .verdict.rule import judge, judged_metrics
from .verdict.deltas import per_cycle_deltas
from .verdict.settled import first_decidable, settled_clean

#: bare-host runs (to the crashed cycle) before a crash is taken not to repeat
#: without the hook; then the hooked host's reruns that must all crash again
BARE_ATTEMPTS = 4
HOOKED_RERUNS = 2


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
    #: the machinery share by (control samples, probe samples) kept: the same
    #: for every case judged against this control, so computed once; a copy
    #: cut to a case's stop (_as_stopped) shares it
    shares: dict = dataclasses.field(default_factory=dict)
    #: the series adaptive cycles judge the control by (the control is
    #: measured per settings): built once, not after every later cycle of
    #: every case
    judged_series: dict | None = None
    #: why the control ran twice (its first host could not create a
    #: subinterpreter: a CPython race, see _creation_failed), else None
    retried: str | None = None


def _creation_failed(run: HostRun) -> str | None:
    """The error of a control host whose subinterpreter could not be made,
    or None.  3.13.0 fails now and then to create an own-GIL interpreter
    while another thread creates one ("Failed to import encodings module",
    CPython gh-128381, gh-131485); seen once in CI, in parallel mode's
    `pass` control at cycle 15, and in none of 210 runs tried after.  The
    control is CPython alone, so such a run says nothing about any case."""
    error = run.error or {}
    if not run.completed and error.get("type") == "InterpreterError":
        return f"cycle {error.get('cycle')}: {error.get('text') or 'interpreter creation failed'}"
    return None


class Engine:
    """Runs cases; keeps the controls it measured so each is measured once."""

    def __init__(self) -> None:
        self._controls: dict[tuple, ControlRun] = {}
        #: key -> the samples of that control so far, while it runs (adaptive cycles)
        self._live: dict[tuple, list[dict]] = {}
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

        judging_key = key if chosen is None else self._key(target, host_kind, settings, chosen.code)

        def controls() -> ControlRun:
            passed = self._control(key, launcher, backend, settings, on_sample=watch("pass"))
            if chosen is None:
                return passed
            own = self._control(judging_key, launcher, backend, settings, chosen,
                                on_sample=watch("control"))
            # the probe measures extension-import machinery over `pass`;
            # a chosen control that imports an extension already holds it
            return ControlRun(passed=own.passed, probe=passed.probe, case=chosen,
                              pass_run=passed.passed, shares=own.shares,
                              retried=own.retried or passed.retried)

        stopping = (self._stopping(settings, backend, judging_key, key)
                    if host_kind == "c" else None)
        if key in self._controls and judging_key in self._controls:
            # measured already (every case of a sweep but the first per mode):
            # no thread to wait on them
            case_run = launcher(case, settings, "case", on_sample=watch("case"), stopping=stopping)
            control = controls()
        else:
            with ThreadPoolExecutor(max_workers=1) as pool:
                # the caller's context goes with it (what a benchmark tags its hosts by)
                control_future = pool.submit(contextvars.copy_context().run, controls)
                case_run = launcher(case, settings, "case", on_sample=watch("case"),
                                    stopping=stopping)
                control = control_future.result()
        full_settings = settings
        settings, control = _as_stopped(case_run, settings, control)
        result = self._result(case, settings, target, host_kind, case_run, control, backend, launcher)
        result.cycle_stop = _cycle_stop(case_run, full_settings, stopping)
        if result.verdict in ("leak", "clean"):
            backend.finish(result, case_run, control.passed, settings)
            with_memcheck_errors(result)
            with_where_hint(result)
        if result.verdict == "crash":
            backend.crashed(result, case_run, control.passed, settings)
            result.message = crash_stacks.with_crash_stack(result.message, result.crash)
        if result.verdict == "crash" and host_kind == "c" and settings.backend == "counters":
            self._rerun_bare(case, settings, launcher, result)
        return result

    @staticmethod
    def _rerun_bare(case: Case, settings: RunSettings, launcher, result: Result) -> None:
        """Whose crash: the same case on the bare host (no allocator hook, no
        counters) up to the cycle that crashed, up to BARE_ATTEMPTS times
        until one crashes.  A crash no bare run repeats is the harness's only
        when the hooked host crashes again in each of HOOKED_RERUNS reruns;
        otherwise it is not repeatable (a race, a timing, address layout) and
        whose it is stays unknown: a module that crashes one run in two must
        not be reported as a harness bug.  All of it costs nothing where the
        first bare run crashes, as CPython's and the modules' crashes do."""
        crash = result.crash if result.crash is not None else {}
        cycle = max(1, crash.get("cycle") or result.last_cycle + 1)
        bare = None
        if cycle > 1 and crash_stacks.at_final_shutdown(crash, settings.mode):
            # one cycle reaches the main interpreter's end as well: the same
            # signal there answers the question for a 25th of the cycles
            # (the 8 such crashes of a 3.12.1 stdlib sweep were 2/3 of its
            # bare reruns' CPU); anything else, and all cycles are rerun
            short = launcher(case, settings, "bare", 1)
            if crash_stacks.crashed_alike(short, crash):
                bare, cycle = short, 1
        attempts = 0
        while bare is None or (bare.signal_name is None and bare.completed
                               and attempts < BARE_ATTEMPTS):
            bare = launcher(case, settings, "bare", cycle)
            attempts += 1
        # a bare run that ended short of its cycles without a signal (the
        # case raised or exited: one reading the hook's allocator fails
        # without it) never reached the crash: it proves nothing either way
        reproduces = True if bare.signal_name else (False if bare.completed else None)
        crash["bare_host"] = {"cycles": cycle, "signal": bare.signal_name,
                              "timed_out": bare.timed_out, "completed": bare.completed}
        if reproduces is None and not bare.timed_out:
            crash["bare_host"].update(returncode=bare.returncode, reached=bare.last_cycle)
        if attempts > 1:
            crash["bare_host"]["runs"] = attempts
        if reproduces is False:
            # no bare run crashed: the harness's only if the hooked host
            # crashes again every time (a module crashing one run in two
            # was called a harness bug after one clean bare run)
            crashed = sum(launcher(case, settings, "case", cycle).signal_name is not None
                          for _ in range(HOOKED_RERUNS))
            crash["hooked_reruns"] = {"runs": HOOKED_RERUNS, "crashed": crashed}
            if crashed < HOOKED_RERUNS:
                reproduces = None
                crash["not_repeatable"] = True
        crash["reproduces_without_hook"] = reproduces
        bare_phase = crash_stacks.crash_phase(bare.crash_report)
        if bare_phase:
            crash["bare_host"]["phase"] = bare_phase
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
                settings.site, settings.xoptions, settings.backend_options,
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
                   on_sample=None, stopping: Stopping | None = None) -> HostRun:
            # role "bare": the same case without the hook (whose crash is it?)
            mode = f"bare-{s.mode}" if role == "bare" else s.mode

            def argv_for(spec, total: int) -> list[str]:
                return c_host_argv(binary, mode, total, CASE_FILE, target, threads=s.thread_count,
                                   xoptions=s.xoptions, site=s.site, path_file=PATH_FILE,
                                   crash_file=CRASH_FILE, warmup=s.warmup, traceback_dumper=dumper,
                                   prefix=spec.prefix, host_args=spec.host_args,
                                   ask_from=stopping.ask_from if stopping else None)
            return run_case_host(case, s, role, backend, target, argv_for, [probe_dir], total_cycles,
                                 on_sample, stopping)

        return "c", launch

    def _pyhost_launcher(self, target: TargetPython, settings: RunSettings, backend: Backend,
                         why: str | None):
        if settings.mode != "subinterpreter":
            raise HarnessError(f"the pure-Python host runs only subinterpreter mode, not {settings.mode}")
        if not target.has_interpreters:
            raise HarnessError(f"Python {target.version} has no _interpreters/_xxsubinterpreters module")
        if "python" not in backend.hosts:
            raise HarnessError(f"the {backend.name} backend needs the C host")

        def launch(case: Case, s: RunSettings, role: str, on_sample=None,
                   stopping: Stopping | None = None) -> HostRun:
            # its argv has no stop pipe: run_case_host runs every cycle (the
            # engine builds no Stopping for this host)
            def argv_for(spec, total: int) -> list[str]:
                return pyhost_argv(target, CASE_FILE, total, spec.prefix)
            run = run_case_host(case, s, role, backend, target, argv_for, [], None, on_sample,
                                stopping)
            run.fallback_reason = why
            return run

        return launch

    def _control(self, key, launcher, backend: Backend, settings: RunSettings,
                 control_case: Case = CONTROL, on_sample=None) -> ControlRun:
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            if key not in self._controls:
                live = self._live.setdefault(key, [])

                def seen(sample: dict) -> None:
                    live.append(sample)
                    if on_sample is not None:
                        on_sample(sample)
                probe = None
                if control_case is CONTROL and key[3] == "c" and backend.wants_extension_probe:
                    # neither needs the other: run side by side, the first case
                    # of a mode waits for the longer of them, not for both
                    # (a valgrind explaining run's pass control and probe are
                    # ~2.5 s each)
                    with ThreadPoolExecutor(max_workers=1) as pool:
                        probing = pool.submit(contextvars.copy_context().run, launcher,
                                              Case(name="(control: extension import)",
                                                   code=f"import {PROBE_EXT_MODULE}"),
                                              settings, "probe")
                        passed = launcher(control_case, settings, "control", on_sample=seen)
                        probe = probing.result()
                else:
                    passed = launcher(control_case, settings, "control", on_sample=seen)
                failed = _creation_failed(passed)
                if failed is not None:
                    # once: a second failure is the control's error, as before
                    live.clear()
                    passed = launcher(control_case, settings, "control", on_sample=seen)
                self._controls[key] = ControlRun(passed=passed, probe=probe, retried=failed)
            return self._controls[key]

    def _stopping(self, settings: RunSettings, backend: Backend, judging_key: tuple,
                  pass_key: tuple) -> Stopping | None:
        """The case's answer to its host after each cycle from the fewest that
        can settle it: stop once verdict.settled says its `clean` is settled,
        against the control it is judged by (its samples so far, while it
        still runs).  None where cycles stay fixed: --fixed-cycles, a
        tracing backend, parallel mode (rounds fenced by barriers)."""
        if settings.fixed_cycles or not backend.adaptive_cycles or settings.thread_count is not None:
            return None
        # never fewer measured cycles than --cycles accepts: a slope needs points
        min_cycles = max(settings.min_cycles or 1, first_decidable(settings.cycles), MIN_CYCLES)
        if min_cycles >= settings.cycles:
            return None
        machinery: dict[str, float] | None = None

        def should_stop(samples: list[dict]) -> bool:
            nonlocal machinery
            cached = self._controls.get(judging_key)
            control_samples = list(cached.passed.samples if cached else self._live.get(judging_key, ()))
            if len(control_samples) < len(samples):
                return False
            if machinery is None and (pass_control := self._controls.get(pass_key)) is not None:
                machinery = self._machinery_share(pass_control, settings, backend)
            interned = interned_excess(samples, control_samples, settings.warmup)
            share = machinery or {}   # unknown yet: no share, the stricter tolerance
            allowance = {"blocks": interned["blocks"] + share.get("blocks", 0.0),
                         "bytes": interned["bytes"] + share.get("bytes", 0.0)}
            if cached is not None:   # measured to its end: the same series for every case
                if cached.judged_series is None:
                    cached.judged_series = per_interpreter(
                        backend.series(HostRun(samples=cached.passed.samples)), settings)
                control_series = cached.judged_series
            else:
                control_series = per_interpreter(backend.series(HostRun(samples=control_samples)), settings)
            return settled_clean(
                per_interpreter(backend.series(HostRun(samples=samples)), settings),
                control_series, settings.warmup, settings.cycles, min_cycles, allowance) is not None

        return Stopping(ask_from=settings.warmup + min_cycles, should_stop=should_stop)

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
        if control.retried:
            result.evidence["control_retried"] = (
                f"the control's first host could not create a subinterpreter ({control.retried}); "
                "it ran again")
        fallback = case_run.fallback_reason
        if fallback:
            result.evidence["host_fallback"] = f"C host unavailable ({fallback}); used the pure-Python host"
        if case_run.forged_lines:
            result.evidence["forged_lines"] = case_run.forged_lines
        ended = ending_verdict(case_run, settings)
        refusal = explained_ending(case, case_run, settings, launcher, ended)
        if refusal:  # a second look named the extension that refused
            ended = refusal[:2]
            result.evidence["refused_imports"] = [{"module": m, "message": t} for m, t in refusal[2]]
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
                                            _refusal_alone(lost.module, settings, launcher), lost=lost)
            return result
        control_problem = ending_verdict(control.passed, settings)
        if control_problem:
            result.verdict = "error"
            result.message = (f"the `{control.case.code.strip()}` control failed on its own: "
                              f"{control_problem[1]}")
            return result
        case_series = per_interpreter(backend.series(case_run), settings)
        control_series = per_interpreter(backend.series(control.passed), settings)
        machinery = self._machinery_share(control, settings, backend)
        interned = interned_excess(case_run.samples, control.passed.samples, settings.warmup)
        allowance = {
            "blocks": interned["blocks"] + machinery.get("blocks", 0.0),
            "bytes": interned["bytes"] + machinery.get("bytes", 0.0),
        }
        judgement = judge(case_series, control_series, settings.warmup, allowance=allowance,
                          judged=judged_metrics(settings.backend))
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
            add_parallel_evidence(result, case_run, control.passed, settings)
        result.message = summary_line(result, judgement.triggered_by)
        if settings.mode in REFUSING_MODES:  # a package's own extension refused, its fallback measured
            with_refused_fallback(result, case, case_run, settings, launcher,
                                  distribution_extensions(target, case.module))
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
            series = per_interpreter(backend.series(control.pass_run), settings)
            per_cycle = judge(series, series, settings.warmup).per_cycle
        return {k: _round(per_cycle.get(k)) for k in keys}

    def _machinery_share(self, control: ControlRun, settings: RunSettings,
                         backend: Backend) -> dict[str, float]:
        """Per-cycle growth of importing a known-clean extension, over `pass`,
        beyond the interned strings already discounted (normally nothing left:
        on 3.12/3.13 the one block it keeps is its interned module name)."""
        if control.probe is None:
            return {}
        memo = (len(control.passed.samples), len(control.probe.samples))
        if memo not in control.shares:
            control.shares[memo] = self._measure_machinery(control, settings, backend)
        return dict(control.shares[memo])

    @staticmethod
    def _measure_machinery(control: ControlRun, settings: RunSettings,
                           backend: Backend) -> dict[str, float]:
        if ending_verdict(control.probe, settings):
            return {}
        probe = judge(per_interpreter(backend.series(control.probe), settings),
                      per_interpreter(backend.series(control.passed), settings), settings.warmup)
        interned = interned_excess(control.probe.samples, control.passed.samples, settings.warmup)
        share = {k: max(0.0, v) for k, v in probe.excess.items()
                 if k in ("blocks", "bytes", "refs") and v is not None}
        share["blocks"] = max(0.0, share.get("blocks", 0.0) - interned["blocks"])
        share["bytes"] = max(0.0, share.get("bytes", 0.0) - interned["bytes"])
        return share


def _as_stopped(case_run: HostRun, settings: RunSettings,
                control: ControlRun) -> tuple[RunSettings, ControlRun]:
    """A case that stopped early (adaptive cycles) is judged on the cycles it
    ran: the settings say that many cycles and the controls are cut to the
    same samples, so every stage after this one sees one consistent run.
    A stop the harness did not ask for changes nothing here; the ending
    check (stop_problem) makes it an error."""
    stopped = case_run.stopped_at
    if stopped is None or stop_problem(case_run.stop_asked_at, stopped, settings.warmup,
                                       settings.cycles) is not None:
        return settings, control
    ran = stopped - settings.warmup
    keep = stopped + 1

    def cut(run: HostRun | None) -> HostRun | None:
        return None if run is None else dataclasses.replace(run, samples=run.samples[:keep])

    return (dataclasses.replace(settings, cycles=ran),
            ControlRun(passed=cut(control.passed), probe=cut(control.probe), case=control.case,
                       pass_run=cut(control.pass_run), shares=control.shares,
                       retried=control.retried))


def _cycle_stop(case_run: HostRun, settings: RunSettings, stopping: Stopping | None) -> dict:
    """The result's `cycle_stop`: how many cycles ran of how many, and why."""
    ran = max(0, case_run.last_cycle - settings.warmup)
    out = {"policy": "adaptive" if stopping else "fixed", "max_cycles": settings.cycles,
           "min_cycles": (stopping.ask_from - settings.warmup) if stopping else settings.cycles,
           "cycles_run": ran, "stopped_early": False}
    if stopping is None:
        why = ("--fixed-cycles" if settings.fixed_cycles
               else "this backend, mode or host runs a fixed number of cycles")
    elif case_run.stopped_at is not None:
        out["stopped_early"] = True
        why = (f"the verdict was settled clean after {ran} of {settings.cycles} measured cycles: "
               "the first half of the full window could no longer exceed the tolerance")
    elif case_run.last_cycle < settings.warmup + settings.cycles:
        why = f"the host ended after cycle {case_run.last_cycle} (see the verdict)"
    else:
        why = ("every cycle ran: the growth was not settled clean before the last cycle "
               "(a leak is judged on the full window, both halves)")
    if case_run.stop_error:
        why += f"; the stop decision failed ({case_run.stop_error}), so the host went on"
    out["why"] = why
    return out


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


def _round(value: float | None) -> float | None:
    if value is None:
        return None
    return round(value, 3)
