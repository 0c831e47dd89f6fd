"""Turning how a host ended into a verdict and a message.

A host that did not complete its cycles gets `timeout`, `crash`, `error` or
`unsupported` from its ending alone; a completed one is judged on growth
(verdict.py) and summarised here in one line.
"""

from __future__ import annotations

import ast
import dataclasses
import re
from dataclasses import dataclass

from ..cases.model import Case
from ..host.samples_check import sample_problem, stop_problem
from ..report.numbers import fmt_bytes, fmt_count, fmt_number
from ..result import Result
from .crash import crash_cycle
from ..host.runner import HostRun
from ..settings import RunSettings

# CPython's refusals: 3.12+ "module X does not support loading in
# subinterpreters", and the older single-phase wording.
_UNSUPPORTED = re.compile(
    r"does not support loading in subinterpreters"
    r"|not supported in (?:isolated )?subinterpreters"
    r"|cannot be (?:loaded|imported) in (?:an? )?(?:isolated )?subinterpreters?",
    re.IGNORECASE,
)


# Extensions that refuse a second initialisation in one process (Cython's
# interpreter check and its "Re-initialisation is not supported", numpy's,
# and a module whose init runs again after Py_FinalizeEx with its statics
# gone): after cycle 1 these are the extension's limits, not the case's bug.
_REFUSES_REINIT = re.compile(
    r"Interpreter change detected"
    r"|can only be loaded into one interpreter per process"
    r"|Re-initiali[sz]ation is not supported"
    r"|cannot load module more than once per process"
    r"|'NoneType' object is not callable",
    re.IGNORECASE,
)
_IMPORT_ERRORS = ("ImportError", "ModuleNotFoundError")


def refusal_line(text: str) -> str:
    """CPython's own refusal from a traceback: the first exception line that
    says it ("ImportError: module X does not support loading in
    subinterpreters"), not the last line, which is a package's re-raise when
    it wraps the refusal (numpy's "IMPORTANT: PLEASE READ THIS ..." ending in
    "Original error was: ...")."""
    lines = [ln.strip() for ln in (text or "").strip().splitlines() if ln.strip()]
    matching = [ln for ln in lines if _UNSUPPORTED.search(ln)]
    stated = [ln for ln in matching if re.match(r"[\w.]+(Error|Exception): ", ln)]
    return (stated or matching or lines or [text])[0]

@dataclass(frozen=True)
class LostExtension:
    """An extension module the case loaded in cycle 1 and not in `cycle`."""

    module: str
    cycle: int
    #: every extension of cycle 1 missing in `cycle`, and those still there
    missing: tuple[str, ...] = ()
    kept: tuple[str, ...] = ()


def lost_extension(run: HostRun) -> LostExtension | None:
    """The first extension module loaded at the end of cycle 1 and missing at
    the end of a later cycle (from the host's per-cycle `extensions` lines).

    In a fresh interpreter the same case imports the same modules, so a
    module that stops appearing was refused and something else ran instead
    (a pure-Python fallback): what was measured is no longer the extension.
    """
    first = run.extensions.get(1)
    if not first:
        return None
    for cycle in sorted(c for c in run.extensions if c > 1):
        missing = sorted(first - run.extensions[cycle])
        if missing:
            return LostExtension(missing[0], cycle, tuple(missing),
                                 tuple(sorted(first & run.extensions[cycle])))
    return None


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in (text or "").strip().splitlines() if ln.strip()]
    return lines[-1] if lines else (text or "").strip()


def refused_after_first_cycle(run: HostRun) -> bool:
    """The case raised only after cycle 1 ran, with an import failure or a
    known refusal of re-initialisation: the extension cannot run twice in
    one process (in this mode), which is not a bug of the case."""
    error = run.error or {}
    cycle = error.get("cycle")
    if not isinstance(cycle, int) or cycle < 2:
        return False
    text = error.get("message") or ""
    return (error.get("type") in _IMPORT_ERRORS or bool(_REFUSES_REINIT.search(text))
            or failing_import(text) is not None)


# a traceback frame outside the case's own code ("<string>"): (file, line,
# function); a function "<module>" runs a module's body, so the exception
# went through an import
_FRAME = re.compile(r'^\s*File "(?!<string>)([^"]+)", line (\d+), in (\S+)\s*$', re.M)


