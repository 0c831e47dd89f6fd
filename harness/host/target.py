"""The target interpreter: what it is, asked of the interpreter itself.

The harness runs on one Python and measures another; everything the host
builder and the modes need to know about the target comes from one
subprocess call, cached per executable for the life of the harness process.
"""

from __future__ import annotations

import functools
import json
import os
import re
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import TargetPythonError
from .strays import kill_group

_PROBE = r"""
import json, os, sys, sysconfig
from importlib.util import find_spec
cfg = sysconfig.get_config_var
def importable(name):
    try:
        return find_spec(name) is not None
    except Exception:
        return False
print(json.dumps({
    "version": "%d.%d.%d" % sys.version_info[:3],
    "version_info": list(sys.version_info[:3]),
    "executable": sys.executable,
    "sys_executable": sys.executable,
    "realpath": os.path.realpath(sys.executable),
    "debug": hasattr(sys, "gettotalrefcount"),
    "abiflags": getattr(sys, "abiflags", ""),
    "shared": bool(cfg("Py_ENABLE_SHARED")),
    "ldlibrary": cfg("LDLIBRARY") or "",
    "libdir": cfg("LIBDIR") or "",
    "bindir": cfg("BINDIR") or "",
    "includepy": cfg("INCLUDEPY") or "",
    "ext_suffix": cfg("EXT_SUFFIX") or "",
    "stdlib_module_names": sorted(getattr(sys, "stdlib_module_names", ())),
    "builtin_module_names": sorted(sys.builtin_module_names),
    "has_interpreters": any(
        find_spec(n) is not None for n in ("_interpreters", "_xxsubinterpreters")
    ),
    "importable_stdlib": sorted(n for n in getattr(sys, "stdlib_module_names", ())
                                if importable(n)),
}))
"""


@dataclass(frozen=True)
class TargetPython:
    """One interpreter under test, as it describes itself."""

    executable: str
    sys_executable: str      # what the target reports; its getpath finds the stdlib from it
    realpath: str
    version: str
    version_info: tuple[int, int, int]
    debug: bool
    abiflags: str
    shared: bool
    ldlibrary: str
    libdir: str
    bindir: str
    includepy: str
    ext_suffix: str
    stdlib_module_names: tuple[str, ...] = field(repr=False)
    builtin_module_names: tuple[str, ...] = field(repr=False)
    has_interpreters: bool = False
    importable_stdlib: tuple[str, ...] = field(default=(), repr=False)

    @property
    def short_version(self) -> str:
        return "%d.%d" % self.version_info[:2]

    @property
    def label(self) -> str:
        return version_label(self.version, self.debug)

    def to_json(self) -> dict:
        return {"version": self.version, "executable": self.executable, "debug": self.debug}


def version_label(version: str, debug: bool) -> str:
    """'3.12.1', '3.11.7-debug', '3.12-debug': how a target is named in reports,
    result keys, cache folders and suppression files (a debug build is
    another row: it keeps other objects)."""
    return f"{version}-debug" if debug else version


#: what users type for an interpreter, as tox/nox/uv take it: 3.12, 3.12.1, python3.13
_VERSION_SPEC = re.compile(r"^(?:python)?(3(?:\.\d+){0,2})$")


def _resolve_executable(python: str | os.PathLike | None) -> str:
    if python is None:
        return sys.executable
    text = str(python)
    if os.sep not in text and not os.path.isdir(text):
        spec = _VERSION_SPEC.match(text)
        if text.startswith("python"):  # a command name: PATH's first that runs, as tox takes it
            for found in _on_path(text):
                try:
                    _probe(found)
                    return found
                except TargetPythonError:
                    continue  # e.g. a pyenv shim for a version not selected
        if spec:
            return _by_version(spec.group(1), text)
        raise TargetPythonError(f"target Python {text!r} not found on PATH")
    if not os.path.exists(text):
        if os.path.islink(text):  # a venv whose base interpreter is gone
            raise TargetPythonError(f"target Python {text} is a symlink to {os.readlink(text)}, "
                                    "which does not exist (a venv whose base Python is gone?)")
        raise TargetPythonError(f"target Python {text} does not exist")
    if os.path.isdir(text):
        # a venv's folder is taken for its interpreter, as uv takes it
        inside = os.path.join(text, "bin", "python")
        if os.path.isfile(os.path.join(text, "pyvenv.cfg")) and os.path.exists(inside):
            return os.path.abspath(inside)
        raise TargetPythonError(f"target Python {text} is a directory, not an interpreter "
                                "(give its bin/python)")
    return os.path.abspath(text)


