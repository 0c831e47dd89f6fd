"""The host's command line and environment, built in one place for every caller.

The engine (through a backend's `Launch`), `scale` and `audit`'s init probe
all start target-Python processes; each gets its argv and its PYTHONPATH
from here, so a new host option or a change to how the search path reaches
the host is made once.  Paths that exist only once the run's work
directory does are placeholders (`CASE_FILE`, `CRASH_FILE`, `PATH_FILE`),
filled by `run_case_host`; the pipe fds (`OUT_FD`, `TOKEN_FD`) are filled
by `runner.run_host`.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable, Sequence

from .runner import OUT_FD, STOP_FD, TOKEN_FD, HostRun, Stopping, run_host
from .target import TargetPython, search_path

if TYPE_CHECKING:
    from ..backends.base import Backend, Launch
    from ..cases.model import Case
    from ..settings import RunSettings

PYHOST_DRIVER = Path(__file__).with_name("pyhost_driver.py")
CASE_FILE = "{case_file}"
CRASH_FILE = "{crash_file}"
PATH_FILE = "{path_file}"

#: (a backend's launch spec, total cycles) -> the host's argv
ArgvFor = Callable[["Launch", int], list[str]]


def c_host_argv(binary: str | os.PathLike, mode: str, total_cycles: int, case_file: str,
                target: TargetPython, *, threads: int | None = None,
                xoptions: Iterable[str] = (), site: bool = False, path_file: str | None = None,
                crash_file: str | None = None, warmup: int | None = None,
                traceback_dumper: int | None = None, prefix: Sequence[str] = (),
                host_args: Sequence[str] = (), ask_from: int | None = None,
                core_dumps: bool = False) -> list[str]:
    """The C host's argv: `BINARY MODE CYCLES CASE_FILE OUT_FD PROGRAM` and its options.

    Every host line carries the run's token (`--token-fd`).  Without
    `site`, a `path_file` gives the host the target's sys.path; with
    neither the host keeps the interpreter's computed path (scale's bare
    runs).  `warmup` tells it when to write its native sites.  `ask_from`
    (adaptive cycles): from that cycle on the host asks the stop pipe
    whether to go on (runner.Stopping answers).  No core file unless
    `core_dumps`: a crash is reported by the host's own handler, and a core
    per crashing host (and its bare rerun) would land in the harness's
    directory wherever `ulimit -c` allows one (93 MB for 3.12.1's host)."""
    argv = [*prefix, str(binary), mode, str(total_cycles), case_file, OUT_FD,
            target.sys_executable, "--token-fd", TOKEN_FD]
    if not core_dumps:
        argv.append("--no-core-dump")
    if crash_file is not None:
        argv += ["--crash-file", crash_file]
    if traceback_dumper:
        argv += ["--traceback-dumper", hex(traceback_dumper)]
    if site:
        argv.append("--site")
    elif path_file is not None:
        argv += ["--path-file", path_file]
    for opt in xoptions:
        argv += ["-X", opt]
    if threads is not None:
        argv += ["--threads", str(threads)]
    if warmup is not None:
        argv += ["--warmup", str(warmup)]
    if ask_from is not None:
        argv += ["--stop-fd", STOP_FD, "--ask-from", str(ask_from)]
    return argv + list(host_args)


def pyhost_argv(target: TargetPython, case_file: str, total_cycles: int,
                prefix: Sequence[str] = ()) -> list[str]:
    """The pure-Python host: -S -P, not -I, so PYTHONPATH reaches the subinterpreters."""
    return [*prefix, target.sys_executable, "-S", "-P", str(PYHOST_DRIVER),
            case_file, str(total_cycles), OUT_FD, TOKEN_FD]


def host_env(pythonpath: Iterable[str] = (), extra_path: Iterable[str] = ()) -> dict[str, str]:
    """This process's environment with PYTHONPATH = the run's entries, the
    inherited PYTHONPATH, then `extra_path` (the probe extension's folder)."""
    env = dict(os.environ)
    inherited = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join([*pythonpath, *inherited, *extra_path])
    return env


def run_case_host(case: "Case", settings: "RunSettings", role: str, backend: "Backend",
                  target: TargetPython, argv_for: ArgvFor, extra_path: list[str],
                  total_cycles: int | None = None, on_sample=None,
                  stopping: Stopping | None = None) -> HostRun:
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
        placeholders = {CASE_FILE: str(case_file), CRASH_FILE: str(crash_file)}
        argv = [placeholders.get(a, a) for a in argv_for(spec, total)]
        env = host_env(settings.pythonpath, extra_path)
        env.update(spec.env)
        if not settings.site:
            argv = _give_search_path(argv, env, target, workdir)
        run = run_host(argv, OUT_FD, env, settings.timeout * spec.timeout_factor, on_sample,
                       stopping if STOP_FD in argv else None)
        run.artifacts = backend.collect(run, workdir, role, settings, spec)
        if crash_file.exists() and crash_file.stat().st_size:
            run.crash_report = crash_file.read_text(errors="replace")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    if total_cycles is None and run.completed:
        for companion_total in spec.companion_cycles:
            run.companions[companion_total] = run_case_host(
                case, settings, role, backend, target, argv_for, extra_path, companion_total)
    return run


def _give_search_path(argv: list[str], env: dict[str, str], target: TargetPython,
                      workdir: Path) -> list[str]:
    """The target's own sys.path (venv and .pth entries; see
    host.target.search_path) after PYTHONPATH: to the C host as its module search
    path (--path-file), to the pure-Python host (run with -S) by PYTHONPATH."""
    inherited = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    entries = list(dict.fromkeys([*inherited, *search_path(target)]))
    if PATH_FILE not in argv:
        env["PYTHONPATH"] = os.pathsep.join(entries)
        return argv
    path_file = workdir / "sys_path.txt"
    path_file.write_bytes(b"".join(os.fsencode(e) + b"\n" for e in entries))
    return [str(path_file) if a == PATH_FILE else a for a in argv]
