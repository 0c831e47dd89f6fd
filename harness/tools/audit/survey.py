"""Readiness audit: which extension modules can live in one interpreter per thread.

For each extension module (stdlib, installed packages, or named ones) one
row, from two sources that never share a process:

- the init probe (`probe.py`, one target-Python process per module,
  so an init that crashes costs only its row): single- or multi-phase init
  and the Py_mod_multiple_interpreters value declared, read from what
  PyInit_<name> returns, without source;
- the engine, `import NAME` in each lifecycle mode the Python has: whether
  it loads in an isolated (own-GIL) subinterpreter (an `unsupported`
  verdict carries CPython's refusal) and in a legacy one, and its growth per
  Py_EndInterpreter and per Py_FinalizeEx cycle over the `pass` control.

A module is *ready* for a per-interpreter GIL when it uses multi-phase init
and loads and runs in an isolated subinterpreter (3.12+) without crashing.
"""

from __future__ import annotations

import json
import os
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

from ...cases.model import SWEEP_SKIPS, import_case
from ...engine import Engine
from ...settings import RunSettings
from ...errors import HarnessError
from ...cases.packages import package_modules
from ...host.launch import host_env
from ...host.modes import mode_problem
from ...host.runner import exit_signal_name
from ...host.target import TargetPython, target_python
from ...result import Result

PROBE = Path(__file__).with_name("probe.py")
SCOPES = ("all", "stdlib", "packages")
AUDIT_MODES = ("subinterpreter", "legacy-subinterpreter", "finalize")
PROBE_TIMEOUT_S = 60.0


@dataclass
class ModuleRow:
    """One extension module's readiness, as the JSON and the tables show it."""

    module: str
    origin: str | None = None
    source: str = "named"              # stdlib | package | named
    init: str = "unknown"              # single-phase | multi-phase | unknown
    multiple_interpreters: str | None = None   # the declared slot value (3.12+ multi-phase)
    gil_slot: str | None = None        # Py_mod_gil (3.13+): used / not used
    probe_problem: str | None = None   # why the init kind is unknown
    distribution: dict[str, str] | None = None   # an installed package's {"name", "version"}
    results: dict[str, Result] = field(default_factory=dict)   # mode -> import result

    # -- derived columns ---------------------------------------------------
    def loads(self, mode: str) -> bool | None:
        """True/False when the mode ran; None when this Python lacks it."""
        result = self.results.get(mode)
        return None if result is None else result.verdict in ("clean", "leak")

    def refusal(self, mode: str) -> str | None:
        result = self.results.get(mode)
        if result is None or result.verdict in ("clean", "leak"):
            return None
        lines = [ln for ln in (result.message or "").splitlines() if ln.strip()]
        return f"{result.verdict}: {lines[0] if lines else ''}".strip()

    def leak(self, mode: str) -> dict[str, Any] | None:
        """Verdict and excess per cycle (blocks, bytes) of one mode's import, if it ran."""
        result = self.results.get(mode)
        if result is None or result.verdict not in ("clean", "leak"):
            return None
        excess = result.excess or {}
        return {"mode": mode, "verdict": result.verdict, "blocks": excess.get("blocks"),
                "bytes": excess.get("bytes")}

    def end_interpreter_leak(self) -> dict[str, Any] | None:
        """Per Py_EndInterpreter: the isolated subinterpreter's, else the legacy one's."""
        return self.leak("subinterpreter") or self.leak("legacy-subinterpreter")

    def crash_summary(self) -> str:
        """'SIGSEGV: probe, finalize' — what killed which process, compactly."""
        short = {"init probe": "probe", "subinterpreter": "isolated",
                 "legacy-subinterpreter": "legacy", "finalize": "finalize"}
        by_cause: dict[str, list[str]] = {}
        for line in self.crashes():
            where, _, text = line.partition(": ")
            cause = text.split(" by ", 1)[1].split()[0] if " by " in text else text.split()[0]
            by_cause.setdefault(cause, []).append(short.get(where, where))
        return "; ".join(f"{cause}: {', '.join(where)}" for cause, where in by_cause.items())

    def crashes(self) -> list[str]:
        found = [f"init probe: {self.probe_problem}"] if self.probe_problem and \
            self.probe_problem.startswith("probe killed") else []
        for mode, result in self.results.items():
            if result.verdict in ("crash", "timeout"):
                found.append(f"{mode}: {(result.message or result.verdict).splitlines()[0]}")
        return found

    @property
    def ready(self) -> bool | None:
        """Ready for a per-interpreter GIL; None before 3.12 (no such thing)."""
        if "subinterpreter" not in self.results:
            return None
        return self.init == "multi-phase" and bool(self.loads("subinterpreter")) \
            and not self.crashes()

    @property
    def leaks(self) -> list[str]:
        return [mode for mode, r in self.results.items() if r.verdict == "leak"]

    def to_json(self) -> dict[str, Any]:
        return {
            "module": self.module, "origin": self.origin, "source": self.source,
            "distribution": self.distribution,
            "init": self.init, "init_problem": self.probe_problem,
            "multiple_interpreters": self.multiple_interpreters, "gil_slot": self.gil_slot,
            "loads_isolated": self.loads("subinterpreter"),
            "isolated_message": self.refusal("subinterpreter"),
            "loads_legacy": self.loads("legacy-subinterpreter"),
            "legacy_message": self.refusal("legacy-subinterpreter"),
            "leak_per_end_interpreter": self.end_interpreter_leak(),
            "leak_per_finalize": self.leak("finalize"),
            "crash": self.crashes(), "ready": self.ready, "leaks_in": self.leaks,
            "verdicts": {mode: r.verdict for mode, r in self.results.items()},
        }