def _by_version(version: str, asked: str) -> str:
    """The one interpreter on PATH or under pyenv whose version is `version`
    (3.12 matches any 3.12.x); none or several is the user's to settle.

    Candidates are told apart by `_identity`, not by the full probe: that
    one looks for every importable stdlib module, ~60 ms a Python, and
    `--python 3.12` on this machine (nine pyenv versions) spent 0.54 s of a
    1.2 s `run -c pass` probing all of them.  Only the one picked is probed."""
    minor = ".".join(version.split(".")[:2])
    candidates = [*installed_pythons(), *_on_path(f"python{minor}")]
    matches: dict[tuple[str, bool], str] = {}
    labels: dict[str, str] = {}
    for exe in candidates:
        identity = _identity(exe)
        if identity is None or _release(identity[0])[:2] < (3, 10):
            continue
        found, debug, realpath = identity
        labels[exe] = version_label(found, debug)
        if found == version or ".".join(found.split(".")[:2]) == version:
            matches.setdefault((realpath, debug), exe)
    if len(matches) == 1:
        return next(iter(matches.values()))
    seen = list(dict.fromkeys(f"{label} ({exe})" for exe, label in labels.items()))
    listed = ", ".join(seen) or "no Python 3.10+"
    if not matches:
        raise TargetPythonError(f"--python {asked}: no Python {version} on PATH or under pyenv "
                                f"(found: {listed}); give its path")
    raise TargetPythonError(f"--python {asked} is ambiguous: "
                            + ", ".join(f"{labels[e]} ({e})" for e in matches.values())
                            + "; give a full version or a path")


#: version, debug build and binary, in one line from any Python 2 or 3 (so
#: it also says why one the full probe cannot even start is no target)
_IDENTITY_PROBE = ("import os, sys; sys.stdout.write('%d.%d.%d %d %s' % (tuple(sys.version_info[:3])"
                   " + (hasattr(sys, 'gettotalrefcount'), os.path.realpath(sys.executable))))")


@functools.lru_cache(maxsize=None)
def _identity(executable: str) -> tuple[str, bool, str] | None:
    """(version, debug, realpath) of the Python at `executable`, as the full
    probe would say them, whatever its version; None for anything that does
    not answer (a pyenv shim of a version not selected, not a Python)."""
    try:
        proc = _ask([executable, "-E", "-s", "-S", "-c", _IDENTITY_PROBE])
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.fullmatch(r"(\d+\.\d+\.\d+) ([01]) (.+)", proc.stdout) if proc.returncode == 0 else None
    return (match.group(1), match.group(2) == "1", match.group(3)) if match else None


def _release(version: str) -> tuple[int, ...]:
    return tuple(int(n) for n in version.split("."))


def _on_path(name: str) -> list[str]:
    """Every `name` on PATH, not only the first (pyenv shims come before /usr/bin)."""
    found = []
    for directory in os.environ.get("PATH", "").split(os.pathsep):
        exe = Path(directory or ".", name)
        if exe.is_file() and os.access(exe, os.X_OK):
            found.append(str(exe))
    return found
#: seconds a target gets to answer the probe (module-level so tests can shorten it)
PROBE_TIMEOUT_S = 60.0

_FIELD_TYPES = {
    "version": str, "version_info": list, "executable": str, "sys_executable": str,
    "realpath": str, "debug": bool, "abiflags": str, "shared": bool, "ldlibrary": str,
    "libdir": str, "bindir": str, "includepy": str, "ext_suffix": str,
    "stdlib_module_names": list, "builtin_module_names": list, "has_interpreters": bool,
    "importable_stdlib": list,
}


def _ask(argv: list[str]) -> subprocess.CompletedProcess:
    """Run a probe in a session of its own: on a hang it is killed with
    everything it started (a wrapper script's children too)."""
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, errors="replace",
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=PROBE_TIMEOUT_S)
    except BaseException:
        kill_group(proc)
        proc.communicate()
        raise
    try:   # what it left behind (a daemon holding nothing) goes too
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


def _not_a_target(executable: str) -> TargetPythonError:
    """Why `executable` failed the probe, in words a user can act on."""
    identity = _identity(executable)
    if identity is not None and _release(identity[0])[:2] < (3, 10):
        return TargetPythonError(f"target Python {executable} is {identity[0]}; "
                                 "leak-harness needs 3.10+")
    return TargetPythonError(f"{executable} is not a Python 3.10+ interpreter (it did not "
                             "answer the interpreter probe)")


