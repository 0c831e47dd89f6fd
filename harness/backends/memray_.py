"""The memray backend: leaked allocations with native stacks, per module.

How it works: the host's --main-hook runs `hooks/memray_hook.py` in the main
interpreter, which enters `memray.Tracker(native_traces=True,
trace_python_allocators=True)` after the warm-up and leaves it after the last
cycle, so the tracker spans cycles W+1..N.  The hook then reads the capture
in the target (its memray wrote it) and keeps the allocations made in those
cycles and still alive at the end, per cycle (a marker allocation after
each cycle cuts the ordered stream) and per stack.  The verdict judges their
cumulative bytes and blocks per cycle against the `pass` control's, like
every backend; sites group them by module.

What memray sees: every malloc-family call and mmap of the process (the
module's own `malloc`, e.g. 4,096 bytes a cycle kept in module state) and,
with trace_python_allocators, every PyMem/PyObject block (a leaked reference
shows as the objects it strands).  Its recursion guard records the outermost
call only, so a PyObject_Malloc is one record, not also the malloc beneath.
Native frames come back as (function, source file, line); the shared object
is found from the symbol tables of the extension modules mapped at the end
(`harness.native_symbols`), then `harness.attribution` names the module.
Python frames of subinterpreters are not seen (memray follows the main
interpreter's threads).

Per mode: finalize is refused (the tracker lives in the main interpreter,
which finalize mode ends every cycle); subinterpreter, legacy-subinterpreter
and parallel are measured.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .attribution import CPYTHON, NativeFrame, attribute, module_from_source_file, short_stack
from ..errors import HarnessError
from .native_symbols import FrameOwners
from .base import Launch, MainHookBackend
from .counters import series_from_samples
from .hooks import HOOK_FILENAME, Group, add_to_group, group_sites, hook_source, padded, refuse_mode

if TYPE_CHECKING:
    from ..settings import RunSettings
    from ..host.target import TargetPython
    from ..result import Result
    from ..host.runner import HostRun

#: a size no other allocation of a cycle has (bytearray asks for one more)
MARKER_BYTES = 48_611
HOST_SOURCE = "harness/host/host.c"
_memray_dirs: dict[str, str] = {}
_memray_lock = threading.Lock()


def memray_location(target: "TargetPython") -> str:
    """The directory the target imports memray from, or a HarnessError
    saying how to install it there (the tracker runs inside the target)."""
    # keyed by the executable: a venv shares its base's realpath, not its packages
    with _memray_lock:
        if target.executable not in _memray_dirs:
            probe = ("import os, memray; "
                     "print(os.path.dirname(os.path.dirname(os.path.abspath(memray.__file__))))")
            try:
                proc = subprocess.run([target.sys_executable, "-c", probe], capture_output=True,
                                      text=True, timeout=60)
            except (OSError, subprocess.TimeoutExpired) as exc:
                raise HarnessError(f"cannot run {target.executable} to look for memray: {exc}")
            if proc.returncode != 0:
                raise HarnessError(
                    f"the memray backend needs memray installed for the target Python "
                    f"{target.version}: {target.executable} -m pip install memray")
            _memray_dirs[target.executable] = proc.stdout.strip().splitlines()[-1]
        return _memray_dirs[target.executable]


class MemrayBackend(MainHookBackend):
    name = "memray"

    def check(self, target: "TargetPython", settings: "RunSettings") -> None:
        refuse_mode(self.name, settings)
        memray_location(target)
        if settings.backend_options.keep_capture is not None:
            keep = Path(settings.backend_options.keep_capture)
            try:
                keep.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise HarnessError(f"--keep-capture {keep}: cannot create the directory ({exc})")

    def launch(self, target: "TargetPython", settings: "RunSettings", role: str,
               workdir: Path) -> Launch:
        hook = workdir / "memray_hook.py"
        hook.write_text(hook_source("memray_hook", {
            "warmup": settings.warmup, "memray_path": memray_location(target),
            "capture": str(workdir / "capture.bin"), "out": str(workdir / "memray.json"),
            "marker_bytes": MARKER_BYTES, "host_source": HOST_SOURCE,
        }))
        # native unwinding of every allocation, then reading the capture
        return Launch(host_args=["--main-hook", str(hook)], timeout_factor=4.0)

    def collect(self, run: "HostRun", workdir: Path, role: str, settings: "RunSettings",
                launched: Launch) -> Any:
        out = workdir / "memray.json"
        collected = json.loads(out.read_text()) if out.exists() else None
        capture = workdir / "capture.bin"
        if collected is not None and role == "case" and settings.backend_options.keep_capture and capture.exists():
            fd, kept = tempfile.mkstemp(prefix=f"memray-{settings.mode}-", suffix=".bin",
                                        dir=settings.backend_options.keep_capture)
            with open(fd, "wb") as target_file, open(capture, "rb") as source:
                shutil.copyfileobj(source, target_file)
            collected["capture_file"] = str(Path(kept).resolve())
        return collected

    def series(self, run: "HostRun") -> dict[str, list[float] | None]:
        """blocks/bytes: alive at the end, made in cycles W+1..k; the rest: counters."""
        series = series_from_samples(run.samples)
        data = run.artifacts
        if not data or not data.get("per_cycle"):
            series["blocks"] = series["bytes"] = None
            return series
        cumulative_bytes, cumulative_blocks = {data["first_cycle"]: 0}, {data["first_cycle"]: 0}
        total_bytes = total_blocks = 0
        for cycle, size, blocks in data["per_cycle"]:
            total_bytes += size
            total_blocks += blocks
            cumulative_bytes[cycle], cumulative_blocks[cycle] = total_bytes, total_blocks
        series["bytes"] = padded(cumulative_bytes, run.last_cycle)
        series["blocks"] = padded(cumulative_blocks, run.last_cycle)
        return series

    def finish(self, result: "Result", case_run: "HostRun", control_run: "HostRun",
               settings: "RunSettings") -> None:
        case = _groups(case_run.artifacts, result.module)
        control = _groups(control_run.artifacts, result.module)
        result.sites = group_sites(case, control, _interpreter_cycles(settings), kind="native")
        data = case_run.artifacts or {}
        result.evidence["memray_leaked_bytes"] = data.get("memray_leaked_bytes")
        if data.get("capture_file"):
            result.evidence["capture_file"] = data["capture_file"]


def _groups(data: dict | None, case_module: str | None = None) -> dict[str, Group]:
    """Leaked stacks by module: the first frame in an extension module names
    it; a stack with none, by its innermost Python frame's file; a stack all
    in CPython under the case's own code (a reference leak: CPython made
    the object a C function kept), the case's module; else cpython."""
    groups: dict[str, Group] = {}
    if not data:
        return groups
    roots = data.get("sys_path", [])
    extensions = [p for p in data.get("objects", []) if "/memray/" not in p]
    owners = FrameOwners(extensions, roots)
    for stack in data.get("stacks", []):
        frames = [NativeFrame(function=f, object_path=owners.owner(f, file), file=file, line=line)
                  for f, file, line in stack["native"]]
        found = attribute(frames)
        module, reason = found.module, found.reason
        if module == CPYTHON:
            module, reason = _python_owner(stack["python"], roots), "python"
            if module is None:
                module, reason = (case_module, "case") if case_module else (CPYTHON, "cpython")
        shown = short_stack(frames, found.frame_index)
        # CPython-only stacks are compared with the control's CPython-only
        # stacks, apart from the module's own frames: the control has them too
        key = f"{module} (CPython for the case)" if reason == "case" else module
        add_to_group(groups, module, stack["bytes"], stack["blocks"], shown, reason, key)
    return groups


def _python_owner(frames: list[list], roots: list[str]) -> str | None:
    """memray orders Python frames innermost first."""
    for function, filename, _line in frames:
        if filename == HOOK_FILENAME:
            return None
        module = module_from_source_file(filename, roots)
        if module and not module.startswith("importlib"):
            return module
    return None


def _interpreter_cycles(settings: "RunSettings") -> int:
    """Sites are per interpreter cycle: a parallel round ends one per thread."""
    threads = getattr(settings, "thread_count", None) or 1
    return settings.cycles * threads
