"""`doctor`: what works on this machine, and what to install for what does not."""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
from dataclasses import dataclass

from ..engine import Engine
from ..settings import RunSettings
from ..errors import HarnessError
from ..host.build import build_host, config_script, find_compiler
from ..host.target import installed_pythons, target_python

VALGRIND_MIN = (3, 15)


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""


def check_compiler() -> Check:
    try:
        compiler = find_compiler()
    except HarnessError as exc:
        return Check("C compiler", False, str(exc), "apt-get install gcc")
    version = subprocess.run([compiler.split()[0], "--version"], capture_output=True, text=True)
    return Check("C compiler", True, f"{compiler}: {version.stdout.splitlines()[0] if version.stdout else '?'}")


def check_python(path: str) -> list[Check]:
    try:
        target = target_python(path)
    except HarnessError as exc:
        return [Check(f"python {path}", False, str(exc))]
    label = f"Python {target.label} ({target.executable})"
    checks = []
    try:
        script = config_script(target)
        build_host(target)
    except HarnessError as exc:
        fallback = " (subinterpreter mode falls back to the pure-Python host)" \
            if target.has_interpreters else ""
        return [Check(label, False, str(exc) + fallback,
                      f"apt-get install python{target.short_version}-dev, or a shared build")]
    modes = ["finalize", "legacy-subinterpreter"]
    if target.version_info[:2] >= (3, 12):
        modes.insert(1, "subinterpreter")
    engine, works = Engine(), []
    for mode in modes:
        try:
            result = engine.control_result(RunSettings(python=target.executable, mode=mode,
                                                       cycles=4, warmup=1, timeout=60))
            works.append(f"{mode}: {'ok' if result.verdict in ('leak', 'clean') else result.verdict}")
        except HarnessError as exc:
            works.append(f"{mode}: {exc}")
    ok = all(w.endswith("ok") for w in works)
    detail = f"{script.name} --embed; host built; " + "; ".join(works)
    if target.debug:
        detail += "; debug build (refs counted)"
    checks.append(Check(label, ok, detail))
    return checks


def check_valgrind() -> Check:
    exe = shutil.which("valgrind")
    if not exe:
        return Check("valgrind", False, "not found", "apt-get install valgrind")
    out = subprocess.run([exe, "--version"], capture_output=True, text=True).stdout.strip()
    match = re.search(r"(\d+)\.(\d+)", out)
    version = tuple(int(x) for x in match.groups()) if match else (0, 0)
    if version < VALGRIND_MIN:
        return Check("valgrind", False, f"{out} is older than {VALGRIND_MIN[0]}.{VALGRIND_MIN[1]}",
                     "install a newer valgrind")
    headers = bool(shutil.which("valgrind")) and _has_memcheck_header()
    return Check("valgrind", True, f"{out}; memcheck.h {'found' if headers else 'missing'}",
                 "" if headers else "apt-get install valgrind (ships memcheck.h)")


def _has_memcheck_header() -> bool:
    import os
    return os.path.exists("/usr/include/valgrind/memcheck.h")


def check_module(name: str, why: str, fix: str) -> Check:
    found = importlib.util.find_spec(name) is not None
    return Check(name, found, why if found else f"not installed ({why})", "" if found else fix)


def run_checks(pythons: list[str] | None = None) -> list[Check]:
    checks = [check_compiler()]
    for path in pythons or installed_pythons():
        checks.extend(check_python(path))
    checks.append(check_valgrind())
    checks.append(check_module("memray", "memray backend", "pip install memray"))
    checks.append(check_module("xdist", "pytest -n auto", "pip install pytest-xdist"))
    debug = any("debug" in c.name for c in checks)
    if not debug:
        checks.append(Check("debug build", False, "no Py_DEBUG interpreter found (refs per cycle need one)",
                            "apt-get install python3.11-dbg"))
    return checks