@functools.lru_cache(maxsize=None)
def _probe(executable: str) -> TargetPython:
    try:
        proc = _ask([executable, "-I", "-S", "-c", _PROBE])
    except OSError as exc:
        raise TargetPythonError(f"cannot run target Python {executable}: {exc.strerror or exc}") from None
    except subprocess.TimeoutExpired:
        raise TargetPythonError(f"target Python {executable} did not answer in "
                                f"{PROBE_TIMEOUT_S:g} s (killed)") from None
    if proc.returncode != 0:
        problem = _not_a_target(executable)
        if "needs 3.10+" in str(problem):
            raise problem
        # the last line of a real Python's complaint, never the probe's text
        last = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()][-1:]
        if last and "import json" not in last[0] and len(last[0]) < 300:
            raise TargetPythonError(f"target Python {executable} failed to start: {last[0]}")
        raise problem
    try:
        info = json.loads(proc.stdout)
    except json.JSONDecodeError:
        info = None
    if not isinstance(info, dict) or any(not isinstance(info.get(k), t) for k, t in _FIELD_TYPES.items()) \
            or set(info) != set(_FIELD_TYPES) or len(info["version_info"]) != 3:
        raise _not_a_target(executable)
    if tuple(info["version_info"][:2]) < (3, 10):
        raise TargetPythonError(
            f"target Python {executable} is {info['version']}; leak-harness needs 3.10+"
        )
    # pyenv shims and venvs report the interpreter they exec; keep the path
    # the user gave for display, the real one for building and caching.
    info["executable"] = executable
    info["version_info"] = tuple(info["version_info"])
    info["stdlib_module_names"] = tuple(info["stdlib_module_names"])
    info["builtin_module_names"] = tuple(info["builtin_module_names"])
    info["importable_stdlib"] = tuple(info["importable_stdlib"])
    return TargetPython(**info)


@functools.lru_cache(maxsize=None)
def check_xoptions(executable: str, xoptions: tuple[str, ...]) -> None:
    """Refuse -X values the target itself refuses, as a usage error.

    Only CPython knows which values it takes (`int_max_str_digits=abc`,
    `frozen_modules=maybe`); asked once per target and set, it says so in
    one line here instead of every host failing to initialize.
    """
    if not xoptions:
        return
    argv = [executable, "-I", "-S"]
    for option in xoptions:
        argv += ["-X", option]
    try:
        proc = _ask(argv + ["-c", "pass"])
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise TargetPythonError(f"cannot check -X options with {executable}: {exc}") from None
    if proc.returncode != 0:
        lines = [ln.strip() for ln in proc.stderr.splitlines() if ln.strip()] or ["(no message)"]
        said = next((ln for ln in lines if "rror" in ln), lines[-1])   # "Fatal Python error: ..."
        raise TargetPythonError(f"the target refuses -X {' -X '.join(xoptions)}: {said[:300]}")


def target_python(python: str | os.PathLike | None = None) -> TargetPython:
    """Describe the interpreter at `python` (default: the one running the harness)."""
    return _probe(_resolve_executable(python))


def installed_pythons() -> list[str]:
    """Interpreters found on this machine: pyenv versions, PATH, Debian debug builds."""
    found: dict[str, str] = {}
    roots = [os.environ.get("PYENV_ROOT", ""), os.path.expanduser("~/.pyenv")]
    for root in roots:
        versions = Path(root, "versions") if root else None
        if versions and versions.is_dir():
            for entry in sorted(versions.iterdir()):
                parts = entry.name.split(".")
                if len(parts) >= 2 and parts[0].isdigit() and parts[1].isdigit() \
                        and (int(parts[0]), int(parts[1])) < (3, 10):
                    continue  # targets are 3.10+
                for name in ("python3", "python"):
                    exe = entry / "bin" / name
                    if exe.exists():
                        found.setdefault(os.path.realpath(exe), str(exe))
                        break
    for minor in range(10, 15):
        for name in (f"python3.{minor}", f"python3.{minor}-dbg", f"python3.{minor}d"):
            for directory in ("/usr/bin", "/usr/local/bin"):
                exe = Path(directory, name)
                if exe.exists():
                    found.setdefault(os.path.realpath(exe), str(exe))
    return list(found.values())


_SEARCH_PATH_PROBE = "import json, sys; print(json.dumps(sys.path))"


def search_path(target: TargetPython) -> tuple[str, ...]:
    """The target's sys.path as `TARGET -c ...` has it: stdlib, a venv's own
    site-packages, user site, the path entries of .pth files — without the
    current directory and without PYTHONPATH (the engine puts that first
    itself, per run).  Computed once per target by the target's own `site`,
    so the host can start each cycle with it and run no .pth code."""
    return _search_path(target.executable)


@functools.lru_cache(maxsize=None)
def _search_path(executable: str) -> tuple[str, ...]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONSAFEPATH")}
    try:
        proc = subprocess.run([executable, "-c", _SEARCH_PATH_PROBE], capture_output=True,
                              text=True, timeout=60, env=env, cwd="/")
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise TargetPythonError(f"cannot ask {executable} for its sys.path: {exc}") from None
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise TargetPythonError(f"{executable} -c 'import sys' failed (a broken .pth file?): {last}")
    try:
        entries = json.loads(proc.stdout.strip().splitlines()[-1])
    except (json.JSONDecodeError, IndexError):
        raise TargetPythonError(f"{executable} printed no sys.path") from None
    # '' is the current directory `-c` puts first
    return tuple(dict.fromkeys(e for e in entries if e))
