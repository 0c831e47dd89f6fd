"""The tracemalloc backend: PyMem allocations with Python tracebacks.

How it works: the host's --main-hook runs `hooks/tracemalloc_hook.py` in
the main interpreter.  Tracing starts after the warm-up; after every cycle
the hook records tracemalloc's traced blocks and bytes (the series the
verdict judges, against the `pass` control traced the same way); at the end
it compares the snapshot taken after the warm-up with one taken after the
last cycle per traceback.  Each difference is charged to the module of its
innermost frame that is neither the harness's hook nor the import system
(the case's own code -> the case's module; no Python frame at all, as for
what creating an interpreter allocates -> `cpython`).

Per mode (measured on 3.12.1 and 3.13.0):
- tracemalloc's state is runtime-wide, not per interpreter: allocations in
  every subinterpreter are traced, with the subinterpreter's frames.
- finalize: refused: Py_FinalizeEx ends the main interpreter every cycle,
  and the tracing with it.
- subinterpreter (and parallel) on 3.12: refused: the process aborts
  (`free(): invalid pointer` / `double free or corruption`) when an isolated
  subinterpreter ends while tracing — its traces hold frames whose file-name
  strings lived in the ended interpreter's own obmalloc.  Legacy
  subinterpreters share the main obmalloc and work.
- subinterpreter on 3.13: works (`pass`: ~1,974 traced blocks per cycle).
- legacy-subinterpreter: works on every Python.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .attribution import CPYTHON, is_python_machinery, module_from_source_file
from ..errors import HarnessError, ModeUnavailableError
from .base import Launch, MainHookBackend
from .counters import series_from_samples
from .hooks import HOOK_FILENAME, Group, add_to_group, group_sites, hook_source, padded, refuse_mode

if TYPE_CHECKING:
    from ..settings import RunSettings
    from ..host.target import TargetPython
    from ..result import Result
    from ..host.runner import HostRun

MAX_TRACE_DEPTH = 1000
#: the code of the case itself runs as "<string>" (the host's PyRun_String)
CASE_FILENAME = "<string>"


class TracemallocBackend(MainHookBackend):
    name = "tracemalloc"

    def check(self, target: "TargetPython", settings: "RunSettings") -> None:
        refuse_mode(self.name, settings)
        if not 1 <= settings.backend_options.trace_depth <= MAX_TRACE_DEPTH:
            raise HarnessError(f"--trace-depth must be between 1 and {MAX_TRACE_DEPTH} "
                               f"(got {settings.backend_options.trace_depth})")
        if settings.mode in ("subinterpreter", "parallel") and target.version_info[:2] == (3, 12):
            raise ModeUnavailableError(
                f"the tracemalloc backend cannot measure {settings.mode} mode on Python "
                f"{target.version}: the process aborts (free(): invalid pointer) when an isolated "
                f"subinterpreter ends while tracemalloc traces; use --mode legacy-subinterpreter "
                f"(shared obmalloc, traced safely) or Python 3.13+")

    def launch(self, target: "TargetPython", settings: "RunSettings", role: str,
               workdir: Path) -> Launch:
        hook = workdir / "tracemalloc_hook.py"
        hook.write_text(hook_source("tracemalloc_hook", {
            "warmup": settings.warmup, "depth": settings.backend_options.trace_depth,
            "series": str(workdir / "tracemalloc-series.txt"),
            "diffs": str(workdir / "tracemalloc-diffs.json"),
        }))
        # tracing every allocation with its traceback slows the host down
        return Launch(host_args=["--main-hook", str(hook)], timeout_factor=3.0)

    def collect(self, run: "HostRun", workdir: Path, role: str, settings: "RunSettings",
                launched: Launch) -> Any:
        series_file = workdir / "tracemalloc-series.txt"
        diffs_file = workdir / "tracemalloc-diffs.json"
        collected: dict[str, Any] = {"blocks": {}, "bytes": {}, "diffs": None, "sys_path": []}
        if series_file.exists():
            for line in series_file.read_text().splitlines():
                cycle, blocks, size = (int(x) for x in line.split())
                collected["blocks"][cycle] = blocks
                collected["bytes"][cycle] = size
        if diffs_file.exists():
            data = json.loads(diffs_file.read_text())
            collected["diffs"], collected["sys_path"] = data["diffs"], data["sys_path"]
        return collected

    def series(self, run: "HostRun") -> dict[str, list[float] | None]:
        """blocks/bytes: traced by tracemalloc; the rest: the host's counters."""
        series = series_from_samples(run.samples)
        traced = run.artifacts or {}
        if traced.get("blocks"):
            series["blocks"] = padded(traced["blocks"], run.last_cycle)
            series["bytes"] = padded(traced["bytes"], run.last_cycle)
        else:
            series["blocks"] = series["bytes"] = None
        return series

    def finish(self, result: "Result", case_run: "HostRun", control_run: "HostRun",
               settings: "RunSettings") -> None:
        case_module = result.module or result.case
        case = _groups(case_run.artifacts, case_module)
        control = _groups(control_run.artifacts, case_module)
        result.sites = group_sites(case, control, _interpreter_cycles(settings), kind="python")
        result.evidence["trace_depth"] = settings.backend_options.trace_depth


def _groups(artifacts: dict | None, case_module: str) -> dict[str, Group]:
    groups: dict[str, Group] = {}
    if not artifacts or artifacts.get("diffs") is None:
        return groups
    roots = artifacts.get("sys_path") or []
    for diff in artifacts["diffs"]:
        frames = [f for f in diff["frames"] if f[0] != HOOK_FILENAME]
        if len(frames) != len(diff["frames"]):
            continue  # the hook's own allocations
        module, reason = _owner(frames, roots, case_module)
        shown = [{"where": f"{name}:{line}"} for name, line in reversed(frames)]
        add_to_group(groups, module, diff["bytes"], diff["blocks"], shown, reason)
    return groups


def _owner(frames: list[list], roots: list[str], case_module: str) -> tuple[str, str]:
    """(module, how it was named): the module of the innermost frame that is
    not the import system; the case's own code charges the case's module
    (what its C calls allocated, CPython allocated for it).

    tracemalloc orders frames oldest first; "<unknown>" means no Python
    frame was running (interpreter creation and teardown): CPython's own."""
    for filename, _line in reversed(frames):
        if is_python_machinery(filename):
            continue
        if filename == CASE_FILENAME:
            return case_module, "case"
        module = module_from_source_file(filename, roots)
        if module:
            return module, "python"
    return CPYTHON, "cpython"


def _interpreter_cycles(settings: "RunSettings") -> int:
    """Sites are per interpreter cycle: a parallel round ends one per thread."""
    threads = getattr(settings, "thread_count", None) or 1
    return settings.cycles * threads
