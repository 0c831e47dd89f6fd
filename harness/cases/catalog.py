"""Case files: the catalog `harness/data/cases/*.toml`, a project's `cases/*.toml` (and `leak_*.toml` in test trees) -> validated `Case`s.

One file holds one case.  Every field is checked here, once, so a typo in
a catalog file is one line naming the file and the field, not a confusing
host error forty cycles later.  `requires` is judged against the *target*
Python (its version, what it can import), which is why it is kept apart
from the `Case` itself: the same file can fit 3.13 and not 3.10.

Schema (documented in README.md, "Case files"):

    name     = "json-roundtrip"        # optional, default: the file's stem
    module   = "json"                  # required: the module the case exercises
    setup    = "import json"           # optional, runs first in every cycle
    body     = "json.loads(json.dumps({'a': [1, 2.5, None]}))"   # required
    control  = "import json"           # optional: the control runs this instead of
                                       # `pass`, so only what `body` adds is judged
    modes    = ["finalize", "subinterpreter"]   # optional, default: every mode
    tags     = ["json", "text"]        # optional list of words
    cycles   = 20                      # optional, >= 4
    description = "..."                # optional, free text
    [requires]
    python   = ">=3.11, <3.14"         # optional version range of the target
    packages = ["sqlite3"]             # optional, must be importable by the target
"""

from __future__ import annotations

import functools
import json
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

from .model import Case
from ..data import catalog_dir
from ..errors import CaseError, read_input_text
from ..host.modes import DEFAULT_SWEEP_MODES, MODES
from ..host.target import TargetPython
from ..host.versions import VersionRange, VersionRangeError

#: The shipped catalog (harness/data/cases: in a checkout, an editable install and a wheel).
CATALOG_DIR = catalog_dir()

_FIELDS = {"name", "module", "setup", "body", "control", "modes", "tags", "cycles", "description",
           "requires"}
_REQUIRES_FIELDS = {"python", "packages"}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_MODULE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


@dataclass(frozen=True)
class Requirements:
    """What the target Python must offer: a version range and importable packages."""

    python: VersionRange | None = None
    packages: tuple[str, ...] = ()

    def problem(self, target: TargetPython) -> str | None:
        """Why `target` cannot run the case, or None when it can."""
        if self.python and not self.python.admits(tuple(target.version_info)):
            return f"needs Python {self.python.text}; {target.executable} is {target.version}"
        if self.packages:
            missing = [n for n in self.packages if n not in _importable(target.executable, self.packages)]
            if missing:
                return (f"needs {', '.join(missing)}, not importable by "
                        f"{target.executable} ({target.version})")
        return None


@dataclass(frozen=True)
class CaseFile:
    """A case as written in its file, with what it requires of the target."""

    case: Case
    path: Path
    requires: Requirements = field(default_factory=Requirements)
    description: str = ""

    @property
    def name(self) -> str:
        return self.case.name

    def modes_for(self, wanted: tuple[str, ...] = ()) -> tuple[str, ...]:
        """The modes to run: the case's own (default: the sweep's), narrowed to `wanted`.

        A case without `modes` fits every mode, but runs by default in the
        sweep's two (finalize, subinterpreter); asking for a mode runs it there.
        """
        if wanted:
            own = self.case.modes or tuple(MODES)
            return tuple(m for m in own if m in wanted)
        return self.case.modes or DEFAULT_SWEEP_MODES


