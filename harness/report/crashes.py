"""Crashes grouped by signature, and a crash's stacks as text: shared by every format.

A stdlib sweep of a Python with one bug in its runtime crashes in dozens of
modules with the same stack; one row per crash hides that it is one bug.
The signature (harness/crash.py: the top function names outside libc) is
the same wherever the bug is hit, so the reports show one group per
signature with the modules that hit it, most crashes first.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..results.summary import module_name, target_order
from ..verdict.crash import BLAMED_BY

#: the group of crash results that carry no stack (older results, a host
#: without handlers)
NO_SIGNATURE = "(no stack recorded)"


@dataclass
class CrashGroup:
    signature: str
    lines: list[dict[str, Any]] = field(default_factory=list)

    @property
    def modules(self) -> list[str]:
        """The crashing cases' modules, each once, in order."""
        seen: dict[str, None] = {}
        for line in self.lines:
            seen.setdefault(module_name(line), None)
        return list(seen)

    @property
    def blamed(self) -> list[str]:
        """The modules the stacks blame (crash.module), each once."""
        seen: dict[str, None] = {}
        for line in self.lines:
            blamed = (line.get("crash") or {}).get("module")
            if blamed:
                seen.setdefault(blamed, None)
        return list(seen)

    @property
    def without_hook(self) -> str:
        """'yes' / 'no' / 'mixed' / '?': does the bare host crash too?"""
        values = {(line.get("crash") or {}).get("reproduces_without_hook") for line in self.lines}
        if values == {True}:
            return "yes"
        if values == {False}:
            return "no"
        return "?" if values == {None} else "mixed"


def signature_of(line: dict[str, Any]) -> str:
    return (line.get("crash") or {}).get("signature") or NO_SIGNATURE


def crash_groups(case_lines: list[dict[str, Any]]) -> list[CrashGroup]:
    """Crash results grouped by signature: biggest group first, then by signature."""
    groups: dict[str, CrashGroup] = {}
    crashes = sorted((l for l in case_lines if l.get("verdict") == "crash"),
                     key=lambda l: (module_name(l), target_order(l)))
    for line in crashes:
        signature = signature_of(line)
        groups.setdefault(signature, CrashGroup(signature)).lines.append(line)
    return sorted(groups.values(), key=lambda g: (-len(g.lines), g.signature))


def modules_text(modules: list[str], limit: int = 8) -> str:
    shown = ", ".join(modules[:limit])
    return shown + (f", … (+{len(modules) - limit})" if len(modules) > limit else "")


def groups_headline(groups: list[CrashGroup]) -> str:
    """'22 crashes, 4 signatures'."""
    crashes = sum(len(g.lines) for g in groups)
    return (f"{crashes} crash{'es' if crashes != 1 else ''}, "
            f"{len(groups)} signature{'s' if len(groups) != 1 else ''}")


def stack_text(stack: dict[str, Any] | None) -> str:
    """A crash's or hang's full stacks as plain text (JUnit, details blocks)."""
    if not stack:
        return ""
    head = [f"signature: {stack.get('signature')}",
            f"module: {stack.get('module')}"
            + (f" ({BLAMED_BY[stack['blamed_by']]})" if stack.get("blamed_by") in BLAMED_BY else ""),
            f"phase: {stack.get('phase')}, cycle {stack.get('cycle')}"
            + (" (the main interpreter, before cycle 1)" if stack.get("cycle") == 0 else "")
            + (f", signal {stack['signal']}" if stack.get("signal") else "")]
    if stack.get("loaded_extensions"):
        head.append(f"extensions loaded outside the standard library: {', '.join(stack['loaded_extensions'])}")
    if "reproduces_without_hook" in stack:
        head.append(f"reproduces without the hook: {stack.get('reproduces_without_hook')}")
    lines = head + ["", "native stack (innermost first):"]
    for index, frame in enumerate(stack.get("native_stack") or []):
        lines.append(f"  #{index:<2} {frame.get('function')}  {frame.get('where')}  [{frame.get('object')}]")
    for thread in stack.get("python_stack") or []:
        current = "current thread" if thread.get("current") else "thread"
        lines += ["", f"Python stack, {current} {thread.get('thread')} (most recent call first):"]
        for frame in thread.get("frames") or []:
            lines.append(f'  File "{frame.get("file")}", line {frame.get("line")} in {frame.get("function")}')
        if not thread.get("frames"):  # a crash in an interpreter's end runs no Python code
            lines.append("  (no Python frame)")
    return "\n".join(lines)