@dataclass
class Audit:
    """The rows of one Python, and what was left out."""

    python: dict[str, Any]
    modes: list[str]
    rows: list[ModuleRow]
    builtins: list[str] = field(default_factory=list)    # compiled into the interpreter
    skipped: dict[str, str] = field(default_factory=dict)

    def counts(self) -> dict[str, int | None]:
        rows = self.rows
        own_gil = "subinterpreter" in self.modes
        return {
            "extension_modules": len(rows),
            "multi_phase": sum(r.init == "multi-phase" for r in rows),
            "single_phase": sum(r.init == "single-phase" for r in rows),
            "declare_per_interpreter_gil": sum(r.multiple_interpreters == "per-interpreter GIL"
                                               for r in rows) if own_gil else None,
            "load_isolated": sum(bool(r.loads("subinterpreter")) for r in rows) if own_gil else None,
            "ready": sum(bool(r.ready) for r in rows) if own_gil else None,
            "leaking": sum(bool(r.leaks) for r in rows),
            "crashing": sum(bool(r.crashes()) for r in rows),
        }

    def to_json(self) -> dict[str, Any]:
        return {"python": self.python, "modes": self.modes, "counts": self.counts(),
                "modules": [r.to_json() for r in self.rows],
                "builtins_not_audited": self.builtins, "skipped": self.skipped}


def _probe(target: TargetPython, args: list[str], env: dict[str, str]) -> tuple[dict | None, str]:
    """(parsed JSON, problem) of one probe process."""
    paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    try:
        proc = subprocess.run([target.sys_executable, "-I", "-S", str(PROBE), *args, *paths],
                              capture_output=True, text=True, timeout=PROBE_TIMEOUT_S, env=env,
                              start_new_session=True)
    except subprocess.TimeoutExpired:
        return None, f"probe timed out after {PROBE_TIMEOUT_S:g} s"
    killed_by = exit_signal_name(proc.returncode)
    if killed_by:
        return None, f"probe killed by {killed_by} in PyInit"
    try:
        return json.loads(proc.stdout.strip().splitlines()[-1]), ""
    except (json.JSONDecodeError, IndexError):
        tail = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        return None, f"probe exited with status {proc.returncode}: {tail}"


def _probe_env(pythonpath: tuple[str, ...]) -> dict[str, str]:
    # -I ignores PYTHONPATH; the probe re-adds it (what the engine's host sees)
    return host_env(pythonpath)


