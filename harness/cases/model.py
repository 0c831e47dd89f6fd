"""Cases: what runs in each cycle, and the automatic `import NAME` cases."""

from __future__ import annotations

from dataclasses import dataclass

from ..host.target import TargetPython


@dataclass(frozen=True)
class Case:
    """One thing to run every cycle.

    `setup` runs before `body` in the same cycle and is not measured apart:
    growth is per cycle, whatever part of the cycle caused it.
    """

    name: str
    code: str = ""
    module: str | None = None
    setup: str = ""
    modes: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    cycles: int | None = None
    source: str | None = None      # the file it came from, for messages

    @property
    def source_code(self) -> str:
        parts = [p for p in (self.setup, self.code) if p.strip()]
        return "\n".join(parts) + "\n" if parts else "pass\n"


CONTROL = Case(name="(control: pass)", code="pass", module=None)


def code_case(code: str, module: str | None = None, name: str | None = None) -> Case:
    """A case from `-c CODE`."""
    return Case(name=name or (f"{module}-code" if module else "code"), code=code, module=module)


def import_case(module: str) -> Case:
    return Case(name=f"{module}-import", code=f"import {module}", module=module)


# Modules whose import does something a sweep must not: open a window, start
# an interactive loop, print a page, or exist only for other platforms.
SWEEP_SKIPS: dict[str, str] = {
    "antigravity": "opens a web browser on import",
    "this": "prints the Zen of Python on import (harmless, but noise in every cycle)",
    "__hello__": "prints on import",
    "__phello__": "prints on import",
    "idlelib": "GUI application package",
    "turtledemo": "GUI demo package",
    "tkinter": "needs a display for most uses; import alone loads Tk (often absent)",
    "turtle": "imports tkinter",
    "_tkinter": "loads Tk",
    "pydoc_data": "data only",
    "genericpath": "circular import when imported before os (no site): fails at a fresh start",
    "lib2to3": "deprecated; writes grammar pickles into the cache on import",
    "ensurepip": "installer entry point",
    "venv": "environment creator entry point",
    "xxlimited": "CPython's example module",
    "xxlimited_35": "CPython's example module",
    "xxsubtype": "CPython's example module",
    "_xxtestfuzz": "CPython's fuzzing target",
    "msvcrt": "Windows only",
    "winreg": "Windows only",
    "winsound": "Windows only",
    "_winapi": "Windows only",
    "_overlapped": "Windows only",
    "_msi": "Windows only",
    "msilib": "Windows only",
    "nt": "Windows only",
    "_wmi": "Windows only",
    "_scproxy": "macOS only",
    "_osx_support": "macOS only",
    "_aix_support": "AIX only",
    "_ios_support": "iOS only",
    "_android_support": "Android only",
}


def stdlib_import_cases(target: TargetPython) -> tuple[list[Case], dict[str, str]]:
    """(`import NAME` cases for the target's stdlib, {skipped name: why}).

    Names come from the *target's* `sys.stdlib_module_names`; private
    underscore modules are kept, since most leaks live in extension modules.
    """
    cases, skipped = [], {}
    importable = set(target.importable_stdlib)
    for name in target.stdlib_module_names:
        if name not in importable:
            skipped[name] = "not importable on this build"
        elif name in SWEEP_SKIPS:
            skipped[name] = SWEEP_SKIPS[name]
        elif name.startswith("_test") or name in ("__main__", "test"):
            skipped[name] = "CPython's own test support"
        else:
            cases.append(import_case(name))
    return cases, skipped