def failing_import(text: str) -> str | None:
    """"FILE, line N": the innermost module body the exception went through,
    or None when it did not come from an import.

    In finalize mode and in a new subinterpreter everything Python is made
    afresh; an import that ran in cycle 1 and raises from cycle 2 on, whatever
    the exception (PyYAML 6.0.4 on 3.13.0: `TypeError: metaclass conflict`
    in yaml/cyaml.py once yaml._yaml's types outlived the first interpreter),
    meets state kept from the first interpreter, in C."""
    frames = [(path, line) for path, line, function in _FRAME.findall(text or "")
              if function == "<module>"]
    if not frames:
        return None
    path, line = frames[-1]
    return f"{path}, line {line}"


def failing_call(text: str) -> str | None:
    """"FUNCTION (FILE, line N)": the innermost frame outside the case's own
    code, or None when the exception was raised by the case's code itself.
    msgpack 1.2.4 on 3.13.0 finalize: `msgpack.packb(...)` raises
    `TypeError: 'NoneType' object is not callable` in cycle 2, in packb
    (msgpack/__init__.py, line 36): the import went through, the call did not."""
    frames = _FRAME.findall(text or "")
    if not frames:
        return None
    path, line, function = frames[-1]
    return f"{function} ({path}, line {line})"


def reinit_message(module: str, mode: str, cycle: int, refusal: str | None,
                   raised: bool = False, lost: LostExtension | None = None) -> str:
    """One line naming the extension, the mode, the cycle and its own refusal.

    `refusal`: the extension's (or CPython's) message, read from the case's
    own error or from re-importing the module alone in a second host.
    `raised`: the refusal reached the case (numpy's import fails in cycle 2),
    so nothing carried on without the extension.  `lost`: what else cycle
    `cycle` missed and kept, to say who stopped importing when nothing refused.
    """
    package = module.split(".", 1)[0]
    who = package if "." in module else "the case"
    why = (f"the extension refused re-initialisation ({refusal})" if refusal
           else "it was not loaded again (re-importing it alone raised nothing)")
    if not refusal and lost is not None and lost.kept:
        # orjson on 3.12 finalize: its init imports datetime, json, uuid in
        # cycle 1 only; later inits skip them, their pointers kept in statics
        # from the first interpreter: the module importing them is the one
        # that stopped, not the imported one
        names = ", ".join(lost.missing)
        return (f"the case loaded {names} in cycle 1 only ({mode} mode; missing from cycle "
                f"{cycle} on), though importing {module} alone works in every cycle: "
                f"{', '.join(lost.kept)}, initialised again in every cycle, no longer imports "
                f"what its first initialisation did (state kept from cycle 1, likely in C "
                f"statics), so later cycles do not run what cycle 1 ran; the case cannot be "
                f"measured past its first cycle in this mode")
    carried_on = (f" and {package} carried on without it (its fallback ran instead)"
                  if "." in module and not raised else "")
    if raised:
        why += ", and the case's import failed with it"
    return (f"{who} loaded {module} in cycle 1 only ({mode} mode; missing from cycle {cycle} on): "
            f"{why}{carried_on}; the extension cannot be measured past its first cycle in this mode")


# -- a refusal the case swallowed, behind a later error --------------------------

#: the last line of the refusal probe's exception: what each extension
#: import raised while the case ran, as a Python literal
REFUSAL_MARK = "leak-harness refused imports: "

# Runs the case with CPython's extension constructors and exec functions
# wrapped (a multi-phase module's exec slot raises in exec_dynamic: numpy's
# "cannot load module more than once per process"), so every ImportError an
# extension's creation raises is seen, even one that the code
# above it catches (datetime.py catches _datetime's refusal and imports
# _pydatetime instead).  Nothing is imported for it: the probe must not
# change what the case imports.  Only called after the case failed.
_PROBE = '''\
def _lh_refusal_probe(code):
    import _imp
    refused = []
    originals = {}
    def wrap(name):
        original = originals[name] = getattr(_imp, name)
        def create(what, *args):
            try:
                return original(what, *args)
            except ImportError as exc:
                refused.append((str(getattr(what, "name", None) or getattr(what, "__name__", "?")),
                                type(exc).__name__ + ": " + str(exc)))
                raise
        setattr(_imp, name, create)
    for name in ("create_dynamic", "create_builtin", "exec_dynamic", "exec_builtin"):
        if hasattr(_imp, name):
            wrap(name)
    try:
        exec(compile(code, "<string>", "exec"), globals())
    except BaseException as exc:
        if refused:
            raise RuntimeError(%(mark)r + repr(refused)) from exc
        raise
    finally:
        for name, original in originals.items():
            setattr(_imp, name, original)
    if refused and %(when_ran)r:
        raise RuntimeError(%(mark)r + repr(refused))
_lh_refusal_probe(%(code)r)
'''