def discover(target: TargetPython, scope: str, env: dict[str, str]) -> tuple[list[ModuleRow], list[str], dict[str, str]]:
    """(rows to audit, built-in modules, {skipped name: why}) for `scope`.

    Stdlib extensions come from the init probe's listing; installed ones
    from harness.cases.packages (the target environment's own distributions, as
    sweep --scope packages sees them), with their distribution."""
    if scope not in SCOPES:
        raise HarnessError(f"--scope must be one of {', '.join(SCOPES)} (got {scope!r})")
    listing, problem = _probe(target, ["list", "stdlib"], env)
    if listing is None:
        raise HarnessError(f"cannot list the extension modules of Python {target.label}: {problem}")
    rows, skipped = [], {}
    if scope in ("stdlib", "all"):
        for entry in listing["modules"]:
            name = entry["name"]
            top = name.split(".")[0]
            if top in SWEEP_SKIPS or top.startswith("_test") or top.startswith("_xxtest"):
                skipped[name] = SWEEP_SKIPS.get(top, "CPython's own test support")
                continue
            rows.append(ModuleRow(module=name, origin=entry["origin"], source=entry["source"]))
    if scope in ("packages", "all"):
        installed = package_modules(target)
        skipped.update(installed.skipped)
        rows += [ModuleRow(module=m.name, origin=m.origin, source="package",
                           distribution=m.distribution_json)
                 for m in installed.modules if m.kind == "extension"]
    return rows, listing.get("builtins", []), skipped


def _inspect(row: ModuleRow, target: TargetPython, env: dict[str, str]) -> None:
    found, problem = _probe(target, ["init", row.module], env)
    if found is None:
        row.probe_problem = problem
        return
    row.origin = found.get("origin", row.origin)
    if found.get("error"):
        row.probe_problem = found["error"]
        return
    row.init = found.get("init", "unknown")
    if row.init == "multi-phase" and target.version_info[:2] >= (3, 12):
        # an absent slot means "supported" but not with an own GIL (3.12 docs)
        row.multiple_interpreters = found.get("multiple_interpreters") or "not declared"
    row.gil_slot = found.get("gil")


def run_audit(target_path: str | None, base: RunSettings, *, modules: list[str] | None = None,
              scope: str = "all", jobs: int = 1, engine: Engine | None = None,
              on_step: Callable[[str], None] | None = None) -> Audit:
    """Audit `modules` (or every extension module in `scope`) on one Python."""
    target = target_python(target_path)
    engine = engine or Engine()
    env = _probe_env(base.pythonpath)
    builtins: list[str] = []
    skipped: dict[str, str] = {}
    if modules:
        rows = [ModuleRow(module=m) for m in modules]
    else:
        rows, builtins, skipped = discover(target, scope, env)
    modes = [m for m in AUDIT_MODES if mode_problem(m, target) is None]
    # package modules import from site-packages, which -S leaves off sys.path
    sites = tuple(sorted({str(Path(r.origin).parents[len(r.module.split(".")) - 1])
                          for r in rows if r.source == "package" and r.origin}))
    settings = replace(base, python=target.executable, pythonpath=(*base.pythonpath, *sites))

    def probe_task(row: ModuleRow) -> None:
        _inspect(row, target, _probe_env(settings.pythonpath))
        if on_step:
            on_step(f"{row.module}: {row.init}")

    def mode_task(row: ModuleRow, mode: str) -> None:
        row.results[mode] = _guarded_run(engine, row.module, replace(settings, mode=mode))
        if on_step:
            on_step(f"{row.module} [{mode}]: {row.results[mode].verdict}")

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = [pool.submit(probe_task, row) for row in rows]
        futures += [pool.submit(mode_task, row, mode) for row in rows for mode in modes]
        for future in futures:
            future.result()
    for row in rows:  # keep the modes in a fixed order for the JSON
        row.results = {m: row.results[m] for m in modes if m in row.results}
    return Audit(python=target.to_json(), modes=modes, rows=rows, builtins=builtins,
                 skipped=skipped)


def _guarded_run(engine: Engine, module: str, settings: RunSettings) -> Result:
    """One mode's import; an environment problem becomes an `error` result."""
    try:
        return engine.run(import_case(module), settings)
    except HarnessError as exc:
        target = target_python(settings.python)
        return Result(case=f"{module}-import", module=module, python=target.to_json(),
                      mode=settings.mode, backend=settings.backend, host="c",
                      cycles=settings.cycles, warmup=settings.warmup, verdict="error",
                      message=str(exc))
