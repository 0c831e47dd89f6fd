"""Explain only what leaks: counters decide, a tracing backend names the sites.

`run`/`sweep --explain BACKEND`: every case is judged by its own backend
(counters by default) at its own cycles.  Each `leak` is then run once more
with the tracing backend (memray, valgrind or tracemalloc) at the fewest
cycles that still give the same sites as a full tracing run (EXPLAIN_CYCLES,
measured on the fixtures, see below), and that run's sites replace the
counters' in the same result, with `evidence.explained_by` saying which
backend, how many cycles, how long it took and why that backend.  The
verdict is never changed: the explaining run's own verdict is evidence
only, since it is judged at fewer cycles on other numbers.  Clean cases
(and crashes, hangs, refusals) are not rerun, so a sweep where nothing
leaks costs what the sweep alone costs.

A backend that refuses the case's mode (memray and tracemalloc cannot
measure finalize; tracemalloc aborts isolated subinterpreters on 3.12) is
replaced by the one `auto` would choose there: valgrind for finalize,
memray (else tracemalloc, else valgrind) for the subinterpreter modes.

Such a stand-in is not run when the counters' own sites already name the
leak: the verdict was judged on native blocks or bytes only, and the
counting host's native sites in an extension's own code hold the whole of
that excess (`own_sites_suffice`).  The counting host records each caller of
malloc exactly, so those sites are the allocation sites; a valgrind run
would trace the whole heap, and there the growth is mostly what the
counters discount (3.13.0 finalize, pdb: valgrind's twelve sites were all
strings unmarshalled and interned by CPython, while the leak judged was
readline.c:1313's one block).  `--explain valgrind`, asked by name, still
runs valgrind, for its full stacks.

A leak judged on PyMem blocks and bytes alone, whose explaining backend is
a stand-in (auto's choice, in any mode), is first rerun on the
counting host with --pymem-sites (`pymem_sites_may_explain`,
`pymem_sites_account`): each MEM and OBJ
block is put under its first caller outside CPython (an extension's call of
PyModule_AddIntConstant, PyType_FromSpec, ...), or under CPython when there
is none, and immortal interned strings are taken out, as the verdict
discounts them.  Those sites stand, and the stand-in is not run, when they
account for the excess the verdict judged beyond the interned strings (own
code and CPython together at least COVERED of its blocks and of its bytes)
and most of its bytes are in the extension's own code.  3.12.1, finalize:
_curses, _curses_panel, curses, ossaudiodev and _ctypes keep 8-69 blocks a
cycle beyond their interned strings; 5-54 of them, 87-91% of the bytes, at
their PyInit's lines, and 3 blocks inside CPython's import of a
single-phase module.  _curses' 5 are the type PyErr_NewException makes at
_cursesmodule.c:4781 and a static keeps: reachable, so in none of memcheck's
loss records; a 5+20 valgrind run's top sites are interned strings
(_cursesmodule.c:4745 and :4929, 141 blocks a cycle).  The fixture
lh_errorleak has that shape.  A rerun took 0.7-1.8 s in a stdlib sweep,
where valgrind took 3-8 s.  The subinterpreter modes' memray and
tracemalloc trace those strings as well: 3.13.0, ujson 6.1.0, legacy
subinterpreter, tracemalloc's two top sites were 817 of the 853 interned
strings a cycle, ujson's own 9 blocks third.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any, Callable

from ..backends import get_backend
from ..backends.native_sites import OWN_CODE
from ..cases.model import Case
from ..engine import Engine
from ..errors import HarnessError
from ..host.target import target_python
from ..result import Result
from ..settings import RunSettings
from ..verdict.ending import where_hint

EXPLAIN_BACKENDS = ("memray", "valgrind", "tracemalloc", "auto")

#: (warm-up, measured cycles) of an explaining run: the fewest cycles a run
#: may have (4) after one warm-up, two for valgrind.  Measured on the
#: fixtures (lh_mallocleak, lh_callleak, lh_pymemleak): memray on 3.12.1
#: subinterpreters and tracemalloc on 3.13.0 give at 1+4 the same sites
#: (module, top frame, excess bytes and blocks per cycle) as at 5+20, as
#: memray does on rlcompleter (3.12.1, subinterpreter: the main interpreter
#: stays, so its first cycle fills what later ones reuse).  valgrind runs
#: in finalize mode, where every cycle is a fresh interpreter, and there a
#: module's second cycle may keep what no later one does: 3.12.1's _ctypes
#: at 1+4 had _ctypes.c:5778 and four more sites a 5+20 valgrind run does
#: not have, and was `clean`; at 2+4 its sites are the 5+20 run's steady ones
#: and it is `leak`, as the full run is; _curses the same (its first
#: measured cycle kept 150 blocks, the later ones 306).  Without any warm-up
#: valgrind called lh_mallocleak clean at 0+4: the first cycle's import is
#: where its block is first kept.  The cost of the second warm-up: 0.1-0.4 s
#: a run.  lh_secondleak is that shape (tests/test_explain.py).
EXPLAIN_CYCLES: dict[str, tuple[int, int]] = {
    "memray": (1, 4),
    "tracemalloc": (1, 4),
    "valgrind": (2, 4),
}

#: the verdict's metrics that the counting host's native sites account for
NATIVE_METRICS = {"native_blocks": "excess_blocks_per_cycle", "native_bytes": "excess_bytes_per_cycle"}
#: the share of the judged native excess those sites must hold: the verdict's
#: excess is a Theil-Sen slope, the sites' a difference of two snapshots
COVERED = 0.9

#: the verdict's PyMem metrics, which --pymem-sites accounts for
PYMEM_METRICS = ("blocks", "bytes")
#: of the judged PyMem bytes, more than this share in the extension's own code
OWN_BYTES_SHARE = 0.5

#: what `auto` tries, in order, per mode family
_AUTO_FINALIZE = ("valgrind",)
_AUTO_SUBINTERPRETER = ("memray", "tracemalloc", "valgrind")


def check_explain(name: str | None, backend: str) -> None:
    """--explain must name a tracing backend, other than the deciding one."""
    if name is None:
        return
    if name not in EXPLAIN_BACKENDS:
        raise HarnessError(f"--explain must be one of {', '.join(EXPLAIN_BACKENDS)} (got {name!r})")
    if name == backend:
        raise HarnessError(f"--explain {name} with --backend {name}: the run already has its sites")


def choose_backend(wanted: str, settings: RunSettings) -> tuple[str, str]:
    """(backend, why) for explaining a leak found under `settings`.

    The wanted backend when it can measure this mode and target, else the
    first of auto's list that can; HarnessError when none can.
    """
    target = target_python(settings.python)
    refusals: list[str] = []
    order = _AUTO_FINALIZE if settings.mode == "finalize" else _AUTO_SUBINTERPRETER
    candidates = order if wanted == "auto" else (wanted, *[b for b in order if b != wanted])
    # the deciding backend's sites are already in the result
    candidates = tuple(name for name in candidates if name != settings.backend)
    for name in candidates:
        try:
            get_backend(name).check(target, _explain_settings(settings, name))
        except HarnessError as exc:
            refusals.append(f"{name}: {exc}")
            continue
        if name == wanted:
            why = f"--explain {wanted}"
        elif wanted == "auto":
            why = f"auto: {name} for {settings.mode} mode" + (
                " (memray and tracemalloc cannot measure finalize)" if settings.mode == "finalize" else "")
        else:
            why = f"--explain {wanted} cannot measure this case; {name} instead"
        if refusals:
            why += " (refused: " + "; ".join(refusals) + ")"
        return name, why
    raise HarnessError("no tracing backend can explain this case: " + "; ".join(refusals))


def _explain_settings(settings: RunSettings, backend: str) -> RunSettings:
    warmup, cycles = EXPLAIN_CYCLES[backend]
    # valgrind runs ~40x slower: the deciding run's timeout would kill it
    timeout = settings.timeout * (20 if backend == "valgrind" else 2)
    # only its sites are read (the verdict stays the counters'), so memcheck
    # can skip tracking undefined values: settings.BackendOptions.sites_only
    options = replace(settings.backend_options, sites_only=backend == "valgrind")
    return replace(settings, backend=backend, warmup=warmup, cycles=cycles, timeout=timeout,
                   backend_options=options)


def own_sites_suffice(result: Result, wanted: str, backend: str) -> str | None:
    """Why the deciding run's own sites explain `result` with no tracing run
    (the `why` of explained_by), or None when `backend` must run.

    Only for a stand-in (`wanted` cannot measure the case, or auto): a
    backend asked for by name is run.  Only when the verdict was judged on
    native metrics alone, each of them at least COVERED held by native sites
    in an extension's own code."""
    if backend == wanted:
        return None
    triggered = result.evidence.get("triggered_by") or []
    if not triggered or any(key not in NATIVE_METRICS for key in triggered):
        return None
    own = [site for site in result.sites or []
           if site.get("kind") == "native" and site.get("attributed_by") in OWN_CODE]
    shares = []
    for key in triggered:
        excess = (result.excess or {}).get(key)
        held = sum(site.get(NATIVE_METRICS[key]) or 0.0 for site in own)
        if excess is None or excess <= 0 or held < COVERED * excess:
            return None
        shares.append(min(held / excess, 1.0))
    share = "all" if min(shares) >= 0.995 else f"{min(shares):.0%}"
    modules = ", ".join(dict.fromkeys(site["module"] for site in own))
    return (f"judged on {', '.join(triggered)} only, {share} of it allocated in {modules}'s own "
            f"code, where the counting host names each caller of malloc; {backend} would trace "
            f"the whole heap (--explain {backend} runs it, for full stacks)")