def refusal_probe(case: Case, when_ran: bool = False) -> Case:
    """The case, run so that the extension imports refused on its way are named.

    The refusals are reported as the cycle's exception when the case raised,
    and, with `when_ran`, also when it ran through (a refusal it swallowed):
    the first cycle that saw one ends the probe."""
    return Case(name=f"(refusals of {case.name})", module=case.module,
                code=_PROBE % {"mark": REFUSAL_MARK, "code": case.source_code, "when_ran": when_ran})


def probe_refusals(run: HostRun) -> list[tuple[str, str]]:
    """(module, "ImportError: ...") for each extension import refused while
    the probe's case ran, read from the probe's last exception line."""
    last = _last_line((run.error or {}).get("message") or "")
    _, mark, listed = last.partition(REFUSAL_MARK)
    if not mark:
        return []
    try:
        refused = ast.literal_eval(listed)
    except (ValueError, SyntaxError):
        return []
    return [(str(m), str(text)) for m, text in refused
            if isinstance(m, str) and isinstance(text, str)]


def may_hide_refusal(run: HostRun) -> bool:
    """The case itself raised (not the host, a hook or a stray process): an
    import its code caught may have been refused first."""
    return bool(run.error) and not (run.hook_error or run.stray_processes or run.forged_lines
                                    or run.timed_out or run.signal_name)


def mode_refusal(refused: list[tuple[str, str]], cycle: int) -> tuple[str, str] | None:
    """The first refusal that is the mode's (CPython's "does not support
    loading in subinterpreters") or, after cycle 1, a known refusal to
    initialise again; other import failures are the module's own."""
    for module, text in refused:
        if _UNSUPPORTED.search(text) or (cycle >= 2 and _REFUSES_REINIT.search(text)):
            return module, text
    return None


def explained_ending(case: Case, run: HostRun, settings: RunSettings, launcher,
                     ended: tuple[str, str] | None) -> tuple[str, str, list[tuple[str, str]]] | None:
    """(verdict, message, refusals) that replace `ended` once a second look
    shows which extension refused, else None (keep `ended`).

    Two endings get that look, both after the case raised:
    - an `error` that follows an extension refusing this mode, which the code
      caught and went on without: the error is the refusal's consequence
      (zoneinfo on 3.12 in an isolated subinterpreter: `_datetime` is refused,
      datetime.py falls back to `_pydatetime`, and `_zoneinfo` then finds no
      `datetime.datetime_CAPI`), so the verdict is `unsupported` with the
      extension's own words, not an error of the module;
    - an `unsupported` refusal to initialise again after cycle 1, whose
      message does not say which extension refused ("cannot load module more
      than once per process"): the one whose creation raised it is named, not
      the first of the extensions that cycle 2 never reached.

    Reruns the case once in a second host of the same mode, up to the failing
    cycle, under `refusal_probe`; only after the case failed.
    """
    if launcher is None or ended is None or not may_hide_refusal(run):
        return None
    cycle = run.error.get("cycle")
    if not isinstance(cycle, int) or cycle < 1:
        return None
    reinit = ended[0] == "unsupported" and refused_after_first_cycle(run) \
        and not _UNSUPPORTED.search(run.error.get("message") or "")
    if ended[0] != "error" and not reinit:
        return None
    probe = launcher(refusal_probe(case), dataclasses.replace(settings, warmup=0, cycles=max(cycle, 4)),
                     "refusals")
    refused = probe_refusals(probe)
    found = mode_refusal(refused, cycle)
    if found is None:
        return None
    module, text = found
    if reinit:
        return "unsupported", reinit_message(module, settings.mode, cycle, text, raised=True), refused
    error = _last_line(run.error.get("message") or "")
    if _raises_without_refusal(case, settings, launcher, cycle, error):
        return None  # the case's own error: it raises where nothing is refused too
    why = ("refused this mode" if _UNSUPPORTED.search(text)
           else "refused to initialise again in one process")
    return "unsupported", (
        f"{module} {why} ({settings.mode} mode, cycle {cycle}: {text}); the code caught that and "
        f"went on without it, then raised {error} — a consequence of the refusal, not an error "
        f"of the case's own"), refused

