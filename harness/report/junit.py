"""JUnit XML: the format CI servers (Jenkins, GitLab, GitHub test reporters) read.

One <testsuite> per (python, mode, backend), one <testcase> per module in it;
`leak` is a <failure> carrying the numbers, `crash`/`timeout`/`error` an
<error>, `unsupported` <skipped>. CPython's own growth (the `pass` control)
goes into the suite's <properties>, so a reader of the XML sees what the
excess was measured against.
"""

from __future__ import annotations

import re
import socket
import xml.etree.ElementTree as ET
from datetime import datetime, timezone
from typing import Any

from .crashes import stack_text
from ..results.load import ResultSet, control_key
from ..results.summary import PROBLEM_VERDICTS, first_line, module_name, row_label, target_order
from .numbers import fmt_bytes, fmt_number

# XML 1.0 forbids most control characters; a traceback or a case's output
# may carry them (ANSI colours, NUL), and one of them makes the file unreadable.
_NOT_XML = re.compile("[^\u0009\u000a\u000d\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_safe(text: str) -> str:
    """Text with XML-forbidden characters shown as \\xNN instead."""
    return _NOT_XML.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def _leak_text(line: dict[str, Any]) -> str:
    excess = line.get("excess") or {}
    tolerance = line.get("tolerance") or {}
    control = (line.get("control") or {}).get("per_cycle") or {}
    per_cycle = line.get("per_cycle") or {}
    rows = [f"{line.get('message') or ''}".strip(), "",
            f"{'counter':<8} {'case':>12} {'control':>12} {'excess':>12} {'tolerance':>12}"]
    for counter in ("blocks", "bytes", "refs", "rss"):
        show = fmt_bytes if counter in ("bytes", "rss") else fmt_number
        allowed = show(tolerance[counter]) if counter in tolerance else ""
        rows.append(f"{counter:<8} {show(per_cycle.get(counter)):>12} {show(control.get(counter)):>12}"
                    f" {show(excess.get(counter)):>12} {allowed:>12}")
    triggered = (line.get("evidence") or {}).get("triggered_by")
    if triggered:
        rows.append(f"triggered by: {', '.join(map(str, triggered))}")
    rows.append(f"{line.get('warmup')} warm-up + {line.get('cycles')} cycles, host {line.get('host')}")
    return "\n".join(rows)


def _testcase(suite: ET.Element, line: dict[str, Any], classname: str) -> None:
    case = ET.SubElement(suite, "testcase", name=row_label(line), classname=classname,
                         time=f"{float(line.get('wall_s') or 0.0):.3f}")
    verdict = line["verdict"]
    excess = line.get("excess") or {}
    if verdict == "leak":
        summary = (f"leak: {fmt_number(excess.get('blocks'))} blocks, "
                   f"{fmt_bytes(excess.get('bytes'))} per cycle over the pass control")
        failure = ET.SubElement(case, "failure", message=summary, type="leak")
        failure.text = _leak_text(line)
    elif verdict in PROBLEM_VERDICTS:
        error = ET.SubElement(case, "error", message=f"{verdict}: {first_line(line.get('message'))}",
                              type=verdict)
        stacks = stack_text(line.get("crash") or line.get("hang"))
        error.text = xml_safe("\n\n".join(t for t in ((line.get("message") or "").strip(), stacks) if t))
    elif verdict == "unsupported":
        ET.SubElement(case, "skipped", message=first_line(line.get("message")) or "unsupported")
    out = ET.SubElement(case, "system-out")
    out.text = f"case {line.get('case')}: {line.get('message') or verdict}"


def render_junit(results: ResultSet) -> str:
    """The whole report as a JUnit XML document (UTF-8, with declaration)."""
    suites: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for line in sorted(results.case_lines(), key=lambda l: (target_order(l), module_name(l))):
        suites.setdefault(control_key(line), []).append(line)
    controls = {control_key(c): c for c in results.control_lines()}
    root = ET.Element("testsuites", name="leak-harness")
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0, "time": 0.0}
    timestamp = datetime.now(timezone.utc).replace(microsecond=0, tzinfo=None).isoformat()
    executables: dict[str, set[str]] = {}
    for python, _, _, executable in suites:
        executables.setdefault(python, set()).add(executable)
    for key, lines in suites.items():
        python, mode, backend, executable = key
        # two venvs of one Python: the interpreter tells their suites apart
        shown = f"{python} ({executable})" if len(executables[python]) > 1 else python
        counts = {
            "tests": len(lines),
            "failures": sum(l["verdict"] == "leak" for l in lines),
            "errors": sum(l["verdict"] in PROBLEM_VERDICTS for l in lines),
            "skipped": sum(l["verdict"] == "unsupported" for l in lines),
            "time": sum(float(l.get("wall_s") or 0.0) for l in lines),
        }
        for name, value in counts.items():
            totals[name] += value
        suite = ET.SubElement(root, "testsuite", name=f"python {shown} / {mode} / {backend}",
                              tests=str(counts["tests"]), failures=str(counts["failures"]),
                              errors=str(counts["errors"]), skipped=str(counts["skipped"]),
                              time=f"{counts['time']:.3f}", timestamp=timestamp,
                              hostname=socket.gethostname())
        properties = ET.SubElement(suite, "properties")
        for name, value in (("python", python), ("mode", mode), ("backend", backend),
                            ("executable", executable)):
            ET.SubElement(properties, "property", name=name, value=value)
        control = controls.get(key)
        if control:
            for counter, number in (control.get("per_cycle") or {}).items():
                if number is not None:
                    ET.SubElement(properties, "property", name=f"cpython_own_{counter}_per_cycle",
                                  value=f"{number:.12g}")
        classname = f"leak_harness.py{python.replace('.', '_')}.{mode.replace('-', '_')}.{backend}"
        for line in lines:
            _testcase(suite, line, classname)
    for name in ("tests", "failures", "errors", "skipped"):
        root.set(name, str(totals[name]))
    root.set("time", f"{totals['time']:.3f}")
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + xml_safe(ET.tostring(root, encoding="unicode")) + "\n"
