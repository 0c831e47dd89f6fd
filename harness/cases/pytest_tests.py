"""A project's own pytest test as a case: import its module from its file, call the test.

The control is the same import without the call, so what pytest's import,
the test module's import and the package it tests keep per cycle cancels,
and the verdict is on what the test body adds.  Both are plain code the host
runs in every cycle (a fresh interpreter, or a fresh subinterpreter), so a
test can only receive what can be rebuilt there from text: plain literal
parameters and `tmp_path` (SUPPORTED_FIXTURES).  Anything else is refused
with the reason, for the plugin to skip the test.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from typing import Any

from .model import Case

#: fixtures the target can build itself; anything else cannot cross into it
SUPPORTED_FIXTURES = ("tmp_path",)
_PLAIN_SCALARS = (type(None), bool, int, float, complex, str, bytes)


@dataclass(frozen=True)
class TestCall:
    """One test function (or method of a plain class) with its parameters."""

    __test__ = False   # a name pytest would otherwise collect

    nodeid: str
    module: str                 # the name pytest imported the file under
    path: str                   # the file itself
    function: str               # the function's own name (no [params])
    cls: str | None = None      # the class it is a method of
    params: dict[str, Any] = field(default_factory=dict)
    fixtures: tuple[str, ...] = ()   # of SUPPORTED_FIXTURES


def is_plain(value: Any) -> bool:
    """Whether `value` survives `repr` -> source -> value unchanged (a literal)."""
    if isinstance(value, (tuple, list, set, frozenset)):
        return all(is_plain(v) for v in value)
    if isinstance(value, dict):
        return all(is_plain(k) and is_plain(v) for k, v in value.items())
    if not isinstance(value, _PLAIN_SCALARS):
        return False
    try:
        return ast.literal_eval(repr(value)) == value or value != value   # NaN
    except (ValueError, SyntaxError):
        return False


def unsupported_reason(fixtures: list[str], params: dict[str, Any], is_async: bool) -> str | None:
    """Why this test cannot run inside the target, or None when it can."""
    if is_async:
        return "leak-cycles: async test functions cannot run inside the target (no event loop plugin there)"
    other = [name for name in fixtures if name not in SUPPORTED_FIXTURES]
    if other:
        return (f"leak-cycles: fixture(s) {', '.join(sorted(other))} cannot be built inside the target "
                f"(supported: {', '.join(SUPPORTED_FIXTURES)} and plain-value parametrize)")
    for name, value in params.items():
        if not is_plain(value):
            return (f"leak-cycles: parameter {name}={type(value).__name__} is not a plain value "
                    f"(literals only cross into the target)")
    return None


def _import_code(call: TestCall) -> str:
    parent = call.module.rpartition(".")[0]
    lines = ["import importlib, importlib.util, sys"]
    if parent:   # a test package: its __init__ first, as pytest imported it
        lines.append(f"importlib.import_module({parent!r})")
    lines += [
        f"_lh_spec = importlib.util.spec_from_file_location({call.module!r}, {call.path!r})",
        "_lh_module = importlib.util.module_from_spec(_lh_spec)",
        f"sys.modules[{call.module!r}] = _lh_module",
        "_lh_spec.loader.exec_module(_lh_module)",
    ]
    # what tmp_path needs, in every test's control: one control per module, not
    # per fixture set (pytest imports them anyway, so this costs nothing)
    lines.append("import pathlib, shutil, tempfile")
    return "\n".join(lines) + "\n"


def _call_code(call: TestCall) -> str:
    target = f"_lh_module.{call.cls}().{call.function}" if call.cls else f"_lh_module.{call.function}"
    arguments = [f"{name}={value!r}" for name, value in call.params.items()]
    if "tmp_path" not in call.fixtures:
        return f"{target}({', '.join(arguments)})\n"
    arguments.append("tmp_path=pathlib.Path(_lh_tmp)")
    return (f"_lh_tmp = tempfile.mkdtemp(prefix='leak-harness-tmp-')\n"
            f"try:\n    {target}({', '.join(arguments)})\n"
            f"finally:\n    shutil.rmtree(_lh_tmp, ignore_errors=True)\n")


def case_for_test(call: TestCall, module: str | None = None, control: str | None = None) -> Case:
    """The case (import + call) with its control (import alone, or `control` after it)."""
    imported = _import_code(call)
    chosen = imported + (control.strip() + "\n" if control and control.strip() else "")
    return Case(name=call.nodeid, code=imported + _call_code(call), module=module,
                control=chosen, source=call.path)