def _pymem_settings(settings: RunSettings) -> RunSettings:
    # valgrind's 2+4 in every mode: in finalize, the same first cycles to skip
    warmup, cycles = EXPLAIN_CYCLES["valgrind"]
    options = replace(settings.backend_options, pymem_sites=True)
    return replace(settings, warmup=warmup, cycles=cycles, fixed_cycles=True,
                   timeout=settings.timeout * 2, backend_options=options)


def pymem_sites_may_explain(result: Result, wanted: str, backend: str) -> bool:
    """A stand-in (auto's choice, or the one for a backend that cannot measure
    the case) for a counters verdict judged on PyMem blocks and bytes alone
    (the C host's): try the counting host's PyMem sites first.  In every
    mode, not only finalize's valgrind: memray and tracemalloc trace the
    interned strings the verdict discounts too (3.13.0, ujson 6.1.0, legacy
    subinterpreter: 861 blocks a cycle judged, 853 of them interned strings;
    tracemalloc's first two sites, 817 blocks, were those strings, ujson's
    9 blocks third; 3.12.1, lh_errorleak, legacy subinterpreter: memray's
    top site, 45 blocks a cycle, is the 40 constants' line, not the
    PyErr_NewException line)."""
    triggered = result.evidence.get("triggered_by") or []
    return (backend != wanted and result.backend == "counters"
            and result.host == "c" and bool(triggered)
            and all(key in PYMEM_METRICS for key in triggered))


