"""The target interpreter: what it is, asked of the interpreter itself.

The harness runs on one Python and measures another; everything the host
builder and the modes need to know about the target comes from one
subprocess call, cached per executable for the life of the harness process.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import TargetPythonError

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
        return self.version + ("-debug" if self.debug else "")

    def to_json(self) -> dict:
        return {"version": self.version, "executable": self.executable, "debug": self.debug}


def _resolve_executable(python: str | os.PathLike | None) -> str:
    if python is None:
        return sys.executable
    text = str(python)
    if os.sep not in text:
        found = shutil.which(text)
        if not found:
            raise TargetPythonError(f"target Python {text!r} not found on PATH")
        return found
    if not os.path.exists(text):
        raise TargetPythonError(f"target Python {text} does not exist")
    return os.path.abspath(text)


@functools.lru_cache(maxsize=None)
def _probe(executable: str) -> TargetPython:
    try:
        proc = subprocess.run(
            [executable, "-I", "-S", "-c", _PROBE],
            capture_output=True, text=True, timeout=60,
        )
    except OSError as exc:
        raise TargetPythonError(f"cannot run target Python {executable}: {exc}") from None
    except subprocess.TimeoutExpired:
        raise TargetPythonError(f"target Python {executable} did not answer in 60 s") from None
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise TargetPythonError(f"target Python {executable} failed to start: {last}")
    try:
        info = json.loads(proc.stdout)
    except json.JSONDecodeError:
        raise TargetPythonError(f"{executable} is not a Python 3.10+ interpreter") from None
    if tuple(info["version_info"][:2]) < (3, 10):
        raise TargetPythonError(
            f"target Python {executable} is {info['version']}; targets must be 3.10 or newer"
        )
    # pyenv shims and venvs report the interpreter they exec; keep the path
    # the user gave for display, the real one for building and caching.
    info["executable"] = executable
    info["version_info"] = tuple(info["version_info"])
    info["stdlib_module_names"] = tuple(info["stdlib_module_names"])
    info["builtin_module_names"] = tuple(info["builtin_module_names"])
    info["importable_stdlib"] = tuple(info["importable_stdlib"])
    return TargetPython(**info)


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