@functools.lru_cache(maxsize=None)
def _importable(executable: str, names: tuple[str, ...]) -> frozenset[str]:
    """Which of `names` the target can find (find_spec, no import: nothing runs)."""
    probe = ("import json, sys\nfrom importlib.util import find_spec\n"
             "def ok(n):\n    try:\n        return find_spec(n) is not None\n"
             "    except Exception:\n        return False\n"
             "print(json.dumps([n for n in sys.argv[1:] if ok(n)]))")
    proc = subprocess.run([executable, "-I", "-c", probe, *names],
                          capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        return frozenset()
    return frozenset(json.loads(proc.stdout))


def _want(data: dict, key: str, kind: type, where: str, label: str | None = None) -> Any:
    value = data[key]
    if kind is int and isinstance(value, bool) or not isinstance(value, kind):
        raise CaseError(f"{where}: field '{label or key}' must be {_kind_name(kind)}, "
                        f"not {type(value).__name__} {value!r}")
    return value


def _kind_name(kind: type) -> str:
    return {str: "a string", int: "an integer", list: "a list", dict: "a table"}[kind]


def _string_list(data: dict, key: str, where: str, label: str | None = None) -> tuple[str, ...]:
    items = _want(data, key, list, where, label)
    for item in items:
        if not isinstance(item, str) or not item.strip():
            raise CaseError(f"{where}: field '{label or key}' must list non-empty strings, "
                            f"found {item!r}")
    return tuple(items)


def _check_code(code: str, field_name: str, where: str) -> None:
    try:
        compile(code, f"{where}:{field_name}", "exec")
    except SyntaxError as exc:
        raise CaseError(f"{where}: field '{field_name}' is not valid Python: "
                        f"{exc.msg} (line {exc.lineno} of the field)") from None


def case_from_mapping(data: dict, where: str, default_name: str) -> CaseFile:
    """Validate one parsed case file; `where` names it in every error."""
    unknown = sorted(set(data) - _FIELDS)
    if unknown:
        raise CaseError(f"{where}: unknown field '{unknown[0]}'; "
                        f"case files know {', '.join(sorted(_FIELDS))}")
    for key in ("module", "body"):
        if key not in data:
            raise CaseError(f"{where}: field '{key}' is missing")
    name = _want(data, "name", str, where) if "name" in data else default_name
    if not _NAME.match(name):
        raise CaseError(f"{where}: field 'name': {name!r} must be letters, digits, '.', '_' or '-'")
    module = _want(data, "module", str, where)
    if not _MODULE.match(module):
        raise CaseError(f"{where}: field 'module': {module!r} is not a module name")
    body = _want(data, "body", str, where)
    if not body.strip():
        raise CaseError(f"{where}: field 'body' is empty")
    setup = _want(data, "setup", str, where) if "setup" in data else ""
    _check_code(setup, "setup", where)
    _check_code(body, "body", where)
    control = None
    if "control" in data:
        control = _want(data, "control", str, where)
        if not control.strip():
            raise CaseError(f"{where}: field 'control' is empty (leave it out for the `pass` control)")
        _check_code(control, "control", where)
    modes = _string_list(data, "modes", where) if "modes" in data else ()
    for mode in modes:
        if mode not in MODES:
            raise CaseError(f"{where}: field 'modes': unknown mode {mode!r}; "
                            f"choose from {', '.join(MODES)}")
    tags = _string_list(data, "tags", where) if "tags" in data else ()
    cycles = None
    if "cycles" in data:
        cycles = _want(data, "cycles", int, where)
        if cycles < 4:
            raise CaseError(f"{where}: field 'cycles' must be at least 4 (got {cycles})")
    description = _want(data, "description", str, where) if "description" in data else ""
    requires = _requirements(data, where)
    case = Case(name=name, code=body, module=module, setup=setup, modes=modes, tags=tags,
                cycles=cycles, source=where, control=control)
    return CaseFile(case=case, path=Path(where), requires=requires, description=description)


def _requirements(data: dict, where: str) -> Requirements:
    if "requires" not in data:
        return Requirements()
    table = _want(data, "requires", dict, where)
    unknown = sorted(set(table) - _REQUIRES_FIELDS)
    if unknown:
        raise CaseError(f"{where}: unknown field 'requires.{unknown[0]}'; "
                        f"[requires] knows {', '.join(sorted(_REQUIRES_FIELDS))}")
    text = _want(table, "python", str, where, "requires.python") if "python" in table else ""
    packages = (_string_list(table, "packages", where, "requires.packages")
                if "packages" in table else ())
    for package in packages:
        if not _MODULE.match(package):
            raise CaseError(f"{where}: field 'requires.packages': {package!r} is not an "
                            f"importable name")
    try:
        python = VersionRange.parse(text) if "python" in table else None
    except VersionRangeError as exc:
        raise CaseError(f"{where}: field 'requires.python': {exc}") from None
    return Requirements(python=python, packages=packages)


def load_case_file(path: str | Path) -> CaseFile:
    """Read and validate one case file; any problem is a CaseError naming the file."""
    path = Path(path)
    text = read_input_text(path, "case file", CaseError)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise CaseError(f"{path}: not valid TOML: {exc}") from None
    return case_from_mapping(data, str(path), path.stem)


def load_catalog(directory: str | Path = CATALOG_DIR) -> list[CaseFile]:
    """Every `*.toml` case in `directory`, sorted by name; duplicate names are an error."""
    directory = Path(directory)
    if not directory.is_dir():
        raise CaseError(f"case directory {directory} does not exist")
    seen: dict[str, Path] = {}
    loaded = []
    for path in sorted(directory.glob("*.toml")):
        case_file = load_case_file(path)
        if case_file.name in seen:
            raise CaseError(f"{path}: field 'name': {case_file.name!r} is already used by "
                            f"{seen[case_file.name]}")
        seen[case_file.name] = path
        loaded.append(case_file)
    return sorted(loaded, key=lambda c: c.name)


def find_case(name: str, directory: str | Path = CATALOG_DIR) -> CaseFile | None:
    """The catalog case called `name` (its `name` field or file stem), else None."""
    directory = Path(directory)
    direct = directory / f"{name}.toml"
    if direct.is_file():
        case_file = load_case_file(direct)
        if case_file.name == name:
            return case_file
    if not directory.is_dir():
        return None
    for case_file in load_catalog(directory):
        if case_file.name == name:
            return case_file
    return None


def select_cases(names: Iterable[str] = (), directory: str | Path = CATALOG_DIR) -> list[CaseFile]:
    """The whole catalog, or only the cases called `names` (an unknown one is a CaseError)."""
    catalog = load_catalog(directory)
    wanted = set(names)
    if not wanted:
        return catalog
    unknown = sorted(wanted - {c.name for c in catalog})
    if unknown:
        raise CaseError(f"no case named {', '.join(unknown)} in {directory}")
    return [c for c in catalog if c.name in wanted]


def cases_for_target(catalog: list[CaseFile], target: TargetPython) -> tuple[list[Case], dict[str, str]]:
    """(the catalog's cases `target` can run, {case name: why not} for the rest,
    from each case's `requires`)."""
    fitting, skipped = [], {}
    for case_file in catalog:
        problem = case_file.requires.problem(target)
        if problem:
            skipped[case_file.name] = problem
        else:
            fitting.append(case_file.case)
    return fitting, skipped