def pymem_sites_account(traced: Result, instead_of: str = "valgrind") -> str | None:
    """Why the --pymem-sites run's sites explain its leak (the `why` of
    explained_by; `instead_of`: the tracing backend that is not run), or
    None when they do not (see the module docstring)."""
    if traced.verdict != "leak":
        return None
    held = traced.evidence.get("pymem_sites_held") or {}
    interned = traced.evidence.get("interned_per_cycle") or {}
    judged = {unit: ((traced.excess or {}).get(unit) or 0.0) - (interned.get(unit) or 0.0)
              for unit in PYMEM_METRICS}
    for unit in PYMEM_METRICS:
        accounted = held.get(f"own_{unit}", 0.0) + max(held.get(f"cpython_{unit}", 0.0), 0.0)
        if judged[unit] <= 0 or accounted < COVERED * judged[unit]:
            return None
    if held.get("own_bytes", 0.0) <= OWN_BYTES_SHARE * judged["bytes"]:
        return None
    own = [site for site in traced.sites or []
           if site.get("kind") == "pymem" and site.get("attributed_by") in OWN_CODE]
    names = list(dict.fromkeys(site["module"] for site in own))
    modules = ("the extension's" if not names else f"{names[0]}'s" if len(names) == 1
               else ", ".join(f"{name}'s" for name in names[:-1]) + f" and {names[-1]}'s")
    strings = interned.get("blocks") or 0
    beyond = (f"beyond the {strings:g} interned string{'s' if strings != 1 else ''} a cycle "
              f"CPython keeps, " if strings else "")
    share = min(held["own_bytes"] / judged["bytes"], 1.0)
    return (f"judged on {', '.join(traced.evidence.get('triggered_by') or [])}; {beyond}"
            f"{held['own_blocks']:g} of the {judged['blocks']:g} block{'s' if judged['blocks'] != 1 else ''} "
            f"a cycle ({share:.0%} of the "
            f"bytes) are allocated in {modules} own code and {max(held['cpython_blocks'], 0):g} "
            f"inside CPython, as the counting host rerun with --pymem-sites names each PyMem "
            f"block's first caller outside CPython; {instead_of} would trace the whole heap "
            f"(--explain {instead_of} runs it)")