def _raises_without_refusal(case: Case, settings: RunSettings, launcher, cycle: int,
                            error: str) -> bool:
    """The case raises the same error in a legacy subinterpreter, where
    CPython refuses no extension: then the refusal only came first, and the
    error is the case's own (simplejson's Python-2-only ordered_dict raised
    ModuleNotFoundError: No module named 'UserDict' in every mode, and was
    called a consequence of the refusal).  One rerun, up to the cycle that
    raised; only the isolated modes have a mode to compare with."""
    if settings.mode not in REFUSING_MODES:
        return False
    legacy = dataclasses.replace(settings, mode="legacy-subinterpreter", warmup=0,
                                 cycles=max(cycle, 4))
    rerun = launcher(case, legacy, "case")
    return bool(rerun.error) and _last_line(rerun.error.get("message") or "") == error


#: modes whose interpreters CPython refuses extensions in (own GIL, isolated)
REFUSING_MODES = ("subinterpreter", "parallel")


def with_refused_fallback(result: Result, case: Case, run: HostRun, settings: RunSettings,
                          launcher, own_extensions: tuple[str, ...]) -> None:
    """A `clean` or `leak` of a package whose own extension CPython refused in
    this mode from cycle 1 on, and which the package swallowed, becomes
    `unsupported`: what ran is its pure-Python fallback, so the verdict was
    not earned by the extension (simplejson, msgpack and PyYAML import their
    single-phase speed-ups in try/except ImportError).

    `own_extensions`: the extension modules of the case module's installed
    distribution.  Only when none of them was loaded in cycle 1 is the case
    rerun once, for 4 cycles, under `refusal_probe`; the growth rule's
    verdict and numbers stay (`evidence.growth_verdict`, `per_cycle`,
    `excess`)."""
    if (launcher is None or result.verdict not in ("clean", "leak") or not own_extensions
            or settings.mode not in REFUSING_MODES):
        return
    if set(own_extensions) & run.extensions.get(1, set()):
        return
    probe = launcher(refusal_probe(case, when_ran=True),
                     dataclasses.replace(settings, warmup=0, cycles=4), "refusals")
    refused = probe_refusals(probe)
    own = [(m, t) for m, t in refused if m in own_extensions and _UNSUPPORTED.search(t)]
    if not own:
        return
    module, text = own[0]
    package = (case.module or module).split(".", 1)[0]
    growth_verdict = result.verdict
    result.evidence["growth_verdict"] = growth_verdict
    result.evidence["refused_imports"] = [{"module": m, "message": t} for m, t in refused]
    result.verdict = "unsupported"
    result.message = (f"{package} carried on without its extension {module}: CPython refused it in "
                      f"{settings.mode} mode ({text}) and the package caught that, so from cycle 1 "
                      f"on its pure-Python fallback ran, not the extension; the fallback by "
                      f"growth: {result.message}")

def ending_verdict(run: HostRun, settings: RunSettings) -> tuple[str, str] | None:
    """(verdict, message) when the host did not complete its cycles or its
    samples are not the ones asked for, else None."""
    total = settings.warmup + settings.cycles
    ended = how_host_ended(run, total_cycles=total, threads=settings.thread_count,
                           timeout_s=settings.timeout, mode=settings.mode, backend=settings.backend)
    if ended:
        return ended
    problem = stop_problem(run.stop_asked_at, run.stopped_at, settings.warmup, settings.cycles)
    if problem:
        return "error", problem
    problem = sample_problem(run.samples, total)
    if problem:
        return "error", problem
    return None


