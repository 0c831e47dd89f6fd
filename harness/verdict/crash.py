"""Where a host crashed or hung, and whose code it was: the host's crash file, symbolised.

The C host's signal handlers (harness/host/crash_report.c) write raw facts
only — the signal, the cycle, the phase, the return addresses of the
crashing thread, a copy of /proc/self/maps and faulthandler's Python
traceback of every thread — because nothing that names a function is
async-signal-safe.  After the host ended, each address becomes
(crash_symbols.py):

1. a shared object and an offset in it, from the maps copy (the object's
   file is still there: the harness's cache, the target's lib-dynload);
2. a function, from the object's ELF symbol tables (.symtab, else .dynsym:
   static functions of an unstripped extension are named too);
3. a file:line, from ``addr2line`` where the object has debug info.

The crash is then blamed on a module (`module`): the first frame in an
extension's shared object (attribution.py's rule), else the case's module,
else ``cpython``.  Its `signature` is the top few function names outside
libc, joined innermost first (``_PyObject_Free ← dict_dealloc ←
_datetime_exec``): no addresses, no paths, so the same bug hit from
different modules or on different runs groups together in reports.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..backends.attribution import (CPYTHON, NativeFrame, attribute, is_python_machinery, is_system_object,
                          module_from_function, module_from_object, object_name)
# traceback_dumper_offset: the engine asks it here, with the rest of the crash API
from ..backends.crash_symbols import MAX_NATIVE_FRAMES, Frame, Mapping, symbolise, traceback_dumper_offset  # noqa: F401

#: function names in a signature
SIGNATURE_FRAMES = 3
#: the C host's binaries are named host-<python>-<digest> (host/build.py)
_HOST_BINARY = re.compile(r"^host-\d+\.\d+")
#: `module` of a crash in the host's own code
HARNESS = "leak-harness"
#: the host's allocator wrappers only pass a call through to the allocator
#: they wrap (host.c's PyMem hook, native_alloc.c's malloc & co.): a crash
#: inside the allocator under them (glibc's "free(): invalid pointer") is the
#: caller's, so they are left out of the signature and of the blame
_FORWARDERS = frozenset({
    "hook_malloc", "hook_calloc", "hook_realloc", "hook_free",
    "malloc", "calloc", "realloc", "reallocarray", "free", "posix_memalign",
    "aligned_alloc", "memalign", "valloc", "pvalloc",
})


def _forwarding(frame: Frame) -> bool:
    return (frame.function in _FORWARDERS
            and bool(_HOST_BINARY.match(object_name(frame.object_path) or "")))


@dataclass
class HostReport:
    """One record of the crash file, unsymbolised."""

    event: str                       # "crash" | "hang"
    signal: int | None = None
    signal_name: str | None = None
    cycle: int | None = None
    phase: str | None = None
    pc: int | None = None
    fault_address: int | None = None
    addresses: list[int] = field(default_factory=list)
    maps: list[Mapping] = field(default_factory=list)
    python_text: str | None = None
    complete: bool = False           # the record's "end" line was written


def parse_reports(text: str) -> list[HostReport]:
    """Every record in a crash file; a record cut short (a fault inside the
    handler) keeps what it has."""
    reports: list[HostReport] = []
    section: str | None = None
    python_lines: list[str] = []
    for line in text.splitlines():
        if section == "maps":
            if line == "end-maps":
                section = None
            elif reports:
                mapping = _parse_map_line(line)
                if mapping:
                    reports[-1].maps.append(mapping)
            continue
        if section == "python":
            if line == "end-python":
                reports[-1].python_text = "\n".join(python_lines)
                section = None
            else:
                python_lines.append(line)
            continue
        key, _, value = line.partition(" ")
        if key == "event":
            reports.append(HostReport(event=value))
            continue
        if not reports:
            continue
        report = reports[-1]
        if key == "signal":
            number, _, name = value.partition(" ")
            report.signal, report.signal_name = _int(number), name or None
        elif key == "cycle":
            report.cycle = _int(value)
        elif key == "phase":
            report.phase = value
        elif key == "pc":
            report.pc = _int(value)
        elif key == "fault-address":
            report.fault_address = _int(value)
        elif key == "frame":
            address = _int(value)
            if address is not None:
                report.addresses.append(address)
        elif key == "maps":
            section = "maps"
        elif key == "python":
            section, python_lines = "python", []
        elif key == "end":
            report.complete = True
    if section == "python" and reports:  # cut inside the Python dump
        reports[-1].python_text = "\n".join(python_lines)
    return reports


def _int(text: str) -> int | None:
    try:
        return int(text, 0)
    except ValueError:
        return None


def _parse_map_line(line: str) -> Mapping | None:
    parts = line.split(None, 5)
    if len(parts) < 6 or not parts[5].startswith("/"):
        return None  # anonymous, [heap], [stack], [vdso]: no file to read
    start, _, end = parts[0].partition("-")
    try:
        return Mapping(int(start, 16), int(end, 16), int(parts[2], 16), parts[5].strip())
    except ValueError:
        return None


# ---- Python stacks ---------------------------------------------------------

_THREAD = re.compile(r"^(?P<current>Current thread|Thread) (?P<id>0x[0-9a-fA-F]+)")
_PY_FRAME = re.compile(r'^\s+File "(?P<file>.*)", line (?P<line>\d+|\?\?\?) in (?P<function>.+)$')


def parse_python_stacks(text: str | None) -> list[dict[str, Any]]:
    """faulthandler's dump -> [{"thread", "current", "frames": [{"file", "line", "function"}]}],
    frames innermost first (as faulthandler writes them)."""
    threads: list[dict[str, Any]] = []
    for line in (text or "").splitlines():
        head = _THREAD.match(line)
        if head:
            threads.append({"thread": head.group("id"), "current": head.group("current") != "Thread",
                            "frames": []})
            continue
        frame = _PY_FRAME.match(line)
        if frame and threads:
            number = frame.group("line")
            threads[-1]["frames"].append({"file": frame.group("file"),
                                          "line": int(number) if number.isdigit() else None,
                                          "function": frame.group("function").strip()})
    return threads


# ---- the crash object ------------------------------------------------------

def signature(frames: list[Frame], signal_name: str | None, phase: str | None) -> str:
    """The top function names outside libc, innermost first: stable across
    runs, address layouts and the module that happened to trigger the bug."""
    names = []
    for frame in frames:
        if is_system_object(frame.object_path) or _forwarding(frame):
            continue
        names.append(frame.function or f"?({object_name(frame.object_path) or '?'})")
        if len(names) == SIGNATURE_FRAMES:
            break
    if names:
        return " ← ".join(names)
    return f"{signal_name or 'signal'} in {phase or '?'}"


#: `blamed_by`: why a crash names its `module`
BLAMED_BY = {
    "host": "the innermost frame outside libc is the harness's host",
    "extension": "the first frame in an extension module's shared object",
    "PyInit": "a frame in the module's PyInit function",
    "case-python": "a Python frame of the case's module on the crashing thread",
    "case": "the case's module; no frame of it is on the stack",
    "python-file": "the innermost Python file of the crashing thread",
    "cpython": "no frame of an extension, the case's module or a Python file on the stack",
}


def blame(frames: list[Frame], python_stacks: list[dict[str, Any]],
          case_module: str | None) -> tuple[str, str]:
    """(module, blamed_by): the harness when its host's code is the innermost
    frame outside libc; the first frame in an extension's shared object (or
    a PyInit_X), else the case's module, else the innermost Python file of
    the crashing thread, else cpython.  `blamed_by` keeps a fallback from
    reading as evidence: `os.abort()` under `--module json` names json with
    no frame of json anywhere on the stack."""
    frames = [f for f in frames if not _forwarding(f)]
    innermost = next((f for f in frames if not is_system_object(f.object_path)), None)
    if innermost is not None and _HOST_BINARY.match(object_name(innermost.object_path)):
        return HARNESS, "host"  # the host's own code crashed: never CPython's or the case's
    native = [NativeFrame(f.function, f.object_path, f.file, f.line) for f in frames
              if not _HOST_BINARY.match(object_name(f.object_path))]
    found = attribute(native)
    if found.reason in ("extension", "PyInit"):
        return found.module, found.reason
    for frame in frames:  # an extension statically linked elsewhere still names its PyInit
        named = module_from_function(frame.function)
        if named:
            return named, "PyInit"
    current = [frame for thread in python_stacks if thread["current"] for frame in thread["frames"]]
    if case_module:
        own = any(_file_of_module(frame["file"], case_module) for frame in current)
        return case_module, "case-python" if own else "case"
    for frame in current:
        name = frame["file"]
        if not name.startswith("<") and not is_python_machinery(name):
            return Path(name).stem, "python-file"
    return CPYTHON, "cpython"


def blamed_module(frames: list[Frame], python_stacks: list[dict[str, Any]],
                  case_module: str | None) -> str:
    """The module `blame` names."""
    return blame(frames, python_stacks, case_module)[0]


def _file_of_module(file: str, module: str) -> bool:
    """`file` is the module's source or lies in its package's directory."""
    path = Path(file)
    parts = module.split(".")
    if path.stem == parts[-1] or (path.stem == "__init__" and path.parent.name == parts[-1]):
        return True
    return parts[0] in path.parent.parts


def loaded_extensions(maps: list[Mapping]) -> list[str]:
    """The extension modules mapped into the host outside the standard
    library's lib-dynload, sorted: where no frame of one is on the stack
    (an over-decref crashes later, in CPython's dealloc), these are the ones
    a user looks at first."""
    found = set()
    for mapping in maps:
        if "lib-dynload" in Path(mapping.path).parts or _HOST_BINARY.match(object_name(mapping.path)):
            continue
        module = module_from_object(mapping.path)
        if module:
            found.add(module)
    return sorted(found)


def describe(report: HostReport, case_module: str | None) -> dict[str, Any]:
    """The result's `crash` / `hang` object for one record."""
    frames = symbolise(report.addresses, report.pc, report.maps)
    python_stacks = parse_python_stacks(report.python_text)
    described: dict[str, Any] = {}
    if report.event == "crash":
        described["signal"] = report.signal_name
    described.update({
        "cycle": report.cycle,
        "phase": report.phase,
        "native_stack": [f.to_json() for f in frames],
        "python_stack": python_stacks,
        "signature": signature(frames, report.signal_name, report.phase),
    })
    described["module"], described["blamed_by"] = blame(frames, python_stacks, case_module)
    if described["blamed_by"] in ("case", "cpython"):
        extensions = loaded_extensions(report.maps)
        if extensions:
            described["loaded_extensions"] = extensions
    if report.event == "crash":
        if report.fault_address is not None:
            described["fault_address"] = f"{report.fault_address:#x}"
        described["reproduces_without_hook"] = None
    if not report.complete:
        described["note"] = "the record was cut short (a fault while writing it)"
    return described


def from_crash_file(text: str | None, case_module: str | None) -> tuple[dict | None, dict | None]:
    """(crash, hang) objects from a crash file's text; None for what it lacks."""
    crash = hang = None
    for report in parse_reports(text or ""):
        if report.event == "crash" and crash is None:
            crash = describe(report, case_module)
        elif report.event == "hang" and hang is None:
            hang = describe(report, case_module)
    return crash, hang


def top_frames_text(stack: dict[str, Any], count: int = 5) -> str:
    """A few lines for the terminal and messages: native frames, then the
    crashing thread's innermost Python frames."""
    lines = []
    native = [f for f in stack.get("native_stack") or []
              if not is_system_object(f.get("object"))]
    for frame in native[:count]:
        lines.append(f"  {frame['function']}  ({frame['where']})")
    for thread in stack.get("python_stack") or []:
        if thread.get("current") and thread.get("frames"):
            # the import system's frames say how code ran, not whose it was
            own = [f for f in thread["frames"] if not is_python_machinery(f["file"])]
            for frame in (own or thread["frames"])[:3]:
                lines.append(f'  File "{frame["file"]}", line {frame["line"]} in {frame["function"]}')
            break
    return "\n".join(lines)


def libpython_of(target: Any) -> str | None:
    """The shared libpython a host built for `target` loads (LIBDIR/LDLIBRARY)."""
    if not getattr(target, "libdir", "") or not getattr(target, "ldlibrary", ""):
        return None
    return str(Path(target.libdir, target.ldlibrary))


def attach(result: Any, run: Any, case_module: str | None) -> None:
    """Give a `crash` / `timeout` result its crash / hang object and the top
    frames in its message.  A crash without a record (the host under
    valgrind, the pure-Python host) still gets what is known: the signal
    and the cycle reached."""
    crash, hang = from_crash_file(run.crash_report, case_module)
    if result.verdict == "crash":
        if crash is None:
            crash = {"signal": run.signal_name, "cycle": run.last_cycle + 1, "phase": None,
                     "native_stack": [], "python_stack": [],
                     "module": case_module or CPYTHON,
                     "blamed_by": "case" if case_module else "cpython",
                     "signature": f"{run.signal_name or 'signal'} in ?",
                     "reproduces_without_hook": None,
                     "note": "no crash record: the host's handlers did not run"}
        result.crash = crash  # in the message once the backend had its say (with_crash_stack)
    elif result.verdict == "timeout" and hang is not None:
        result.hang = hang
        result.message = _with_stack(result.message, "hang", hang)


_TAIL_MARKER = "\n--- host output (tail) ---"


def insert_before_tail(message: str | None, text: str) -> str:
    """Notes go before the host's output tail, which can be long."""
    head, marker, tail = (message or "").partition(_TAIL_MARKER)
    return f"{head}\n{text}" + (marker + tail if marker else "")


def with_crash_stack(message: str | None, crash: dict[str, Any] | None) -> str:
    """The message with the crash's signature, module and top frames."""
    return _with_stack(message, "crash", crash) if crash else (message or "")


def _with_stack(message: str | None, what: str, stack: dict[str, Any]) -> str:
    phase = f"phase {stack['phase']}" if stack.get("phase") else "an unknown phase"
    # the subinterpreter modes' host says cycle 0 for its main interpreter,
    # which starts before cycle 1 ("of cycle 0" read as a cycle that ran)
    of = ("of the main interpreter, before cycle 1" if stack.get("cycle") == 0
          else f"of cycle {stack.get('cycle')}")
    where = f"{what} in {phase} {of}"
    text = f"{where}, module {stack.get('module')}{_blame_note(stack)}: {stack.get('signature')}"
    frames = top_frames_text(stack)
    return insert_before_tail(message, text + ("\n" + frames if frames else ""))


def _blame_note(stack: dict[str, Any]) -> str:
    """What a fallback blame rests on, for the message."""
    blamed_by = stack.get("blamed_by")
    if blamed_by not in ("case", "cpython"):
        return ""
    note = ("the case's module: no frame of it on the stack" if blamed_by == "case"
            else "no extension's frame on the stack")
    extensions = stack.get("loaded_extensions")
    if extensions:
        shown = ", ".join(extensions[:6]) + (f" and {len(extensions) - 6} more" if len(extensions) > 6 else "")
        note += f"; extensions loaded outside the standard library: {shown}"
    return f" ({note})"


#: modes whose host ends one main interpreter after its last cycle
_MAIN_ENDS_AFTER_CYCLES = ("subinterpreter", "legacy-subinterpreter", "parallel")


def at_final_shutdown(crash: dict[str, Any], mode: str) -> bool:
    """The crash came in the main interpreter's Py_FinalizeEx after the last
    cycle (3.12.1: hashlib, ssl, asyncio in subinterpreter mode abort there).
    A bare host of one cycle reaches that point too, so the rerun asking
    whose crash it is may try one cycle before all of them."""
    return mode in _MAIN_ENDS_AFTER_CYCLES and crash.get("phase") == "finalize"


def first_crash_record(crash_report: str | None) -> HostReport | None:
    """The first crash record of a crash file, unsymbolised, if any."""
    return next((report for report in parse_reports(crash_report or "")
                 if report.event == "crash"), None)


def crash_phase(crash_report: str | None) -> str | None:
    """The phase the first crash record of a crash file names, if any."""
    record = first_crash_record(crash_report)
    return record.phase if record else None


def crash_cycle(crash_report: str | None) -> int | None:
    """The cycle the first crash record of a crash file names (0: the main
    interpreter of the subinterpreter modes, before cycle 1), if any."""
    record = first_crash_record(crash_report)
    return record.cycle if record else None


def crashed_alike(run: Any, crash: dict[str, Any]) -> bool:
    """The rerun died of the crash's own signal in the crash's own phase."""
    if run.timed_out or not run.signal_name or run.signal_name != crash.get("signal"):
        return False
    return crash_phase(run.crash_report) == crash.get("phase")


def whose_note(crash: dict[str, Any]) -> str:
    """One line saying whose crash it is, from the bare-host rerun."""
    reproduces = crash.get("reproduces_without_hook")
    bare = crash.get("bare_host") or {}
    if reproduces is True:
        where = f" in {bare['phase']}" if bare.get("phase") else ""
        return (f"CPython/the module crashes without the harness's hook too "
                f"(bare host, {_cycles(bare.get('cycles'))}: {bare.get('signal')}{where})")
    runs = bare.get("runs", 1)
    bare_runs = f"{runs} bare-host runs" if runs > 1 else "the bare host"
    if reproduces is False:
        hooked = crash.get("hooked_reruns") or {}
        again = (f"; the hooked host crashed again in {hooked['crashed']} of {hooked['runs']} reruns"
                 if hooked else "")
        return (f"only with the harness's hook: a harness bug ({bare_runs} ran "
                f"{_cycles(bare.get('cycles'))} without crashing{again})")
    if crash.get("not_repeatable"):
        hooked = crash.get("hooked_reruns") or {}
        return (f"not repeatable: {bare_runs} ran {_cycles(bare.get('cycles'))} without crashing, and "
                f"the hooked host crashed again in only {hooked.get('crashed')} of {hooked.get('runs')} "
                "reruns; whose crash it is cannot be told by rerunning (a race, timing or memory "
                "layout): the stack above is the one seen")
    if bare.get("timed_out"):
        return "whether it crashes without the harness's hook is unknown (the bare host timed out)"
    return ("whether it crashes without the harness's hook is unknown: the bare host ended with "
            f"status {bare.get('returncode')} after {_cycles(bare.get('reached'))} of "
            f"{bare.get('cycles')}, short of the crash (the case fails without the hook)")


def _cycles(count: Any) -> str:
    return f"{count} cycle" if count == 1 else f"{count} cycles"


def stack_from_frames(frames: list[tuple[str | None, str | None, str | None, int | None, str]],
                      case_module: str | None) -> dict[str, Any]:
    """`native_stack`, `module` and `signature` from frames symbolised elsewhere
    (memcheck's): (function, object path, file, line, address), innermost first."""
    converted = [Frame(_int(ip) or 0 if isinstance(ip, str) else int(ip or 0), obj, None, fn,
                       Path(file).name if file else None, line)
                 for fn, obj, file, line, ip in frames][:MAX_NATIVE_FRAMES]
    return {"native_stack": [f.to_json() for f in converted],
            "module": blamed_module(converted, [], case_module),
            "signature": signature(converted, None, None)}