def explain(engine: Engine, case: Case, result: Result, settings: RunSettings,
            wanted: str) -> Result:
    """`result` with the sites of a tracing run when its verdict is `leak`.

    Adds evidence.explained_by; a tracing run that fails (no memray in the
    target, a crash under valgrind) is said there and leaves the sites as
    they were.  Never touches the verdict.
    """
    if result.verdict != "leak":
        return result
    start = time.monotonic()
    explained: dict[str, Any] = {"wanted": wanted}
    try:
        backend, why = choose_backend(wanted, settings)
        own = own_sites_suffice(result, wanted, backend)
        if own is not None:
            explained.update(backend=result.backend, why=own, warmup=result.warmup,
                             cycles=result.cycles, wall_s=0.0, verdict=result.verdict,
                             instead_of=backend)
            result.evidence["explained_by"] = explained
            return result
        if pymem_sites_may_explain(result, wanted, backend):
            counted = engine.run(case, _pymem_settings(settings))
            accounts = pymem_sites_account(counted, backend)
            if accounts is not None:
                explained.update(backend=result.backend, why=accounts, warmup=counted.warmup,
                                 cycles=counted.cycles, verdict=counted.verdict,
                                 instead_of=backend, pymem_sites=True)
                return _with_sites(result, counted, explained, start)
        explained.update(backend=backend, why=why)
        traced_settings = _explain_settings(settings, backend)
        explained.update(warmup=traced_settings.warmup, cycles=traced_settings.cycles)
        traced = engine.run(case, traced_settings)
    except HarnessError as exc:
        explained.update(error=str(exc), wall_s=round(time.monotonic() - start, 3))
        result.evidence["explained_by"] = explained
        return result
    explained.update(verdict=traced.verdict)
    return _with_sites(result, traced, explained, start)


def _with_sites(result: Result, traced: Result, explained: dict[str, Any], start: float) -> Result:
    """`result` with `traced`'s sites, and explained_by (its wall time now)."""
    explained["wall_s"] = round(time.monotonic() - start, 3)
    if traced.sites:
        if result.sites:
            explained["replaced_sites"] = result.sites
        result.sites = traced.sites
        # the hint says how to find the sites: they are found
        if result.message:
            result.message = result.message.replace("; " + where_hint(result), "")
    else:
        explained["error"] = (f"the {explained['backend']} run gave no sites "
                              f"({traced.verdict}: {traced.message or 'no message'})")
    result.evidence["explained_by"] = explained
    return result


class ExplainingEngine:
    """An Engine whose `run` explains each leak; everything else is the Engine's.

    So the sweep's scheduler, which knows nothing of explaining, runs the
    explaining pass inside the same job as the case it explains.
    """

    def __init__(self, engine: Engine, wanted: str) -> None:
        self._engine = engine
        self._wanted = wanted

    def run(self, case: Case, settings: RunSettings, on_sample=None) -> Result:
        return explain(self._engine, case, self._engine.run(case, settings, on_sample=on_sample),
                       settings, self._wanted)

    def __getattr__(self, name: str) -> Callable[..., Any]:
        return getattr(self._engine, name)