def how_host_ended(run: HostRun, *, total_cycles: int, threads: int | None, timeout_s: float,
                   mode: str, backend: str = "counters") -> tuple[str, str] | None:
    """(verdict, message) of a host that did not complete its `total_cycles`
    (stray processes, timeout, signal, forged lines, a raising hook or case,
    an exit status), else None: the one reading of how a host ended, for the
    engine and for scale alike."""
    total = total_cycles
    reached = (f"cycle {run.last_cycle + 1} of {total}" if run.last_cycle < total
               else f"the final shutdown after all {total} cycles")
    if threads is not None:  # parallel: where each thread got to
        reached += f" ({run.threads_note(threads)})"
    tail = run.output_tail.strip()
    tail_note = f"\n--- host output (tail) ---\n{tail}" if tail else ""
    if run.stray_processes:  # before crash: the harness killed the host for it
        when = f"cycle {run.stray_cycle}" if run.stray_cycle else "the host ended"
        return "error", (f"the case left {len(run.stray_processes)} process(es) running after "
                         f"{when}, killed: {', '.join(run.stray_processes)}")
    if run.timed_out:
        return "timeout", f"no end after {timeout_s:g} s, in {reached}{tail_note}"
    if run.signal_name:
        if run.last_cycle == 0 and crash_cycle(run.crash_report) == 0:
            reached = "the main interpreter's start, before cycle 1"
        return "crash", f"host killed by {run.signal_name} in {reached}{tail_note}"
    if run.forged_lines:
        return "error", (f"{run.forged_lines} line(s) on the host's sample pipe did not come from the "
                         "host (no run token): the case wrote to the host's channel; its samples "
                         "were dropped, and the run is not a measurement")
    if run.hook_error:
        # the backend's code in the main interpreter failed, not the case
        hook = run.hook_error
        return "error", (f"the {backend} backend's main-interpreter hook raised "
                         f"{hook.get('type')} at cycle {hook.get('cycle')}:\n{hook.get('message') or ''}")
    if run.error and run.error.get("type") == "HostProtocolError":
        # the host's own complaint (adaptive cycles' stop pipe), not the case's exception
        return "error", (f"the host's stop pipe broke after cycle {run.error.get('cycle')}: "
                         f"{run.error.get('message')} (the case reached the harness's channel); "
                         "the run is not a measurement")
    if run.error:
        text = run.error.get("message") or ""
        if _UNSUPPORTED.search(text):
            return "unsupported", refusal_line(text)
        if refused_after_first_cycle(run):
            cycle = run.error.get("cycle")
            lost = sorted(run.extensions.get(1, set()) - run.extensions.get(cycle, set()))
            refusal = _last_line(text)
            where = failing_import(text)
            if (where and run.error.get("type") not in _IMPORT_ERRORS
                    and not _REFUSES_REINIT.search(text)):
                return "unsupported", (
                    f"the case's import ran in cycle 1 and failed in cycle {cycle} ({mode} "
                    f"mode), in {where}: {refusal}; a new interpreter in the same process meets "
                    f"state kept from the first one (an extension's C statics), so the case "
                    f"cannot be measured past its first cycle in this mode")
            called = failing_call(text)
            if run.error.get("type") not in _IMPORT_ERRORS and not where and called:
                # a known refusal's signature from a call: the imports went through
                missing = f"; {', '.join(lost)} (loaded in cycle 1) not loaded again" if lost else ""
                return "unsupported", (
                    f"the case ran in cycle 1 but raised in cycle {cycle} ({mode} mode), in "
                    f"{called}: {refusal}{missing}; what it calls meets state kept from the first "
                    "interpreter (an extension's C statics), so the case cannot be measured "
                    "past its first cycle in this mode")
            if lost:
                return "unsupported", reinit_message(lost[0], mode, cycle, refusal, raised=True)
            return "unsupported", (f"the case ran in cycle 1 but its import failed in cycle {cycle} "
                                   f"({mode} mode): {refusal}; the module refuses "
                                   "re-initialisation in one process")
        return "error", f"the case raised {run.error.get('type')} in cycle {run.error.get('cycle')}:\n{text}"
    if run.returncode != 0 or not run.completed:
        return "error", f"host exited with status {run.returncode} in {reached}{tail_note}"
    return None


