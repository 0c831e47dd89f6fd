"""Cases: what runs in each cycle, and the automatic `import NAME` cases."""

from __future__ import annotations

import keyword
from dataclasses import dataclass

from ..errors import CaseError
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
    #: code the control runs instead of `pass` (None: the `pass` control),
    #: so a call can be judged beyond what its import keeps
    control: str | None = None

    def __post_init__(self) -> None:
        # the host compiles a C string: a NUL would silently end the case there
        for part, text in (("code", self.code), ("setup", self.setup)):
            if "\0" in text:
                where = f" ({self.source})" if self.source else ""
                raise CaseError(f"case {self.name}{where}: its {part} contains a NUL byte "
                                f"(at offset {text.index(chr(0))}); Python source cannot")

    @property
    def source_code(self) -> str:
        parts = [p for p in (self.setup, self.code) if p.strip()]
        return "\n".join(parts) + "\n" if parts else "pass\n"


def read_source(path) -> str:
    """A `.py` case's text: UTF-8 (a BOM allowed), else one CaseError line.

    The host compiles UTF-8; a file in another encoding would fail in the
    target (or worse, run mangled), so it is refused here with where.
    """
    try:
        data = open(path, "rb").read()
    except OSError as exc:
        raise CaseError(f"cannot read case file {path}: {exc.strerror or exc}") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CaseError(f"case file {path} is not UTF-8 (byte 0x{data[exc.start]:02x} at offset "
                        f"{exc.start}); save it as UTF-8") from None


CONTROL = Case(name="(control: pass)", code="pass", module=None)


def chosen_control(case: Case) -> Case | None:
    """The case's own control as a Case, or None when it is the `pass` control."""
    code = case.control
    if code is None or not code.strip() or code.strip() == "pass":
        return None
    return Case(name=f"(control: {code.strip()})", code=code, module=case.module)


def check_control_code(code: str, where: str) -> None:
    """A control that does not compile would only fail forty cycles later."""
    try:
        compile(code, "<control>", "exec")
    except SyntaxError as exc:
        raise CaseError(f"{where} is not valid Python: {exc.msg} (line {exc.lineno})") from None


def code_case(code: str, module: str | None = None, name: str | None = None) -> Case:
    """A case from `-c CODE`."""
    return Case(name=name or (f"{module}-code" if module else "code"), code=code, module=module)


def check_module_name(module: str) -> str:
    """`module` when it is a dotted name `import` accepts; else a CaseError.

    The name becomes code (`import NAME`), so anything else would run as
    written: `json; import shutil; shutil.rmtree(...)`.
    """
    parts = module.split(".")
    if not module or not all(p.isidentifier() and not keyword.iskeyword(p) for p in parts):
        raise CaseError(f"{module!r} is not a module name (dotted identifiers, e.g. xml.etree)")
    return module


def import_case(module: str) -> Case:
    check_module_name(module)
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