def one_line(message: str) -> str:
    """A verdict's message for a table cell: its first line and, when there is
    more, its last (the exception a case raised, the host's last output)."""
    lines = [ln.strip() for ln in message.splitlines() if ln.strip()]
    if len(lines) <= 1:
        return lines[0] if lines else ""
    return f"{lines[0].rstrip(':')}: {lines[-1]}"


def summary_line(result: Result, triggered: list[str]) -> str:
    excess = result.excess or {}
    blocks, size = excess.get("blocks"), excess.get("bytes")
    if blocks is None:
        numbers = "no usable counters"
    elif size is None:
        numbers = f"{fmt_number(blocks)} blocks/cycle over the control"
    else:
        numbers = f"{fmt_number(blocks)} blocks/cycle, {fmt_bytes(size)}/cycle over the control"
    native_blocks, native_size = excess.get("native_blocks"), excess.get("native_bytes")
    if blocks is not None and native_blocks is not None and native_size is not None:
        numbers += f"; native {fmt_number(native_blocks)} blocks/cycle, {fmt_bytes(native_size)}/cycle"
    raw_blocks, raw_size = excess.get("raw_blocks"), excess.get("raw_bytes")
    if {"raw_blocks", "raw_bytes"} & set(triggered) and raw_blocks is not None and raw_size is not None:
        numbers += f"; PyMem RAW {fmt_number(raw_blocks)} blocks/cycle, {fmt_bytes(raw_size)}/cycle"
    interned = result.evidence.get("interned_strings_per_cycle") or 0
    interned_bytes = (result.evidence.get("interned_per_cycle") or {}).get("bytes") or 0
    size_note = f" ({fmt_bytes(interned_bytes)})" if interned_bytes else ""
    discount = (f"; {fmt_count(interned)} interned strings/cycle{size_note} kept by CPython itself are discounted"
                if interned else "")
    threads = result.evidence.get("threads")
    if threads:  # parallel mode
        rate = result.evidence.get("cycles_per_s")
        discount += (f"; per interpreter cycle, {threads} threads"
                     + (f", {fmt_count(rate)} interpreter cycles/s" if rate else ""))
    if result.verdict == "leak":
        return f"leaks {numbers} (judged on {', '.join(triggered)}{discount})"
    return f"clean: {numbers}{discount}"


def with_where_hint(result: Result) -> None:
    """A counters leak that no site explains ends with the command that would
    say where; called once the backend has added its sites."""
    if result.verdict == "leak" and result.backend == "counters" and not result.sites:
        result.message = f"{result.message}; {where_hint(result)}"


def where_hint(result: Result) -> str:
    """The next step after a counters leak: --explain auto, which picks what
    names its sites in this mode.  Not `--backend valgrind` for finalize, as
    this said before --explain could do better: there the counting host's
    PyMem callers name what a static keeps (3.12.1 _curses' exception type,
    at its PyErr_NewException line), and valgrind's top sites were the
    interned names the verdict discounts; auto still falls back on valgrind
    when those callers do not account for the leak.  In the subinterpreter
    modes auto runs memray when it is installed inside the target."""
    if result.mode == "finalize":
        return "to see where it is allocated, rerun with --explain auto"
    exe = result.python.get("executable", "TARGET")
    return ("to see where it is allocated, rerun with --explain auto "
            f"(memray when it is inside the target: {exe} -m pip install memray; "
            "else tracemalloc or valgrind)")


def with_memcheck_errors(result: Result) -> None:
    """The one place memcheck errors decide a verdict.

    The backend keeps only the case's own errors (not CPython's).  Any of
    them makes a measured case `error` — a read of freed memory outweighs
    a growth figure — but the growth rule's verdict stays in
    `evidence.growth_verdict`, its numbers in `per_cycle`/`excess`, and the
    message says both."""
    if not result.errors or result.verdict not in ("leak", "clean"):
        return
    growth_verdict = result.verdict
    first = result.errors[0]
    result.evidence["growth_verdict"] = growth_verdict
    result.verdict = "error"
    result.message = (f"memcheck found {len(result.errors)} error(s) of the case's own: "
                      f"{first['kind']} in {first['module']} ({first['at']}); and by growth the "
                      f"case is {growth_verdict}: {result.message}")
